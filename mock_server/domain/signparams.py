"""The sign call's body: parsed and checked once for both API families."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mock_server.domain.errors import vendor_error
from mock_server.domain.library import MAX_IMAGE_PIXELS, ImageTooLarge, sniff_image
from mock_server.pki.signing import TextTemplate

DEFAULT_TEXT = ("Digitally signed by %(CN)s", "Date: %(DATE)s")
DEFAULT_DATE_FORMAT = "%d/%m/%Y %H:%M:%S"
DEFAULT_TIMEZONE = "Europe/Madrid"
# Date-pattern letters (Java's SimpleDateFormat, ICU) and their strftime codes.
_PATTERN_CODES = {"yyyy": "%Y", "yy": "%y", "MMMM": "%B", "MMM": "%b", "MM": "%m", "dd": "%d", "HH": "%H",
                  "hh": "%I", "mm": "%M", "ss": "%S", "a": "%p", "EEEE": "%A", "EEE": "%a", "z": "%Z", "Z": "%z"}
_PATTERN_LETTERS = re.compile("|".join(sorted(_PATTERN_CODES, key=len, reverse=True)))
# Only pattern letters and separators: "Fecha dd/MM" stays literal rather than half translated.
_DATE_PATTERN = re.compile(r"[yMdHhmsaEzZ\s/.,:'-]+")
# Legacy clients put one options block straight under "options" for every document.
_FLAT_OPTION_KEYS = ("position", "page", "image")


@dataclass(frozen=True)
class DocumentOptions:
    """Visible signature of one document: page (0-based), box in points, an image by uid or inline."""

    page: int
    box: tuple[float, float, float, float]
    image_uid: str | None
    countersign: bool = False
    # A picture the sign call carries itself (the newer family's b64_image): used, never stored.
    image_data: bytes | None = None


@dataclass(frozen=True)
class Countersignature:
    """The RAO's (SignCloud account's) second signature over documents that ask for it."""

    username: str
    password: str
    pin: str
    page: int | None
    box: tuple[float, float, float, float] | None
    text: TextTemplate | None


@dataclass(frozen=True)
class SignParams:
    """What a sign call asks for."""

    secret: str
    external_auth: bool
    options: dict[str, DocumentOptions]
    options_for_all: DocumentOptions | None
    text: TextTemplate | None
    metadata_uid: str | None
    countersignature: Countersignature | None = None
    ltv: bool = True


def parse_sign_body(body: dict[str, Any]) -> SignParams:
    """Check a sign body; raise the vendor's 400 answers for missing or bad fields."""
    secret = _text(body.get("secret"))
    if not secret:
        raise vendor_error("sign.400.missing_parameter", name="secret")
    ext_type, ext_value = _text(body.get("ext_unlock_type")), _text(body.get("ext_unlock_value"))
    if bool(ext_type) != bool(ext_value):
        missing = "ext_unlock_value" if ext_type else "ext_unlock_type"
        raise vendor_error("sign.400.missing_parameter", name=missing)

    options_body = body.get("options") or {}
    if not isinstance(options_body, dict):
        raise vendor_error("sign.400.invalid_options", {"options": "options must be an object"})
    options_for_all = None
    per_document: dict[str, Any] = options_body
    if any(key in options_body for key in _FLAT_OPTION_KEYS):
        per_document = {}
        try:
            options_for_all = _document_options("*", options_body)
        except ValueError as fault:
            raise vendor_error("sign.400.invalid_options", {"options": str(fault)}) from None

    missing: dict[str, str] = {}
    invalid: dict[str, str] = {}
    options: dict[str, DocumentOptions] = {}
    for uid, block in per_document.items():
        if not isinstance(block, dict):
            invalid[uid] = f"Options for file {uid} must be an object"
            continue
        for name in ("position", "page"):
            if block.get(name) in (None, ""):
                missing.setdefault(uid, f"Missing required parameter '{name}' for file {uid}")
        if uid not in missing:
            try:
                options[uid] = _document_options(uid, block)
            except ValueError as fault:
                invalid[uid] = str(fault)
    if missing:
        raise vendor_error("sign.400.missing_image_parameters", missing)
    if invalid:
        raise vendor_error("sign.400.invalid_options", invalid)

    return SignParams(
        secret=secret,
        external_auth=bool(ext_type),
        options=options,
        options_for_all=options_for_all,
        text=_text_template(body),
        metadata_uid=_text(body.get("metadata")) or None,
        countersignature=_countersignature(body.get("countersignature")),
        ltv=not _flag(body.get("disable_ltv"), default=False),
    )


