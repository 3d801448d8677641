"""The hash signature flow over HTTP, as a client does it: hash locally, upload the digest, get a P7M.

The P7Ms are checked by OpenSSL (``cms -verify`` against the original content, ``ts -verify`` for the
signature time-stamp) and parsed with asn1crypto.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from asn1crypto import cms, core, tsp

from tests.helpers import SandboxClient, blank_pdf, validate

SIGNER_CN = "ANA LÓPEZ RUIZ"
ISSUING_CA_CN = "oneshot-mock TEST Issuing CA"
CUSTOM_OID = "1.3.6.1.4.1.99999.1"
NO_DOCUMENTS = {"status": "404 Not Found", "details": "No documents found for specified Request"}
DOCUMENT_NOT_FOUND = {"status": "404 Not Found", "details": "Document not found"}


# Client-side helpers ----------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def digest_attribute(digest: bytes) -> bytes:
    """DER of the CMS messageDigest attribute ``SEQUENCE { OID 1.2.840.113549.1.9.4, SET { OCTET STRING } }``."""
    return cms.CMSAttribute({"type": "message_digest", "values": [digest]}).dump()


def custom_attribute(text: str = "oneshot-mock test attribute") -> bytes:
    """DER of an attribute of a private OID holding a UTF8String."""
    return cms.CMSAttribute({"type": CUSTOM_OID, "values": [core.UTF8String(text)]}).dump()


def hash_file(
    digest: bytes, algorithm: str = "sha256", *, auth: int = 1, signing_time: int = 1,
    others: tuple[bytes, ...] = (), der: bool = False,
) -> dict[str, Any]:
    """The JSON a client uploads for ``digest``; ``der`` sends the digest as a DER messageDigest attribute."""
    return {
        "messageDigest": b64(digest_attribute(digest) if der else digest),
        "digestAlgorithm": algorithm,
        "addAuthAttribute": auth,
        "addSigningTime": signing_time,
        "otherAuthAttributes": [b64(attribute) for attribute in others],
    }


def encode(body: dict[str, Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


async def upload_parts(sandbox: SandboxClient, pk: int, *parts: tuple[str, str, dict[str, Any] | bytes]):
    """One upload call; ``hashfile*`` parts are sent as JSON, the others as PDFs."""
    form = aiohttp.FormData()
    for field, filename, body in parts:
        kind = "application/json" if field.startswith("hashfile") else "application/pdf"
        form.add_field(field, encode(body), filename=filename, content_type=kind)
    return await sandbox.call("POST", f"/api/v1/document/{pk}", data=form)


async def upload_hash_files(sandbox: SandboxClient, pk: int, *bodies: dict[str, Any] | bytes) -> list[str]:
    """Upload ``bodies`` as hashfile, hashfile2, ... in one call; their uids in that order."""
    parts = [(field_name(i), f"hash{i + 1}.json", body) for i, body in enumerate(bodies)]
    answer = await upload_parts(sandbox, pk, *parts)
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body
    if len(parts) == 1:
        assert isinstance(answer.body["details"], str), answer.body
        return [answer.body["details"]]
    uids = {entry["key"]: entry["uid"] for entry in answer.body["details"]}
    return [uids[field] for field, _, _ in parts]


def field_name(index: int) -> str:
    return "hashfile" if index == 0 else f"hashfile{index + 1}"


async def sign_with_otp(sandbox: SandboxClient, pk: int) -> None:
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    assert answer.body == {"status": "200 OK", "details": "Documents correctly signed"}, answer.body


async def p7m(sandbox: SandboxClient, pk: int, uid: str) -> bytes:
    answer = await sandbox.call("GET", f"/api/v1/document/{pk}/signed/{uid}")
    assert answer.status == 200 and answer.content_type == "application/pkcs7-mime", (answer.status, answer.body)
    return answer.raw


async def sign_hash_files(sandbox: SandboxClient, *bodies: dict[str, Any]) -> tuple[int, list[bytes]]:
    """A request with ``bodies`` as its hash files, signed with the OTP; its pk and the P7Ms in order."""
    pk = await sandbox.create_request()
    uids = await upload_hash_files(sandbox, pk, *bodies)
    await sign_with_otp(sandbox, pk)
    return pk, [await p7m(sandbox, pk, uid) for uid in uids]


async def ca_file(sandbox: SandboxClient, tmp_path: Path) -> Path:
    answer = await sandbox.call("GET", "/_mock/pki/ca.pem")
    assert answer.status == 200 and b"BEGIN CERTIFICATE" in answer.raw
    path = tmp_path / "ca.pem"
    path.write_bytes(answer.raw)
    return path


def cms_verify(signature: bytes, content: Path, ca: Path) -> subprocess.CompletedProcess:
    """``openssl cms -verify`` of a detached DER signature over the file ``content``."""
    p7m_path = content.with_name(content.name + ".p7m")
    p7m_path.write_bytes(signature)
    return subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(p7m_path),
         "-content", str(content), "-CAfile", str(ca), "-out", "/dev/null"],
        capture_output=True, text=True, timeout=60, check=False,
    )


def signer_info(signature: bytes) -> cms.SignerInfo:
    signed_data = cms.ContentInfo.load(signature)["content"]
    [info] = signed_data["signer_infos"]
    return info


def signed_attributes(signature: bytes) -> dict[str, cms.CMSAttribute]:
    return {attribute["type"].dotted: attribute for attribute in signer_info(signature)["signed_attrs"]}


# 1. Acceptance ------------------------------------------------------------------


async def test_client_hashes_a_file_and_openssl_verifies_the_p7m_against_it(sandbox, openssl, tmp_path):
    content = tmp_path / "contrato.txt"
    content.write_bytes(b"Contrato de prestacion de servicios\n" * 200 + bytes(range(256)))
    body = {
        "messageDigest": b64(hashlib.sha256(content.read_bytes()).digest()),
        "digestAlgorithm": "sha256",
        "addAuthAttribute": 1,
        "addSigningTime": 1,
        "otherAuthAttributes": [],
    }
    _, [signature] = await sign_hash_files(sandbox, body)
    ca = await ca_file(sandbox, tmp_path)

    verified = cms_verify(signature, content, ca)
    assert verified.returncode == 0, verified.stderr

    tampered = tmp_path / "contrato-tampered.txt"
    data = bytearray(content.read_bytes())
    data[100] ^= 0x01
    tampered.write_bytes(bytes(data))
    refused = cms_verify(signature, tampered, ca)
    assert refused.returncode != 0, refused.stderr


# 2. Every algorithm, digest encoding and attribute choice ----------------------


@pytest.mark.parametrize("auth", [0, 1], ids=["no-signed-attrs", "signed-attrs"])
@pytest.mark.parametrize("der", [False, True], ids=["raw-digest", "der-attribute"])
@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512", "sha384WithRSAEncryption"])
async def test_openssl_verifies_every_algorithm_and_encoding(sandbox, openssl, tmp_path, algorithm, der, auth):
    content = tmp_path / "content.bin"
    content.write_bytes(f"{algorithm} der={der} auth={auth}\n".encode() * 50)
    hash_name = algorithm.lower().removesuffix("withrsaencryption")
    digest = hashlib.new(hash_name, content.read_bytes()).digest()
    _, [signature] = await sign_hash_files(sandbox, hash_file(digest, algorithm, auth=auth, der=der))
    verified = cms_verify(signature, content, await ca_file(sandbox, tmp_path))
    assert verified.returncode == 0, verified.stderr


# 3. The structure of the P7M ------------------------------------------------------


async def test_p7m_is_detached_and_carries_signer_and_issuing_ca(sandbox):
    pk, [signature] = await sign_hash_files(sandbox, hash_file(hashlib.sha256(b"x").digest()))
    info = cms.ContentInfo.load(signature)
    assert info["content_type"].native == "signed_data"
    signed_data = info["content"]
    assert signed_data["encap_content_info"]["content_type"].native == "data"
    assert signed_data["encap_content_info"]["content"].native is None

    certificates = [choice.chosen for choice in signed_data["certificates"]]
    assert len(certificates) == 2
    [signer] = [cert for cert in certificates if SIGNER_CN in cert.subject.human_friendly]
    [issuer] = [cert for cert in certificates if ISSUING_CA_CN in cert.subject.human_friendly]
    assert signer.issuer == issuer.subject
    sid = signer_info(signature)["sid"].chosen
    assert sid["issuer"] == signer.issuer and sid["serial_number"].native == signer.serial_number

    detail = (await sandbox.call("GET", f"/api/v1/request/{pk}")).body["details"]
    assert int(detail["certificate_set"][0]["serial_number"], 16) == signer.serial_number


async def test_signed_attributes_with_signing_time_and_other_attributes(sandbox):
    digest = hashlib.sha256(b"with signing time").digest()
    other = custom_attribute()
    _, [signature] = await sign_hash_files(sandbox, hash_file(digest, signing_time=1, others=(other,)))
    attributes = signer_info(signature)["signed_attrs"]
    assert sorted(a["type"].native for a in attributes) == sorted(
        ["content_type", "message_digest", "signing_time", "signing_certificate_v2", CUSTOM_OID]
    )
    by_type = {a["type"].native: a for a in attributes}
    assert by_type["message_digest"]["values"].native == [digest]
    assert by_type["content_type"]["values"].native == ["data"]
    assert other in [a.dump() for a in attributes]


async def test_signed_attributes_without_signing_time(sandbox):
    digest = hashlib.sha256(b"without signing time").digest()
    _, [signature] = await sign_hash_files(sandbox, hash_file(digest, signing_time=0, der=True))
    attributes = signer_info(signature)["signed_attrs"]
    assert sorted(a["type"].native for a in attributes) == sorted(
        ["content_type", "message_digest", "signing_certificate_v2"]
    )
    by_type = {a["type"].native: a for a in attributes}
    assert by_type["message_digest"]["values"].native == [digest]


async def test_no_signed_attributes_when_add_auth_attribute_is_0(sandbox):
    digest = hashlib.sha256(b"bare").digest()
    _, [signature] = await sign_hash_files(sandbox, hash_file(digest, auth=0, others=(custom_attribute(),)))
    assert signer_info(signature)["signed_attrs"].native is None


# 4. The signature time-stamp (CAdES-T) -----------------------------------------


async def test_signature_time_stamp_token_covers_the_signature_value(sandbox, openssl, tmp_path):
    _, [signature] = await sign_hash_files(sandbox, hash_file(hashlib.sha256(b"timestamped").digest()))
    info = signer_info(signature)
    [token_attribute] = [
        a for a in info["unsigned_attrs"] if a["type"].native == "signature_time_stamp_token"
    ]
    assert token_attribute["type"].dotted == "1.2.840.113549.1.9.16.2.14"
    [token] = token_attribute["values"]
    signature_hash = hashlib.sha256(info["signature"].native).digest()

    token_path = tmp_path / "token.der"
    token_path.write_bytes(token.dump())
    ca = await ca_file(sandbox, tmp_path)
    verified = subprocess.run(
        ["openssl", "ts", "-verify", "-in", str(token_path), "-token_in", "-digest", signature_hash.hex(),
         "-CAfile", str(ca)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    tst_info = token["content"]["encap_content_info"]["content"].parsed
    assert isinstance(tst_info, tsp.TSTInfo)
    assert tst_info["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert tst_info["message_imprint"]["hashed_message"].native == signature_hash
    assert abs((datetime.now(UTC) - tst_info["gen_time"].native).total_seconds()) < 60


# 5. Malformed hash files ----------------------------------------------------------

VALID = hash_file(hashlib.sha256(b"valid").digest())
FIELDS = ("messageDigest", "digestAlgorithm", "addAuthAttribute", "addSigningTime", "otherAuthAttributes")


def changed(**changes: Any) -> bytes:
    return json.dumps({**VALID, **changes}).encode()


def without(field: str) -> bytes:
    return json.dumps({k: v for k, v in VALID.items() if k != field}).encode()


MALFORMED = [
    pytest.param(b"{not json", ["not JSON"], id="not-json"),
    *(pytest.param(without(field), [field, "missing"], id=f"missing-{field}") for field in FIELDS),
    pytest.param(changed(messageDigest="%%% not base64 %%%"), ["messageDigest", "base64"], id="bad-base64"),
    pytest.param(changed(messageDigest=b64(bytes(20))), ["messageDigest", "sha256"], id="short-digest"),
    pytest.param(changed(messageDigest=b64(hashlib.sha512(b"x").digest())), ["messageDigest", "sha256"],
                 id="sha512-digest-as-sha256"),
    pytest.param(changed(messageDigest=b64(digest_attribute(bytes(32))), digestAlgorithm="sha384"),
                 ["messageDigest", "sha384"], id="attribute-digest-length"),
    pytest.param(changed(digestAlgorithm="md5"), ["digestAlgorithm", "md5", "sha256WithRSAEncryption"],
                 id="unknown-algorithm"),
    pytest.param(changed(otherAuthAttributes=[b64(custom_attribute()), b64(b"\x30\x03garbage")]),
                 ["otherAuthAttributes[1]"], id="malformed-attribute"),
    pytest.param(changed(otherAuthAttributes=["*** not base64 ***"]), ["otherAuthAttributes[0]"],
                 id="attribute-not-base64"),
    pytest.param(changed(addAuthAttribute=2), ["addAuthAttribute"], id="add-auth-attribute-2"),
    pytest.param(changed(addSigningTime="sometimes"), ["addSigningTime"], id="add-signing-time-not-flag"),
]


@pytest.mark.parametrize(("data", "fragments"), MALFORMED)
async def test_malformed_hash_file_is_refused_and_nothing_stored(sandbox, data, fragments):
    pk = await sandbox.create_request()
    answer = await upload_parts(sandbox, pk, ("hashfile", "broken.json", data))
    assert answer.status == 400, answer.body
    assert answer.body["status"] == "400 Bad Request"
    details = answer.body["details"]
    assert details.startswith("Invalid hashfile broken.json: "), details
    for fragment in fragments:
        assert fragment in details, details
    listing = await sandbox.call("GET", f"/api/v1/documents/{pk}")
    assert listing.status == 404 and listing.body == NO_DOCUMENTS


async def test_one_malformed_hash_file_refuses_the_whole_upload(sandbox):
    pk = await sandbox.create_request()
    answer = await upload_parts(
        sandbox, pk, ("file", "doc.pdf", blank_pdf()), ("hashfile", "good.json", VALID),
        ("hashfile2", "bad.json", changed(addAuthAttribute="x")),
    )
    assert answer.status == 400, answer.body
    assert answer.body["details"].startswith("Invalid hashfile bad.json: "), answer.body
    listing = await sandbox.call("GET", f"/api/v1/documents/{pk}")
    assert listing.status == 404 and listing.body == NO_DOCUMENTS


# 6. PDFs and hash files in one request --------------------------------------------


async def test_pdf_and_two_hash_files_in_one_request(sandbox, openssl, tmp_path):
    contents = {}
    bodies = {}
    for field in ("hashfile", "hashfile2"):
        contents[field] = tmp_path / f"{field}.txt"
        contents[field].write_bytes(f"content of {field}\n".encode() * 30)
        bodies[field] = encode(hash_file(hashlib.sha256(contents[field].read_bytes()).digest()))
    pdf = blank_pdf()

    pk = await sandbox.create_request()
    answer = await upload_parts(
        sandbox, pk, ("file", "doc.pdf", pdf), ("hashfile", "one.json", bodies["hashfile"]),
        ("hashfile2", "two.json", bodies["hashfile2"]),
    )
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body
    entries = {entry["key"]: entry for entry in answer.body["details"]}
    assert len(answer.body["details"]) == 3 and set(entries) == {"file", "hashfile", "hashfile2"}
    assert entries["file"]["digest"] == hashlib.sha256(pdf).hexdigest()
    assert entries["hashfile"]["digest"] == hashlib.sha256(bodies["hashfile"]).hexdigest()
    assert entries["hashfile2"]["filename"] == "two.json"

    listing = (await sandbox.call("GET", f"/api/v1/documents/{pk}")).body["details"]
    assert {uid: (d["mime"], d["ext"]) for uid, d in listing.items()} == {
        entries["file"]["uid"]: ("application/pdf", ".pdf"),
        entries["hashfile"]["uid"]: ("application/json", ".json"),
        entries["hashfile2"]["uid"]: ("application/json", ".json"),
    }

    await sign_with_otp(sandbox, pk)
    status = await validate(await sandbox.signed(pk, entries["file"]["uid"]))
    assert status.bottom_line, status.pretty_print_details()
    ca = await ca_file(sandbox, tmp_path)
    for field in ("hashfile", "hashfile2"):
        verified = cms_verify(await p7m(sandbox, pk, entries[field]["uid"]), contents[field], ca)
        assert verified.returncode == 0, (field, verified.stderr)


# 7. Retrieval ----------------------------------------------------------------------


async def test_original_is_the_uploaded_json(sandbox):
    pk = await sandbox.create_request()
    body = b'{"messageDigest": "%s", "digestAlgorithm": "sha256", "addAuthAttribute": 1,\n' % (
        b64(hashlib.sha256(b"original").digest()).encode()
    ) + b' "addSigningTime": 0, "otherAuthAttributes": []}\n'
    [uid] = await upload_hash_files(sandbox, pk, body)
    original = await sandbox.call("GET", f"/api/v1/document/{pk}/original/{uid}")
    assert original.status == 200 and original.content_type == "application/octet-stream"
    assert original.raw == body


async def test_signed_p7m_is_served_after_signing_only(sandbox):
    pk = await sandbox.create_request()
    [uid] = await upload_hash_files(sandbox, pk, hash_file(hashlib.sha256(b"later").digest()))
    before = await sandbox.call("GET", f"/api/v1/document/{pk}/signed/{uid}")
    assert before.status == 404 and before.body == DOCUMENT_NOT_FOUND

    await sign_with_otp(sandbox, pk)
    async with sandbox.http.get(f"/api/v1/document/{pk}/signed/{uid}") as response:
        assert response.status == 200
        assert response.content_type == "application/pkcs7-mime"
        disposition = response.headers.get("Content-Disposition", "")
        data = await response.read()
    match = re.search(r'filename="?([^";]+)"?', disposition)
    assert match and match.group(1).endswith(".p7m"), disposition
    assert cms.ContentInfo.load(data)["content_type"].native == "signed_data"
