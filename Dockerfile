# oneshot-mock: offline sandbox of the One-Shot Signature API.
#   docker build -t oneshot-mock .
#   docker run --rm -p 8080:8080 oneshot-mock
# Configure it with ONESHOT_MOCK_* variables, one per `oneshot-mock serve` option (-e ONESHOT_MOCK_OTP=123456).
# Debian 12 (bookworm) named, so a rebuild does not move to the next Debian release unnoticed.
FROM python:3.11-slim-bookworm

# A fixed numeric uid, so that Kubernetes' runAsNonRoot can check it; /data is created here, owned by that
# user, because a volume starts as a copy of the image's directory (changes after VOLUME would be lost).
RUN groupadd --gid 10001 oneshot \
 && useradd --create-home --uid 10001 --gid 10001 oneshot \
 && mkdir /data && chown 10001:10001 /data
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY mock_server ./mock_server
COPY fixtures ./fixtures
COPY scenarios ./scenarios
RUN pip install --no-cache-dir .

# Reachable from outside the container (the server warns: the control API is open without an admin token).
# State persists in /data, so a restarted container keeps its requests; `-e ONESHOT_MOCK_DATA_DIR=` (empty)
# keeps everything in memory instead. Persisting costs in proportion to what is stored: the image keeps
# the newest 200 finished requests (48 classic flows/s, flat; 15 with the default 1000). The healthcheck
# follows ONESHOT_MOCK_PORT.
ENV ONESHOT_MOCK_HOST=0.0.0.0 \
    ONESHOT_MOCK_PORT=8080 \
    ONESHOT_MOCK_DATA_DIR=/data
VOLUME /data
USER 10001:10001
EXPOSE 8080
# /api/v1/hello rather than /_mock/health: it is served even with ONESHOT_MOCK_NO_CONTROL_API=1 or an admin token.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/hello' % (os.environ.get('ONESHOT_MOCK_PORT') or '8080'), timeout=2)"]
CMD ["oneshot-mock", "serve"]
