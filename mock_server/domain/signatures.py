"""Signing a request: the one-shot certificate, its documents, the contract on first fetch, and
the asynchronous signings that go on in the background (and resume after a restart)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from mock_server.domain.contract import ContractFacts, render_contract
from mock_server.domain.errors import vendor_error
from mock_server.domain.lifecycle import ContractSigned
from mock_server.domain.model import IssuedCertificate, Rao, SignatureRequest, Status
from mock_server.domain.ports import SigningSandbox
from mock_server.domain.scenarios import current_effects
from mock_server.domain.signparams import DocumentOptions, SignParams, parse_sign_body
from mock_server.pki.authority import SignerIdentity, validity_window
from mock_server.pki.signing import (
    Countersigner,
    PdfToSign,
    SignJob,
    SignOutcome,
    VisibleSignature,
    sign_request,
)

log = logging.getLogger(__name__)
CONTRACT_UID = "contract"


@dataclass(frozen=True)
class StagedSign:
    """An asynchronous signing's result, kept (and saved) before it is applied to its request."""

    contract_job: SignJob
    outcome: SignOutcome
    at: datetime


class SignatureDesk:
    """Signs requests for the sandbox it serves."""

    def __init__(self, sandbox: SigningSandbox) -> None:
        self._sandbox = sandbox
        self.reset()

    def reset(self) -> None:
        """No signing under way (the sandbox's start state)."""
        # Acknowledged asynchronous signings, kept until done so that a restart resumes them.
        self.pending_signs: dict[int, SignParams] = {}
        # Asynchronous results computed and saved but not applied yet (see _sign_in_background).
        self.staged_signs: dict[int, StagedSign] = {}

    def pending(self, pk: int) -> bool:
        """Whether request ``pk`` has a signing under way."""
        request = self._sandbox.state.requests.get(pk)
        return pk in self.pending_signs or (request is not None and request.signing)

    async def contract(self, pk: str) -> bytes:
        """The service contract; the signed one once the request is ISSUED."""
        request = self._sandbox.find_request(pk, "retrieve_contract.404.not_found")
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
            request.contract = await self._sandbox.run(render_contract, facts)
        return request.contract

    async def sign(self, pk: str, body: dict[str, Any]) -> SignatureRequest:
        """Issue the one-shot certificate and sign every document and the contract.

        An asynchronous request is checked (status, documents, OTP) now and signed in the
        background: the caller learns the outcome from the async status and the webhooks.
        """
        params = parse_sign_body(body)
        request = self._sandbox.find_request(pk, "sign.404.not_found")
        # Checked before waiting for the lock: the background job holds it until it is done.
        if request.signing:
            raise vendor_error("sign.412.in_progress", pk=request.pk)
        async with self._sandbox.lock(request):
            self._check_signable(request, params)
            if not params.external_auth and not self._sandbox.otp.redeem(request.pk, params.secret):
                raise vendor_error("sign.403.invalid_otp")
            if request.async_mode:
                request.signing = True
                # Kept until done, so a restart from a data dir resumes what was acknowledged.
                self.pending_signs[request.pk] = params
                self._sandbox.spawn(self._sign_in_background(request, params))
                return request
            contract_job, outcome = await self._sign_all(request, params)
            self._record(request, contract_job, outcome)
        if outcome.refused:
            raise vendor_error("sign.400.documents_refused", outcome.refused)
        return request

    async def _sign_in_background(self, request: SignatureRequest, params: SignParams) -> None:
        async with self._sandbox.lock(request):
            try:
                staged = self.staged_signs.get(request.pk)
                if staged is None:
                    contract_job, outcome = await self._sign_all(request, params)
                    staged = StagedSign(contract_job, outcome, self._sandbox.clock.now())
                    self.staged_signs[request.pk] = staged
                    self._sandbox.changes.request(request.pk)
                    # Saved before anyone can see it: after a kill the same signature comes back,
                    # not a new one, and its events come back under the same ids.
                    await self._sandbox.commit()
            except Exception as failure:  # any failure of the job ends the request, as the vendor's would
                log.exception("asynchronous signing of request %s failed", request.pk)
                request.failure = f"{type(failure).__name__}: {failure}"
                self._sandbox.move(request, Status.CANCELLED)
            else:
                self._record(request, staged.contract_job, staged.outcome, staged.at)
            finally:
                request.signing = False
                self._sandbox.changes.request(request.pk)
                self.pending_signs.pop(request.pk, None)
                self.staged_signs.pop(request.pk, None)

    def resume(self) -> None:
        """Finish the asynchronous signings a restored state had acknowledged: a result computed and
        saved before the restart is applied at once (a client may have seen it), the others signed again."""
        for pk, params in list(self.pending_signs.items()):
            request = self._sandbox.state.requests[pk]
            staged = self.staged_signs.pop(pk, None)
            if staged is None:
                request.signing = True
                self._sandbox.spawn(self._sign_in_background(request, params))
                continue
            self._record(request, staged.contract_job, staged.outcome, staged.at)
            request.signing = False
            del self.pending_signs[pk]
            self._sandbox.changes.request(pk)

    def async_status(self, pk: str) -> str:
        """Where an asynchronous request stands (docs/api-families.md lists the values)."""
        request = self._sandbox.read_request(pk, "async_status.404.not_found")
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
            if options.image_data is None and options.image_uid and options.image_uid not in self._sandbox.state.images:
                missing_images[uid] = f"The image {options.image_uid} cannot be found on disk"
            if options.page >= max(document.page_count, 1):
                bad_pages[uid] = (f"Page {options.page} does not exist in file {uid} "
                                  f"({document.page_count} pages, numbered from 0)")
        if missing_images:
            raise vendor_error("sign.404.image_missing", missing_images)
        if bad_pages:
            raise vendor_error("sign.400.invalid_options", bad_pages)
        if params.metadata_uid and params.metadata_uid not in self._sandbox.state.metadata:
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
        rao = self._sandbox.state.raos.get(block.username)
        if rao is None or (rao.password, rao.pin) != (block.password, block.pin):
            raise vendor_error("sign.403.countersignature_credentials")
        return rao

    @staticmethod
    def _options_for(uid: str, params: SignParams) -> DocumentOptions | None:
        return params.options.get(uid, params.options_for_all)

    async def _sign_all(self, request: SignatureRequest, params: SignParams) -> tuple[SignJob, SignOutcome]:
        """Sign the request's documents; the job is kept to sign the contract when it is asked for."""
        sandbox = self._sandbox
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
                    image = sandbox.state.images[options.image_uid].data
                visible = VisibleSignature(options.page, options.box, image, params.text)
            pdfs.append(PdfToSign(uid, document.data, visible, options is not None and options.countersign))
        now = sandbox.clock.now()
        artefact = current_effects().artefact
        not_before, not_after = validity_window(now, sandbox.settings.certificate_lifetime)
        if artefact == "expired_signer":
            not_before, not_after = now - timedelta(days=2), now - timedelta(days=1)
        revocations = sandbox.trust.revocations()
        job = SignJob(
            identity=request.identity,
            key_der=await sandbox.keys.take(),
            certificate_serial=sandbox.rng.serial(),
            not_before=not_before,
            not_after=not_after,
            signing_time=now,
            revocation_urls=sandbox.revocation_urls,
            pdfs=tuple(pdfs),
            hashes=tuple(hashes),
            # One token per signature; countersigned PDFs carry two.
            timestamp_serials=tuple(sandbox.rng.serial() for _ in range(2 * len(pdfs) + len(hashes))),
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
        contract_job = replace(job, pdfs=(), hashes=(), timestamp_serials=(sandbox.rng.serial(),),
                               countersigner=None)
        return contract_job, await sandbox.run(sign_request, sandbox.pki, job)

    async def _signed_contract(self, request: SignatureRequest) -> bytes:
        """Sign the contract with the request's certificate, on first demand.

        Signing it at sign time would double the cost of a flow and keep ~25 KB per request
        that most clients never read; the job re-issues the identical certificate.
        """
        async with self._sandbox.lock(request):
            if request.signed_contract is None and request.contract_job is not None:
                job = replace(request.contract_job, pdfs=(PdfToSign(CONTRACT_UID, await self._contract(request)),))
                outcome = await self._sandbox.run(sign_request, self._sandbox.pki, job)
                request.signed_contract = outcome.signed[CONTRACT_UID]
                request.contract_job = None
                self._sandbox.events.publish(ContractSigned(request))
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
        return Countersigner(identity, await self._sandbox.keys.take(), self._sandbox.rng.serial(), visible)

    def _record(self, request: SignatureRequest, contract_job: SignJob, outcome: SignOutcome,
                at: datetime | None = None) -> None:
        now = at or self._sandbox.clock.now()
        request.certificate = IssuedCertificate(
            outcome.certificate_serial, outcome.certificate_der, now, request.pk, outcome.revoked_at
        )
        self._sandbox.trust.register(request.certificate)
        request.contract_job = contract_job
        for uid, data in outcome.signed.items():
            if uid in request.documents:
                request.documents[uid].signed = data
        self._sandbox.move(request, Status.ISSUED, now)
