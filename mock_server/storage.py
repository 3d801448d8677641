"""``--data-dir``: the sandbox's state in SQLite tables, bytes (documents, images, videos) among them.

Each namespace is a row of ``namespaces`` plus rows of one table per kind of thing (requests, their
status history, documents, SMS, OTP codes, webhook events and attempts, certificates, signings in
progress, tokens, RAOs, images, metadata): plain columns and JSON (:mod:`mock_server.codec`), readable
with the ``sqlite3`` shell, no pickle. Bytes from 1 KiB up are rows of ``blobs``, by SHA-256, so that
one commit (one fsync) carries a call's documents with its rows.

A flush writes what the domain says changed (:class:`~mock_server.domain.changes.ChangeLog`): the
rows of those requests and collections whose JSON differs from what was last written, in one SQLite
transaction (WAL, synchronous=FULL) in a thread. The
HTTP layer acknowledges a change only after the flush that carries it has committed.
"""

from __future__ import annotations

import array
import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mock_server import codec
from mock_server.domain.changes import PIECES, ChangeSet
from mock_server.domain.lifecycle import ContractSigned, Event
from mock_server.domain.model import (
    Document,
    Image,
    IssuedCertificate,
    Metadata,
    Rao,
    SignatureRequest,
    Status,
    StatusChange,
    Token,
)
from mock_server.domain.service import StagedSign
from mock_server.domain.signparams import SignParams
from mock_server.domain.store import State
from mock_server.scenarios import Scenario
from mock_server.sms import IssuedOtp, OutboxMessage
from mock_server.tenancy import Tenant, Tenants
from mock_server.webhooks import Attempt, WebhookEvent

SCHEMA_VERSION = 2
_FLUSH_INTERVAL_S = 0.5
log = logging.getLogger(__name__)
_Note = tuple[tuple[Any, ...], bytes | None]  # a row's key, and its fingerprint once written (None: deleted)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    namespace TEXT PRIMARY KEY, next_pk INTEGER NOT NULL, clock_offset_s REAL NOT NULL,
    rng TEXT NOT NULL, settings TEXT NOT NULL, scenarios TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    namespace TEXT, pk INTEGER, status TEXT NOT NULL, created_at TEXT NOT NULL, profile TEXT NOT NULL,
    identity TEXT NOT NULL, request TEXT NOT NULL, PRIMARY KEY (namespace, pk));
CREATE TABLE IF NOT EXISTS status_history (
    namespace TEXT, pk INTEGER, seq INTEGER, status TEXT NOT NULL, previous TEXT, at TEXT NOT NULL,
    PRIMARY KEY (namespace, pk, seq));
CREATE TABLE IF NOT EXISTS documents (
    namespace TEXT, pk INTEGER, uid TEXT, filename TEXT NOT NULL, digest TEXT NOT NULL,
    uploaded_at TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (namespace, pk, uid));
CREATE TABLE IF NOT EXISTS sms (
    namespace TEXT, pk INTEGER, seq INTEGER, sent_at TEXT NOT NULL, message TEXT NOT NULL,
    PRIMARY KEY (namespace, pk, seq));
CREATE TABLE IF NOT EXISTS otp_codes (namespace TEXT, pk INTEGER, otp TEXT NOT NULL, PRIMARY KEY (namespace, pk));
CREATE TABLE IF NOT EXISTS webhook_events (
    namespace TEXT, id TEXT, pk INTEGER NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
    event TEXT NOT NULL, PRIMARY KEY (namespace, id));
CREATE TABLE IF NOT EXISTS webhook_attempts (
    namespace TEXT, event_id TEXT, seq INTEGER, at TEXT NOT NULL, status INTEGER, attempt TEXT NOT NULL,
    PRIMARY KEY (namespace, event_id, seq));
CREATE TABLE IF NOT EXISTS certificates (
    namespace TEXT, serial INTEGER, pk INTEGER NOT NULL, revoked_at TEXT, certificate TEXT NOT NULL,
    PRIMARY KEY (namespace, serial));
CREATE TABLE IF NOT EXISTS signings (
    namespace TEXT, pk INTEGER, kind TEXT, signing TEXT NOT NULL, PRIMARY KEY (namespace, pk, kind));
