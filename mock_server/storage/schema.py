"""The data dir's tables: one row per namespace and one table per kind of thing kept about it.

Rows are plain columns and JSON (:mod:`mock_server.storage.codec`), readable with the ``sqlite3`` shell, no
pickle. Bytes from 1 KiB up are rows of ``blobs``, by SHA-256, so that one commit (one fsync)
carries a call's documents with its rows.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

SCHEMA_VERSION = 2

SCHEMA = """
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

# Per request: the tables whose rows belong to it, and their key columns after (namespace, pk).
REQUEST_TABLES = {"requests": (), "status_history": ("seq",), "documents": ("uid",), "sms": ("seq",),
                  "otp_codes": (), "webhook_events": ("id",), "webhook_attempts": ("id", "seq"),
                  "certificates": ("serial",), "signings": ("kind",)}


class DataDirError(Exception):
    """A data dir this sandbox cannot use (another schema, unreadable)."""


# A namespace's rows by table, without the namespace column, and the blobs they name.
Tables = dict[str, list[dict[str, Any]]]


def _columns() -> dict[str, tuple[str, ...]]:
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.executescript(SCHEMA)
        names = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: tuple(column[1] for column in db.execute(f"PRAGMA table_info({name})")) for name in names}


COLUMNS = _columns()
# The tables that hold a namespace's state (every one but the schema version and the blobs).
NAMESPACE_TABLES = tuple(name for name in COLUMNS if name not in ("meta", "blobs"))
