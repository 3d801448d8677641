"""The hash file of the hash signature flow: a JSON digest a client signs instead of a PDF."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from asn1crypto import cms

from mock_server.domain.errors import vendor_error
from mock_server.pki.cades import HashToSign
from mock_server.pki.tsa import DIGEST_SIZES

# Every spelling real clients send, to the hash it names.
_ALGORITHMS = {
    **{name: name for name in DIGEST_SIZES},
    **{f"{name}withrsaencryption": name for name in DIGEST_SIZES},
    **{name.replace("sha", "sha-"): name for name in DIGEST_SIZES},
}
ALLOWED_ALGORITHMS = ", ".join(
    [*DIGEST_SIZES, *(f"{name}WithRSAEncryption" for name in DIGEST_SIZES)]
)
_FIELDS = ("messageDigest", "digestAlgorithm", "addAuthAttribute", "addSigningTime", "otherAuthAttributes")


def hash_file(digest: bytes) -> bytes:
    """The hash file a client uploads to have the SHA-256 ``digest`` signed, as the vendor documents it."""
    return json.dumps({"messageDigest": base64.b64encode(digest).decode(), "digestAlgorithm": "sha256",
                       "addAuthAttribute": 1, "addSigningTime": 1, "otherAuthAttributes": []}).encode()


def parse_hash_file(filename: str, data: bytes) -> HashToSign:
    """Check a hash file; every fault is a 400 naming the file, the field and the problem."""

    def fault(field: str | None, problem: str) -> Exception:
        where = f"field '{field}' " if field else ""
        return vendor_error("upload_document.400.invalid_hashfile", filename=filename, problem=where + problem)

    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise fault(None, f"not JSON ({error})") from None
    except RecursionError:
        raise fault(None, "not JSON (nested too deeply)") from None
    if not isinstance(body, dict):
        raise fault(None, "must be a JSON object")
    for field in _FIELDS:
        if field not in body:
            raise fault(field, "is missing")

    raw_algorithm = str(body["digestAlgorithm"])
    algorithm = _ALGORITHMS.get(raw_algorithm.strip().lower())
    if algorithm is None:
        raise fault("digestAlgorithm", f"names an unknown algorithm '{raw_algorithm}' (allowed: {ALLOWED_ALGORITHMS})")

    digest = _digest(body["messageDigest"], algorithm, fault)
    attributes = body["otherAuthAttributes"]
    if not isinstance(attributes, list):
        raise fault("otherAuthAttributes", "must be a list of base64 DER attributes")
    return HashToSign(
        digest=digest,
        algorithm=algorithm,
        signed_attributes=_flag(body["addAuthAttribute"], "addAuthAttribute", fault),
        signing_time=_flag(body["addSigningTime"], "addSigningTime", fault),
        other_attributes=tuple(_attribute(i, a, fault) for i, a in enumerate(attributes)),
    )


def _digest(value: Any, algorithm: str, fault) -> bytes:
    """The raw digest, from base64 of the digest itself or of a DER messageDigest attribute."""
    try:
        decoded = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise fault("messageDigest", "is not valid base64") from None
    expected = DIGEST_SIZES[algorithm]
    if len(decoded) == expected:
        return decoded
    try:
        attribute = cms.CMSAttribute.load(decoded, strict=True)
        if attribute["type"].native != "message_digest":
            raise ValueError(attribute["type"].native)
        digest = attribute["values"][0].native
    except (ValueError, TypeError, KeyError, IndexError):
        raise fault(
            "messageDigest", f"holds {len(decoded)} bytes: neither a {algorithm} digest ({expected} bytes) "
            "nor a DER messageDigest attribute",
        ) from None
    if len(digest) != expected:
        raise fault("messageDigest", f"is an attribute of {len(digest)} bytes; {algorithm} digests have {expected}")
    return digest


def _flag(value: Any, field: str, fault) -> bool:
    if value in (0, 1, True, False) or str(value).strip().lower() in ("0", "1", "true", "false"):
        return str(value).strip().lower() in ("1", "true")
    raise fault(field, f"must be 0 or 1, not {value!r}")


def _attribute(index: int, value: Any, fault) -> bytes:
    try:
        der = base64.b64decode(str(value), validate=True)
        attribute = cms.CMSAttribute.load(der, strict=True)
        attribute["type"].dotted  # noqa: B018 - forces parsing of the attribute type
        attribute["values"].native  # noqa: B018 - and of its values
    except (binascii.Error, ValueError, TypeError, KeyError) as error:
        raise fault(f"otherAuthAttributes[{index}]", f"is not a base64 DER attribute ({error})") from None
    return der
