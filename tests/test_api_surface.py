"""The legacy /api/v1 surface over HTTP: every operation's happy path and documented error examples.

Expected texts come from the vendor's OpenAPI file (reference/legacy-oneshot-videoid-v1.openapi.yaml)
and, where it documents none, from the sandbox's error catalogue.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from typing import Any

import aiohttp
import pytest

from tests.helpers import IDENTITY, Answer, blank_pdf, multipart_body, picture

RAO_USERNAME = "9001800"
RAO_PASSWORD = "oneshot-mock"
RAO_PIN = "123456"
SANDBOX_TOKENS = {
    "6d1cae4d55be4cdf9cac50ee36f73406": "9001800",
    "fd6a21e6fb7d43b9893a520d67d6ff60": "1125824",
    "3bf8d8eb-d96c-41ea-83ad-d78a7016c7da": "7000001",
}
PROTECTED_TOKEN = "fd6a21e6fb7d43b9893a520d67d6ff60"
UNKNOWN_PK = 1
HEX_UID = re.compile(r"[0-9a-f]{32}")
STATUS_LINES = {
    200: "200 OK",
    400: "400 Bad Request",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    415: "415 Unsupported Media Type",
}


def assert_envelope(answer: Answer, http_status: int, details: Any, status_text: str | None = None) -> None:
    """The answer is exactly ``{"status": ..., "details": details}`` with HTTP ``http_status``."""
    assert answer.content_type == "application/json", answer.raw[:300]
    assert answer.status == http_status, answer.body
    assert answer.body == {"status": status_text or STATUS_LINES[http_status], "details": details}


def assert_error_starts(answer: Answer, http_status: int, prefix: str) -> None:
    """An error envelope whose details text starts with ``prefix``."""
    assert answer.content_type == "application/json", answer.raw[:300]
    assert answer.status == http_status, answer.body
    assert answer.body["status"] == STATUS_LINES[http_status]
    assert answer.body["details"].startswith(prefix), answer.body


def pdf_text(pdf: bytes, tmp_path) -> str | None:
    """poppler's text extraction, or None when pdftotext is not installed."""
    if not shutil.which("pdftotext"):
        return None
    target = tmp_path / "contract.pdf"
    target.write_bytes(pdf)
    result = subprocess.run(["pdftotext", str(target), "-"], capture_output=True, text=True, check=True)
    return result.stdout


async def post_token(sandbox, **fields: str) -> Answer:
    return await sandbox.call("POST", "/api/v1/token", json=fields)


async def create_token(sandbox, **fields: str) -> str:
    answer = await post_token(sandbox, **fields)
    assert answer.status == 200, answer.body
    return answer.body["details"]


async def upload_metadata(sandbox, metadata: str = "bWV0YWRhdGE=", oid: str = "1.8.6.7.4.1.47289.100.2.9") -> str:
    answer = await sandbox.call("POST", "/api/v1/metadata", json={"metadata": metadata, "metadata_oid": oid})
    assert answer.status == 200, answer.body
    return answer.body["details"]["metadata"]


async def upload_picture(sandbox, data: bytes | None = None) -> str:
    answer = await sandbox.upload_image(data or picture())
    assert answer.status == 200, answer.body
    return answer.body["details"]


# Settings -------------------------------------------------------------------


async def test_hello(sandbox):
    assert_envelope(await sandbox.call("GET", "/api/v1/hello"), 200, "Hello")


async def test_version_describes_the_optimizer(sandbox):
    answer = await sandbox.call("GET", "/api/v1/version")
    assert answer.status == 200 and answer.body["status"] == "200 OK"
    details = answer.body["details"]
    assert {"machine", "version", "release", "hostname", "system", "processor"} <= details["info"].keys()
    assert all(isinstance(value, str) for value in details["info"].values())
    assert details["name"] == "OneShot Optimizer"
    assert isinstance(details["version"], str) and details["version"]


