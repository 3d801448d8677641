"""Fake identities and VideoID evidences for QA, from Faker and Pillow, deterministic per seed."""

from __future__ import annotations

import base64
import io
from datetime import datetime
from typing import Any

from faker import Faker
from PIL import Image, ImageDraw


def fake_identity(seed: int, locale: str = "es_ES") -> dict[str, str]:
    """A signer as OCR would read them off an identity document."""
    fake = Faker(locale)
    fake.seed_instance(seed)
    country = locale.rsplit("_", 1)[-1].upper() if "_" in locale else "ES"
    serial = fake.nif() if locale == "es_ES" else fake.bothify("#########?").upper()
    return {
        "given_name": fake.first_name(),
        "surname_1": fake.last_name(),
        "surname_2": fake.last_name(),
        "serial_number": serial,
        "id_document_type": "IDC",
        "id_document_country": country,
        "email": fake.email(),
        "mobile_phone_number": "+34" + fake.numerify("6########"),
    }


def fake_evidences(seed: int, locale: str = "es_ES") -> dict[str, Any]:
    """A complete, valid evidences body for ``POST /api/v1/videoid/{pk}/evidences``."""
    identity = fake_identity(seed, locale)
    fake = Faker(locale)
    fake.seed_instance(seed)
    name = f"{identity['given_name']} {identity['surname_1']} {identity['surname_2']}"
    return {
        "acceptance": {
            "description": "I accept the terms and conditions of the one-shot certificate",
            "url-doc-privacypolicy": "https://sandbox.example.test/privacy.pdf",
            "url-doc-termsconditions": "https://sandbox.example.test/terms.pdf",
            "url-web-videoid": "https://sandbox.example.test/videoid",
            "ip": fake.ipv4_public(),
            "user-agent": fake.user_agent(),
            # A fixed range: the same seed must give the same evidences on any day.
            "date": fake.date_time_between_dates(datetime(2025, 1, 1), datetime(2025, 12, 31)).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
        },
        "videoid_data": {
            "images": {
                "document_front": _card(f"ID {identity['serial_number']}", name, (40, 90, 160)),
                "document_rear": _card("IDESP", identity["serial_number"], (60, 60, 60)),
                "document_photo": _portrait((230, 190, 160)),
                "document_owner": _portrait((220, 180, 150)),
            },
            "ocr_data": identity,
            "security_checks": {
                "otp_validation": True,
                "documents_match": True,
                "data_integrity": True,
                "document_notcopy": True,
                "document_notexpired": True,
                "document_notunderage": True,
                "liveliness": True,
            },
            "similarity_level": 92,
        },
    }


def _card(title: str, text: str, colour: tuple[int, int, int]) -> str:
    image = Image.new("RGB", (320, 200), (235, 235, 225))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 320, 36), fill=colour)
    draw.text((10, 10), title, fill=(255, 255, 255))
    draw.rectangle((16, 56, 96, 156), outline=colour, width=2)
    draw.text((110, 80), text, fill=(20, 20, 20))
    draw.text((110, 176), "TEST - NOT A REAL DOCUMENT", fill=(160, 0, 0))
    return _jpeg(image)


def _portrait(skin: tuple[int, int, int]) -> str:
    image = Image.new("RGB", (160, 200), (200, 215, 230))
    draw = ImageDraw.Draw(image)
    draw.ellipse((45, 30, 115, 110), fill=skin)
    draw.rectangle((30, 120, 130, 200), fill=(70, 90, 120))
    return _jpeg(image)


def _jpeg(image: Image.Image) -> str:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return base64.b64encode(out.getvalue()).decode()
