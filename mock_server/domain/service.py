"""The operations every API family calls: one implementation of each vendor behaviour."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mock_server.domain import accounts, library, lifecycle, validation, views
from mock_server.domain.changes import ChangeLog
from mock_server.domain.clock import Clock
from mock_server.domain.errors import vendor_error
from mock_server.domain.hashfile import parse_hash_file
from mock_server.domain.ids import RandomSource, parse_number
from mock_server.domain.lifecycle import (
    CertificateRevoked,
    ClockMoved,
    ContractSigned,
    Event,
    EventBus,
    RequestsEvicted,
    SandboxReset,
    SmsSent,
    StatusChanged,
)
from mock_server.domain.model import (
    Document,
    Download,
    Image,
    Rao,
    SignatureRequest,
    Status,
    Upload,
)
from mock_server.domain.pdfchecks import CheckedPdfs
from mock_server.domain.pkspace import PkSpace
from mock_server.domain.ports import Runner
from mock_server.domain.retention import FINISHED, Retention, RetentionPolicy
from mock_server.domain.seedfile import SeedData
from mock_server.domain.signatures import SignatureDesk
from mock_server.domain.sms import CHANNELS, OtpDesk, OtpPolicy, OutboxMessage
from mock_server.domain.store import State
from mock_server.domain.trust import TrustServices
from mock_server.domain.videoid import VideoIdDesk
from mock_server.pki.authority import PkiMaterial, RevocationUrls
from mock_server.pki.cades import HashToSign
from mock_server.pki.keypool import KeyPool
from mock_server.pki.pades import DocumentRefused, PdfReport
from mock_server.pki.signing import inspect_pdf

log = logging.getLogger(__name__)
CONTRACT_UID = "contract"
_INLINE_INSPECTION_BYTES = 256 * 1024
IDENTITY_IMAGES = ("document_front", "document_rear", "document_owner", "extra_document")
# PDF readers accept junk before the header, within the first kilobyte.
_PDF_HEADER = re.compile(rb"%PDF-[12]\.[0-9]")


@dataclass(frozen=True)
class Limits:
    """How many documents an upload call and a request may carry."""

    max_files_per_upload: int = 10
    max_documents_per_request: int = 50


@dataclass(frozen=True)
class SandboxSettings:
    """The knobs of the domain (the CLI maps onto these)."""

    seed: int
    otp: OtpPolicy = field(default_factory=OtpPolicy)
    limits: Limits = field(default_factory=Limits)
    certificate_lifetime: timedelta = timedelta(days=1)
    key_pool_size: int = 8
    public_url: str = "http://127.0.0.1:8080"
    # Registration Authority id -> webhook URL, from the command line.
    ra_webhooks: tuple[tuple[str, str], ...] = ()
    # Where the sandbox clock starts (None: the wall clock).
    clock_start: datetime | None = None
    # eIDAS identifications complete by themselves after this many seconds (None: never).
    videoid_auto_complete: float | None = None
    # The namespace this sandbox serves ("" is the default one).
    namespace: str = ""
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)


async def _nothing_to_commit() -> None:
    """In memory, a change is as durable as it gets at once."""


class Sandbox:
    """The whole sandbox behind the HTTP adapters: requests, documents and OTPs here; signing in its
    :class:`~mock_server.domain.signatures.SignatureDesk`, the trust services and VideoID in theirs."""

    def __init__(self, settings: SandboxSettings, pki: PkiMaterial, run: Runner,
                 seed: SeedData | None = None, keys: KeyPool | None = None, pks: PkSpace | None = None) -> None:
        self.settings = settings
        # Shared by every namespace of a server, so that no two hand out the same pk.
        self.pks = pks or PkSpace()
        self.pki = pki
        self.clock = Clock(settings.clock_start)
        self.rng = RandomSource(settings.seed)
        # What changed since the data dir last saved (recorded only with a data dir).
        self.changes = ChangeLog()
        self.otp = OtpDesk(self.rng, self.clock, settings.otp, self.changes)
        self.keys = keys or KeyPool(run, settings.key_pool_size)
        self.run = run
        self.trust = TrustServices(self)
        self.videoid = VideoIdDesk(self)
        self.signatures = SignatureDesk(self)
        self._checked_pdfs = CheckedPdfs(self._inspect)
        # Weak: a lock lives while someone holds or waits for it, not for every request ever made.
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        # Shared by every certificate of this sandbox rather than made again for each one.
        self.revocation_urls = RevocationUrls.under(settings.public_url, settings.namespace)
        self._seed = seed
        self.events = EventBus()
        self.events.subscribe(self._note_change)
        self._background: set[asyncio.Task] = set()
        # Makes what changed durable before a background result shows (the data dir's flush).
        self.commit: Callable[[], Awaitable[None]] = _nothing_to_commit
        self.retention = Retention(settings.retention)
        self.retention.hold_while(self.signatures.pending)
        self.reset()

    def reset(self) -> None:
        """Back to the start state (seed file included), replaying the same random sequence."""
        self.rng.reset()
        self.clock.reset()
        self.otp.reset()
        self.state = State.initial()
        self.retention.reset()
        self._locks.clear()
        self.next_pk = self._first_pk()
        self.signatures.reset()
        authorities = self.state.settings.setdefault("registration_authorities", {})
        for ra, url in self.settings.ra_webhooks:
            authorities.setdefault(ra, {})["webhook_url"] = url
        self.changes.everything()
        self.events.publish(SandboxReset())
        if self._seed is not None:
            self._seed.apply(self)

    def _note_change(self, event: Event) -> None:
        if isinstance(event, StatusChanged | ContractSigned | CertificateRevoked):
            self.changes.request(event.request.pk)

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox clock ``seconds`` ahead (back if negative); ``ClockRangeError`` outside its range."""
        self.clock.advance(seconds)
        self.events.publish(ClockMoved(self.clock.now(), self.clock.offset.total_seconds()))

    def set_clock(self, moment: datetime) -> None:
        """Set the sandbox clock to ``moment``; ``ClockRangeError`` outside its range."""
        self.clock.set(moment)
        self.events.publish(ClockMoved(self.clock.now(), self.clock.offset.total_seconds()))

    def registration_authority(self, ra: int) -> dict[str, Any]:
        """The settings of a Registration Authority (webhook URL and format): ``{}`` if none."""
        authorities = self.state.settings.get("registration_authorities") or {}
        entry = authorities.get(str(ra)) if isinstance(authorities, dict) else None
        return entry if isinstance(entry, dict) else {}

    def _first_pk(self) -> int:
        draw = self.rng.integer(10_000, 60_000)
        return PkSpace.first_pk(not self.settings.namespace, self.settings.seed, draw)

    def allocate_pk(self) -> int:
        """The next request pk free here and in no other namespace's blocks."""
        while True:
            pk = self.pks.allocate(self.settings.namespace, self.next_pk)
            self.next_pk = pk + 1
            if pk not in self.state.requests:
                return pk

    def hold_pks(self) -> None:
        """Claim the pk blocks of the requests a data dir or an archive brought back."""
        for pk in self.state.requests:
            self.pks.hold(self.settings.namespace, pk)

    # Requests -----------------------------------------------------------------

    def create_request(self, fields: Mapping[str, str], files: list[Upload], pk: int | None = None,
                       webhook_format: str | None = None) -> SignatureRequest:
        """Validate, approve at once with the caller's RAO credentials: ``ENROLLREADY``.

        Identity images (document_front, document_rear, document_owner, extra_document) are optional.
        """
        checked = validation.validate_create_request(fields, self.request_defaults())
        rao = accounts.resolve_rao(self.state, fields)
        request = self.new_request(checked, rao, pk)
        request.identity_images = {f.field: f.data for f in files if f.field in IDENTITY_IMAGES}
        request.webhook_format = webhook_format
        self.store_request(request, Status.CREATED)
        self.move(request, Status.ENROLLREADY)
        return request

    def request_defaults(self) -> validation.RequestDefaults:
        """What settings supply to a create call that leaves fields out."""
        general, defaults = self.state.settings["general"], self.state.settings["request"]
        return validation.RequestDefaults(
            environment=str(general.get("environment") or ""),
            profile=str(defaults.get("default_profile") or ""),
            registration_authority=str(defaults.get("default_ra") or ""),
        )

    def new_request(self, checked: validation.ValidatedRequest, rao: Rao | None,
                    pk: int | None = None) -> SignatureRequest:
        """A request from a checked create body, not stored yet."""
        return SignatureRequest(
            pk=pk if pk is not None else self.allocate_pk(),
            identity=checked.identity,
            profile=checked.profile,
            registration_authority=checked.registration_authority,
            rao=rao,
            env=checked.env,
            scratchcard=self.rng.digits(7),
            communication_language=checked.communication_language,
            created_at=self.clock.now(),
            status=Status.CREATED,
            async_mode=checked.async_mode,
            callback=checked.callback,
        )

    def store_request(self, request: SignatureRequest, first_status: Status) -> None:
        """Keep a new request and enter it in the lifecycle; finished requests past the retention go."""
        self.evict(self.retention.due(self.clock.now()))
        self.state.requests[request.pk] = request
        self.move(request, first_status)

    def move(self, request: SignatureRequest, status: Status, at: datetime | None = None) -> None:
        """The one way a request changes status: recorded in its history (now, or ``at``), then published."""
        change = lifecycle.transition(request, status, at or self.clock.now())
        if status in FINISHED:
            self.retention.finished(request.pk, change.at)
        self.events.publish(StatusChanged(request, change))

    def evict(self, pks: list[int]) -> None:
        """Forget finished requests: their documents, SMS and certificate (a revoked one stays
        listed in the CRL); subscribers drop the rest (the webhook log)."""
        if not pks:
            return
        for pk in pks:
            self.changes.request(pk)
            request = self.state.requests.pop(pk, None)
            certificate = request.certificate if request is not None else None
            if certificate is not None and certificate.revoked_at is None:
                self.state.certificates.pop(certificate.serial, None)
        self.otp.forget(set(pks))
        self.events.publish(RequestsEvicted(tuple(pks)))

    async def request_detail(self, request: SignatureRequest) -> dict[str, Any]:
        """What GET /request/{pk} shows of ``request``, in every family."""
        return views.request_detail(request, await self.trust.rao_certificate(request.rao))

    def find_request(self, pk: str | int, not_found_key: str, **values: Any) -> SignatureRequest:
        """The request ``pk`` for a call that may change it, or the vendor error ``not_found_key`` of
        the calling operation."""
        request = self.read_request(pk, not_found_key, **values)
        # The data dir compares the request's rows with what it wrote: a call that changed nothing
        # writes nothing.
        self.changes.request(request.pk)
        return request

    def read_request(self, pk: str | int, not_found_key: str, **values: Any) -> SignatureRequest:
        """The request ``pk`` for a call that only reads it (as :meth:`find_request`)."""
        number = parse_number(pk)
        request = self.state.requests.get(number) if number is not None else None
        if request is None:
            raise vendor_error(not_found_key, pk=pk, **values)
        return request

    # OTP ----------------------------------------------------------------------

    def generate_otp(self, pk: str, delivery_method: str | None) -> OutboxMessage:
        """Create a code and "send" it to the request's phone (the outbox)."""
        channel = str(delivery_method or "sms").strip().lower()
        if channel not in CHANNELS:
            raise vendor_error("generate_otp.400.invalid_delivery_method", value=delivery_method)
        request = self.find_request(pk, "generate_otp.404.not_found")
        if request.status != Status.ENROLLREADY:
            raise vendor_error("generate_otp.412.invalid_status")
        if self.otp.too_soon(request.pk):
            raise vendor_error("generate_otp.412.too_soon")
        message = self.otp.issue(
            request.pk, request.identity.mobile_phone_number, channel, request.communication_language
        )
        self.events.publish(SmsSent(message.request, message.to, message.channel, message.otp, message.sent_at,
                                    message.delivered_at))
        return message

    # Documents ----------------------------------------------------------------

    async def upload_documents(self, pk: str, uploads: list[Upload]) -> list[Document]:
        """Store the PDFs and hash files of one upload call after checking each can be signed."""
        request = self.find_request(pk, "upload_document.404.not_found")
        if not uploads:
            raise vendor_error("upload_document.400.missing_file")
        self._check_room(request, uploads)
        checked: list[tuple[Upload, int, HashToSign | None]] = []
        for upload in uploads:
            if upload.field.startswith("hashfile"):
                checked.append((upload, 0, parse_hash_file(upload.filename or "hashfile.json", upload.data)))
                continue
            if not _PDF_HEADER.search(upload.data[:1024]):
                raise vendor_error("upload_document.415.unsupported", type=_describe_type(upload))
            try:
                report = await self._checked_pdfs.report(upload.data, upload.sha256)
            except DocumentRefused as refusal:
                raise vendor_error(
                    "upload_document.400.unsignable", filename=upload.filename, reason=str(refusal)
                ) from None
            checked.append((upload, report.page_count, None))
        async with self.lock(request):
            # Checked again: a sign or another upload may have run while the PDFs were inspected.
            self._check_room(request, uploads)
            now = self.clock.now()
            documents = [
                Document.from_upload(self.rng.uuid(), upload, now, pages, hash_file)
                for upload, pages, hash_file in checked
            ]
            request.documents.update((d.uid, d) for d in documents)
        return documents

    def _check_room(self, request: SignatureRequest, uploads: list[Upload]) -> None:
        limits = self.settings.limits
        if (len(uploads) > limits.max_files_per_upload
                or len(request.documents) + len(uploads) > limits.max_documents_per_request):
            raise vendor_error("upload_document.400.max_documents", pk=request.pk)
        if request.status == Status.ISSUED:
            raise vendor_error("upload_document.412.already_issued")
        if request.signing:
            raise vendor_error("upload_document.412.signing", pk=request.pk)

    async def _inspect(self, data: bytes) -> PdfReport:
        # A small PDF is checked in about half a millisecond: shipping it to a worker process
        # would cost more, and queue the upload behind every signature in progress.
        if len(data) <= _INLINE_INSPECTION_BYTES:
            return inspect_pdf(data)
        return await self.run(inspect_pdf, data)

    def lock(self, request: SignatureRequest) -> asyncio.Lock:
        """Serialises the changes of one request that span an await (signing, uploads)."""
        lock = self._locks.get(request.pk)
        if lock is None:
            lock = self._locks[request.pk] = asyncio.Lock()
        return lock

    def list_documents(self, pk: str, operation: str = "list_documents") -> list[Document]:
        request = self.read_request(pk, f"{operation}.404.not_found")
        if not request.documents:
            raise vendor_error(f"{operation}.404.not_found")
        return list(request.documents.values())

    def delete_all_documents(self, pk: str) -> None:
        self.list_documents(pk, "delete_all_documents")
        self.find_request(pk, "delete_all_documents.404.not_found").documents.clear()

    def document_download(self, pk: str, kind: str, uid: str) -> Download:
        """An original or signed document; 404 while a signed one does not exist yet."""
        request = self.read_request(pk, "retrieve_document.404.not_found")
        document = request.documents.get(uid)
        if document is None or kind not in ("original", "signed"):
            raise vendor_error("retrieve_document.404.not_found")
        if kind == "original":
            # The spec serves originals as octet-stream; PDFs keep their own type so clients see a PDF.
            content_type = "application/octet-stream" if document.hash_file else document.mime
            return Download(document.data, content_type, document.filename)
        if document.signed is None:
            raise vendor_error("retrieve_document.404.not_found")
        if document.hash_file is not None:
            name = os.path.splitext(document.filename)[0] + ".p7m"
            return Download(document.signed, "application/pkcs7-mime", name)
        return Download(document.signed, document.mime, document.filename)

    def delete_document(self, pk: str, kind: str, uid: str) -> None:
        """Delete a document (``original``) or only its signed version (``signed``)."""
        request = self.find_request(pk, "delete_document.404.not_found", uid=uid, type=kind)
        document = request.documents.get(uid)
        if document is None or kind not in ("original", "signed") or (
            kind == "signed" and document.signed is None
        ):
            raise vendor_error("delete_document.404.not_found", uid=uid, type=kind)
        if kind == "signed":
            document.signed = None
        else:
            del request.documents[uid]

    def resume(self) -> None:
        """Finish the asynchronous signings a restored state had acknowledged."""
        self.signatures.resume()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background; :meth:`close` waits for it."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Let background signing finish (the app is shutting down)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def stop(self) -> None:
        """End background work at once, unfinished (the namespace is gone)."""
        running = list(self._background)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    # Settings, tokens, metadata, images: thin pass-throughs keep one entry point.

    def create_token(self, fields: Mapping[str, str]):
        return accounts.create_token(self.state, self.rng, fields)

    def add_metadata(self, fields: Mapping[str, Any]):
        return library.add_metadata(self.state, self.rng, fields)

    def add_image(self, files: list[Upload]) -> Image:
        """Store the ``image`` part (or the only file) of an upload call."""
        uploads = [f for f in files if f.field == "image"] or files
        if not uploads:
            raise vendor_error("upload_image.400.missing_image")
        return library.add_image(self.state, self.rng, uploads[0], self.clock.now())


def _describe_type(upload: Upload) -> str:
    declared = os.path.splitext(upload.filename)[1] or upload.content_type or "unknown"
    return f"{declared} (the content is not a PDF)"
