"""The operations every API family calls: one implementation of each vendor behaviour."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from mock_server.domain import accounts, library, lifecycle, validation, views
from mock_server.domain.changes import ChangeLog
from mock_server.domain.clock import Clock
from mock_server.domain.contract import ContractFacts, render_contract
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
    IssuedCertificate,
    Rao,
    SignatureRequest,
    Status,
    Upload,
)
from mock_server.domain.pdfchecks import CheckedPdfs
from mock_server.domain.pkspace import PkSpace
from mock_server.domain.ports import Runner
from mock_server.domain.retention import FINISHED, Retention, RetentionPolicy
from mock_server.domain.scenarios import current_effects
from mock_server.domain.seedfile import SeedData
from mock_server.domain.signparams import DocumentOptions, SignParams, parse_sign_body
from mock_server.domain.sms import CHANNELS, OtpDesk, OtpPolicy, OutboxMessage
from mock_server.domain.store import State
from mock_server.domain.trust import TrustServices
from mock_server.domain.videoid import VideoIdDesk
from mock_server.pki.authority import PkiMaterial, RevocationUrls, SignerIdentity, validity_window
from mock_server.pki.cades import HashToSign
from mock_server.pki.keypool import KeyPool
from mock_server.pki.pades import DocumentRefused, PdfReport
from mock_server.pki.signing import (
    Countersigner,
    PdfToSign,
    SignJob,
    SignOutcome,
    VisibleSignature,
    inspect_pdf,
    sign_request,
)

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


@dataclass(frozen=True)
class StagedSign:
    """An asynchronous signing's result, kept (and saved) before it is applied to its request."""

    contract_job: SignJob
    outcome: SignOutcome
    at: datetime


async def _nothing_to_commit() -> None:
    """In memory, a change is as durable as it gets at once."""


