"""The HTTP side of a throwaway client app: synchronous, stdlib ``urllib`` only.

``test_pytest_plugin.py`` copies it into its example projects as ``client.py`` (so it imports nothing
from this repository) and uses it directly to drive a sandbox in its ``ControlClient`` tests.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

TOKEN = "6d1cae4d55be4cdf9cac50ee36f73406"
SIGNER = {
    "given_name": "Ana",
    "surname_1": "López",
    "surname_2": "Ruiz",
    "id_document_type": "IDC",
    "id_document_country": "ES",
    "serial_number": "12345678Z",
    "email": "ana.lopez@example.com",
    "mobile_phone_number": "+34600000001",
    "registration_authority": "9999",
    "profile": "PFnubeQAFCiudadano",
    "env": "sandbox",
}


def call(method: str, url: str, body: bytes | None = None, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One HTTP call: status and body, errors included."""
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def create(api_url: str, headers: dict[str, str] | None = None, **fields: str) -> int:
    """Create a signature request for the test signer; its pk."""
    body = json.dumps({**SIGNER, "token": TOKEN, **fields}).encode()
    status, answer = call("POST", api_url + "/request", body, headers=headers)
    assert status == 201, answer
    return json.loads(answer)["details"]


def upload(api_url: str, pk: int, pdf: bytes, headers: dict[str, str] | None = None) -> str:
    """Upload a PDF to request ``pk``; the document uid."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="doc.pdf"\r\n'
            f"Content-Type: application/pdf\r\n\r\n").encode() + pdf + f"\r\n--{boundary}--\r\n".encode()
    status, answer = call("POST", f"{api_url}/document/{pk}", body, f"multipart/form-data; boundary={boundary}",
                          headers)
    assert status == 200, answer
    return json.loads(answer)["details"]


def request_otp(api_url: str, pk: int, headers: dict[str, str] | None = None) -> None:
    """Have the sandbox send the signer an OTP."""
    status, answer = call("POST", f"{api_url}/otp/{pk}", headers=headers)
    assert status == 200, answer


def sign(api_url: str, pk: int, otp: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Sign the request's documents with ``otp``: status and body."""
    return call("POST", f"{api_url}/sign/{pk}", json.dumps({"secret": otp}).encode(), headers=headers)
