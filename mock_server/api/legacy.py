"""The legacy Uanataca API under ``/api/v1``: parse, call the sandbox, render the envelope."""

from __future__ import annotations

import platform
from typing import Any

from aiohttp import web

from mock_server import __version__
from mock_server.api import parsing
from mock_server.api.keys import CONFIG, notes_of, reads_no_state, sandbox_of
from mock_server.api.routing import add, download
from mock_server.domain import accounts, library, views
from mock_server.domain.errors import VendorError, status_line, vendor_error
from mock_server.domain.service import Sandbox

PREFIX = "/api/v1"


def envelope(details: Any, http_status: int = 200) -> web.Response:
    """``{"status": "200 OK", "details": ...}``."""
    return web.json_response({"status": status_line(http_status), "details": details}, status=http_status)


def render_error(error: VendorError) -> web.Response:
    """A catalogue error in the legacy envelope."""
    return web.json_response({"status": error.status_text, "details": error.details}, status=error.http_status)


def _sandbox(request: web.Request) -> Sandbox:
    return sandbox_of(request)


def _missing(key: str):
    """A handler for a path whose identifier was left out (``/otp/``, ``/token/`` …)."""

    async def handler(request: web.Request) -> web.Response:
        raise vendor_error(key)

    return handler


# Settings -------------------------------------------------------------------


@reads_no_state
async def hello(request: web.Request) -> web.Response:
    return envelope("Hello")


@reads_no_state
async def version(request: web.Request) -> web.Response:
    uname = platform.uname()
    return envelope({
        "info": {
            "machine": uname.machine,
            "version": uname.version,
            "release": uname.release,
            "hostname": uname.node,
            "system": uname.system,
            "processor": uname.processor or uname.machine,
        },
        "version": "1.5.0",
        "name": "OneShot Optimizer",
        "sandbox": {"name": "oneshot-mock", "version": __version__},
    })


async def get_settings(request: web.Request) -> web.Response:
    return envelope(_sandbox(request).state.settings)


async def update_settings(request: web.Request) -> web.Response:
    changes = await parsing.read_json(request, "update_settings.400.invalid_json")
    library.update_settings(_sandbox(request).state, changes)
    return envelope("Settings saved successfully")


# Metadata -------------------------------------------------------------------


async def list_metadata(request: web.Request) -> web.Response:
    entries = library.list_metadata(_sandbox(request).state)
    return envelope({m.uid: {"oid": m.oid, "metadata": m.metadata} for m in entries})


async def upload_metadata(request: web.Request) -> web.Response:
    body = await parsing.read_json(request, "upload_metadata.400.invalid_json")
    entry = _sandbox(request).add_metadata(body)
    return envelope({"metadata": entry.uid})


async def delete_all_metadata(request: web.Request) -> web.Response:
    library.delete_all_metadata(_sandbox(request).state)
    return envelope("All metadata deleted")


async def get_metadata(request: web.Request) -> web.Response:
    entry = library.get_metadata(_sandbox(request).state, request.match_info["uid"])
    return envelope({"oid": entry.oid, "metadata": entry.metadata})


async def delete_metadata(request: web.Request) -> web.Response:
    library.delete_metadata(_sandbox(request).state, request.match_info["uid"])
    return envelope("Metadata successfully deleted")


# Tokens ---------------------------------------------------------------------


async def create_token(request: web.Request) -> web.Response:
    fields = await parsing.read_fields(request, "create_token.400.invalid_json")
    token = _sandbox(request).create_token(fields)
    return envelope(token.uid)


async def get_token(request: web.Request) -> web.Response:
    token = accounts.get_token(_sandbox(request).state, request.match_info["uid"])
    return envelope(views.token_credentials(token))


async def delete_token(request: web.Request) -> web.Response:
    accounts.delete_token(_sandbox(request).state, request.match_info["uid"])
    return envelope("Token deleted successfully")


async def list_tokens(request: web.Request) -> web.Response:
    tokens = _sandbox(request).state.tokens.values()
    return envelope({t.uid: views.token_credentials(t) for t in tokens})


# Requests -------------------------------------------------------------------


async def create_request(request: web.Request) -> web.Response:
    form = await parsing.read_form(
        request, request.app[CONFIG].max_file_bytes, "upload_image.413.too_large",
        "create_request.400.invalid_json",
    )
    created = _sandbox(request).create_request(form.fields, form.files)
    notes_of(request).request_pk = created.pk
    return envelope(created.pk, 201)


