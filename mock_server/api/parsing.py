"""Tolerant body parsing shared by every API family.

Real clients send JSON without a Content-Type, empty bodies where JSON is expected,
multipart streamed with chunked transfer encoding, and url-encoded forms; all of it
ends up as plain fields and :class:`Upload` parts here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from mock_server.api.keys import CONFIG, notes_of
from mock_server.domain.errors import vendor_error
from mock_server.domain.model import Upload

_CHUNK = 256 * 1024
# The deepest body the vendor documents nests four levels (settings' registration authorities);
# a state nested hundreds deep could be kept in memory but not written to a data dir.
MAX_JSON_DEPTH = 32
# Clients send a dozen fields and a few files; each part costs the event loop about 0.1 ms to parse,
# so 40,000 tiny parts would hold every other call back for seconds.
MAX_PARTS = 256
_DEFAULT_MEDIA_TYPE = "application/octet-stream"


@dataclass
class Form:
    """Text fields and file parts of a body, whatever its encoding."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)


def media_type(request: web.Request) -> str:
    """The body's media type, lower case and without parameters (RFC 9110's default when absent)."""
    # aiohttp's request.content_type parses through the email package, uncached for multipart
    # (every boundary differs): 0.17 ms a call, against 2 us for the parser its multipart reader uses.
    mime = parse_mimetype(request.headers.get(hdrs.CONTENT_TYPE, ""))
    if not mime.type or not mime.subtype:
        return _DEFAULT_MEDIA_TYPE
    return f"{mime.type}/{mime.subtype}" + (f"+{mime.suffix}" if mime.suffix else "")


async def read_json(request: web.Request, invalid_json_key: str = "api.400.malformed_body") -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}`` (clients send that for OTP)."""
    raw = await _read_all(request)
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as fault:
        raise vendor_error(invalid_json_key, error=str(fault)) from None
    except RecursionError:
        raise vendor_error(invalid_json_key, error="nested too deeply") from None
    if not isinstance(value, dict):
        raise vendor_error(invalid_json_key, error="expected a JSON object")
    fault = _shape_fault(value)
    if fault:
        raise vendor_error(invalid_json_key, error=fault)
    notes_of(request).body_seen = value
    return value


def _shape_fault(value: Any) -> str | None:
    """Why a parsed body cannot be kept: nested too deep, or text that is not Unicode (a lone
    surrogate such as ``"\\ud800"``, which no PDF, certificate or data dir can hold)."""
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if level > MAX_JSON_DEPTH:
            return f"nested more than {MAX_JSON_DEPTH} levels deep"
        texts = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in texts:
            for text in (key, child):
                if isinstance(text, str) and not text.isascii() and not _is_unicode(text):
                    return f"{text.encode('ascii', 'backslashreplace').decode()[:40]!r} is not valid Unicode text"
            if isinstance(child, dict | list):
                pending.append((child, level + 1))
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


async def read_fields(request: web.Request, invalid_json_key: str) -> dict[str, str]:
    """A JSON object body with every value as text (``1`` and ``true`` alike)."""
    return {k: _as_text(v) for k, v in (await read_json(request, invalid_json_key)).items()}


async def read_form(request: web.Request, file_limit: int, too_large_key: str,
                    invalid_json_key: str = "api.400.malformed_body") -> Form:
    """Multipart, url-encoded or JSON, as one :class:`Form`; files over ``file_limit`` are refused."""
    body_type = media_type(request)
    if body_type.startswith("multipart/"):
        return await _read_multipart(request, file_limit, too_large_key)
    if body_type == "application/x-www-form-urlencoded":
        posted = await request.post()
        form = Form(fields={k: str(v) for k, v in posted.items()})
        notes_of(request).body_seen = form.fields
        return form
    body = await read_json(request, invalid_json_key)
    return Form(fields={k: _as_text(v) for k, v in body.items()})


async def _read_multipart(request: web.Request, file_limit: int, too_large_key: str) -> Form:
    form = Form()
    try:
        reader = await request.multipart()
        count = 0
        while (part := await reader.next()) is not None:
            count += 1
            if count > MAX_PARTS:
                raise vendor_error("api.413.too_many_parts", limit=MAX_PARTS)
            if not isinstance(part, BodyPartReader):
                raise ValueError("nested multipart bodies are not supported")
            name, filename = _part_names(part)
            if filename is None:
                form.fields[name] = await part.text()
                continue
            data = await _read_part(part, file_limit, too_large_key)
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            form.files.append(Upload(name, filename, content_type, data))
        notes_of(request).body_seen = {"fields": form.fields, "parts": [
            {"name": upload.field, "filename": upload.filename, "content_type": upload.content_type,
             "size": len(upload.data), "sha256": upload.sha256} for upload in form.files]}
    except web.HTTPException:
        raise
    except (ValueError, AssertionError, KeyError, UnicodeDecodeError, BadHttpMessage) as fault:
        raise vendor_error("api.400.malformed_body", error=str(fault) or type(fault).__name__) from None
    return form


def _part_names(part: BodyPartReader) -> tuple[str, str | None]:
    # part.name and part.filename each parse the Content-Disposition header again: a third of the
    # event loop's time in an upload once the PDF check was done.
    _, params = parse_content_disposition(part.headers.get(hdrs.CONTENT_DISPOSITION))
    return content_disposition_filename(params, "name") or "", content_disposition_filename(params, "filename")


async def _read_part(part: BodyPartReader, limit: int, too_large_key: str) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise vendor_error(too_large_key, filename=part.filename, limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_all(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise vendor_error("api.413.body_too_large", limit=request.app[CONFIG].max_body_bytes) from None


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
