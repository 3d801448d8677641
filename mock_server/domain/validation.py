"""Validation of a create-request body, with the vendor's answers for each fault."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mock_server.domain.countries import ISO_3166_ALPHA_2
from mock_server.domain.errors import vendor_error
from mock_server.domain.ids import parse_number
from mock_server.domain.model import Identity
from mock_server.pki.authority import (
    COMMON_NAME_MAX_BYTES,
    PRINTABLE_STRING,
    SERIAL_NUMBER_MAX,
    common_name,
    etsi_serial_number,
)

ID_DOCUMENT_TYPES = ("IDC", "PAS", "PNO", "TIN", "CI", "CE")
SANDBOX_ENVIRONMENTS = ("sandbox", "test")
LANGUAGES = ("ES", "EN", "PL")
# Deliberately loose, like Django's EmailValidator the vendor answers with: one @,
# a dotted domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^(\+|00)[1-9][0-9 ]{6,17}$")
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")
IDENTITY_FIELDS = ("given_name", "surname_1", "serial_number")
# The names the one-shot certificate's common name is made of.
NAME_FIELDS = ("given_name", "surname_1", "surname_2")


@dataclass(frozen=True)
class RequestDefaults:
    """What settings supply when a create call leaves a field out."""

    environment: str
    profile: str
    registration_authority: str


@dataclass(frozen=True)
class ValidatedRequest:
    """A create-request body that passed every check."""

    identity: Identity
    profile: str
    registration_authority: int
    env: str
    communication_language: str
    async_mode: bool = False
    callback: str | None = None


def validate_create_request(
    fields: Mapping[str, str], defaults: RequestDefaults, require_identity: bool = True
) -> ValidatedRequest:
    """Check ``fields`` in the order the vendor does; raise the first fault found.

    VideoID requests learn the signer's names later: ``require_identity=False`` lets them be blank.
    """
    env = fields.get("env") or defaults.environment
    if not env:
        raise vendor_error("create_request.400.missing_env")
    if env == "prod":
        raise vendor_error("create_request.400.environment_unavailable")
    if env not in SANDBOX_ENVIRONMENTS:
        raise vendor_error("create_request.400.unknown_environment", env=env)

    phone = fields.get("mobile_phone_number", "").strip()
    if not phone:
        raise vendor_error("create_request.400.missing_phone")
    if not _PHONE.match(phone):
        raise vendor_error("create_request.400.missing_prefix")

    if "email" not in fields:
        raise vendor_error("create_request.400.missing_email")
    email = fields["email"].strip()
    if not email:
        raise vendor_error("create_request.400.blank_email")
    if not _EMAIL.match(email):
        raise vendor_error("create_request.400.invalid_email")

    id_type = (fields.get("id_document_type") or "IDC").strip()
    if id_type not in ID_DOCUMENT_TYPES:
        raise vendor_error("create_request.400.invalid_id_document_type")
    country = (fields.get("id_document_country") or "ES").strip()
    if country not in ISO_3166_ALPHA_2:
        raise vendor_error("create_request.400.invalid_country", value=country)

    missing = [name for name in IDENTITY_FIELDS if require_identity and not fields.get(name, "").strip()]
    profile = (fields.get("profile") or defaults.profile).strip()
    if not profile:
        missing.append("profile")
    ra = (fields.get("registration_authority") or defaults.registration_authority).strip()
    ra_number = parse_number(ra)
    if ra_number is None:
        missing.append("registration_authority")
    language = (fields.get("communication_language") or "ES").strip().upper()
    if language not in LANGUAGES:
        missing.append("communication_language")
    serial = fields.get("serial_number", "").strip()
    in_certificate = etsi_serial_number(id_type, country, serial)
    if not PRINTABLE_STRING.fullmatch(serial) or len(in_certificate) > SERIAL_NUMBER_MAX:
        missing.append(f"serial_number (letters, digits, spaces and '()+,-./:=? only, at most "
                       f"{SERIAL_NUMBER_MAX - len(in_certificate) + len(serial)} characters: the certificate's "
                       "serialNumber)")
    names = [fields.get(name, "").strip() for name in NAME_FIELDS]
    name_bytes = len(common_name(*names).encode())
    if name_bytes > COMMON_NAME_MAX_BYTES:
        missing.append(f"{', '.join(n for n, v in zip(NAME_FIELDS, names, strict=True) if v)} (the certificate's "
                       f"common name would take {name_bytes} bytes, at most {COMMON_NAME_MAX_BYTES})")
    if missing:
        raise vendor_error("create_request.412.invalid_fields", fields=", ".join(missing))

    identity = Identity(
        given_name=fields.get("given_name", "").strip(),
        surname_1=fields.get("surname_1", "").strip(),
        surname_2=fields.get("surname_2", "").strip(),
        id_document_type=id_type,
        id_document_country=country,
        serial_number=fields.get("serial_number", "").strip(),
        email=email,
        mobile_phone_number=phone,
    )
    callback = fields.get("callback", "").strip() or None
    if callback is not None and not _URL.match(callback):
        raise vendor_error("create_request.400.invalid_callback", url=callback)
    async_mode = fields.get("useasync", "").strip().lower() in ("true", "1", "yes")
    return ValidatedRequest(identity, profile, ra_number, env, language, async_mode, callback)