async def get_request(request: web.Request) -> web.Response:
    found = _sandbox(request).read_request(request.match_info["pk"], "get_request.404.not_found")
    return envelope(await _sandbox(request).request_detail(found))


async def generate_otp(request: web.Request) -> web.Response:
    body = await parsing.read_json(request)
    _sandbox(request).generate_otp(request.match_info["pk"], body.get("delivery_method"))
    return envelope("OTP generated")


async def sign(request: web.Request) -> web.Response:
    body = await parsing.read_json(request, "sign.400.invalid_json")
    signed = await _sandbox(request).signatures.sign(request.match_info["pk"], body)
    if signed.async_mode:
        return envelope("Your documents are going to be signed. You will receive them in a few seconds")
    return envelope("Documents correctly signed")


async def async_status(request: web.Request) -> web.Response:
    return envelope(_sandbox(request).signatures.async_status(request.match_info["pk"]))


# VideoID ------------------------------------------------------------------


async def create_videoid(request: web.Request) -> web.Response:
    fields = await parsing.read_fields(request, "api.400.malformed_body")
    created = _sandbox(request).videoid.create(fields)
    notes_of(request).request_pk = created.pk
    return envelope(views.videoid_created(created, request.app[CONFIG].base_url))


async def upload_data(request: web.Request) -> web.Response:
    body = await parsing.read_json(request, "upload_data.400.invalid_json")
    desk = _sandbox(request).videoid
    desk.upload_evidences(desk.find(request.match_info["pk"], "upload_data.404.not_found"), body)
    return envelope("Videoid evidences uploaded")


async def upload_video(request: web.Request) -> web.Response:
    form = await parsing.read_form(request, request.app[CONFIG].max_file_bytes, "api.413.body_too_large")
    desk = _sandbox(request).videoid
    found = desk.find(request.match_info["pk"], "upload_video.404.not_found")
    desk.upload_video(found, form.files)
    return envelope("Videoid video upload completed")


async def download_video(request: web.Request) -> web.Response:
    pk = request.match_info["pk"]
    return download(_sandbox(request).videoid.video(pk), "video/mp4", f"videoid_{pk}.mp4")


def _rao_decision(operation: str, decide: str, message: str):
    """A handler for a RAO decision on a VideoID request (validate, approve, refuse).

    Named after the vendor operation: scenario rules match handlers by that name.
    """

    async def handler(request: web.Request) -> web.Response:
        fields = await parsing.read_fields(request, f"{operation}.400.invalid_json")
        desk = _sandbox(request).videoid
        getattr(desk, decide)(desk.find(request.match_info["pk"], f"{operation}.404.not_found"), fields)
        return envelope(message)

    handler.__name__ = operation
    return handler


validate_request = _rao_decision("validate_request", "validate", "Videoid validated")
approve_request = _rao_decision("approve_request", "approve", "Request approved successfully")
refuse_request = _rao_decision("refuse_request", "refuse", "Videoid refuse completed")


async def cancel_request(request: web.Request) -> web.Response:
    _sandbox(request).videoid.cancel(request.match_info["pk"])
    return envelope("Request directory removed successfully")


async def update_request(request: web.Request) -> web.Response:
    fields = await parsing.read_fields(request, "update_request.400.invalid_json")
    _sandbox(request).videoid.update(request.match_info["pk"], fields)
    return envelope("Request updated")


# Documents ------------------------------------------------------------------


async def upload_document(request: web.Request) -> web.Response:
    form = await parsing.read_form(
        request, request.app[CONFIG].max_file_bytes, "upload_document.413.too_large"
    )
    documents = await _sandbox(request).upload_documents(request.match_info["pk"], form.files)
    if len(documents) == 1:
        return envelope(documents[0].uid)
    return envelope([views.upload_entry(d) for d in documents])


async def retrieve_document(request: web.Request) -> web.Response:
    info = request.match_info
    file = _sandbox(request).document_download(info["pk"], info["type"], info["uid"])
    return download(file.data, file.content_type, file.filename)


async def delete_document(request: web.Request) -> web.Response:
    info = request.match_info
    _sandbox(request).delete_document(info["pk"], info["type"], info["uid"])
    return envelope("Document successfully deleted")


async def list_documents(request: web.Request) -> web.Response:
    documents = _sandbox(request).list_documents(request.match_info["pk"])
    return envelope(views.document_listing(documents))


async def delete_all_documents(request: web.Request) -> web.Response:
    _sandbox(request).delete_all_documents(request.match_info["pk"])
    return envelope("Documents deleted successfully")