async def test_get_settings_has_the_documented_structure(sandbox):
    answer = await sandbox.call("GET", "/api/v1/settings")
    assert answer.status == 200 and answer.body["status"] == "200 OK"
    settings = answer.body["details"]
    assert isinstance(settings["tsa"]["tsa_url"], str) and settings["tsa"]["tsa_url"].startswith("http")
    assert isinstance(settings["request"]["default_profile"], str) and settings["request"]["default_profile"]
    assert isinstance(settings["request"]["default_ra"], str) and settings["request"]["default_ra"]
    assert {"billing_username", "billing_password"} <= settings["billing"].keys()
    assert settings["general"]["environment"] in ("sandbox", "prod")


async def test_update_settings_merges_into_a_section(sandbox):
    before = (await sandbox.call("GET", "/api/v1/settings")).body["details"]
    answer = await sandbox.call("POST", "/api/v1/settings", json={"request": {"default_profile": "PFnubeNC"}})
    assert_envelope(answer, 200, "Settings saved successfully")
    after = (await sandbox.call("GET", "/api/v1/settings")).body["details"]
    assert after["request"] == {**before["request"], "default_profile": "PFnubeNC"}
    assert {k: v for k, v in after.items() if k != "request"} == {k: v for k, v in before.items() if k != "request"}


async def test_update_settings_with_invalid_json(sandbox):
    answer = await sandbox.call("POST", "/api/v1/settings", data=b"{not json",
                                headers={"Content-Type": "application/json"})
    assert_envelope(answer, 400, "Could not parse JSON body", status_text="Invalid JSON")


# Metadata -------------------------------------------------------------------


async def test_list_metadata_when_empty(sandbox):
    assert_envelope(await sandbox.call("GET", "/api/v1/metadata"), 404, "Metadata not found on disk")


async def test_upload_metadata_answers_a_hex_uid(sandbox):
    answer = await sandbox.call("POST", "/api/v1/metadata", json={"metadata": "bWV0YQ==", "metadata_oid": "1.2.3"})
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body
    assert answer.body["details"].keys() == {"metadata"}
    assert HEX_UID.fullmatch(answer.body["details"]["metadata"])


async def test_list_metadata_shows_oid_and_content(sandbox):
    first = await upload_metadata(sandbox, "Zmlyc3Q=", "1.2.3.1")
    second = await upload_metadata(sandbox, "c2Vjb25k", "1.2.3.2")
    answer = await sandbox.call("GET", "/api/v1/metadata")
    assert_envelope(answer, 200, {first: {"oid": "1.2.3.1", "metadata": "Zmlyc3Q="},
                                  second: {"oid": "1.2.3.2", "metadata": "c2Vjb25k"}})


async def test_get_metadata(sandbox):
    uid = await upload_metadata(sandbox, "Zmlyc3Q=", "1.2.3.1")
    answer = await sandbox.call("GET", f"/api/v1/metadata/{uid}")
    assert_envelope(answer, 200, {"oid": "1.2.3.1", "metadata": "Zmlyc3Q="})


async def test_delete_metadata(sandbox):
    uid = await upload_metadata(sandbox)
    assert_envelope(await sandbox.call("DELETE", f"/api/v1/metadata/{uid}"), 200, "Metadata successfully deleted")
    assert_envelope(await sandbox.call("GET", f"/api/v1/metadata/{uid}"), 404, "Metadata not found on disk")


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_unknown_metadata_uid(sandbox, method):
    answer = await sandbox.call(method, "/api/v1/metadata/0123456789abcdef0123456789abcdef")
    assert_envelope(answer, 404, "Metadata not found on disk")


@pytest.mark.parametrize("body", [{"metadata": "bWV0YQ=="}, {"metadata_oid": "1.2.3"}, {}])
async def test_upload_metadata_missing_fields(sandbox, body):
    answer = await sandbox.call("POST", "/api/v1/metadata", json=body)
    assert_envelope(answer, 400, "Missing required parameters")


async def test_upload_metadata_with_invalid_json(sandbox):
    answer = await sandbox.call("POST", "/api/v1/metadata", data=b'{"metadata": ',
                                headers={"Content-Type": "application/json"})
    assert_envelope(answer, 400, "Could not parse JSON body", status_text="400 Invalid JSON")


