"""``--data-dir``: the sandbox's state in SQLite, its document, image and video bytes as files.

Each namespace's state is split into rows (one per request, one per other piece) pickled with
the domain's own classes; bytes of any size worth it leave the pickle as content-addressed blob
files. A flush writes the rows that changed since the last one, blobs first (temp file, fsync,
rename), then one SQLite transaction (WAL, synchronous=FULL). The HTTP layer acknowledges a
change only after the flush that carries it has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import pickle
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mock_server.domain.lifecycle import ContractSigned, Event
from mock_server.domain.store import State
from mock_server.tenancy import Tenant, Tenants

SCHEMA_VERSION = 1
# Smaller bytes (certificates, webhook bodies) stay inside their row.
_BLOB_MIN_BYTES = 1024
_FLUSH_INTERVAL_S = 0.5
_STATE_PIECES = ("raos", "tokens", "images", "metadata", "certificates", "settings")

RowKey = tuple[str, str, str]  # namespace, kind, key
log = logging.getLogger(__name__)


class DataDirError(Exception):
    """A data dir this sandbox cannot use (newer schema, unreadable)."""


class BlobStore:
    """Content-addressed files: ``<root>/<first two hex digits>/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def write(self, digest: str, data: bytes) -> None:
        """Store ``data`` durably: a temp file, fsynced, renamed into place, directory fsynced."""
        final = self.path(digest)
        if final.exists():
            return
        final.parent.mkdir(exist_ok=True)
        temp = final.with_name(f".{digest}.tmp")
        with open(temp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, final)
        _fsync_directory(final.parent)

    def read(self, digest: str) -> bytes:
        data = self.path(digest).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise DataDirError(f"blob {digest} is corrupt")
        return data

    def collect_garbage(self, referenced: set[str]) -> int:
        """Remove blobs no row refers to and temp files a crash left; how many went."""
        removed = 0
        for path in self.root.glob("*/*"):
            if path.name.startswith(".") or path.name not in referenced:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class _DigestCache:
    """sha256 of the bytes objects seen, by identity: documents are hashed once, not every flush."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[bytes, str]] = {}
        self._seen: dict[int, tuple[bytes, str]] = {}

    def digest(self, data: bytes) -> str:
        entry = self._known.get(id(data))
        if entry is None or entry[0] is not data:
            entry = (data, hashlib.sha256(data).hexdigest())
        self._seen[id(data)] = entry
        return entry[1]

    def end_round(self) -> None:
        """Forget the bytes the last snapshot no longer referred to."""
        self._known, self._seen = self._seen, {}


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, digests: _DigestCache, blobs: dict[str, bytes]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._digests = digests
        self._blobs = blobs

    def persistent_id(self, obj: Any) -> str | None:
        if type(obj) is bytes and len(obj) >= _BLOB_MIN_BYTES:
            digest = self._digests.digest(obj)
            self._blobs[digest] = obj
            return digest
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, read_blob: Callable[[str], bytes]) -> None:
        super().__init__(file)
        self._read_blob = read_blob

    def persistent_load(self, pid: Any) -> bytes:
        return self._read_blob(str(pid))


class DataDir:
    """The SQLite database and blob files under one directory."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(root / "blobs")
        try:
            self._db = sqlite3.connect(root / "state.sqlite3", check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS rows (namespace TEXT, kind TEXT, key TEXT, body BLOB, "
                             "PRIMARY KEY (namespace, kind, key))")
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as fault:
            raise DataDirError(f"{root}: not a usable data dir ({fault})") from None
        if found is None:
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(found[0]) > SCHEMA_VERSION:
            raise DataDirError(f"{root} was written by a newer oneshot-mock (data schema {found[0]}); "
                               f"this version reads schema {SCHEMA_VERSION} at most")
        elif int(found[0]) < SCHEMA_VERSION:
            raise DataDirError(f"{root} holds data schema {found[0]}, older than this version's "
                               f"{SCHEMA_VERSION}; start with an empty --data-dir")

    def load(self) -> tuple[dict[str, dict[tuple[str, str], Any]], dict[RowKey, bytes], set[str]]:
        """Every row by namespace, the stored row bodies, and the blobs they refer to."""
        referenced: set[str] = set()

        def read_blob(digest: str) -> bytes:
            referenced.add(digest)
            return self.blobs.read(digest)

        namespaces: dict[str, dict[tuple[str, str], Any]] = {}
        bodies: dict[RowKey, bytes] = {}
        for namespace, kind, key, body in self._db.execute("SELECT namespace, kind, key, body FROM rows"):
            namespaces.setdefault(namespace, {})[(kind, key)] = _Unpickler(io.BytesIO(body), read_blob).load()
            bodies[(namespace, kind, key)] = body
        return namespaces, bodies, referenced

    def commit(self, upserts: dict[RowKey, bytes], deletes: list[RowKey], blobs: dict[str, bytes]) -> None:
        """Blobs first, then the rows in one transaction: a row never names a missing blob."""
        for digest, data in blobs.items():
            self.blobs.write(digest, data)
        with contextlib.closing(self._db.cursor()) as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                cursor.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?)",
                                   [(*key, body) for key, body in upserts.items()])
                cursor.executemany("DELETE FROM rows WHERE namespace = ? AND kind = ? AND key = ?", deletes)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