async def retrieve_contract(request: web.Request) -> web.Response:
    pk = request.match_info["pk"]
    data = await _sandbox(request).signatures.contract(pk)
    return download(data, "application/pdf", f"contract_{pk}.pdf")


# Images ---------------------------------------------------------------------


async def upload_image(request: web.Request) -> web.Response:
    form = await parsing.read_form(request, request.app[CONFIG].max_file_bytes, "upload_image.413.too_large")
    image = _sandbox(request).add_image(form.files)
    return envelope(image.uid)


async def retrieve_image(request: web.Request) -> web.Response:
    image = library.get_image(_sandbox(request).state, request.match_info["uid"])
    return download(image.data, image.mime, image.filename)


async def delete_image(request: web.Request) -> web.Response:
    library.delete_image(_sandbox(request).state, request.match_info["uid"])
    return envelope("Image deleted")


async def list_images(request: web.Request) -> web.Response:
    return envelope(views.image_listing(list(_sandbox(request).state.images.values())))


async def delete_all_images(request: web.Request) -> web.Response:
    library.delete_all_images(_sandbox(request).state)
    return envelope("Images deleted successfully")


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/hello", hello),
    ("GET", "/version", version),
    ("GET", "/settings", get_settings),
    ("POST", "/settings", update_settings),
    ("GET", "/metadata", list_metadata),
    ("POST", "/metadata", upload_metadata),
    ("DELETE", "/metadata", delete_all_metadata),
    ("GET", "/metadata/{uid}", get_metadata),
    ("DELETE", "/metadata/{uid}", delete_metadata),
    ("POST", "/token", create_token),
    ("GET", "/token", _missing("get_token.400.missing_uid")),
    ("DELETE", "/token", _missing("delete_token.400.missing_uid")),
    ("GET", "/token/{uid}", get_token),
    ("DELETE", "/token/{uid}", delete_token),
    ("GET", "/tokens", list_tokens),
    ("POST", "/request", create_request),
    ("GET", "/request/{pk}", get_request),
    ("PUT", "/request/{pk}", update_request),
    ("DELETE", "/request/{pk}", cancel_request),
    ("DELETE", "/requests/{pk}", cancel_request),
    ("POST", "/videoid", create_videoid),
    ("POST", "/videoid/{pk}/evidences", upload_data),
    ("POST", "/videoid/{pk}/evidences/video", upload_video),
    ("GET", "/videoid/{pk}/download/video", download_video),
    ("POST", "/videoid/{pk}/validate", validate_request),
    ("POST", "/request/{pk}/validate", validate_request),
    ("POST", "/requests/{pk}/validate", validate_request),
    ("POST", "/requests/{pk}/approve", approve_request),
    ("POST", "/request/{pk}/approve", approve_request),
    ("POST", "/videoid/{pk}/refuse", refuse_request),
    ("POST", "/requests/{pk}/refuse", refuse_request),
    ("POST", "/otp", _missing("generate_otp.400.missing_pk")),
    ("POST", "/otp/{pk}", generate_otp),
    ("POST", "/sign/{pk}", sign),
    ("GET", "/async/status/{pk}", async_status),
    ("POST", "/document", _missing("upload_document.400.missing_pk")),
    ("POST", "/document/{pk}", upload_document),
    ("GET", "/document/{pk}/contract", retrieve_contract),
    ("DELETE", "/document/{pk}/{type}", _missing("delete_document.400.missing_parameters")),
    ("GET", "/document/{pk}/{type}/{uid}", retrieve_document),
    ("DELETE", "/document/{pk}/{type}/{uid}", delete_document),
    ("GET", "/documents", _missing("list_documents.400.missing_pk")),
    ("DELETE", "/documents", _missing("delete_all_documents.400.missing_pk")),
    ("GET", "/documents/{pk}", list_documents),
    ("DELETE", "/documents/{pk}", delete_all_documents),
    ("POST", "/image", upload_image),
    ("POST", "/images", upload_image),
    ("GET", "/image", _missing("retrieve_image.400.missing_uid")),
    ("DELETE", "/image", _missing("delete_image.400.missing_uid")),
    ("GET", "/image/{uid}", retrieve_image),
    ("DELETE", "/image/{uid}", delete_image),
    ("GET", "/images", list_images),
    ("DELETE", "/images", delete_all_images),
]


def setup(app: web.Application) -> None:
    """Register every legacy route."""
    for method, path, handler in ROUTES:
        add(app, method, PREFIX + path, handler)
