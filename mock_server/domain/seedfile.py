"""``--seed-file``: settings, RAO accounts, tokens, images, metadata, requests and VideoID requests
with fixed ids, from YAML checked against ``mock_server/seedfile.schema.json``.

Files named in the seed file are read (and PDFs checked) once, when it is loaded, so a
reset can re-apply it without touching the disk.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mock_server.domain import library
from mock_server.domain.defaults import DEFAULT_RA, default_raos, default_tokens
from mock_server.domain.errors import VendorError
from mock_server.domain.model import Document, Rao, Token, Upload
from mock_server.domain.ports import RequestDesk
from mock_server.pki.pades import DocumentRefused, inspect_pdf

SCHEMA: dict[str, Any] = json.loads((resources.files("mock_server") / "seedfile.schema.json").read_text())
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
_SECTIONS = tuple(SCHEMA["properties"])
# A seeded VideoID request's fixed ids, beside the create call's fields.
_VIDEOID_IDS = ("pk", "videoid_pk", "link")


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
class SeedVideoId:
    """A VideoID request to create with a fixed request pk (and, if given, VideoID pk and link id)."""

    pk: int
    videoid_pk: int | None
    link: str | None
    fields: dict[str, str]


@dataclass(frozen=True)
class SeedData:
    """The parsed content of a seed file."""

    settings: dict[str, Any]
    raos: tuple[Rao, ...]
    tokens: tuple[Token, ...]
    images: tuple[SeedFile, ...]
    metadata: tuple[dict[str, str], ...]
    requests: tuple[SeedRequest, ...]
    videoids: tuple[SeedVideoId, ...] = ()
    source: str = "seed file"

    @classmethod
    def load(cls, path: Path) -> SeedData:
        """Parse ``path``; raise :class:`SeedFileError` on anything it cannot apply."""
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError, RecursionError) as fault:
            raise SeedFileError(f"{path}: {fault}") from None
        _check_schema(content, path)
        _check_references(content, path)
        where = _Where(path)

        def section(name: str) -> Iterable[tuple[int, dict[str, Any]]]:
            return enumerate(content.get(name) or [])

        return cls(
            settings=content.get("settings") or {},
            raos=tuple(where.rao(e, i) for i, e in section("raos")),
            tokens=tuple(Token(e["uid"], e["username"], e.get("password"), e.get("pin")) for _, e in section("tokens")),
            images=tuple(where.file(e, f"images[{i}]", pdf=False) for i, e in section("images")),
            metadata=tuple({"metadata": e["metadata"], "metadata_oid": e["oid"], "uid": e["uid"]}
                           for _, e in section("metadata")),
            requests=tuple(where.request(e, f"requests[{i}]") for i, e in section("requests")),
            videoids=tuple(SeedVideoId(e["pk"], e.get("videoid_pk"), e.get("link"), _texts(e, _VIDEOID_IDS))
                           for _, e in section("videoids")),
            source=str(path),
        )

    def apply(self, sandbox: RequestDesk) -> None:
        """Create everything the seed file names in ``sandbox``'s (fresh) state."""
        state, now = sandbox.state, sandbox.clock.now()
        library.update_settings(state, copy.deepcopy(self.settings))
        state.raos.update({rao.username: rao for rao in self.raos})
        state.tokens.update({token.uid: token for token in self.tokens})
        for index, image in enumerate(self.images):
            try:
                library.add_image(state, sandbox.rng, Upload("image", image.filename, "", image.data), now,
                                  uid=image.uid)
            except VendorError as error:
                raise self._refused(f"images[{index}]", error) from None
        for entry in self.metadata:
            library.add_metadata(state, sandbox.rng, entry, uid=entry["uid"])
        for index, seeded in enumerate(self.requests):
            fields = dict(seeded.fields)
            if not (fields.get("token") or fields.get("username")):
                fields["token"] = default_tokens()[0].uid
            try:
                request = sandbox.create_request(fields, [], pk=seeded.pk)
            except VendorError as error:
                raise self._refused(f"requests[{index}] (pk {seeded.pk})", error) from None
            for file in seeded.documents:
                upload = Upload("file", file.filename, "application/pdf", file.data)
                request.documents[file.uid] = Document.from_upload(file.uid, upload, now, file.page_count)
        for index, video in enumerate(self.videoids):
            try:
                sandbox.videoid.create(video.fields, pk=video.pk, videoid_pk=video.videoid_pk, link_id=video.link,
                                       auto_complete=False)
            except VendorError as error:
                raise self._refused(f"videoids[{index}] (pk {video.pk})", error) from None

    def _refused(self, entry: str, error: VendorError) -> SeedFileError:
        """What the sandbox answered the entry, with the file, the entry and the catalogue key (which
        names the field: ``create_request.400.invalid_email``)."""
        return SeedFileError(f"{self.source}: {entry}: {error.details} ({error.spec.key})")