CREATE TABLE IF NOT EXISTS tokens (namespace TEXT, key TEXT, item TEXT NOT NULL, PRIMARY KEY (namespace, key));
CREATE TABLE IF NOT EXISTS raos (namespace TEXT, key TEXT, item TEXT NOT NULL, PRIMARY KEY (namespace, key));
CREATE TABLE IF NOT EXISTS images (namespace TEXT, key TEXT, item TEXT NOT NULL, PRIMARY KEY (namespace, key));
CREATE TABLE IF NOT EXISTS metadata (namespace TEXT, key TEXT, item TEXT NOT NULL, PRIMARY KEY (namespace, key));
"""
_PIECE_TYPES = {"tokens": Token, "raos": Rao, "images": Image, "metadata": Metadata}
# Per request: the tables whose rows belong to it, and their key columns after (namespace, pk).
_REQUEST_TABLES = {"requests": (), "status_history": ("seq",), "documents": ("uid",), "sms": ("seq",),
                   "otp_codes": (), "webhook_events": ("id",), "webhook_attempts": ("id", "seq"),
                   "certificates": ("serial",), "signings": ("kind",)}
_REQUEST_FIELDS_APART = ("pk", "status", "created_at", "profile", "identity", "documents", "history",
                         "certificate", "rao")
_JSON = {"ensure_ascii": False, "separators": (",", ":"), "sort_keys": True}


class DataDirError(Exception):
    """A data dir this sandbox cannot use (another schema, unreadable)."""


class _Blobs:
    """The blob side of encoding: digests of bytes seen (by identity, so documents are hashed once)
    and the new bytes a flush must write."""

    def __init__(self) -> None:
        # The digests of the bytes the last flush and this one encoded, by identity.
        self._known: dict[int, tuple[bytes, str]] = {}
        self._seen: dict[int, tuple[bytes, str]] = {}
        self.on_disk: set[str] = set()
        self.new: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        key = id(data)
        entry = self._seen.get(key) or self._known.get(key)
        if entry is None or entry[0] is not data:
            entry = (data, hashlib.sha256(data).hexdigest())
        self._seen[key] = entry
        digest = entry[1]
        if digest not in self.on_disk:
            self.new[digest] = data
        return digest

    def end_round(self) -> None:
        """Forget the bytes the last two flushes did not encode: the cache keeps no document alive for long."""
        self._known, self._seen = self._seen, {}


@dataclass
class _Write:
    """The rows one flush writes: upserts and deletes per table, and the blobs they need."""

    upserts: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    deletes: list[tuple[str, str, tuple[Any, ...]]] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def upsert(self, table: str, row: tuple[Any, ...]) -> None:
        self.upserts.setdefault(table, []).append(row)

    def delete(self, table: str, where: str, values: tuple[Any, ...]) -> None:
        self.deletes.append((table, where, values))

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes or self.blobs)


class DataDir:
    """The SQLite database and blob files under one directory."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        try:
            self._db = sqlite3.connect(root / "state.sqlite3", check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            found = None
            if "meta" in tables:
                found = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as fault:
            raise DataDirError(f"{root}: not a usable data dir ({fault})") from None
        version = int(found[0]) if found else None
        if version is not None and version > SCHEMA_VERSION:
            raise DataDirError(f"{root} was written by a newer oneshot-mock (data schema {version}); "
                               f"this version reads schema {SCHEMA_VERSION} at most")
        if version == 1:
            raise DataDirError(
                f"{root} holds data schema 1 (pickled rows, which this version does not read: unpickling "
                f"a file runs code from it). Move it aside and start with an empty --data-dir; the "
                f"requests it holds were made by a sandbox and can be made again")
        if version is None:
            # Pages freed by deleted blobs go back to the file system when stale blobs are collected.
            self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        self._db.executescript(_SCHEMA)
        if version is None:
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def rows(self, table: str, order: str = "rowid") -> Iterator[sqlite3.Row]:
        """Every row of ``table`` (one of the schema's), in ``order``."""
        cursor = self._db.execute(f"SELECT * FROM {table} ORDER BY {order}")
        names = [column[0] for column in cursor.description]
        for values in cursor:
            yield dict(zip(names, values, strict=True))

    def read_blob(self, digest: str) -> bytes:
        """The bytes of blob ``digest``, checked against it."""
        found = self._db.execute("SELECT data FROM blobs WHERE sha256 = ?", (digest,)).fetchone()
        if found is None:
            raise DataDirError(f"blob {digest} is missing")
        if hashlib.sha256(found[0]).hexdigest() != digest:
            raise DataDirError(f"blob {digest} is corrupt")
        return bytes(found[0])

    def collect_garbage(self, referenced: set[str]) -> int:
        """Remove the blobs no row refers to any more; how many went."""
        stale = [(digest,) for (digest,) in self._db.execute("SELECT sha256 FROM blobs") if digest not in referenced]
        with contextlib.closing(self._db.cursor()) as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany("DELETE FROM blobs WHERE sha256 = ?", stale)
            cursor.execute("COMMIT")
        self._db.execute("PRAGMA incremental_vacuum")
        return len(stale)

    def row_keys(self) -> Iterator[tuple[Any, ...]]:
        """The key of every stored row, as :class:`_RowBuilder` names them."""
        yield from (("namespaces", name) for (name,) in self._db.execute("SELECT namespace FROM namespaces"))
        for table, extra in _REQUEST_TABLES.items():
            if table == "webhook_attempts":
                query = ("SELECT a.namespace, e.pk, a.event_id, a.seq FROM webhook_attempts a JOIN webhook_events e "
                         "ON a.namespace = e.namespace AND a.event_id = e.id")
            else:
                query = f"SELECT {', '.join(('namespace', 'pk', *extra))} FROM {table}"
            yield from ((table, *row) for row in self._db.execute(query))
        for piece in PIECES:
            yield from ((piece, *row) for row in self._db.execute(f"SELECT namespace, key FROM {piece}"))

    def export_namespace(self, namespace: str) -> tuple[Tables, dict[str, bytes]]:
        """The rows of ``namespace`` by table (without the namespace column), and the blobs they name."""
        tables: Tables = {}
        for table in NAMESPACE_TABLES:
            rows = [{key: value for key, value in row.items() if key != "namespace"}
                    for row in self.rows(table) if row["namespace"] == namespace]
            if rows:
                tables[table] = rows
        digests = {digest for rows in tables.values() for row in rows for value in row.values()
                   if isinstance(value, str) for digest in _BLOB_REFERENCE.findall(value)}
        return tables, {digest: self.read_blob(digest) for digest in sorted(digests)}

    def import_namespace(self, namespace: str, tables: Tables, blobs: dict[str, bytes]) -> None:
        """Replace the rows of ``namespace`` with ``tables``, in one transaction."""
        with contextlib.closing(self._db.cursor()) as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                for table in NAMESPACE_TABLES:
                    cursor.execute(f"DELETE FROM {table} WHERE namespace = ?", (namespace,))
                for table, rows in tables.items():
                    columns = COLUMNS[table]
                    marks = ", ".join("?" * len(columns))
                    cursor.executemany(f"INSERT INTO {table} VALUES ({marks})",
                                       [tuple(namespace if column == "namespace" else row[column]
                                              for column in columns) for row in rows])
                cursor.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?)",
                                   [(digest, len(data), data) for digest, data in blobs.items()])
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def commit(self, write: _Write) -> None:
        """The rows and the blobs they name, in one transaction."""
        with contextlib.closing(self._db.cursor()) as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                cursor.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?)",
                                   [(digest, len(data), data) for digest, data in write.blobs.items()])
                for table, where, values in write.deletes:
                    cursor.execute(f"DELETE FROM {table} WHERE {where}", values)
                for table, rows in write.upserts.items():
                    marks = ", ".join("?" * len(rows[0]))
                    cursor.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", rows)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _dump(value: Any, hint: Any, blobs: _Blobs) -> str:
    return json.dumps(codec.encode(value, hint, blobs.put), **_JSON)


