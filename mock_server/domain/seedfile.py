"""``--seed-file``: RAO accounts, tokens, images and requests with fixed ids, from YAML.

Files named in the seed file are read (and PDFs checked) once, when it is loaded, so a
reset can re-apply it without touching the disk.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mock_server.domain import library
from mock_server.domain.defaults import DEFAULT_RA, default_tokens
from mock_server.domain.model import Document, Rao, Token, Upload
from mock_server.errors import VendorError
from mock_server.pki.pades import DocumentRefused, inspect_pdf

if TYPE_CHECKING:
    from mock_server.domain.service import Sandbox

_SECTIONS = {"settings", "raos", "tokens", "images", "requests"}


# Ids written as hex digits: unquoted, YAML takes the all-digit ones for numbers and drops their zeros.
_TEXT_IDS = ("uid", "token")


class SeedFileError(ValueError):
    """A seed file that cannot be applied, naming the file, entry and field."""


@dataclass(frozen=True)
class SeedFile:
    """A file a seed entry points at."""

    uid: str
    filename: str
    data: bytes
    page_count: int = 0


@dataclass(frozen=True)
class SeedRequest:
    """A request to create with a fixed pk; ``fields`` are a create call's fields."""

    pk: int
    fields: dict[str, str]
    documents: tuple[SeedFile, ...]


@dataclass(frozen=True)
class SeedData:
    """The parsed content of a seed file."""

    settings: dict[str, Any]
    raos: tuple[Rao, ...]
    tokens: tuple[Token, ...]
    images: tuple[SeedFile, ...]
    requests: tuple[SeedRequest, ...]

    @classmethod
    def load(cls, path: Path) -> SeedData:
        """Parse ``path``; raise :class:`SeedFileError` on anything it cannot apply."""
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError, RecursionError) as fault:
            raise SeedFileError(f"{path}: {fault}") from None
        if not isinstance(content, dict) or not set(content) <= _SECTIONS:
            raise SeedFileError(f"{path}: top level must be a mapping of {sorted(_SECTIONS)}")
        where = _Where(path)
        settings = content.get("settings") or {}
        if not isinstance(settings, dict):
            raise SeedFileError(f"{path}: settings must be a mapping (as in POST /api/v1/settings)")
        return cls(
            settings=settings,
            raos=tuple(where.rao(e, f"raos[{i}]", i) for i, e in enumerate(content.get("raos") or [])),
            tokens=tuple(where.token(e, f"tokens[{i}]") for i, e in enumerate(content.get("tokens") or [])),
            images=tuple(where.file(e, f"images[{i}]", pdf=False)
                         for i, e in enumerate(content.get("images") or [])),
            requests=tuple(where.request(e, f"requests[{i}]")
                           for i, e in enumerate(content.get("requests") or [])),
        )


    def apply(self, sandbox: Sandbox) -> None:
        """Create everything the seed file names in ``sandbox``'s (fresh) state."""
        state, now = sandbox.state, sandbox.clock.now()
        library.update_settings(state, copy.deepcopy(self.settings))
        state.raos.update({rao.username: rao for rao in self.raos})
        state.tokens.update({token.uid: token for token in self.tokens})
        for image in self.images:
            try:
                library.add_image(state, sandbox.rng, Upload("image", image.filename, "", image.data), now,
                                  uid=image.uid)
            except VendorError as error:
                raise SeedFileError(f"image {image.uid}: {error.details}") from None
        for seeded in self.requests:
            fields = dict(seeded.fields)
            if not (fields.get("token") or fields.get("username")):
                fields["token"] = default_tokens()[0].uid
            try:
                request = sandbox.create_request(fields, [], pk=seeded.pk)
            except VendorError as error:
                raise SeedFileError(f"request {seeded.pk}: {error.details}") from None
            for file in seeded.documents:
                upload = Upload("file", file.filename, "application/pdf", file.data)
                request.documents[file.uid] = Document.from_upload(file.uid, upload, now, file.page_count)


class _Where:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, entry: str, message: str) -> SeedFileError:
        return SeedFileError(f"{self.path}: {entry}: {message}")

    def fields(self, entry: Any, name: str, required: tuple[str, ...]) -> dict[str, str]:
        if not isinstance(entry, dict):
            raise self.fail(name, "must be a mapping")
        for key in required:
            if entry.get(key) in (None, ""):
                raise self.fail(name, f"field '{key}' is required")
        for key in _TEXT_IDS:
            if isinstance(entry.get(key), int) and not isinstance(entry[key], bool):
                raise self.fail(name, f"field '{key}' is the number {entry[key]}: quote it (YAML reads "
                                      f"00000000000000000000000000000001 as 1)")
        return {k: str(v) for k, v in entry.items() if not isinstance(v, (list, dict))}

    def number(self, fields: dict[str, str], name: str, key: str, default: int) -> int:
        value = fields.get(key, str(default))
        if not value.isdigit():
            raise self.fail(name, f"field '{key}' must be a positive integer")
        return int(value)

    def rao(self, entry: Any, name: str, index: int) -> Rao:
        fields = self.fields(entry, name, ("username", "password", "pin"))
        return Rao(
            pk=self.number(fields, name, "pk", 2000 + index),
            username=fields["username"],
            password=fields["password"],
            pin=fields["pin"],
            registration_authority=self.number(fields, name, "registration_authority", DEFAULT_RA),
        )

    def token(self, entry: Any, name: str) -> Token:
        fields = self.fields(entry, name, ("uid", "username"))
        return Token(fields["uid"], fields["username"], fields.get("password"), fields.get("pin"))

    def file(self, entry: Any, name: str, *, pdf: bool) -> SeedFile:
        fields = self.fields(entry, name, ("uid", "file"))
        file_path = self.path.parent / fields["file"]
        try:
            data = file_path.read_bytes()
        except OSError as fault:
            raise self.fail(name, f"field 'file': {fault}") from None
        page_count = 0
        if pdf:
            try:
                page_count = inspect_pdf(data).page_count
            except DocumentRefused as refusal:
                raise self.fail(name, f"field 'file': {refusal}") from None
        return SeedFile(fields["uid"], file_path.name, data, page_count)

    def request(self, entry: Any, name: str) -> SeedRequest:
        fields = self.fields(entry, name, ("pk",))
        if not fields["pk"].isdigit():
            raise self.fail(name, "field 'pk' must be a positive integer")
        documents = entry.get("documents") or []
        if not isinstance(documents, list):
            raise self.fail(name, "field 'documents' must be a list")
        return SeedRequest(
            pk=int(fields.pop("pk")),
            fields=fields,
            documents=tuple(self.file(d, f"{name}.documents[{i}]", pdf=True) for i, d in enumerate(documents)),
        )
