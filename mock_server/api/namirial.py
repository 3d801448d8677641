"""The newer Namirial API family under ``/oneshot/api/v1``: the same sandbox, another envelope.

Each handler translates the newer call onto the sandbox operations the legacy family uses
(renamed paths, ``document_type`` as a query parameter, VideoID keyed by ``videoid_pk``,
``signature.appearance``) and answers ``{"status": "success", "message", "details"|"detail"}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mock_server.api import parsing
from mock_server.api.keys import CONFIG, notes_of, sandbox_of
from mock_server.api.routing import add, download
from mock_server.domain import accounts, library, views
from mock_server.domain.defaults import NAMIRIAL_TOKEN
from mock_server.domain.errors import VendorError
from mock_server.domain.service import Sandbox

PREFIX = "/oneshot/api/v1"


def success(message: str | None, details: Any = None, *, key: str = "details", http_status: int = 200,
            message_key: str = "message") -> web.Response:
    """``{"status": "success", "message": …, "details": …}`` (``detail`` for documents and VideoID;
    no message where the documented answer has none)."""
    body: dict[str, Any] = {"status": "success"}
    if message is not None:
        body[message_key] = message
    if details is not None:
        body[key] = details
    return web.json_response(body, status=http_status)


def render_error(error: VendorError) -> web.Response:
    """A catalogue error in the newer envelope: the legacy status and text, plus the catalogue key."""
    message = error.details if isinstance(error.details, str) else error.status_text
    return web.json_response(
        {"status": "error", "message": message, "details": {
            "code": error.http_status, "error": error.spec.key, "vendor_status": error.status_text,
            "vendor_details": error.details,
        }},
        status=error.http_status,
    )


def _sandbox(request: web.Request) -> Sandbox:
    return sandbox_of(request)


def _pk(request: web.Request) -> str:
    return request.match_info["request_pk"]


async def _form(request: web.Request, too_large_key: str, invalid_json_key: str) -> parsing.Form:
    return await parsing.read_form(request, request.app[CONFIG].max_file_bytes, too_large_key, invalid_json_key)


# Tokens ------------------------------------------------------------------------


async def create_token(request: web.Request) -> web.Response:
    token = _sandbox(request).create_token(await parsing.read_fields(request, "create_token.400.invalid_json"))
    return success("Token created", {"token_uid": token.uid})


async def get_token(request: web.Request) -> web.Response:
    token = accounts.get_token(_sandbox(request).state, request.match_info["uid"])
    return success("Token retrieved", views.token_credentials(token))


async def list_tokens(request: web.Request) -> web.Response:
    tokens = _sandbox(request).state.tokens.values()
    return success("Tokens retrieved", {t.uid: views.token_credentials(t) for t in tokens})


async def delete_token(request: web.Request) -> web.Response:
    accounts.delete_token(_sandbox(request).state, request.match_info["uid"])
    return success("Token deleted")


# Settings (the reference's Settings tag; the old /api/v1/settings are gone from this family) -------------


async def get_settings(request: web.Request) -> web.Response:
    return success("Settings retrieved", _sandbox(request).state.settings)


async def update_settings(request: web.Request) -> web.Response:
    changes = await parsing.read_json(request, "update_settings.400.invalid_json")
    library.update_settings(_sandbox(request).state, changes)
    return success("Settings saved successfully")


# Requests ----------------------------------------------------------------------


async def create_request(request: web.Request) -> web.Response:
    form = await _form(request, "upload_image.413.too_large", "create_request.400.invalid_json")
    fields = dict(form.fields)
    if fields.pop("asyncmode", "").lower() in ("true", "1"):
        fields["useasync"] = "true"
    if not (fields.get("token") or fields.get("username")):
        fields["token"] = NAMIRIAL_TOKEN
    created = _sandbox(request).create_request(fields, form.files, webhook_format="new")
    notes_of(request).request_pk = created.pk
    # The migration guide: whether it succeeded, a message with the pk, the status, whether it is asynchronous.
    details = {"request_pk": created.pk, "status": created.status.value, "asyncmode": created.async_mode}
    return success(f"Request created with pk {created.pk}", details, http_status=201)


async def get_request(request: web.Request) -> web.Response:
    found = _sandbox(request).read_request(_pk(request), "get_request.404.not_found")
    return success("Request retrieved", await _sandbox(request).request_detail(found))


async def request_status(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    found = sandbox.read_request(_pk(request), "async_status.404.not_found")
    return success("Request status", {"status": found.status.value,
                                      "async_status": sandbox.signatures.async_status(_pk(request))})


async def generate_otp(request: web.Request) -> web.Response:
    body = await parsing.read_json(request)
    _sandbox(request).generate_otp(_pk(request), body.get("delivery_method"))
    return success("OTP generated")


async def sign(request: web.Request) -> web.Response:
    body = await parsing.read_json(request, "sign.400.invalid_json")
    sandbox = _sandbox(request)
    signed = await sandbox.signatures.sign(_pk(request), _legacy_sign_body(body))
    if signed.async_mode:
        return success("Your documents are going to be signed. You will receive them in a few seconds")
    return success("Documents correctly signed")


def _legacy_sign_body(body: dict[str, Any]) -> dict[str, Any]:
    """``signature.appearance`` {text: [lines], date, timezone, position, page, image | b64_image} as
    the legacy flat ``options`` plus ``signature_format``."""
    appearance = (body.get("signature") or {}).get("appearance") if isinstance(body.get("signature"), dict) else None
    if not isinstance(appearance, dict):
        return body
    translated = {k: v for k, v in body.items() if k != "signature"}
    translated["options"] = {k: appearance[k] for k in ("position", "page", "image", "b64_image") if k in appearance}
    text_format: dict[str, Any] = {}
    lines = appearance.get("text")
    if lines:
        lines = (lines.splitlines() if isinstance(lines, str)
                 else [str(line) for line in lines] if isinstance(lines, list) else [str(lines)])
        if appearance.get("date") and not any("%(DATE)" in line for line in lines):
            lines.append("%(DATE)s")  # a date format asked for is shown, under the lines given
        text_format["text_format"] = lines
    if appearance.get("date"):
        text_format["date_format"] = appearance["date"]
    if appearance.get("timezone"):
        text_format["timezone"] = appearance["timezone"]
    given = body.get("signature_format")
    if text_format and (isinstance(given, dict) or not given):
        translated["signature_format"] = {**(given or {}), **text_format}  # else refused as legacy would
    return translated


# Documents ---------------------------------------------------------------------


async def upload_document(request: web.Request) -> web.Response:
    form = await _form(request, "upload_document.413.too_large", "api.400.malformed_body")
    documents = await _sandbox(request).upload_documents(_pk(request), form.files)
    entries = [{"name": d.key, "uid": d.uid} for d in documents]
    return success(None, entries[0] if len(entries) == 1 else entries, key="detail")


async def retrieve_document(request: web.Request) -> web.Response:
    kind = request.query.get("document_type", "signed")
    file = _sandbox(request).document_download(_pk(request), kind, request.match_info["document_uid"])
    return download(file.data, file.content_type, file.filename)


async def delete_document(request: web.Request) -> web.Response:
    kind = request.query.get("document_type", "original")
    _sandbox(request).delete_document(_pk(request), kind, request.match_info["document_uid"])
    return success("Document deleted")


async def delete_all_documents(request: web.Request) -> web.Response:
    _sandbox(request).delete_all_documents(_pk(request))
    return success(f"Documents deleted for Request {_pk(request)}")


async def list_documents(request: web.Request) -> web.Response:
    documents = _sandbox(request).list_documents(_pk(request))
    return success("Documents retrieved", views.document_listing(documents), key="detail")


async def retrieve_contract(request: web.Request) -> web.Response:
    data = await _sandbox(request).signatures.contract(_pk(request))
    return download(data, "application/pdf", f"contract_{_pk(request)}.pdf")


# Images ------------------------------------------------------------------------


async def upload_image(request: web.Request) -> web.Response:
    form = await _form(request, "upload_image.413.too_large", "api.400.malformed_body")
    image = _sandbox(request).add_image(form.files)
    return success(f"Image uploaded with uid '{image.uid}'", {"image_uid": image.uid})


async def retrieve_image(request: web.Request) -> web.Response:
    image = library.get_image(_sandbox(request).state, request.match_info["uid"])
    return download(image.data, image.mime, image.filename)


async def delete_image(request: web.Request) -> web.Response:
    library.delete_image(_sandbox(request).state, request.match_info["uid"])
    return success("Image deleted")


async def list_images(request: web.Request) -> web.Response:
    return success("Images retrieved", views.image_listing(list(_sandbox(request).state.images.values())))


# VideoID (keyed by videoid_pk) ---------------------------------------------------------


async def create_videoid(request: web.Request) -> web.Response:
    fields = await parsing.read_fields(request, "api.400.malformed_body")
    created = _sandbox(request).videoid.create(fields, webhook_format="new", profile_required=True)
    notes_of(request).request_pk = created.pk
    answer = views.videoid_created(created, request.app[CONFIG].base_url)
    # The documented example spells the key with three s (a vendor quirk kept: see docs/vendor-quirks.md).
    return success(f"VideoID created with pk {answer['videoid_pk']}", answer, key="detail", message_key="messsage")


async def download_video(request: web.Request) -> web.Response:
    desk = _sandbox(request).videoid
    found = desk.by_videoid_pk(request.match_info["videoid_pk"], "download_video.404.not_found")
    return download(desk.video(str(found.pk)), "video/mp4", f"videoid_{found.videoid.pk}.mp4")


def _videoid_call(operation: str, message: str):
    """A VideoID call keyed by ``videoid_pk``; named after the legacy operation it maps to."""

    async def handler(request: web.Request) -> web.Response:
        desk = _sandbox(request).videoid
        found = desk.by_videoid_pk(request.match_info["videoid_pk"], f"{operation}.404.not_found")
        if operation == "upload_data":
            desk.upload_evidences(found, await parsing.read_json(request, "upload_data.400.invalid_json"))
        elif operation == "upload_video":
            form = await _form(request, "api.413.body_too_large", "api.400.malformed_body")
            desk.upload_video(found, form.files)
        else:
            fields = await parsing.read_fields(request, f"{operation}.400.invalid_json")
            {"approve_request": desk.approve, "refuse_request": desk.refuse}[operation](found, fields)
        return success(message, {"videoid_pk": found.videoid.pk, "request_pk": found.pk}, key="detail")

    handler.__name__ = operation
    return handler


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/token", create_token),
    ("GET", "/token/{uid}", get_token),
    ("DELETE", "/token/{uid}", delete_token),
    ("GET", "/tokens", list_tokens),
    ("POST", "/create", create_request),
    ("GET", "/request/{request_pk}", get_request),
    ("GET", "/request/{request_pk}/status", request_status),
    ("POST", "/otp/{request_pk}", generate_otp),
    ("POST", "/sign/{request_pk}", sign),
    ("POST", "/document/{request_pk}", upload_document),
    ("GET", "/document/{request_pk}", list_documents),
    ("DELETE", "/document/{request_pk}", delete_all_documents),
    ("GET", "/document/{request_pk}/{document_uid}", retrieve_document),
    ("DELETE", "/document/{request_pk}/{document_uid}", delete_document),
    ("GET", "/contract/{request_pk}", retrieve_contract),
    ("POST", "/image", upload_image),
    ("GET", "/image/{uid}", retrieve_image),
    ("DELETE", "/image/{uid}", delete_image),
    ("GET", "/images", list_images),
    ("POST", "/videoid", create_videoid),
    ("POST", "/videoid/{videoid_pk}/approve", _videoid_call("approve_request", "Request approved successfully")),
    ("POST", "/videoid/{videoid_pk}/refuse", _videoid_call("refuse_request", "Videoid refuse completed")),
    ("POST", "/videoid/{videoid_pk}/evidences", _videoid_call("upload_data", "Videoid evidences uploaded")),
    ("POST", "/videoid/{videoid_pk}/video", _videoid_call("upload_video", "Videoid video upload completed")),
    ("GET", "/videoid/{videoid_pk}/video", download_video),
    ("GET", "/videoid/{videoid_pk}/download/video", download_video),
    ("GET", "/settings", get_settings),
    ("POST", "/settings", update_settings),
]


def setup(app: web.Application) -> None:
    """Register every route of the newer family."""
    for method, path, handler in ROUTES:
        add(app, method, PREFIX + path, handler)