class _Written:
    """A digest of the JSON last committed per row, grouped by (namespace, request pk or piece):
    unchanged rows are not rewritten, and a request's or a piece's rows are found without a scan."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, Any], dict[tuple[Any, ...], bytes]] = {}

    def changed(self, key: tuple[Any, ...], fingerprint: bytes) -> bool:
        return self._groups.get(_group(key), {}).get(key) != fingerprint

    def note(self, key: tuple[Any, ...], fingerprint: bytes | None) -> None:
        group = _group(key)
        if fingerprint is not None:
            self._groups.setdefault(group, {})[key] = fingerprint
        elif group in self._groups:
            self._groups[group].pop(key, None)
            if not self._groups[group]:
                del self._groups[group]

    def keys_of(self, namespace: str, owner: Any) -> list[tuple[Any, ...]]:
        """The rows written for request ``owner`` (a pk) or piece ``owner`` (a table) of ``namespace``."""
        return list(self._groups.get((namespace, owner), ()))

    def requests_of(self, namespace: str) -> set[int]:
        """The pks some row was written for in ``namespace``."""
        return {owner for name, owner in self._groups if name == namespace and isinstance(owner, int)}


def _group(key: tuple[Any, ...]) -> tuple[str, Any]:
    table, namespace, owner = key[0], key[1], key[2] if len(key) > 2 else None
    return (namespace, owner) if table in _REQUEST_TABLES else (namespace, table)


# A row read back at start: it exists, and the next change to it writes it whatever it holds.
_LOADED = b"loaded"


def _fingerprint(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class Persistence:
    """Keeps a data dir in step with every namespace; :meth:`flush` is the write barrier."""

    def __init__(self, data_dir: DataDir) -> None:
        self._dir = data_dir
        self._tenants: Tenants | None = None
        self._written = _Written()
        self._blobs = _Blobs()
        self._scenarios = _ScenarioTexts()
        self._scenario_revisions: dict[str, int] = {}
        # The blobs a restore read, until the stale others are collected.
        self._unreferenced: set[str] | None = None
        self._lock = asyncio.Lock()
        self._asked = 0
        self._done = 0
        # Changes that reads make (the contract signed on its first fetch): such a read is answered
        # once they are saved. Other events come from writes, saved anyway, or from the background.
        self.read_changes = 0
        self._loop_task: asyncio.Task | None = None

    def restore(self, tenants: Tenants) -> int:
        """Load the data dir into ``tenants`` (creating its namespaces), then keep them in step with it.

        Returns how many requests came back.
        """
        self._tenants = tenants
        referenced: set[str] = set()

        def get_blob(digest: str) -> bytes:
            referenced.add(digest)
            return self._dir.read_blob(digest)

        try:
            restored = _Loader(self._dir, get_blob).load(tenants.restore)
        except (codec.CodecError, KeyError, TypeError, ValueError) as fault:
            raise DataDirError(f"{self._dir.root}: a row does not fit this version's schema ({fault})") from None
        self._blobs.on_disk = referenced
        # Every stored row is known to exist (so that a change can delete it) but not what it holds:
        # the first change to a request writes its rows again, nothing else is rewritten.
        loaded = set()
        for key in self._dir.row_keys():
            self._written.note(key, _LOADED)
            if key[0] == "namespaces":
                loaded.add(key[1])
        for tenant in tenants.existing():
            if tenant.namespace in loaded:
                tenant.sandbox.changes.take()  # what building it changed is what was just read back
        self._unreferenced = referenced
        log.info("data dir: %d namespace(s), %d request(s) restored", len(tenants.existing()), restored)
        return restored

    def mark(self, event: Event) -> None:
        """Listens to the domain's events: a read that signed the contract is answered once saved."""
        if isinstance(event, ContractSigned):
            self.read_changes += 1

    async def flush(self) -> None:
        """Return once everything changed before the call is committed (concurrent calls share a commit)."""
        self._asked += 1
        wanted = self._asked
        async with self._lock:
            if self._done >= wanted:
                return
            taken = self._asked
            changes = [(tenant, tenant.sandbox.changes.take()) for tenant in self._existing()]
            try:
                write, notes = self._rows(changes)
                if write:
                    await asyncio.to_thread(self._dir.commit, write)
            except BaseException:
                for tenant, changed in changes:
                    tenant.sandbox.changes.give_back(changed)
                self._blobs.new.clear()
                self._scenario_revisions.clear()  # their scenarios are encoded again next time
                raise
            for key, text in notes:
                self._written.note(key, text)
            self._blobs.on_disk.update(write.blobs)
            self._blobs.new.clear()
            self._done = taken

    def _existing(self) -> list[Tenant]:
        return self._tenants.existing() if self._tenants else []

    def _rows(self, changes: list[tuple[Tenant, ChangeSet]]) -> tuple[_Write, list[_Note]]:
        """The rows to write for ``changes``, encoded now, on the event loop, so they are consistent."""
        rows = _RowBuilder(self._written, self._blobs)
        for tenant, changed in changes:
            if changed or tenant.scenarios.revision != self._scenario_revisions.get(tenant.namespace):
                self._scenario_revisions[tenant.namespace] = tenant.scenarios.revision
                rows.namespace(tenant, changed, self._scenarios)
        rows.write.blobs = dict(self._blobs.new)
        self._blobs.end_round()
        return rows.write, rows.notes

    def start(self) -> None:
        """Flush in the background what changes outside HTTP calls."""
        self._loop_task = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        if self._unreferenced is not None:
            # Blobs of what was deleted before the restart: removed once the sandbox answers, not before.
            async with self._lock:
                removed = await asyncio.to_thread(self._dir.collect_garbage, self._unreferenced | self._blobs.on_disk)
            self._unreferenced = None
            log.info("data dir: %d stale blob(s) removed", removed)
        while True:
            await asyncio.sleep(_FLUSH_INTERVAL_S)
            try:
                await self.flush()
            except Exception:  # a full disk must not end background flushing for good
                log.exception("background flush to the data dir failed")

    async def close(self) -> None:
        """A last flush, then close the database."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self.flush()
        self._dir.close()


class _ScenarioTexts:
    """Each namespace's scenarios as JSON, encoded again only when their book's revision moved."""

    def __init__(self) -> None:
        self._texts: dict[str, tuple[int, str]] = {}

    def text(self, tenant: Tenant, blobs: _Blobs) -> str:
        book = tenant.scenarios
        known = self._texts.get(tenant.namespace)
        if known is None or known[0] != book.revision:
            known = self._texts[tenant.namespace] = (book.revision, _dump(book.scenarios, dict[str, Scenario], blobs))
        return known[1]


def _rng_text(state: tuple[Any, ...]) -> str:
    """The random state as ``version:gauss:base64`` of its 625 words (a JSON list would be 7 KB)."""
    version, internal, gauss = state
    return f"{version}:{gauss!r}:{base64.b64encode(array.array('I', internal).tobytes()).decode()}"


def _rng_state(text: str) -> tuple[Any, ...]:
    version, gauss, words = text.split(":", 2)
    internal = array.array("I")
    internal.frombytes(base64.b64decode(words))
    return int(version), tuple(internal), None if gauss == "None" else float(gauss)


class _RowBuilder:
    """Turns what changed into row writes, skipping rows whose JSON is what was last written."""

    def __init__(self, written: _Written, blobs: _Blobs) -> None:
        self._written = written
        self._blobs = blobs
        self.write = _Write()
        self.notes: list[_Note] = []

    def namespace(self, tenant: Tenant, changed: ChangeSet, scenarios: _ScenarioTexts) -> None:
        sandbox, name = tenant.sandbox, tenant.namespace
        state = sandbox.state
        settings = json.dumps(state.settings, **_JSON)
        row = (name, sandbox.next_pk, sandbox.clock.offset.total_seconds(), _rng_text(sandbox.rng.getstate()),
               settings, scenarios.text(tenant, self._blobs))
        self._row("namespaces", (name,), row, "\x00".join(map(str, row[1:])))
        pks = changed.requests
        if changed.everything:
            pks = set(state.requests) | self._written.requests_of(name)
        orphans: dict[int, list[IssuedCertificate]] | None = None
        for pk in sorted(pks):
            if pk not in state.requests and orphans is None:
                # Certificates that outlive their request (revoked ones stay in the CRL).
                orphans = {}
                for certificate in state.certificates.values():
                    orphans.setdefault(certificate.request_pk, []).append(certificate)
            self._request(tenant, pk, (orphans or {}).get(pk, []))
        for piece in PIECES if changed.everything else changed.pieces:
            self._piece(name, piece, getattr(state, piece))

    def _request(self, tenant: Tenant, pk: int, orphans: list[IssuedCertificate]) -> None:
        name = tenant.namespace
        found = tenant.sandbox.state.requests.get(pk)
        kept = set(self._request_rows(tenant, found) if found is not None else ())
        kept.update(self._certificate(name, pk, certificate) for certificate in orphans)
        for key in self._written.keys_of(name, pk):
            if key not in kept:
                self._drop(key[0], key)

    def _request_rows(self, tenant: Tenant, found: SignatureRequest) -> Iterator[tuple[Any, ...]]:
        name, pk, sandbox, blobs = tenant.namespace, found.pk, tenant.sandbox, self._blobs
        body = {key: codec.encode(getattr(found, key), hint, blobs.put)
                for key, hint in codec.fields(SignatureRequest).items() if key not in _REQUEST_FIELDS_APART}
        body["rao"] = found.rao.username if found.rao else None
        body["certificate"] = found.certificate.serial if found.certificate else None
        identity = _dump(found.identity, type(found.identity), blobs)
        request_json = json.dumps(body, **_JSON)
        yield self._row("requests", (name, pk), (name, pk, found.status.value, found.created_at.isoformat(),
                                                 found.profile, identity, request_json),
                        identity + request_json + found.status.value)
        for seq, change in enumerate(found.history):
            row = (name, pk, seq, change.status.value, change.previous.value if change.previous else None,
                   change.at.isoformat())
            yield self._row("status_history", (name, pk, seq), row, json.dumps(row[3:]))
        for uid, document in found.documents.items():
            text = _dump(document, Document, blobs)
            yield self._row("documents", (name, pk, uid),
                            (name, pk, uid, document.filename, document.digest, document.uploaded_at.isoformat(),
                             text), text)
        for seq, message in enumerate(sandbox.otp.messages(pk, undelivered=True)):
            text = _dump(message, OutboxMessage, blobs)
            yield self._row("sms", (name, pk, seq), (name, pk, seq, message.sent_at.isoformat(), text), text)
        issued = sandbox.otp.code_of(pk)
        if issued is not None:
            text = _dump(issued, IssuedOtp, blobs)
            yield self._row("otp_codes", (name, pk), (name, pk, text), text)
        for event in tenant.webhooks.events(pk):
            yield from self._webhook(name, event)
        if found.certificate is not None:
            yield self._certificate(name, pk, found.certificate)
        for kind, signing, hint in (("pending", sandbox.pending_signs.get(pk), SignParams),
                                    ("staged", sandbox.staged_signs.get(pk), StagedSign)):
            if signing is not None:
                text = _dump(signing, hint, blobs)
                yield self._row("signings", (name, pk, kind), (name, pk, kind, text), text)

    def _certificate(self, name: str, pk: int, certificate: IssuedCertificate) -> tuple[Any, ...]:
        text = _dump(certificate, IssuedCertificate, self._blobs)
        revoked = certificate.revoked_at.isoformat() if certificate.revoked_at else None
        return self._row("certificates", (name, pk, certificate.serial),
                         (name, certificate.serial, pk, revoked, text), text)

    def _webhook(self, name: str, event: WebhookEvent) -> Iterator[tuple[Any, ...]]:
        text = _dump(_without_attempts(event), WebhookEvent, self._blobs)
        yield self._row("webhook_events", (name, event.request, event.id),
                        (name, event.id, event.request, event.name, event.state, text), text)
        for seq, attempt in enumerate(event.attempts):
            text = _dump(attempt, Attempt, self._blobs)
            yield self._row("webhook_attempts", (name, event.request, event.id, seq),
                            (name, event.id, seq, attempt.at.isoformat(), attempt.status, text), text)

    def _piece(self, name: str, piece: str, items: dict[Any, Any]) -> None:
        kept = set()
        for key, item in items.items():
            text = _dump(item, _PIECE_TYPES[piece], self._blobs)
            kept.add(self._row(piece, (name, str(key)), (name, str(key), text), text))
        for key in self._written.keys_of(name, piece):
            if key not in kept:
                self._drop(piece, key)

    def _row(self, table: str, key: tuple[Any, ...], row: tuple[Any, ...], text: str) -> tuple[Any, ...]:
        """Write ``row`` unless ``text`` (what it holds, as JSON) is what was last written."""
        full = (table, *key)
        fingerprint = _fingerprint(text)
        if self._written.changed(full, fingerprint):
            self.write.upsert(table, row)
            self.notes.append((full, fingerprint))
        return full

    def _drop(self, table: str, key: tuple[Any, ...]) -> None:
        name, *rest = key[1:]
        rest = list(rest)
        columns = ("pk", *_REQUEST_TABLES[table]) if table in _REQUEST_TABLES else ("key",)
        if table == "certificates":
            columns, rest = ("serial",), rest[1:]
        elif table == "webhook_events":
            columns, rest = ("id",), rest[1:]
        elif table == "webhook_attempts":
            columns, rest = ("event_id", "seq"), rest[1:]
        where = " AND ".join(["namespace = ?", *(f"{column} = ?" for column in columns)])
        self.write.delete(table, where, (name, *rest))
        self.notes.append((key, None))


def _without_attempts(event: WebhookEvent) -> WebhookEvent:
    return replace(event, attempts=[])


# A namespace's rows by table, without the namespace column, and the blobs they name.
Tables = dict[str, list[dict[str, Any]]]


def _columns() -> dict[str, tuple[str, ...]]:
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.executescript(_SCHEMA)
        names = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: tuple(column[1] for column in db.execute(f"PRAGMA table_info({name})")) for name in names}


COLUMNS = _columns()
# The tables that hold a namespace's state (every one but the schema version and the blobs).
NAMESPACE_TABLES = tuple(name for name in COLUMNS if name not in ("meta", "blobs"))
_BLOB_REFERENCE = re.compile(r"blob:([0-9a-f]{64})")


def namespace_rows(tenant: Tenant) -> tuple[Tables, dict[str, bytes]]:
    """Every row of ``tenant``'s state, as the data dir stores it, and the blobs they name."""
    blobs = _Blobs()
    builder = _RowBuilder(_Written(), blobs)
    builder.namespace(tenant, ChangeSet(everything=True), _ScenarioTexts())
    tables = {table: [dict(zip(COLUMNS[table][1:], row[1:], strict=True)) for row in rows]
              for table, rows in builder.write.upserts.items()}
    return tables, dict(blobs.new)


