"""The sandbox's state as the data dir's rows and back: what a flush writes, what a restart reads.

A :class:`RowBuilder` encodes what the domain says changed (a request and what is kept with it, a
namespace-wide collection) and keeps a row only when its JSON differs from what was last written
(:class:`Written`); a :class:`Loader` reads rows back into tenants. The same two move a whole
namespace in and out of an archive (:func:`namespace_rows`, :func:`load_namespace`).
"""

from __future__ import annotations

import array
import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from mock_server.domain.changes import PIECES, ChangeSet
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
from mock_server.domain.scenarios import Scenario
from mock_server.domain.signatures import StagedSign
from mock_server.domain.signparams import SignParams
from mock_server.domain.sms import IssuedOtp, OutboxMessage
from mock_server.domain.store import State
from mock_server.domain.tenancy import Tenant
from mock_server.domain.webhooks import Attempt, WebhookEvent
from mock_server.storage import codec
from mock_server.storage.schema import COLUMNS, REQUEST_TABLES, DataDirError, Tables

Note = tuple[tuple[Any, ...], bytes | None]  # a row's key, and its fingerprint once written (None: deleted)
_PIECE_TYPES = {"tokens": Token, "raos": Rao, "images": Image, "metadata": Metadata}
_REQUEST_FIELDS_APART = ("pk", "status", "created_at", "profile", "identity", "documents", "history",
                         "certificate", "rao")
_JSON = {"ensure_ascii": False, "separators": (",", ":"), "sort_keys": True}
BLOB_REFERENCE = re.compile(r"blob:([0-9a-f]{64})")
# How long the digest of bytes no longer encoded is remembered (and the bytes kept alive by it).
DIGESTS_KEPT_S = 2.0


class StoredRow(Protocol):
    """A row as a :class:`RowSource` gives it: its values by column name."""

    def __getitem__(self, column: str) -> Any: ...


class RowSource(Protocol):
    """Where a :class:`Loader` reads rows: a data dir, or an archive's tables."""

    def rows(self, table: str, order: str = "rowid") -> Iterator[StoredRow]: ...


class Blobs:
    """The blob side of encoding: digests of bytes seen (by identity, so each is hashed once while
    its request is being worked on) and the new bytes a flush must write."""

    def __init__(self) -> None:
        # By identity: bytes encoded in the last few seconds, their digest, and when last encoded.
        # A request's contract (~30 KB) is encoded again at each of its changes, with other requests'
        # flushes in between under load; hashing it again each time was half of what encoding cost
        # the event loop.
        self._digests: dict[int, tuple[bytes, str, float]] = {}
        self._round_at = self._swept_at = time.monotonic()
        self.on_disk: set[str] = set()
        self.new: dict[str, bytes] = {}
        # Every digest encoded while stale blobs are being looked for: none of them is stale.
        self.tracked: set[str] | None = None

    def put(self, data: bytes) -> str:
        key = id(data)
        entry = self._digests.get(key)
        digest = entry[1] if entry is not None and entry[0] is data else hashlib.sha256(data).hexdigest()
        self._digests[key] = (data, digest, self._round_at)
        if self.tracked is not None:
            self.tracked.add(digest)
        if digest not in self.on_disk:
            self.new[digest] = data
        return digest

    def end_round(self) -> None:
        """Forget, now and then, the bytes not encoded for :data:`DIGESTS_KEPT_S`: the cache keeps
        no document alive for long after its request let go of it."""
        self._round_at = now = time.monotonic()
        if now - self._swept_at >= DIGESTS_KEPT_S / 2:
            self._swept_at = now
            stale = now - DIGESTS_KEPT_S
            self._digests = {key: entry for key, entry in self._digests.items() if entry[2] >= stale}


@dataclass
class Write:
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


def _dump(value: Any, hint: Any, blobs: Blobs) -> str:
    return json.dumps(codec.encode(value, hint, blobs.put), **_JSON)


class Written:
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

    def loaded(self, keys: Iterable[tuple[Any, ...]]) -> None:
        """Note each row of ``keys`` as read back at start (:data:`LOADED`)."""
        groups = self._groups
        for key in keys:
            groups.setdefault(_group(key), {})[key] = LOADED

    def forget(self, namespace: str) -> None:
        """Forget every row of ``namespace`` (deleted from the data dir)."""
        self._groups = {group: keys for group, keys in self._groups.items() if group[0] != namespace}

    def keys_of(self, namespace: str, owner: Any) -> list[tuple[Any, ...]]:
        """The rows written for request ``owner`` (a pk) or piece ``owner`` (a table) of ``namespace``."""
        return list(self._groups.get((namespace, owner), ()))

    def requests_of(self, namespace: str) -> set[int]:
        """The pks some row was written for in ``namespace``."""
        return {owner for name, owner in self._groups if name == namespace and isinstance(owner, int)}


