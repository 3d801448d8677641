"""External VideoID evidences: what is missing, and what is wrong, in an uploaded body."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

IMAGES = ("document_front", "document_rear", "document_photo", "document_owner")
OCR_REQUIRED = ("given_name", "surname_1", "serial_number")
SECURITY_CHECKS = (
    "otp_validation", "documents_match", "data_integrity", "document_notcopy",
    "document_notexpired", "document_notunderage", "liveliness",
)
MIN_SIMILARITY = 50


@dataclass(frozen=True)
class EvidenceReview:
    """``missing`` parts make a request VIDEOINCOMPLETE, ``invalid`` ones VIDEOERROR."""

    missing: tuple[str, ...]
    invalid: tuple[str, ...]
    ocr: dict[str, str]

    @property
    def complete(self) -> bool:
        return not self.missing and not self.invalid

    @property
    def reason(self) -> str | None:
        if self.invalid:
            return "invalid evidences: " + "; ".join(self.invalid)
        if self.missing:
            return "missing evidences: " + ", ".join(self.missing)
        return None


def review_evidences(body: dict[str, Any]) -> EvidenceReview:
    """Check an evidences body against the documented structure (UploadData_VID).

    ``ocr_data``, ``security_checks`` and ``similarity_level`` are read inside ``videoid_data``
    as the schema nests them, or at the top level where the vendor's guide shows them.
    """
    data = body.get("videoid_data") if isinstance(body.get("videoid_data"), dict) else {}

    def part(name: str) -> Any:
        return data.get(name, body.get(name))

    missing: list[str] = []
    invalid: list[str] = []
    if not isinstance(body.get("acceptance"), dict) or not body["acceptance"]:
        missing.append("acceptance")

    images = data.get("images") if isinstance(data.get("images"), dict) else {}
    for name in IMAGES:
        if not images.get(name):
            missing.append(f"videoid_data.images.{name}")
        elif not _decodable_image(images[name]):
            invalid.append(f"videoid_data.images.{name} is not a base64 PNG or JPEG image")

    ocr = part("ocr_data") if isinstance(part("ocr_data"), dict) else {}
    missing.extend(f"ocr_data.{name}" for name in OCR_REQUIRED if not str(ocr.get(name) or "").strip())

    checks = part("security_checks") if isinstance(part("security_checks"), dict) else {}
    for name in SECURITY_CHECKS:
        if name not in checks:
            missing.append(f"security_checks.{name}")
        elif checks[name] is not True:
            invalid.append(f"security check {name} failed")

    similarity = part("similarity_level")
    if similarity is None:
        missing.append("similarity_level")
    elif not isinstance(similarity, int) or isinstance(similarity, bool) or not 0 <= similarity <= 100:
        invalid.append(f"similarity_level {similarity!r} is not an integer from 0 to 100")
    elif similarity < MIN_SIMILARITY:
        invalid.append(f"similarity_level {similarity} is below {MIN_SIMILARITY}")
    return EvidenceReview(tuple(missing), tuple(invalid), {k: str(v) for k, v in ocr.items() if v is not None})


def _decodable_image(value: Any) -> bool:
    try:
        with Image.open(io.BytesIO(base64.b64decode(str(value), validate=True))) as picture:
            picture.verify()
            return picture.format in ("PNG", "JPEG")
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return False
