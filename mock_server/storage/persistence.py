"""``--data-dir``: the sandbox's state in SQLite tables (:mod:`mock_server.storage.schema`), kept in step.

A flush writes what the domain says changed (:class:`~mock_server.domain.changes.ChangeLog`): the
rows of those requests and collections whose JSON differs from what was last written
(:mod:`mock_server.storage.rows`), encoded on the event loop in rounds that let other calls through
between requests, in one SQLite transaction (WAL, synchronous=FULL) in a thread. The HTTP
layer acknowledges a change, and shows one, only after the flush that carries it has committed
(:meth:`Persistence.unsaved`). Blobs that no row names any more are removed in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from mock_server.domain.changes import PIECES, ChangeSet
from mock_server.domain.tenancy import Tenant, Tenants
from mock_server.storage import codec
from mock_server.storage.rows import (
    BLOB_REFERENCE,
    Blobs,
    Loader,
    RowBuilder,
    ScenarioTexts,
    Write,
    Written,
)
from mock_server.storage.schema import (
    COLUMNS,
    NAMESPACE_TABLES,
    REQUEST_TABLES,
    SCHEMA,
    SCHEMA_VERSION,
    DataDirError,
    Tables,
)

_FLUSH_INTERVAL_S = 0.5
# Rounds of encoding a flush makes at most (see Persistence._encode).
_ENCODING_ROUNDS = 3
_DATABASE = "state.sqlite3"
# Stale blobs are looked for at most this often, and at most 1/20 of the time a search takes.
_COLLECTION_SPACING_S = 5.0
_COLLECTION_DUTY = 20
log = logging.getLogger(__name__)
T = TypeVar("T")


def _no_wakeup_preemption() -> None:
    """Run the calling thread under SCHED_BATCH where Linux has it: the same share of the CPU, but
    its wake-ups do not preempt the event loop's thread."""
    # Woken for each commit under normal scheduling, the thread took the core from the loop, often
    # while the loop held the GIL (docs/benchmark.md: the data-dir hello p50 under load).
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


class DataDir:
    """The SQLite database (blobs included) under one directory."""

    def __init__(self, root: Path) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as fault:
            raise DataDirError(f"{root}: cannot be a data dir ({fault.strerror})") from None
        self.root = root
        try:
            self._db = sqlite3.connect(root / _DATABASE, check_same_thread=False, isolation_level=None)
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
        self._db.executescript(SCHEMA)
        if version is None:
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def rows(self, table: str, order: str = "rowid") -> Iterator[sqlite3.Row]:
        """Every row of ``table`` (one of the schema's), in ``order``, read by column name."""
        cursor = self._db.cursor()
        cursor.row_factory = sqlite3.Row
        return cursor.execute(f"SELECT * FROM {table} ORDER BY {order}")

    def read_blob(self, digest: str) -> bytes:
        """The bytes of blob ``digest``, checked against it."""
        found = self._db.execute("SELECT data FROM blobs WHERE sha256 = ?", (digest,)).fetchone()
        if found is None:
            raise DataDirError(f"blob {digest} is missing")
        if hashlib.sha256(found[0]).hexdigest() != digest:
            raise DataDirError(f"blob {digest} is corrupt")
        return bytes(found[0])

    def referenced_blobs(self) -> set[str]:
        """The digests some row names, read in one transaction of a connection of its own, so that
        commits go on meanwhile."""
        found: set[str] = set()
        with contextlib.closing(sqlite3.connect(self.root / _DATABASE, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            for table, columns in COLUMNS.items():
                if table in ("blobs", "meta"):
                    continue
                where = " OR ".join(f"instr({column}, 'blob:')" for column in columns)
                for row in reader.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {where}"):
                    found.update(digest for value in row if isinstance(value, str)
                                 for digest in BLOB_REFERENCE.findall(value))
            reader.execute("COMMIT")
        return found

    def collect_garbage(self, referenced: set[str]) -> set[str]:
        """Remove the blobs not in ``referenced``; the digests that went."""
        stale = {digest for (digest,) in self._db.execute("SELECT sha256 FROM blobs")} - referenced
        with self._transaction() as cursor:
            cursor.executemany("DELETE FROM blobs WHERE sha256 = ?", [(digest,) for digest in stale])
        self._db.execute("PRAGMA incremental_vacuum")
        return stale

    def row_keys(self) -> Iterator[tuple[Any, ...]]:
        """The key of every stored row, as :class:`RowBuilder` names them."""
        yield from (("namespaces", name) for (name,) in self._db.execute("SELECT namespace FROM namespaces"))
        for table, extra in REQUEST_TABLES.items():
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
            rows = [{key: row[key] for key in row.keys() if key != "namespace"}
                    for row in self.rows(table) if row["namespace"] == namespace]
            if rows:
                tables[table] = rows
        digests = {digest for rows in tables.values() for row in rows for value in row.values()
                   if isinstance(value, str) for digest in BLOB_REFERENCE.findall(value)}
        return tables, {digest: self.read_blob(digest) for digest in sorted(digests)}

    def import_namespace(self, namespace: str, tables: Tables, blobs: dict[str, bytes]) -> None:
        """Replace the rows of ``namespace`` with ``tables``, in one transaction."""
        with self._transaction() as cursor:
            _delete_namespace_rows(cursor, namespace)
            for table, rows in tables.items():
                columns = COLUMNS[table]
                marks = ", ".join("?" * len(columns))
                cursor.executemany(f"INSERT INTO {table} VALUES ({marks})",
                                   [tuple(namespace if column == "namespace" else row[column]
                                          for column in columns) for row in rows])
            cursor.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?)",
                               [(digest, len(data), data) for digest, data in blobs.items()])

    def delete_namespace(self, namespace: str) -> None:
        """Remove every row of ``namespace``, in one transaction (its blobs go with the next collection)."""
        with self._transaction() as cursor:
            _delete_namespace_rows(cursor, namespace)

    def commit(self, write: Write) -> None:
        """The rows and the blobs they name, in one transaction."""
        with self._transaction() as cursor:
            cursor.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?)",
                               [(digest, len(data), data) for digest, data in write.blobs.items()])
            for table, where, values in write.deletes:
                cursor.execute(f"DELETE FROM {table} WHERE {where}", values)
            for table, rows in write.upserts.items():
                marks = ", ".join("?" * len(rows[0]))
                cursor.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """A cursor in a write transaction, committed at the end of the block, rolled back on any error."""
        with contextlib.closing(self._db.cursor()) as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _delete_namespace_rows(cursor: sqlite3.Cursor, namespace: str) -> None:
    for table in NAMESPACE_TABLES:
        cursor.execute(f"DELETE FROM {table} WHERE namespace = ?", (namespace,))