def load_namespace(tenant: Tenant, tables: Tables, blobs: dict[str, bytes]) -> int:
    """Replace ``tenant``'s state with ``tables`` (as :func:`namespace_rows` gives them); how many
    requests it holds now. ``DataDirError`` if the rows do not fit, and then the state is as before."""
    earlier_tables, earlier_blobs = namespace_rows(tenant)

    def get_blob(digest: str) -> bytes:
        data = blobs.get(digest)
        if data is None or hashlib.sha256(data).hexdigest() != digest:
            raise DataDirError(f"blob {digest} is {'missing' if data is None else 'corrupt'}")
        return data

    try:
        count = _load_into(tenant, tables, get_blob)
    except DataDirError:
        _load_into(tenant, earlier_tables, earlier_blobs.__getitem__)
        raise
    tenant.sandbox.changes.everything()
    return count


def _load_into(tenant: Tenant, tables: Tables, get_blob: codec.GetBlob) -> int:
    tenant.sandbox.reset()
    try:
        count = _Loader(_TableRows(tenant.namespace, tables), get_blob).load(lambda namespace: tenant)
    except (codec.CodecError, KeyError, TypeError, ValueError, AttributeError) as fault:
        raise DataDirError(f"a row does not fit this version's schema ({type(fault).__name__}: {fault})") from None
    tenant.sandbox.resume()
    return count


