# oneshot-mock: offline sandbox of the One-Shot Signature API.
#   docker build -t oneshot-mock .
#   docker run --rm -p 8080:8080 oneshot-mock
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 oneshot
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mock_server ./mock_server
COPY fixtures ./fixtures
RUN pip install --no-cache-dir . && rm -rf /root/.cache

USER oneshot
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/api/v1/hello', timeout=2)" || exit 1
CMD ["oneshot-mock", "serve", "--host", "0.0.0.0"]