class Persistence:
    """Keeps a data dir in step with every namespace; :meth:`flush` is the write barrier."""

    def __init__(self, data_dir: DataDir) -> None:
        self._dir = data_dir
        self._tenants: Tenants | None = None
        self._written = Written()
        self._blobs = Blobs()
        self._scenarios = ScenarioTexts()
        # Whether rows went (a delete, a restart's leftovers) since stale blobs were last collected.
        self._rows_went = False
        self._next_collection = 0.0
        self._lock = asyncio.Lock()
        self._asked = 0
        self._done = 0
        # What the flush under way took and has not committed yet, by namespace.
        self._in_flight: dict[str, ChangeSet] = {}
        self._loop_task: asyncio.Task | None = None
        # The data dir's disk work: a commit (one at a time, under the lock) and the stale-blob search.
        self._threads = ThreadPoolExecutor(2, "oneshot-data-dir", initializer=_no_wakeup_preemption)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

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
            restored = Loader(self._dir, get_blob).load(tenants.restore)
        except (codec.CodecError, KeyError, TypeError, ValueError) as fault:
            raise DataDirError(f"{self._dir.root}: a row does not fit this version's schema ({fault})") from None
        self._blobs.on_disk = referenced
        # Every stored row is known to exist (so that a change can delete it) but not what it holds:
        # the first change to a request writes its rows again, nothing else is rewritten.
        keys = list(self._dir.row_keys())
        self._written.loaded(keys)
        loaded = {key[1] for key in keys if key[0] == "namespaces"}
        for tenant in tenants.existing():
            if tenant.namespace in loaded:
                tenant.sandbox.changes.take()  # what building it changed is what was just read back
        self._rows_went = True  # blobs of what was deleted before the restart
        log.info("data dir: %d namespace(s), %d request(s) restored", len(tenants.existing()), restored)
        return restored

    def unsaved(self, tenant: Tenant, pk: int | None) -> bool:
        """Whether request ``pk`` of ``tenant`` (anything of it when None) changed since the last commit."""
        if tenant.sandbox.changes.holds(pk):
            return True
        in_flight = self._in_flight.get(tenant.namespace)
        return in_flight is not None and in_flight.concerns(pk)

    async def flush(self) -> None:
        """Return once everything changed before the call is committed (concurrent calls share a commit)."""
        self._asked += 1
        wanted = self._asked
        async with self._lock:
            if self._done >= wanted:
                return
            taken = self._asked
            rows = RowBuilder(self._written, self._blobs)
            try:
                await self._encode(rows)
                write, notes = rows.finish()
                self._blobs.end_round()
                if write:
                    await self._off_loop(self._dir.commit, write)
            except BaseException:
                # No namespace goes while the flush holds the lock (deleting one takes it).
                for tenant in self._existing():
                    if tenant.namespace in self._in_flight:
                        tenant.sandbox.changes.give_back(self._in_flight[tenant.namespace])
                self._blobs.new.clear()
                self._scenarios.forget()
                raise
            finally:
                self._in_flight = {}
            for key, text in notes:
                self._written.note(key, text)
            self._blobs.on_disk.update(write.blobs)
            self._blobs.new.clear()
            self._rows_went |= bool(write.deletes)
            self._done = taken

    async def _encode(self, rows: RowBuilder) -> None:
        """Encode what changed into ``rows``, in rounds; what each round takes joins ``_in_flight``.

        Between two requests of a round the event loop serves other calls: a flush of many requests
        does not hold up a ``/hello`` for all of them. The next round encodes what changed meanwhile,
        until a round finds nothing new; the last one possible pauses nowhere. The namespaces' rows
        follow at once, so the write holds the state of one moment, as if encoded in one go.
        """
        for round_number in range(_ENCODING_ROUNDS):
            changes = [(tenant, tenant.sandbox.changes.take()) for tenant in self._existing()]
            changes = [(tenant, changed) for tenant, changed in changes if changed]
            if not changes:
                break
            for tenant, changed in changes:
                self._in_flight.setdefault(tenant.namespace, ChangeSet()).update(changed)
            pauses = round_number < _ENCODING_ROUNDS - 1
            rows.forget_orphans()
            for tenant, changed in changes:
                for pk in rows.request_pks(tenant, changed):
                    rows.request(tenant, pk)
                    if pauses:
                        await asyncio.sleep(0)
        for tenant in self._existing():
            changed = self._in_flight.get(tenant.namespace)
            if changed or self._scenarios.moved(tenant):
                rows.namespace(tenant, changed or ChangeSet(), self._scenarios)

    def writing(self) -> asyncio.Lock:
        """The write barrier: no flush runs while it is held."""
        return self._lock

    async def forget(self, namespace: str) -> None:
        """Remove every stored row of ``namespace``; called inside :meth:`writing`, before the
        namespace leaves the tenants (so no flush in between writes it back)."""
        await self._off_loop(self._dir.delete_namespace, namespace)
        self._written.forget(namespace)
        self._scenarios.forget()
        self._rows_went = True

    def _existing(self) -> list[Tenant]:
        return self._tenants.existing() if self._tenants else []

    def start(self) -> None:
        """Flush in the background what changes outside HTTP calls."""
        self._loop_task = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_INTERVAL_S)
            try:
                await self.flush()
                if self._rows_went and time.monotonic() >= self._next_collection:
                    await self._collect_stale_blobs()
            except Exception:  # a full disk must not end background flushing for good
                log.exception("background work on the data dir failed")

    async def _collect_stale_blobs(self) -> None:
        """Remove the blobs no row names any more, looked for while commits go on."""
        started = time.monotonic()
        async with self._lock:  # what is committed from now on is either in the search or tracked
            self._rows_went = False
            self._blobs.tracked = set()
        try:
            referenced = await self._off_loop(self._dir.referenced_blobs)
            async with self._lock:
                removed = await self._off_loop(self._dir.collect_garbage, referenced | self._blobs.tracked)
                self._blobs.on_disk -= removed
        except BaseException:
            self._rows_went = True
            raise
        finally:
            self._blobs.tracked = None
        took = time.monotonic() - started
        self._next_collection = time.monotonic() + max(_COLLECTION_SPACING_S, _COLLECTION_DUTY * took)
        if removed:
            log.info("data dir: %d stale blob(s) removed in %.2f s", len(removed), took)

    async def close(self) -> None:
        """A last flush, then close the database."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self.flush()
        self._threads.shutdown()
        self._dir.close()