class _TableRows:
    """Rows held in memory, read as a data dir's tables would be, all of one namespace."""

    def __init__(self, namespace: str, tables: Tables) -> None:
        self._namespace = namespace
        self._tables = tables

    def rows(self, table: str, order: str = "rowid") -> Iterator[dict[str, Any]]:
        rows = [{**row, "namespace": self._namespace} for row in self._tables.get(table, [])]
        if order != "rowid":
            keys = [column.strip() for column in order.split(",")]
            rows.sort(key=lambda row: tuple(row[key] for key in keys))
        return iter(rows)


class _Loader:
    """Reads every table back into freshly built tenants."""

    def __init__(self, source: DataDir | _TableRows, get_blob: codec.GetBlob) -> None:
        self._dir = source
        self._get_blob = get_blob

    def _load(self, text: str, hint: Any) -> Any:
        return codec.decode(json.loads(text), hint, self._get_blob)

    def load(self, restore: Callable[[str], Tenant]) -> int:
        """Load every namespace, each into the tenant ``restore`` gives for its name; how many requests came back."""
        restored = 0
        states: dict[str, State] = {}
        for row in self._dir.rows("namespaces"):
            tenant = restore(row["namespace"])
            sandbox = tenant.sandbox
            state = State(settings=json.loads(row["settings"]))
            states[tenant.namespace] = state
            sandbox.state = state
            sandbox.next_pk = row["next_pk"]
            sandbox.rng.setstate(_rng_state(row["rng"]))
            sandbox.clock.set_offset(timedelta(seconds=row["clock_offset_s"]))
            tenant.scenarios.scenarios = self._load(row["scenarios"], dict[str, Scenario])
        for piece, hint in _PIECE_TYPES.items():
            for row in self._dir.rows(piece):
                state = states[row["namespace"]]
                item = self._load(row["item"], hint)
                getattr(state, piece)[row["key"]] = item
        for row in self._dir.rows("certificates"):
            certificate = self._load(row["certificate"], IssuedCertificate)
            states[row["namespace"]].certificates[certificate.serial] = certificate
        requests = self._requests(states)
        for namespace, state in states.items():
            tenant = restore(namespace)
            self._around_requests(tenant, requests.get(namespace, {}))
            tenant.sandbox.retention.reset(state.requests.values())
            restored += len(state.requests)
        return restored

    def _requests(self, states: dict[str, State]) -> dict[str, dict[int, SignatureRequest]]:
        found: dict[str, dict[int, SignatureRequest]] = {}
        histories: dict[tuple[str, int], list[StatusChange]] = {}
        for row in self._dir.rows("status_history", "namespace, pk, seq"):
            histories.setdefault((row["namespace"], row["pk"]), []).append(StatusChange(
                Status(row["status"]), Status(row["previous"]) if row["previous"] else None,
                datetime.fromisoformat(row["at"])))
        documents: dict[tuple[str, int], dict[str, Document]] = {}
        for row in self._dir.rows("documents"):
            documents.setdefault((row["namespace"], row["pk"]), {})[row["uid"]] = self._load(row["document"], Document)
        for row in self._dir.rows("requests"):
            namespace, pk, state = row["namespace"], row["pk"], states[row["namespace"]]
            body = json.loads(row["request"])
            rao, serial = body.pop("rao"), body.pop("certificate")
            body.update(pk=pk, status=row["status"], created_at=row["created_at"], profile=row["profile"],
                        identity=json.loads(row["identity"]), documents={}, history=[], certificate=None, rao=None)
            request = codec.decode(body, SignatureRequest, self._get_blob)
            request.history = histories.get((namespace, pk), [])
            request.documents = documents.get((namespace, pk), {})
            request.rao = state.raos.get(rao) if rao else None
            request.certificate = state.certificates.get(serial) if serial is not None else None
            state.requests[pk] = request
            found.setdefault(namespace, {})[pk] = request
        return found

    def _around_requests(self, tenant: Tenant, requests: dict[int, SignatureRequest]) -> None:
        sandbox, namespace = tenant.sandbox, tenant.namespace
        codes = {row["pk"]: self._load(row["otp"], IssuedOtp) for row in self._dir.rows("otp_codes")
                 if row["namespace"] == namespace}
        outbox = [self._load(row["message"], OutboxMessage) for row in self._dir.rows("sms")
                  if row["namespace"] == namespace]
        sandbox.otp.restore(codes, outbox)
        attempts: dict[str, list[Attempt]] = {}
        for row in self._dir.rows("webhook_attempts", "namespace, event_id, seq"):
            if row["namespace"] == namespace:
                attempts.setdefault(row["event_id"], []).append(self._load(row["attempt"], Attempt))
        events = []
        for row in self._dir.rows("webhook_events"):
            if row["namespace"] == namespace:
                event = self._load(row["event"], WebhookEvent)
                event.attempts = attempts.get(event.id, [])
                events.append(event)
        tenant.webhooks.restore(events)
        for row in self._dir.rows("signings"):
            if row["namespace"] == namespace:
                if row["kind"] == "pending":
                    sandbox.pending_signs[row["pk"]] = self._load(row["signing"], SignParams)
                else:
                    sandbox.staged_signs[row["pk"]] = self._load(row["signing"], StagedSign)

