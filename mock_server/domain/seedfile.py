"""``--seed-file``: RAO accounts, tokens, images and requests with fixed ids, from YAML.

Files named in the seed file are read (and PDFs checked) once, when it is loaded, so a
reset can re-apply it without touching the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mock_server.pki.pades import DocumentRefused, inspect_pdf

_SECTIONS = {"raos", "tokens", "images", "requests"}


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

    raos: tuple[dict[str, str], ...]
    tokens: tuple[dict[str, str], ...]
    images: tuple[SeedFile, ...]
    requests: tuple[SeedRequest, ...]

    @classmethod
    def load(cls, path: Path) -> SeedData:
        """Parse ``path``; raise :class:`SeedFileError` on anything it cannot apply."""
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as fault:
            raise SeedFileError(f"{path}: {fault}") from None
        if not isinstance(content, dict) or not set(content) <= _SECTIONS:
            raise SeedFileError(f"{path}: top level must be a mapping of {sorted(_SECTIONS)}")
        where = _Where(path)
        return cls(
            raos=tuple(where.fields(e, f"raos[{i}]", ("username", "password", "pin"))
                       for i, e in enumerate(content.get("raos") or [])),
            tokens=tuple(where.fields(e, f"tokens[{i}]", ("uid", "username"))
                         for i, e in enumerate(content.get("tokens") or [])),
            images=tuple(where.file(e, f"images[{i}]", pdf=False)
                         for i, e in enumerate(content.get("images") or [])),
            requests=tuple(where.request(e, f"requests[{i}]")
                           for i, e in enumerate(content.get("requests") or [])),
        )


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
        return {k: str(v) for k, v in entry.items() if not isinstance(v, (list, dict))}

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
