"""``oneshot-mock proxy``: a pass-through to an upstream (the vendor's hosted sandbox) that records
every call of either API family as a scenario the sandbox can load to answer it the same way
offline, and the whole session as a HAR file.

Each ``METHOD path`` becomes one ``respond`` rule per time it was called, in order (``when: {after:
k, times: 1}``; the last answer goes on answering); JSON answers are kept as JSON, anything else as
base64 with its content type. Credentials are redacted wherever they would be written: request
headers and fields in the HAR, and the answers that are credentials (token listings). Nothing else
is stored, nothing logged. Both files are written again, in a thread, after each exchange and before
its answer goes back, so a stopped proxy leaves a complete recording.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import yaml
from aiohttp import web

from mock_server import __version__
from mock_server.domain.errors import reason_phrase
from mock_server.domain.journal import REDACTED, redact, redact_headers

SCENARIO_FILE = "recording.yaml"
HAR_FILE = "session.har"
_RECORDED = re.compile(r"^(/api/v1|/oneshot/api/v1)(/|$)")
# Paths whose answers are credentials: tokens and their listings.
_CREDENTIAL_ANSWERS = re.compile(r"/tokens?(/[^/]*)?/?$")
# Headers that belong to one connection (RFC 9110 7.6.1), or that aiohttp sets again itself.
_NOT_FORWARDED = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                            "trailer", "transfer-encoding", "upgrade", "host", "content-length", "content-encoding"})
# Of the upstream's headers, what a replay gives back besides the content type.
_REPLAYED_HEADERS = ("Content-Disposition",)
_UPSTREAM = web.AppKey("upstream", aiohttp.ClientSession)


@dataclass
class Exchange:
    """One call and its answer, as the proxy saw them."""

    started: datetime
    ms: float
    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_type: str
    request_body: bytes
    status: int
    response_headers: list[tuple[str, str]]
    response_type: str
    response_body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@dataclass
class Recording:
    """The answers of a session, written to ``directory`` as a scenario and a HAR file."""

    directory: Path
    upstream: str
    # Each exchange's replayed answer (by method and path, in order) and HAR entry, made once when it
    # comes: writing the files again after each call re-encodes neither.
    answers: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)
    _writing: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def add(self, exchange: Exchange) -> None:
        """Keep ``exchange`` and write both files again, in a thread (a long session's files are
        megabytes: not on the event loop that forwards the other calls)."""
        body = _answer_json(exchange)
        self.answers.setdefault((exchange.method, exchange.path), []).append(_respond(exchange, body))
        self.entries.append(_har_entry(exchange, body))
        scenario, har = self.scenario(), self.har()
        async with self._writing:  # in the order the exchanges came
            await asyncio.to_thread(self._write, scenario, har)

    def scenario(self) -> dict[str, Any]:
        """The scenario that answers each recorded call as the upstream did, the n-th time as the n-th."""
        rules = []
        for (method, path), answers in self.answers.items():
            for index, answer in enumerate(answers):
                rule: dict[str, Any] = {"match": {"method": method, "path": f"^{re.escape(path)}$"}}
                if len(answers) > 1:
                    rule["when"] = {"after": index, "times": 1} if index < len(answers) - 1 else {"after": index}
                rule["then"] = {"respond": answer}
                rules.append(rule)
        host = urlsplit(self.upstream).hostname or "upstream"
        return {"name": re.sub(r"[^A-Za-z0-9._-]", "-", f"recorded-{host}"),
                "description": f"Answers recorded from {self.upstream} by oneshot-mock proxy "
                               f"({len(self.entries)} calls)",
                "rules": rules}

    def har(self) -> dict[str, Any]:
        """The session as HAR 1.2, credentials redacted."""
        return {"log": {"version": "1.2", "creator": {"name": "oneshot-mock proxy", "version": __version__},
                        "entries": list(self.entries)}}

    def _write(self, scenario: dict[str, Any], har: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write(self.directory / SCENARIO_FILE, yaml.safe_dump(scenario, sort_keys=False, allow_unicode=True, width=120))
        _write(self.directory / HAR_FILE, json.dumps(har, indent=1, ensure_ascii=False))


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(text)
    os.replace(partial, path)


def _answer_json(exchange: Exchange) -> Any:
    """The answer as JSON when it is JSON (credentials redacted), else None."""
    if exchange.response_type != "application/json":
        return None
    try:
        body = json.loads(exchange.response_body)
    except ValueError:
        return None
    if _CREDENTIAL_ANSWERS.search(exchange.path) and isinstance(body, dict):
        return {**body, **{key: REDACTED for key in ("details", "detail") if key in body}}
    return redact(body)


def _respond(exchange: Exchange, body: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": exchange.status}
    if body is not None:
        answer["body"] = body
    else:
        answer["body_base64"] = base64.b64encode(exchange.response_body).decode()
        answer["content_type"] = exchange.response_type or "application/octet-stream"
    kept = {name: value for name, value in exchange.response_headers if name in _REPLAYED_HEADERS}
    if kept:
        answer["headers"] = kept
    return answer


def _har_entry(exchange: Exchange, body: Any) -> dict[str, Any]:
    url = urlsplit(exchange.url)
    request: dict[str, Any] = {
        "method": exchange.method, "url": exchange.url, "httpVersion": "HTTP/1.1",
        "headers": [{"name": k, "value": v} for k, v in redact_headers(exchange.request_headers).items()],
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(url.query)],
        "cookies": [], "headersSize": -1, "bodySize": len(exchange.request_body),
    }
    if exchange.request_body:
        request["postData"] = {"mimeType": exchange.request_type, "text": _request_text(exchange)}
    content: dict[str, Any] = {"size": len(exchange.response_body), "mimeType": exchange.response_type}
    if body is not None:
        content["text"] = json.dumps(body, ensure_ascii=False)
    elif exchange.response_body:
        content.update(text=base64.b64encode(exchange.response_body).decode(), encoding="base64")
    return {
        "startedDateTime": exchange.started.isoformat(), "time": round(exchange.ms, 1), "request": request,
        "response": {"status": exchange.status, "statusText": reason_phrase(exchange.status), "httpVersion": "HTTP/1.1",
                     "headers": [{"name": k, "value": v} for k, v in exchange.response_headers],
                     "cookies": [], "content": content, "redirectURL": "", "headersSize": -1,
                     "bodySize": len(exchange.response_body)},
        "cache": {}, "timings": {"send": 0, "wait": round(exchange.ms, 1), "receive": 0},
    }


def _request_text(exchange: Exchange) -> str:
    """The request body as the HAR shows it: JSON or form fields redacted; other bodies by size only."""
    if exchange.request_type == "application/json":
        try:
            return json.dumps(redact(json.loads(exchange.request_body)), ensure_ascii=False)
        except ValueError:
            pass
    if exchange.request_type == "application/x-www-form-urlencoded":
        fields = dict(parse_qsl(exchange.request_body.decode("latin-1")))
        return json.dumps(redact(fields), ensure_ascii=False)
    return f"({len(exchange.request_body)} bytes of {exchange.request_type or 'no declared type'}, not kept)"


def create_proxy(upstream: str, recording: Recording) -> web.Application:
    """The proxy application: every call goes to ``upstream``; the API families' are recorded."""
    app = web.Application(client_max_size=256 * 2**20)

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = [(str(k), v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED]
        started, clock = datetime.now(UTC), time.perf_counter()
        try:
            async with request.app[_UPSTREAM].request(request.method, upstream + request.path_qs, headers=headers,
                                                      data=body, allow_redirects=False) as answer:
                raw = await answer.read()
        except (aiohttp.ClientError, TimeoutError) as fault:
            return web.json_response({"error": f"the upstream {upstream} did not answer: {fault}"}, status=502)
        kept = [(str(k), v) for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED]
        if _RECORDED.match(request.path):
            await recording.add(Exchange(started, (time.perf_counter() - clock) * 1000, request.method,
                                   upstream + request.path_qs, headers, request.content_type, body, answer.status,
                                   kept, answer.content_type, raw))
        return web.Response(status=answer.status, body=raw, headers=kept)

    async def session(app: web.Application):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as upstream_session:
            app[_UPSTREAM] = upstream_session
            yield

    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app