class Sandbox:
    """The whole sandbox behind the HTTP adapters."""

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
        self.retention.hold_while(self._signing_pending)
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
        self.pending_signs: dict[int, SignParams] = {}
        # Asynchronous results computed and saved but not applied yet (see _sign_in_background).
        self.staged_signs: dict[int, StagedSign] = {}
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

    def _signing_pending(self, pk: int) -> bool:
        request = self.state.requests.get(pk)
        return pk in self.pending_signs or (request is not None and request.signing)

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
        async with self._lock(request):
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

    def _lock(self, request: SignatureRequest) -> asyncio.Lock:
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

    async def contract(self, pk: str) -> bytes:
        """The service contract; the signed one once the request is ISSUED."""
        request = self.find_request(pk, "retrieve_contract.404.not_found")
        if request.contract_signed:
            return await self._signed_contract(request)
        return await self._contract(request)

    async def _contract(self, request: SignatureRequest) -> bytes:
        if request.contract is None:
            identity = request.identity
            facts = ContractFacts(
                request_pk=request.pk,
                signer_name=request.identity.common_name,
                id_document=f"{identity.id_document_type} {identity.id_document_country} "
                            f"{identity.serial_number}",
                email=identity.email,
                mobile_phone_number=identity.mobile_phone_number,
                profile=request.profile,
                registration_authority=str(request.registration_authority),
                date=request.created_at.strftime("%d/%m/%Y %H:%M:%S UTC"),
            )
            request.contract = await self.run(render_contract, facts)
        return request.contract

    # Signing ------------------------------------------------------------------

    async def sign(self, pk: str, body: dict[str, Any]) -> SignatureRequest:
        """Issue the one-shot certificate and sign every document and the contract.

        An asynchronous request is checked (status, documents, OTP) now and signed in the
        background: the caller learns the outcome from the async status and the webhooks.
        """
        params = parse_sign_body(body)
        request = self.find_request(pk, "sign.404.not_found")
        # Checked before waiting for the lock: the background job holds it until it is done.
        if request.signing:
            raise vendor_error("sign.412.in_progress", pk=request.pk)
        async with self._lock(request):
            self._check_signable(request, params)
            if not params.external_auth and not self.otp.redeem(request.pk, params.secret):
                raise vendor_error("sign.403.invalid_otp")
            if request.async_mode:
                request.signing = True
                # Kept until done, so a restart from a data dir resumes what was acknowledged.
                self.pending_signs[request.pk] = params
                self.spawn(self._sign_in_background(request, params))
                return request
            contract_job, outcome = await self._sign_all(request, params)
            self._record(request, contract_job, outcome)
        if outcome.refused:
            raise vendor_error("sign.400.documents_refused", outcome.refused)
        return request

    async def _sign_in_background(self, request: SignatureRequest, params: SignParams) -> None:
        async with self._lock(request):
            try:
                staged = self.staged_signs.get(request.pk)
                if staged is None:
                    contract_job, outcome = await self._sign_all(request, params)
                    staged = self.staged_signs[request.pk] = StagedSign(contract_job, outcome, self.clock.now())
                    self.changes.request(request.pk)
                    # Saved before anyone can see it: after a kill the same signature comes back,
                    # not a new one, and its events come back under the same ids.
                    await self.commit()
            except Exception as failure:  # any failure of the job ends the request, as the vendor's would
                log.exception("asynchronous signing of request %s failed", request.pk)
                request.failure = f"{type(failure).__name__}: {failure}"
                self.move(request, Status.CANCELLED)
            else:
                self._record(request, staged.contract_job, staged.outcome, staged.at)
            finally:
                request.signing = False
                self.changes.request(request.pk)
                self.pending_signs.pop(request.pk, None)
                self.staged_signs.pop(request.pk, None)

    def resume(self) -> None:
        """Finish the asynchronous signings a restored state had acknowledged: a result computed and
        saved before the restart is applied at once (a client may have seen it), the others signed again."""
        for pk, params in list(self.pending_signs.items()):
            request = self.state.requests[pk]
            staged = self.staged_signs.pop(pk, None)
            if staged is None:
                request.signing = True
                self.spawn(self._sign_in_background(request, params))
                continue
            self._record(request, staged.contract_job, staged.outcome, staged.at)
            request.signing = False
            del self.pending_signs[pk]
            self.changes.request(pk)

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

    def async_status(self, pk: str) -> str:
        """Where an asynchronous request stands (docs/api-families.md lists the values)."""
        request = self.read_request(pk, "async_status.404.not_found")
        if request.signing:
            return "signing"
        return {
            Status.ENROLLREADY: "approved",
            Status.ISSUED: "signed",
            Status.CANCELLED: "failed" if request.failure else "cancelled",
        }.get(request.status, "pending")

    def _check_signable(self, request: SignatureRequest, params: SignParams) -> None:
        if request.status == Status.ISSUED:
            raise vendor_error("sign.412.already_issued")
        if request.status != Status.ENROLLREADY:
            raise vendor_error("sign.412.invalid_status", status=request.status.value)
        unknown = [uid for uid in params.options if uid not in request.documents]
        if unknown:
            raise vendor_error("sign.404.documents_missing", uids=", ".join(unknown))
        missing_images: dict[str, str] = {}
        bad_pages: dict[str, str] = {}
        for uid, document in request.documents.items():
            options = self._options_for(uid, params)
            if options is None or document.hash_file is not None:
                continue
            if options.image_data is None and options.image_uid and options.image_uid not in self.state.images:
                missing_images[uid] = f"The image {options.image_uid} cannot be found on disk"
            if options.page >= max(document.page_count, 1):
                bad_pages[uid] = (f"Page {options.page} does not exist in file {uid} "
                                  f"({document.page_count} pages, numbered from 0)")
        if missing_images:
            raise vendor_error("sign.404.image_missing", missing_images)
        if bad_pages:
            raise vendor_error("sign.400.invalid_options", bad_pages)
        if params.metadata_uid and params.metadata_uid not in self.state.metadata:
            raise vendor_error("sign.404.metadata_missing")
        wants_countersignature = any(
            (options := self._options_for(uid, params)) is not None and options.countersign
            for uid in request.documents
        )
        if wants_countersignature or params.countersignature is not None:
            self._countersigning_rao(params)
        counter = params.countersignature
        if wants_countersignature and counter is not None and counter.page is not None:
            for uid, document in request.documents.items():
                options = self._options_for(uid, params)
                if options is not None and options.countersign and counter.page >= max(document.page_count, 1):
                    bad_pages[uid] = (f"Countersignature page {counter.page} does not exist in file {uid} "
                                      f"({document.page_count} pages, numbered from 0)")
            if bad_pages:
                raise vendor_error("sign.400.invalid_options", bad_pages)

    def _countersigning_rao(self, params: SignParams) -> Rao:
        """The RAO account whose credentials the ``countersignature`` block carries."""
        block = params.countersignature
        if block is None:
            raise vendor_error("sign.400.missing_parameter", name="countersignature")
        rao = self.state.raos.get(block.username)
        if rao is None or (rao.password, rao.pin) != (block.password, block.pin):
            raise vendor_error("sign.403.countersignature_credentials")
        return rao

    @staticmethod
    def _options_for(uid: str, params: SignParams) -> DocumentOptions | None:
        return params.options.get(uid, params.options_for_all)

    async def _sign_all(self, request: SignatureRequest, params: SignParams) -> tuple[SignJob, SignOutcome]:
        """Sign the request's documents; the job is kept to sign the contract when it is asked for."""
        pdfs = []
        hashes = []
        for uid, document in request.documents.items():
            if document.hash_file is not None:
                hashes.append((uid, document.hash_file))
                continue
            options = self._options_for(uid, params)
            visible = None
            if options is not None:
                image = options.image_data
                if image is None and options.image_uid:
                    image = self.state.images[options.image_uid].data
                visible = VisibleSignature(options.page, options.box, image, params.text)
            pdfs.append(PdfToSign(uid, document.data, visible, options is not None and options.countersign))
        now = self.clock.now()
        artefact = current_effects().artefact
        not_before, not_after = validity_window(now, self.settings.certificate_lifetime)
        if artefact == "expired_signer":
            not_before, not_after = now - timedelta(days=2), now - timedelta(days=1)
        revocations = self.trust.revocations()
        job = SignJob(
            identity=request.identity,
            key_der=await self.keys.take(),
            certificate_serial=self.rng.serial(),
            not_before=not_before,
            not_after=not_after,
            signing_time=now,
            revocation_urls=self.revocation_urls,
            pdfs=tuple(pdfs),
            hashes=tuple(hashes),
            # One token per signature; countersigned PDFs carry two.
            timestamp_serials=tuple(self.rng.serial() for _ in range(2 * len(pdfs) + len(hashes))),
            # No validation data for an expired or revoked signer: its OCSP answer would say "good".
            ltv=params.ltv and artefact not in ("expired_signer", "revoked_signer"),
            artefact=artefact,
            # A revoked signer is revoked from the start, so validators see it revoked when it signed.
            revoked_at=not_before if artefact == "revoked_signer" else None,
            revocations=revocations,
            crl_number=len(revocations) + 1,
            countersigner=await self._countersigner(params) if any(p.countersign for p in pdfs) else None,
        )
        # The contract's own time-stamp serial is drawn now, so the random sequence does not depend
        # on whether (or when) a client fetches the signed contract.
        contract_job = replace(job, pdfs=(), hashes=(), timestamp_serials=(self.rng.serial(),), countersigner=None)
        return contract_job, await self.run(sign_request, self.pki, job)

    async def _signed_contract(self, request: SignatureRequest) -> bytes:
        """Sign the contract with the request's certificate, on first demand.

        Signing it at sign time would double the cost of a flow and keep ~25 KB per request
        that most clients never read; the job re-issues the identical certificate.
        """
        async with self._lock(request):
            if request.signed_contract is None and request.contract_job is not None:
                job = replace(request.contract_job, pdfs=(PdfToSign(CONTRACT_UID, await self._contract(request)),))
                outcome = await self.run(sign_request, self.pki, job)
                request.signed_contract = outcome.signed[CONTRACT_UID]
                request.contract_job = None
                self.events.publish(ContractSigned(request))
        if request.signed_contract is None:
            raise RuntimeError(f"the contract of request {request.pk} has no signing job")
        return request.signed_contract

    async def _countersigner(self, params: SignParams) -> Countersigner | None:
        block = params.countersignature
        if block is None:
            return None
        rao = self._countersigning_rao(params)
        visible = None
        if block.page is not None and block.box is not None:
            visible = VisibleSignature(block.page, block.box, None, block.text)
        identity = SignerIdentity(
            given_name="OneShot", surname_1="Operator", surname_2="", id_document_type="IDC",
            id_document_country="ES", serial_number=rao.username, email="",
        )
        return Countersigner(identity, await self.keys.take(), self.rng.serial(), visible)

    def _record(self, request: SignatureRequest, contract_job: SignJob, outcome: SignOutcome,
                at: datetime | None = None) -> None:
        now = at or self.clock.now()
        request.certificate = IssuedCertificate(
            outcome.certificate_serial, outcome.certificate_der, now, request.pk, outcome.revoked_at
        )
        self.trust.register(request.certificate)
        request.contract_job = contract_job
        for uid, data in outcome.signed.items():
            if uid in request.documents:
                request.documents[uid].signed = data
        self.move(request, Status.ISSUED, now)

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