def tenant_rows(tenant: Tenant) -> dict[tuple[str, str], Any]:
    """A namespace's state as rows: one per request, one per other piece."""
    sandbox, state = tenant.sandbox, tenant.sandbox.state
    rows: dict[tuple[str, str], Any] = {("request", str(pk)): found for pk, found in state.requests.items()}
    rows.update({("state", piece): getattr(state, piece) for piece in _STATE_PIECES})
    rows.update({
        ("sandbox", "next_pk"): sandbox.next_pk,
        ("sandbox", "pending_signs"): sandbox.pending_signs,
        ("sandbox", "staged_signs"): sandbox.staged_signs,
        ("sandbox", "otp"): sandbox.otp.snapshot(),
        ("sandbox", "rng"): sandbox.rng.getstate(),
        ("sandbox", "clock"): sandbox.clock.offset,
        ("webhooks", "log"): tenant.webhooks.log,
        ("scenarios", "loaded"): tenant.scenarios.scenarios,
    })
    return rows


def restore_tenant(tenant: Tenant, rows: dict[tuple[str, str], Any]) -> None:
    """Put rows written by :func:`tenant_rows` back into a freshly built tenant."""
    sandbox = tenant.sandbox
    state = State()
    for piece in _STATE_PIECES:
        setattr(state, piece, rows[("state", piece)])
    for (kind, key), value in rows.items():
        if kind == "request":
            state.requests[int(key)] = value
    # Rows are pickled one by one: objects two rows shared come back as copies, so re-link them.
    for found in state.requests.values():
        if found.certificate is not None:
            found.certificate = state.certificates.setdefault(found.certificate.serial, found.certificate)
        if found.rao is not None:
            found.rao = state.raos.get(found.rao.username, found.rao)
    sandbox.state = state
    sandbox.next_pk = rows[("sandbox", "next_pk")]
    sandbox.pending_signs = rows[("sandbox", "pending_signs")]
    sandbox.staged_signs = rows.get(("sandbox", "staged_signs"), {})  # absent from older data dirs
    sandbox.otp.restore(*rows[("sandbox", "otp")])
    sandbox.rng.setstate(rows[("sandbox", "rng")])
    sandbox.clock.set_offset(rows[("sandbox", "clock")])
    tenant.webhooks.restore(rows[("webhooks", "log")])
    tenant.scenarios.scenarios = rows[("scenarios", "loaded")]
    sandbox.retention.reset(state.requests.values())


class Persistence:
    """Keeps a data dir in step with every namespace; :meth:`flush` is the write barrier."""

    def __init__(self, data_dir: DataDir) -> None:
        self._dir = data_dir
        self._tenants: Tenants | None = None
        self._written: dict[RowKey, bytes] = {}  # row -> sha256 of the body last committed
        self._on_disk: set[str] = set()
        self._digests = _DigestCache()
        self._lock = asyncio.Lock()
        self._asked = 0
        self._done = 0
        self._dirty = False
        # Changes that reads make (the contract signed on its first fetch): such a read is answered
        # once they are saved. Other events come from writes, saved anyway, or from the background.
        self.read_changes = 0
        self._loop_task: asyncio.Task | None = None

    def restore(self, tenants: Tenants) -> int:
        """Load the data dir into ``tenants`` (creating its namespaces), then keep them in step with it.

        Returns how many requests came back.
        """
        self._tenants = tenants
        namespaces, bodies, referenced = self._dir.load()
        restored = 0
        for namespace, rows in namespaces.items():
            tenant = tenants.restore(namespace)
            restore_tenant(tenant, rows)
            restored += len(tenant.sandbox.state.requests)
        self._written = {key: hashlib.sha256(body).digest() for key, body in bodies.items()}
        self._on_disk = referenced
        removed = self._dir.blobs.collect_garbage(referenced)
        log.info("data dir: %d namespace(s), %d request(s) restored; %d stale blob(s) removed",
                 len(namespaces), restored, removed)
        return restored

    def mark(self, event: Event | None = None) -> None:
        """Something changed (a domain event, or a read that may have moved the sandbox)."""
        self._dirty = True
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
            self._dirty = False
            upserts, deletes, blobs = self._changes()
            if upserts or deletes or blobs:
                await asyncio.to_thread(self._dir.commit, upserts, deletes, blobs)
                for key, body in upserts.items():
                    self._written[key] = hashlib.sha256(body).digest()
                for key in deletes:
                    del self._written[key]
                self._on_disk.update(blobs)
            self._done = taken

    def _changes(self) -> tuple[dict[RowKey, bytes], list[RowKey], dict[str, bytes]]:
        """Pickle every row now (on the event loop, so the snapshot is consistent); keep what changed."""
        current: dict[RowKey, bytes] = {}
        blobs: dict[str, bytes] = {}
        for tenant in self._tenants.existing() if self._tenants else ():
            for (kind, key), value in tenant_rows(tenant).items():
                buffer = io.BytesIO()
                _Pickler(buffer, self._digests, blobs).dump(value)
                current[(tenant.namespace, kind, key)] = buffer.getvalue()
        self._digests.end_round()
        upserts = {k: body for k, body in current.items() if self._written.get(k) != hashlib.sha256(body).digest()}
        deletes = [key for key in self._written if key not in current]
        new_blobs = {digest: data for digest, data in blobs.items() if digest not in self._on_disk}
        return upserts, deletes, new_blobs

    def start(self) -> None:
        """Flush in the background what changes outside HTTP calls."""
        self._loop_task = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_INTERVAL_S)
            tenants = self._tenants.existing() if self._tenants else ()
            busy = any(t.webhooks.pending() or t.sandbox.pending_signs for t in tenants)
            if self._dirty or busy:
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