def _countersignature(block: Any) -> Countersignature | None:
    if block is None:
        return None
    if not isinstance(block, dict):
        raise vendor_error("sign.400.invalid_options", {"countersignature": "countersignature must be an object"})
    page, box = None, None
    if block.get("position") not in (None, "") or block.get("page") not in (None, ""):
        try:
            placed = _document_options("countersignature", block)
        except ValueError as fault:
            raise vendor_error("sign.400.invalid_options", {"countersignature": str(fault)}) from None
        page, box = placed.page, placed.box
    return Countersignature(
        username=_text(block.get("username")),
        password=_text(block.get("password")),
        pin=_text(block.get("pin")),
        page=page,
        box=box,
        text=_text_template(block),
    )


def _document_options(uid: str, block: dict[str, Any]) -> DocumentOptions:
    try:
        parts = [float(p) for p in str(block["position"]).split(",")]
    except (KeyError, ValueError):
        parts = []
    if len(parts) != 4 or parts[2] <= parts[0] or parts[3] <= parts[1]:
        raise ValueError(
            f"Invalid position '{block.get('position')}' for file {uid}: expected 'x1, y1, x2, y2'"
            " with x2 > x1 and y2 > y1"
        )
    try:
        page = int(str(block.get("page", 0)).strip())
    except ValueError:
        page = -1
    if page < 0:
        raise ValueError(f"Invalid page '{block.get('page')}' for file {uid}: expected an integer from 0")
    image = _text(block.get("image")) or None
    return DocumentOptions(
        page=page,
        box=(parts[0], parts[1], parts[2], parts[3]),
        image_uid=image,
        countersign=_flag(block.get("usecountersignature"), default=False),
        image_data=_inline_image(block.get("b64_image")),
    )


def _inline_image(value: Any) -> bytes | None:
    if value is None or value == "":
        return None
    try:
        data = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise vendor_error("sign.400.invalid_options", {"b64_image": "not valid base64"}) from None
    try:
        kind = sniff_image(data)[0]
    except ImageTooLarge as refused:
        raise vendor_error("sign.400.invalid_options",
                           {"b64_image": f"{refused} pixels: at most {MAX_IMAGE_PIXELS} are taken"}) from None
    if kind is None:
        raise vendor_error("sign.400.invalid_options", {"b64_image": "not a PNG or JPEG image"})
    return data


def _flag(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    return str(value).strip().lower() not in ("false", "0", "no")


def _text_template(body: dict[str, Any]) -> TextTemplate | None:
    if not _flag(body.get("use_signature_text"), default=True):
        return None
    fmt = body.get("signature_format") or {}
    if not isinstance(fmt, dict):
        raise vendor_error("sign.400.invalid_options", {"signature_format": "signature_format must be an object"})
    lines = fmt.get("text_format") or DEFAULT_TEXT
    if isinstance(lines, str):
        lines = [lines]
    if not isinstance(lines, list | tuple) or not all(isinstance(line, str) for line in lines):
        raise vendor_error("sign.400.invalid_options",
                           {"signature_format": "text_format must be a string or a list of strings"})
    timezone = _text(fmt.get("timezone")) or DEFAULT_TIMEZONE
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise vendor_error(
            "sign.400.invalid_options", {"signature_format": f"Unknown timezone '{timezone}'"}
        ) from None
    return TextTemplate(
        lines=tuple(str(line) for line in lines),
        date_format=_date_format(_text(fmt.get("date_format"))),
        timezone=timezone,
    )


def _date_format(value: str) -> str:
    """A strftime format as given, or one from a date pattern in the style the vendor's Java side
    uses (``dd/MM/yyyy HH:mm:ss``) when it holds no ``%``."""
    if not value:
        return DEFAULT_DATE_FORMAT
    if "%" in value or not _DATE_PATTERN.fullmatch(value):
        return value
    return _PATTERN_LETTERS.sub(lambda m: _PATTERN_CODES[m.group(0)], value)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()