def _texts(entry: dict[str, Any], leave_out: Iterable[str] = ()) -> dict[str, str]:
    """An entry's scalar fields as a create call's text fields."""
    return {key: str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in entry.items() if key not in leave_out and not isinstance(value, list | dict)}


def _check_schema(content: Any, path: Path) -> None:
    errors = sorted(_VALIDATOR.iter_errors(content), key=lambda error: list(error.absolute_path))
    if not errors:
        return
    first = errors[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first.absolute_path).lstrip(".")
    message = first.message
    if first.validator == "additionalProperties" and not first.absolute_path:
        message += f" (the sections are {', '.join(_SECTIONS)})"
    elif first.validator in ("additionalProperties", "unevaluatedProperties"):
        message = message.replace("were unexpected", "are not fields of this entry").replace(
            "was unexpected", "is not a field of this entry")
    elif isinstance(first.instance, int) and not isinstance(first.instance, bool) and "string" in str(
            first.schema.get("type", "")):
        # Ids written as digits: unquoted, YAML reads them as numbers and drops their leading zeros.
        message = (f"{first.instance} is a number: quote it (YAML reads 00000000000000000000000000000001 "
                   f"as 1, 0123 as 83)")
    raise SeedFileError(f"{path}: {where or 'top level'}: {message}")


def _check_references(content: dict[str, Any], path: Path) -> None:
    """What a schema cannot say: names that must point at another entry, ids that must be unique."""
    raos = {rao.username for rao in default_raos()} | {e["username"] for e in content.get("raos") or []}
    tokens = {token.uid for token in default_tokens()} | {e["uid"] for e in content.get("tokens") or []}
    for index, entry in enumerate(content.get("tokens") or []):
        if entry["username"] not in raos:
            raise SeedFileError(f"{path}: tokens[{index}].username: no RAO account {entry['username']!r} "
                                "(list it under raos, or name a sandbox account)")
    for section in ("requests", "videoids"):
        for index, entry in enumerate(content.get(section) or []):
            if "token" in entry and str(entry["token"]) not in tokens:
                raise SeedFileError(f"{path}: {section}[{index}].token: no token {entry['token']!r} "
                                    "(list it under tokens, or name a sandbox token)")
            if "username" in entry and "token" not in entry and str(entry["username"]) not in raos:
                raise SeedFileError(f"{path}: {section}[{index}].username: no RAO account {entry['username']!r}")
    pks = Counter(e["pk"] for section in ("requests", "videoids") for e in content.get(section) or [])
    uids = Counter(e["uid"] for section in ("images", "metadata") for e in content.get(section) or [])
    uids.update(d["uid"] for e in content.get("requests") or [] for d in e.get("documents") or [])
    for kind, counted in (("pk", pks), ("uid", uids)):
        repeated = sorted(str(value) for value, count in counted.items() if count > 1)
        if repeated:
            raise SeedFileError(f"{path}: {kind} {', '.join(repeated)} is given to more than one entry")


class _Where:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, entry: str, message: str) -> SeedFileError:
        return SeedFileError(f"{self.path}: {entry}: {message}")

    def rao(self, entry: dict[str, Any], index: int) -> Rao:
        return Rao(
            pk=entry.get("pk", 2000 + index),
            username=entry["username"],
            password=entry["password"],
            pin=entry["pin"],
            registration_authority=int(entry.get("registration_authority", DEFAULT_RA)),
        )

    def file(self, entry: dict[str, Any], name: str, *, pdf: bool) -> SeedFile:
        file_path = self.path.parent / entry["file"]
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
        return SeedFile(entry["uid"], file_path.name, data, page_count)

    def request(self, entry: dict[str, Any], name: str) -> SeedRequest:
        documents = entry.get("documents") or []
        return SeedRequest(
            pk=entry["pk"],
            fields=_texts(entry, ("pk",)),
            documents=tuple(self.file(d, f"{name}.documents[{i}]", pdf=True) for i, d in enumerate(documents)),
        )