async def test_delete_all_metadata(sandbox):
    await upload_metadata(sandbox, "Zmlyc3Q=")
    await upload_metadata(sandbox, "c2Vjb25k")
    assert_envelope(await sandbox.call("DELETE", "/api/v1/metadata"), 200, "All metadata deleted")
    assert_envelope(await sandbox.call("GET", "/api/v1/metadata"), 404, "Metadata not found on disk")


# Tokens ---------------------------------------------------------------------


async def test_list_tokens_contains_the_sandbox_tokens(sandbox):
    answer = await sandbox.call("GET", "/api/v1/tokens")
    assert answer.status == 200 and answer.body["status"] == "200 OK"
    tokens = answer.body["details"]
    for uid, username in SANDBOX_TOKENS.items():
        assert tokens[uid]["username"] == username
        assert isinstance(tokens[uid]["password"], bool) and isinstance(tokens[uid]["pin"], bool)


async def test_create_token_answers_a_hex_uid(sandbox):
    answer = await post_token(sandbox, username=RAO_USERNAME, password=RAO_PASSWORD, pin=RAO_PIN, env="sandbox")
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body
    assert HEX_UID.fullmatch(answer.body["details"])


async def test_create_token_twice_with_the_same_credentials(sandbox):
    await create_token(sandbox, username=RAO_USERNAME, password=RAO_PASSWORD, pin=RAO_PIN)
    answer = await post_token(sandbox, username=RAO_USERNAME, password=RAO_PASSWORD, pin=RAO_PIN)
    assert_envelope(answer, 400, "A token with these credentials already exist!")


async def test_create_token_with_only_a_username(sandbox):
    uid = await create_token(sandbox, username=RAO_USERNAME)
    answer = await sandbox.call("GET", f"/api/v1/token/{uid}")
    assert_envelope(answer, 200, {"username": RAO_USERNAME, "password": False, "pin": False})


@pytest.mark.parametrize("body", [{"password": RAO_PASSWORD, "pin": RAO_PIN}, {}])
async def test_create_token_without_username(sandbox, body):
    answer = await post_token(sandbox, **body)
    assert_envelope(answer, 400, "Missing required parameters: username, password, pin")


@pytest.mark.parametrize("changes", [{"password": "wrong"}, {"pin": "000000"}, {"username": "1234567"}])
async def test_create_token_with_wrong_credentials(sandbox, changes):
    fields = {"username": RAO_USERNAME, "password": RAO_PASSWORD, "pin": RAO_PIN, **changes}
    answer = await post_token(sandbox, **fields)
    assert_envelope(answer, 404, "Error getting RAO's id. Make sure the credentials are correct.")


async def test_create_token_with_invalid_json(sandbox):
    answer = await sandbox.call("POST", "/api/v1/token", data=b'{"username" "9001800"}',
                                headers={"Content-Type": "application/json"})
    assert_error_starts(answer, 400, "Could not parse JSON body - Expecting")


async def test_get_token_shows_which_credentials_it_stores(sandbox):
    uid = await create_token(sandbox, username=RAO_USERNAME, password=RAO_PASSWORD)
    answer = await sandbox.call("GET", f"/api/v1/token/{uid}")
    assert_envelope(answer, 200, {"username": RAO_USERNAME, "password": True, "pin": False})


async def test_get_unknown_token(sandbox):
    answer = await sandbox.call("GET", "/api/v1/token/0123456789abcdef0123456789abcdef")
    assert_envelope(answer, 404, "Token 0123456789abcdef0123456789abcdef not found")


async def test_delete_token(sandbox):
    uid = await create_token(sandbox, username=RAO_USERNAME)
    assert_envelope(await sandbox.call("DELETE", f"/api/v1/token/{uid}"), 200, "Token deleted successfully")
    assert (await sandbox.call("GET", f"/api/v1/token/{uid}")).status == 404
    assert uid not in (await sandbox.call("GET", "/api/v1/tokens")).body["details"]


async def test_delete_unknown_token(sandbox):
    answer = await sandbox.call("DELETE", "/api/v1/token/0123456789abcdef0123456789abcdef")
    assert_envelope(answer, 404, "Token not found")


