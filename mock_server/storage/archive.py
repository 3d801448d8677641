"""A namespace's whole state as one portable file, for ``GET``/``PUT /_mock/state`` and
``oneshot-mock export``/``import``.

The file is a zip: ``state.json`` (the format, the data schema, the namespace it came from and
its rows, table by table, as the data dir stores them) and ``blobs/<sha256>`` (the bytes those
rows name). Entries are stored uncompressed; PDFs and images are compressed already.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

from mock_server.storage.schema import COLUMNS, NAMESPACE_TABLES, SCHEMA_VERSION, Tables

FORMAT = "oneshot-mock-state"
MEDIA_TYPE = "application/zip"
# What an archive may expand to: a zip's declared sizes are checked before anything is read.
MAX_EXPANDED_BYTES = 1 << 30
_STATE = "state.json"
_BLOBS = "blobs/"


class ArchiveError(ValueError):
    """A file that is not a state archive this version can read."""


@dataclass(frozen=True)
class Archive:
    """The rows and blobs of one namespace, and the namespace they were taken from."""

    namespace: str
    tables: Tables
    blobs: dict[str, bytes]

    @property
    def requests(self) -> int:
        """How many requests the archive holds."""
        return len(self.tables.get("requests", []))


def pack(archive: Archive) -> bytes:
    """The archive as zip bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zipped:
        state = {"format": FORMAT, "schema": SCHEMA_VERSION, "namespace": archive.namespace,
                 "tables": archive.tables}
        zipped.writestr(_STATE, json.dumps(state, ensure_ascii=False, indent=1))
        for digest, data in sorted(archive.blobs.items()):
            zipped.writestr(_BLOBS + digest, data)
    return out.getvalue()


def unpack(data: bytes) -> Archive:
    """The archive in ``data``; :class:`ArchiveError` saying what is wrong with it otherwise."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zipped:
            entries = zipped.infolist()
            if sum(entry.file_size for entry in entries) > MAX_EXPANDED_BYTES:
                raise ArchiveError(f"the archive expands to more than {MAX_EXPANDED_BYTES >> 20} MiB")
            state = json.loads(zipped.read(_STATE))
            blobs = {entry.filename[len(_BLOBS):]: zipped.read(entry) for entry in entries
                     if entry.filename.startswith(_BLOBS) and not entry.is_dir()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as fault:
        raise ArchiveError(f"not a zip archive ({fault})") from None
    except KeyError:
        raise ArchiveError(f"the archive has no {_STATE}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as fault:
        raise ArchiveError(f"{_STATE} is not JSON ({fault})") from None
    return Archive(_namespace(state), _tables(state), _checked(blobs))


def _namespace(state: Any) -> str:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ArchiveError(f"{_STATE} is not a {FORMAT} file")
    if state.get("schema") != SCHEMA_VERSION:
        raise ArchiveError(f"the archive holds data schema {state.get('schema')!r}; this version reads "
                           f"schema {SCHEMA_VERSION} (export it again with a matching oneshot-mock)")
    namespace = state.get("namespace")
    if not isinstance(namespace, str):
        raise ArchiveError("the archive does not say which namespace it came from")
    return namespace


def _tables(state: dict[str, Any]) -> Tables:
    tables = state.get("tables")
    if not isinstance(tables, dict):
        raise ArchiveError(f"{_STATE} has no tables")
    for table, rows in tables.items():
        if table not in NAMESPACE_TABLES:
            raise ArchiveError(f"unknown table {table!r}")
        wanted = set(COLUMNS[table]) - {"namespace"}
        if not isinstance(rows, list) or not all(isinstance(row, dict) and set(row) == wanted for row in rows):
            raise ArchiveError(f"the rows of {table!r} must each have exactly the columns {sorted(wanted)}")
    if len(tables.get("namespaces", [])) != 1:
        raise ArchiveError("the archive must hold exactly one namespace row")
    return tables


def _checked(blobs: dict[str, bytes]) -> dict[str, bytes]:
    for digest, data in blobs.items():
        if hashlib.sha256(data).hexdigest() != digest:
            raise ArchiveError(f"blob {digest} does not match its name")
    return blobs
