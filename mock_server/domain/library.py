"""Settings, metadata and signature images: the request-independent resources."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from PIL import Image as PilImage
from PIL import UnidentifiedImageError

from mock_server.domain.errors import vendor_error
from mock_server.domain.ids import RandomSource
from mock_server.domain.model import Image, Metadata, Upload
from mock_server.domain.store import State

IMAGE_TYPES = {"PNG": ("image/png", ".png"), "JPEG": ("image/jpeg", ".jpg")}
# A signature stamp needs far fewer: a file declaring more would take gigabytes to draw.
MAX_IMAGE_PIXELS = 25_000_000


class ImageTooLarge(ValueError):
    """An image that declares more than :data:`MAX_IMAGE_PIXELS` pixels."""


def update_settings(state: State, changes: Mapping[str, Any]) -> None:
    """Merge ``changes`` section by section into the settings (all or nothing)."""
    _check_authorities(changes.get("registration_authorities", {}))
    for section, values in changes.items():
        if isinstance(state.settings.get(section), dict) and not isinstance(values, Mapping):
            raise vendor_error("update_settings.400.invalid_section", section=section)
    for section, values in changes.items():
        if section == "registration_authorities":
            authorities = state.settings.setdefault(section, {})
            for ra, entry in values.items():
                authorities.setdefault(str(ra), {}).update(entry)
        elif isinstance(values, Mapping) and isinstance(state.settings.get(section), dict):
            state.settings[section].update(values)
        else:
            state.settings[section] = values


def _check_authorities(authorities: Any) -> None:
    """``registration_authorities``: RA id -> {videoid_mode, videoid_two_step, webhook_url, webhook_format}."""

    def invalid(problem: str) -> Exception:
        return vendor_error("update_settings.400.invalid_authorities", problem=problem)

    if not isinstance(authorities, Mapping):
        raise invalid("must map RA ids to objects")
    for ra, entry in authorities.items():
        if not str(ra).isdigit() or not isinstance(entry, Mapping):
            raise invalid(f"entry {ra!r} is not RA id -> object")
        url = entry.get("webhook_url")
        if url not in (None, "") and not str(url).startswith(("http://", "https://")):
            raise invalid(f"RA {ra}: webhook_url must be an http(s) URL")
        if entry.get("webhook_format") not in (None, "", "legacy", "new"):
            raise invalid(f"RA {ra}: webhook_format is legacy or new")
        if entry.get("videoid_mode") not in (None, "eidas", "external", "disabled"):
            raise invalid(f"RA {ra}: videoid_mode is eidas, external or disabled")


def add_metadata(state: State, rng: RandomSource, fields: Mapping[str, Any], uid: str | None = None) -> Metadata:
    """Store a metadata blob under ``uid`` (a seed file's) or a new one."""
    metadata, oid = fields.get("metadata"), fields.get("metadata_oid")
    if not metadata or not oid:
        raise vendor_error("upload_metadata.400.missing_parameters")
    entry = Metadata(uid or rng.hex_uid(), str(oid), str(metadata))
    state.metadata[entry.uid] = entry
    return entry


def get_metadata(state: State, uid: str, operation: str = "get_metadata") -> Metadata:
    entry = state.metadata.get(uid)
    if entry is None:
        raise vendor_error(f"{operation}.404.not_found")
    return entry


def list_metadata(state: State) -> list[Metadata]:
    if not state.metadata:
        raise vendor_error("list_metadata.404.not_found")
    return list(state.metadata.values())


def delete_all_metadata(state: State) -> None:
    state.metadata.clear()


def delete_metadata(state: State, uid: str) -> None:
    get_metadata(state, uid, "delete_metadata")
    del state.metadata[uid]


def add_image(state: State, rng: RandomSource, upload: Upload, now: datetime,
              uid: str | None = None) -> Image:
    """Store a PNG or JPEG; anything else is the vendor's 415 (bytes sniffed, not names)."""
    try:
        kind, width, height = sniff_image(upload.data)
    except ImageTooLarge as refused:
        raise vendor_error("upload_image.413.too_many_pixels", filename=upload.filename or "image",
                           size=str(refused), limit=MAX_IMAGE_PIXELS) from None
    if kind is None:
        shown = upload.content_type or upload.filename or "unknown"
        raise vendor_error("upload_image.415.unsupported", type=shown)
    mime, _ = IMAGE_TYPES[kind]
    image = Image(uid or rng.uuid(), upload.filename or f"image{IMAGE_TYPES[kind][1]}", mime,
                  upload.data, width, height, now)
    state.images[image.uid] = image
    return image


def sniff_image(data: bytes) -> tuple[str | None, int, int]:
    """``data``'s kind (a key of :data:`IMAGE_TYPES`, None for anything else), width and height;
    :class:`ImageTooLarge` for more pixels than :data:`MAX_IMAGE_PIXELS` (only the header is read)."""
    try:
        with PilImage.open(io.BytesIO(data)) as picture:
            kind, (width, height) = picture.format, picture.size
    except PilImage.DecompressionBombError:
        raise ImageTooLarge(f"more than {2 * (PilImage.MAX_IMAGE_PIXELS or 0)}") from None
    except (UnidentifiedImageError, OSError):
        return None, 0, 0
    if kind not in IMAGE_TYPES:
        return None, 0, 0
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLarge(f"{width}x{height} = {width * height}")
    return kind, width, height


def get_image(state: State, uid: str, operation: str = "retrieve_image") -> Image:
    image = state.images.get(uid)
    if image is None:
        raise vendor_error(f"{operation}.404.not_found", uid=uid)
    return image


def delete_image(state: State, uid: str) -> None:
    get_image(state, uid, "delete_image")
    del state.images[uid]


def delete_all_images(state: State) -> None:
    state.images.clear()