async def test_protected_sandbox_token_cannot_be_deleted(sandbox):
    answer = await sandbox.call("DELETE", f"/api/v1/token/{PROTECTED_TOKEN}")
    assert answer.status == 403 and answer.content_type == "application/json", answer.body
    assert answer.body["status"] == "403 Forbidden"
    assert PROTECTED_TOKEN in (await sandbox.call("GET", "/api/v1/tokens")).body["details"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_token_path_without_uid(sandbox, method):
    answer = await sandbox.call(method, "/api/v1/token")
    assert_envelope(answer, 400, "Missing required parameter: no token uid specified")


async def test_created_token_creates_a_request(sandbox):
    uid = await create_token(sandbox, username=RAO_USERNAME, password=RAO_PASSWORD, pin=RAO_PIN)
    pk = await sandbox.create_request(token=uid)
    assert isinstance(pk, int)
    detail = await sandbox.call("GET", f"/api/v1/request/{pk}")
    assert detail.status == 200 and detail.body["details"]["status"] == "ENROLLREADY"


async def test_username_only_token_with_password_and_pin_in_the_call(sandbox):
    uid = await create_token(sandbox, username=RAO_USERNAME)
    fields = {"token": uid, "password": RAO_PASSWORD, "pin": RAO_PIN, **IDENTITY}
    answer = await sandbox.create_request_raw(fields)
    assert answer.status == 201 and answer.body["status"] == "201 Created", answer.body
    assert isinstance(answer.body["details"], int)


# Documents ------------------------------------------------------------------


async def test_upload_one_document_answers_its_uid(sandbox):
    pk = await sandbox.create_request()
    answer = await sandbox.upload(pk, ("file", "doc.pdf", blank_pdf()))
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body
    uid = answer.body["details"]
    assert isinstance(uid, str) and uid
    assert uid in (await sandbox.call("GET", f"/api/v1/documents/{pk}")).body["details"]


async def test_upload_two_documents_in_one_call(sandbox):
    pk = await sandbox.create_request()
    first, second = blank_pdf(1), blank_pdf(2)
    answer = await sandbox.upload(pk, ("file", "one.pdf", first), ("file2", "two.pdf", second))
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body
    entries = sorted(answer.body["details"], key=lambda entry: entry["key"])
    assert [{k: v for k, v in entry.items() if k != "uid"} for entry in entries] == [
        {"digest": hashlib.sha256(first).hexdigest(), "key": "file", "filename": "one.pdf"},
        {"digest": hashlib.sha256(second).hexdigest(), "key": "file2", "filename": "two.pdf"},
    ]
    listed = (await sandbox.call("GET", f"/api/v1/documents/{pk}")).body["details"]
    assert {entry["uid"] for entry in entries} == set(listed)


async def test_list_documents(sandbox):
    pk = await sandbox.create_request()
    pdf = blank_pdf(3)
    uid = await sandbox.upload_pdf(pk, pdf, "contrato.pdf")
    answer = await sandbox.call("GET", f"/api/v1/documents/{pk}")
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body
    assert answer.body["details"].keys() == {uid}
    entry = answer.body["details"][uid]
    assert re.fullmatch(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}", entry.pop("upload_date"))
    assert entry == {"ext": ".pdf", "size": len(pdf), "mime": "application/pdf", "filename": "contrato.pdf"}


async def test_retrieve_original_document(sandbox):
    pk = await sandbox.create_request()
    pdf = blank_pdf(2)
    uid = await sandbox.upload_pdf(pk, pdf)
    answer = await sandbox.call("GET", f"/api/v1/document/{pk}/original/{uid}")
    assert answer.status == 200
    assert answer.content_type == "application/pdf"
    assert answer.raw == pdf


async def test_retrieve_signed_document_before_signing(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    answer = await sandbox.call("GET", f"/api/v1/document/{pk}/signed/{uid}")
    assert_envelope(answer, 404, "Document not found")


async def test_delete_document(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    answer = await sandbox.call("DELETE", f"/api/v1/document/{pk}/original/{uid}")
    assert_envelope(answer, 200, "Document successfully deleted")
    gone = await sandbox.call("GET", f"/api/v1/document/{pk}/original/{uid}")
    assert_envelope(gone, 404, "Document not found")


async def test_delete_unknown_document(sandbox):
    pk = await sandbox.create_request()
    await sandbox.upload_pdf(pk)
    answer = await sandbox.call("DELETE", f"/api/v1/document/{pk}/original/no-such-document")
    assert_envelope(answer, 404, "Document not found with uid no-such-document and type original")


async def test_delete_all_documents(sandbox):
    pk = await sandbox.create_request()
    await sandbox.upload(pk, ("file", "one.pdf", blank_pdf()), ("file2", "two.pdf", blank_pdf()))
    assert_envelope(await sandbox.call("DELETE", f"/api/v1/documents/{pk}"), 200, "Documents deleted successfully")
    gone = await sandbox.call("GET", f"/api/v1/documents/{pk}")
    assert_envelope(gone, 404, "No documents found for specified Request")


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_documents_of_a_request_without_documents(sandbox, method):
    pk = await sandbox.create_request()
    answer = await sandbox.call(method, f"/api/v1/documents/{pk}")
    assert_envelope(answer, 404, "No documents found for specified Request")


async def test_upload_document_to_unknown_request(sandbox):
    answer = await sandbox.upload(UNKNOWN_PK, ("file", "doc.pdf", blank_pdf()))
    assert_envelope(answer, 404, f"Cannot upload document: Request {UNKNOWN_PK} not found on disk")


async def test_upload_document_that_is_not_a_pdf(sandbox):
    pk = await sandbox.create_request()
    answer = await sandbox.upload(pk, ("file", "doc.pdf", picture("PNG")))
    assert_error_starts(answer, 415, "Unsupported file type")
    assert_envelope(await sandbox.call("GET", f"/api/v1/documents/{pk}"), 404,
                    "No documents found for specified Request")


def numbered_files(count: int) -> list[tuple[str, str, bytes]]:
    """Upload parts ``file``, ``file2`` … ``file<count>``."""
    pdf = blank_pdf()
    return [("file" if n == 1 else f"file{n}", f"doc{n}.pdf", pdf) for n in range(1, count + 1)]


async def test_upload_ten_documents_in_one_call(sandbox):
    pk = await sandbox.create_request()
    answer = await sandbox.upload(pk, *numbered_files(10))
    assert answer.status == 200, answer.body
    assert len(answer.body["details"]) == 10


async def test_upload_eleven_documents_in_one_call(sandbox):
    pk = await sandbox.create_request()
    answer = await sandbox.upload(pk, *numbered_files(11))
    assert_envelope(answer, 400, f"Maximum number of document reached for Request {pk}")
    assert_envelope(await sandbox.call("GET", f"/api/v1/documents/{pk}"), 404,
                    "No documents found for specified Request")


async def test_upload_document_over_the_size_limit(make_client):
    sandbox = await make_client(max_upload_mb=0.01)
    pk = await sandbox.create_request()
    pdf = blank_pdf(250)
    assert len(pdf) > 0.01 * 1024 * 1024 * 1.5
    answer = await sandbox.upload(pk, ("file", "big.pdf", pdf))
    assert answer.status == 413 and answer.content_type == "application/json", answer.raw[:300]
    assert answer.body["status"].startswith("413 ")
    assert "big.pdf" in answer.body["details"]


async def test_upload_document_without_pk(sandbox):
    form = aiohttp.FormData()
    form.add_field("file", blank_pdf(), filename="doc.pdf", content_type="application/pdf")
    answer = await sandbox.call("POST", "/api/v1/document", data=form)
    assert_envelope(answer, 400, "Missing required parameters: Request's pk not specified")


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_documents_path_without_pk(sandbox, method):
    answer = await sandbox.call(method, "/api/v1/documents")
    assert_envelope(answer, 400, "Missing required parameters: Request's pk not specified")


async def test_retrieve_contract_names_the_signer(sandbox, tmp_path):
    pk = await sandbox.create_request()
    answer = await sandbox.call("GET", f"/api/v1/document/{pk}/contract")
    assert answer.status == 200
    assert answer.content_type == "application/pdf"
    assert answer.raw.startswith(b"%PDF-")
    text = pdf_text(answer.raw, tmp_path)
    if text is not None:
        assert "ANA LÓPEZ RUIZ" in text.upper(), text


async def test_retrieve_contract_of_unknown_request(sandbox):
    answer = await sandbox.call("GET", f"/api/v1/document/{UNKNOWN_PK}/contract")
    assert_envelope(answer, 404, f"Request {UNKNOWN_PK} not found")


async def test_upload_document_streamed_with_chunked_encoding(sandbox):
    pk = await sandbox.create_request()
    pdf = blank_pdf(2)
    boundary = "oneshot-mock-chunked-boundary"
    body = multipart_body(boundary, [("file", "chunked.pdf", "application/pdf", pdf)])

    async def stream():
        for start in range(0, len(body), 97):
            yield body[start:start + 97]

    answer = await sandbox.call("POST", f"/api/v1/document/{pk}", data=stream(),
                                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert answer.status == 200, answer.body
    uid = answer.body["details"]
    stored = await sandbox.call("GET", f"/api/v1/document/{pk}/original/{uid}")
    assert stored.raw == pdf


async def test_upload_and_list_documents_with_trailing_slashes(sandbox):
    pk = await sandbox.create_request()
    form = aiohttp.FormData()
    form.add_field("file", blank_pdf(), filename="slash.pdf", content_type="application/pdf")
    answer = await sandbox.call("POST", f"/api/v1/document/{pk}/", data=form)
    assert answer.status == 200, answer.body
    listed = await sandbox.call("GET", f"/api/v1/documents/{pk}/")
    assert listed.status == 200, listed.body
    assert listed.body["details"][answer.body["details"]]["filename"] == "slash.pdf"


@pytest.mark.parametrize("path", ["/api/v1/hello/", "/api/v1/tokens/", "/api/v1/settings/", "/api/v1/images/"])
async def test_trailing_slash_on_get_paths(sandbox, path):
    answer = await sandbox.call("GET", path)
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body


# Images ---------------------------------------------------------------------


async def test_upload_png_image_answers_its_uid(sandbox):
    answer = await sandbox.upload_image(picture("PNG"))
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body
    assert isinstance(answer.body["details"], str) and answer.body["details"]


async def test_upload_jpeg_image(sandbox):
    jpeg = picture("JPEG")
    answer = await sandbox.upload_image(jpeg, "sig.jpg", "image/jpeg")
    assert answer.status == 200, answer.body
    stored = await sandbox.call("GET", f"/api/v1/image/{answer.body['details']}")
    assert stored.content_type == "image/jpeg" and stored.raw == jpeg


async def test_upload_image_on_the_plural_path(sandbox):
    form = aiohttp.FormData()
    form.add_field("image", picture(), filename="sig.png", content_type="image/png")
    answer = await sandbox.call("POST", "/api/v1/images", data=form)
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body
    assert answer.body["details"] in (await sandbox.call("GET", "/api/v1/images")).body["details"]


async def test_upload_image_that_is_not_an_image(sandbox):
    answer = await sandbox.upload_image(blank_pdf(), "x.png", "image/png")
    assert_error_starts(answer, 415, "Image file type not supported")


async def test_upload_image_without_image_part(sandbox):
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("note", "no picture here")
    answer = await sandbox.call("POST", "/api/v1/image", data=form)
    assert_envelope(answer, 400, "Missing required parameter: 'image'")


async def test_list_images(sandbox):
    uid = await upload_picture(sandbox, picture("PNG", (120, 60)))
    answer = await sandbox.call("GET", "/api/v1/images")
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body
    assert answer.body["details"].keys() == {uid}
    entry = answer.body["details"][uid]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?", entry.pop("upload_date"))
    assert entry == {"ext": ".png", "size": [120, 60], "mime": "image/png", "filename": "sig.png"}


async def test_retrieve_image(sandbox):
    png = picture("PNG")
    uid = await upload_picture(sandbox, png)
    answer = await sandbox.call("GET", f"/api/v1/image/{uid}")
    assert answer.status == 200
    assert answer.content_type == "image/png"
    assert answer.raw == png


async def test_delete_image(sandbox):
    uid = await upload_picture(sandbox)
    assert_envelope(await sandbox.call("DELETE", f"/api/v1/image/{uid}"), 200, "Image deleted")
    assert_envelope(await sandbox.call("GET", f"/api/v1/image/{uid}"), 404, f"Image with uid {uid} not found")


async def test_retrieve_unknown_image(sandbox):
    answer = await sandbox.call("GET", "/api/v1/image/no-such-image")
    assert_envelope(answer, 404, "Image with uid no-such-image not found")


async def test_delete_unknown_image(sandbox):
    answer = await sandbox.call("DELETE", "/api/v1/image/no-such-image")
    assert_envelope(answer, 404, "Image with uid no-such-image not found on disk")


async def test_retrieve_image_without_uid(sandbox):
    answer = await sandbox.call("GET", "/api/v1/image")
    assert_envelope(answer, 400, "Missing required parameters: Image uid not specified")


async def test_delete_image_without_uid(sandbox):
    answer = await sandbox.call("DELETE", "/api/v1/image")
    assert_envelope(answer, 400, "Missing required parameters: No image uid specified")


async def test_delete_all_images(sandbox):
    await upload_picture(sandbox)
    await upload_picture(sandbox, picture("JPEG"))
    assert_envelope(await sandbox.call("DELETE", "/api/v1/images"), 200, "Images deleted successfully")
    assert_envelope(await sandbox.call("GET", "/api/v1/images"), 200, {})


# Routing and transport errors ----------------------------------------------


async def test_unknown_route_answers_404_envelope(sandbox):
    answer = await sandbox.call("GET", "/api/v1/no-such-operation")
    assert answer.status == 404 and answer.content_type == "application/json", answer.raw[:300]
    assert answer.body["status"] == "404 Not Found"
    assert isinstance(answer.body["details"], str) and answer.body["details"]


@pytest.mark.parametrize(("method", "path"), [("PUT", "/api/v1/hello"), ("DELETE", "/api/v1/settings"),
                                              ("PATCH", "/api/v1/tokens")])
async def test_wrong_method_answers_405_envelope(sandbox, method, path):
    answer = await sandbox.call(method, path)
    assert answer.status == 405 and answer.content_type == "application/json", answer.raw[:300]
    assert answer.body["status"] == "405 Method Not Allowed"
    assert isinstance(answer.body["details"], str) and answer.body["details"]


BAD_CALLS = [
    pytest.param("GET", "/api/v1/no-such-operation", {}, 404, id="unknown-route"),
    pytest.param("GET", "/api/v2/hello", {}, 404, id="unknown-prefix"),
    pytest.param("GET", "/", {}, 404, id="root"),
    pytest.param("PUT", "/api/v1/hello", {}, 405, id="wrong-method"),
    pytest.param("POST", "/api/v1/image",
                 {"data": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data"}},
                 400, id="multipart-without-boundary"),
    pytest.param("POST", "/api/v1/sign/1", {"data": b"[1, 2"}, 400, id="broken-json"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "http_status"), BAD_CALLS)
async def test_errors_are_never_bare_aiohttp_answers(sandbox, method, path, kwargs, http_status):
    answer = await sandbox.call(method, path, **kwargs)
    assert answer.status == http_status, answer.raw[:300]
    assert answer.content_type == "application/json", answer.raw[:300]
    assert answer.body.keys() == {"status", "details"}
    assert answer.body["status"].startswith(f"{http_status} ")


async def test_oversized_json_body_answers_413_envelope(make_client):
    sandbox = await make_client(max_upload_mb=0.01)
    answer = await sandbox.call("POST", "/api/v1/settings", json={"general": {"padding": "x" * 40_000}})
    assert answer.status == 413 and answer.content_type == "application/json", answer.raw[:300]
    assert answer.body.keys() == {"status", "details"}
    assert answer.body["status"].startswith("413 ")