def _group(key: tuple[Any, ...]) -> tuple[str, Any]:
    table, namespace, owner = key[0], key[1], key[2] if len(key) > 2 else None
    return (namespace, owner) if table in REQUEST_TABLES else (namespace, table)


# A row read back at start: it exists, and the next change to it writes it whatever it holds.
LOADED = b"loaded"


def _fingerprint(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class ScenarioTexts:
    """Each namespace's scenarios as JSON, encoded again only when their book's revision moved."""

    def __init__(self) -> None:
        # By namespace: the book's revision, its JSON, and that JSON's fingerprint.
        self._texts: dict[str, tuple[int, str, bytes]] = {}

    def moved(self, tenant: Tenant) -> bool:
        """Whether ``tenant``'s scenarios changed since they were last encoded."""
        known = self._texts.get(tenant.namespace)
        return known is None or known[0] != tenant.scenarios.revision

    def forget(self) -> None:
        """Encode every namespace's scenarios again next time (what was encoded was not saved)."""
        self._texts.clear()

    def text(self, tenant: Tenant, blobs: Blobs) -> tuple[str, bytes]:
        """``tenant``'s scenarios as JSON, and its fingerprint."""
        book = tenant.scenarios
        known = self._texts.get(tenant.namespace)
        if known is None or known[0] != book.revision:
            text = _dump(book.scenarios, dict[str, Scenario], blobs)
            known = self._texts[tenant.namespace] = (book.revision, text, _fingerprint(text))
        return known[1], known[2]


def _rng_text(state: tuple[Any, ...]) -> str:
    """The random state as ``version:gauss:base64`` of its 625 words (a JSON list would be 7 KB)."""
    version, internal, gauss = state
    return f"{version}:{gauss!r}:{base64.b64encode(array.array('I', internal).tobytes()).decode()}"


def _rng_state(text: str) -> tuple[Any, ...]:
    version, gauss, words = text.split(":", 2)
    internal = array.array("I")
    internal.frombytes(base64.b64decode(words))
    return int(version), tuple(internal), None if gauss == "None" else float(gauss)


@dataclass
class _Part:
    """The rows encoded of one request, or of the namespaces, and their notes."""

    write: Write = field(default_factory=Write)
    notes: list[Note] = field(default_factory=list)


class RowBuilder:
    """Turns what changed into row writes, skipping rows whose JSON is what was last written.

    A request's rows are kept apart by request: a request encoded again (it changed after it was
    encoded) replaces what was encoded of it before, deletions included.
    """

    def __init__(self, written: Written, blobs: Blobs) -> None:
        self._written = written
        self._blobs = blobs
        self._requests: dict[tuple[str, int], _Part] = {}
        self._namespaces = _Part()
        # Where the rows being encoded go: a request's part, or the namespaces'.
        self._part = self._namespaces
        # By namespace: certificates that outlive their request (revoked ones stay in the CRL).
        self._orphans: dict[str, dict[int, list[IssuedCertificate]]] = {}

    def request_pks(self, tenant: Tenant, changed: ChangeSet) -> list[int]:
        """The pks whose rows ``changed`` may have changed: the requests it names, or all of them."""
        pks = changed.requests
        if changed.everything:
            pks = set(tenant.sandbox.state.requests) | self._written.requests_of(tenant.namespace)
        return sorted(pks)

    def request(self, tenant: Tenant, pk: int) -> None:
        """Encode request ``pk`` of ``tenant`` as it is now (gone: its rows are deleted)."""
        name, state = tenant.namespace, tenant.sandbox.state
        self._part = self._requests[(name, pk)] = _Part()
        try:
            found = state.requests.get(pk)
            kept = set(self._request_rows(tenant, found) if found is not None else ())
            if found is None:
                orphans = self._orphans.get(name)
                if orphans is None:
                    orphans = self._orphans[name] = {}
                    for certificate in state.certificates.values():
                        orphans.setdefault(certificate.request_pk, []).append(certificate)
                kept.update(self._certificate(name, pk, certificate) for certificate in orphans.get(pk, []))
            for key in self._written.keys_of(name, pk):
                if key not in kept:
                    self._drop(key[0], key)
        finally:
            self._part = self._namespaces

    def forget_orphans(self) -> None:
        """Look for certificates without a request again (requests went since)."""
        self._orphans.clear()

    def namespace(self, tenant: Tenant, changed: ChangeSet, scenarios: ScenarioTexts) -> None:
        """Encode ``tenant``'s own row (next pk, clock, seed, settings, scenarios) and the pieces ``changed`` names."""
        sandbox, name = tenant.sandbox, tenant.namespace
        state = sandbox.state
        settings = json.dumps(state.settings, **_JSON)
        scenario_text, scenario_fingerprint = scenarios.text(tenant, self._blobs)
        row = (name, sandbox.next_pk, sandbox.clock.offset.total_seconds(), _rng_text(sandbox.rng.getstate()),
               settings, scenario_text)
        # The scenarios (the magic values' alone are tens of KB) stand in by their fingerprint: this
        # row is looked at on every flush.
        self._row("namespaces", (name,), row, "\x00".join(map(str, (*row[1:-1], scenario_fingerprint.hex()))))
        for piece in PIECES if changed.everything else changed.pieces:
            self._piece(name, piece, getattr(state, piece))

    def finish(self) -> tuple[Write, list[Note]]:
        """Everything encoded, as one write, and the notes to make once it is committed."""
        write, notes = Write(), []
        for part in (*self._requests.values(), self._namespaces):
            for table, rows in part.write.upserts.items():
                write.upserts.setdefault(table, []).extend(rows)
            write.deletes.extend(part.write.deletes)
            notes.extend(part.notes)
        write.blobs = dict(self._blobs.new)
        return write, notes

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
            yield self._row("status_history", (name, pk, seq), row, "\x00".join(map(str, row[3:])))
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
        for kind, signing, hint in (("pending", sandbox.signatures.pending_signs.get(pk), SignParams),
                                    ("staged", sandbox.signatures.staged_signs.get(pk), StagedSign)):
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
            self._part.write.upsert(table, row)
            self._part.notes.append((full, fingerprint))
        return full

    def _drop(self, table: str, key: tuple[Any, ...]) -> None:
        name, *rest = key[1:]
        rest = list(rest)
        columns = ("pk", *REQUEST_TABLES[table]) if table in REQUEST_TABLES else ("key",)
        if table == "certificates":
            columns, rest = ("serial",), rest[1:]
        elif table == "webhook_events":
            columns, rest = ("id",), rest[1:]
        elif table == "webhook_attempts":
            columns, rest = ("event_id", "seq"), rest[1:]
        where = " AND ".join(["namespace = ?", *(f"{column} = ?" for column in columns)])
        self._part.write.delete(table, where, (name, *rest))
        self._part.notes.append((key, None))


def _without_attempts(event: WebhookEvent) -> WebhookEvent:
    return replace(event, attempts=[])




def namespace_rows(tenant: Tenant) -> tuple[Tables, dict[str, bytes]]:
    """Every row of ``tenant``'s state, as the data dir stores it, and the blobs they name."""
    blobs = Blobs()
    builder = RowBuilder(Written(), blobs)
    everything = ChangeSet(everything=True)
    for pk in builder.request_pks(tenant, everything):
        builder.request(tenant, pk)
    builder.namespace(tenant, everything, ScenarioTexts())
    write, _ = builder.finish()
    tables = {table: [dict(zip(COLUMNS[table][1:], row[1:], strict=True)) for row in rows]
              for table, rows in write.upserts.items()}
    return tables, write.blobs


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
        count = Loader(TableRows(tenant.namespace, tables), get_blob).load(lambda namespace: tenant)
    except (codec.CodecError, KeyError, TypeError, ValueError, AttributeError) as fault:
        raise DataDirError(f"a row does not fit this version's schema ({type(fault).__name__}: {fault})") from None
    tenant.sandbox.resume()
    return count


class TableRows:
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


class Loader:
    """Reads every table back into freshly built tenants."""

    def __init__(self, source: RowSource, get_blob: codec.GetBlob) -> None:
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
            tenant.sandbox.hold_pks()
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
                    sandbox.signatures.pending_signs[row["pk"]] = self._load(row["signing"], SignParams)
                else:
                    sandbox.signatures.staged_signs[row["pk"]] = self._load(row["signing"], StagedSign)
