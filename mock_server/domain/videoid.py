"""VideoID workflows: eIDAS (the sandbox's link page) and external (the integrator's evidences).

VIDEOPENDING → (identification) VIDEOREVIEW | VIDEOINCOMPLETE | VIDEOERROR → (RAO) ENROLLREADY
or CANCELLED. From ENROLLREADY on, a VideoID request is signed like a classic one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mock_server.domain import accounts, validation
from mock_server.domain.errors import vendor_error
from mock_server.domain.evidences import review_evidences
from mock_server.domain.fakes import fake_identity
from mock_server.domain.ids import parse_number
from mock_server.domain.model import SignatureRequest, Status, Upload, VideoId
from mock_server.domain.ports import RequestDesk

_WAITING = (Status.VIDEOPENDING, Status.VIDEOINCOMPLETE)
_OUTCOMES = {"complete": Status.VIDEOREVIEW, "incomplete": Status.VIDEOINCOMPLETE, "error": Status.VIDEOERROR}
_IDENTITY_KEYS = ("given_name", "surname_1", "surname_2", "serial_number", "id_document_type",
                  "id_document_country", "email", "mobile_phone_number")


class VideoIdDesk:
    """Every VideoID operation, on the sandbox's state."""

    def __init__(self, sandbox: RequestDesk) -> None:
        self._sandbox = sandbox

    # Creation and identification ------------------------------------------------

    def create(self, fields: Mapping[str, str], webhook_format: str | None = None,
               profile_required: bool = False, *, pk: int | None = None, videoid_pk: int | None = None,
               link_id: str | None = None, auto_complete: bool = True) -> SignatureRequest:
        """A VIDEOPENDING request; eIDAS RAs get a link page, external RAs an empty link.

        ``profile_required``: the newer family documents ``profile`` as required (the legacy one
        takes the sandbox's default profile when it is left out). ``pk``, ``videoid_pk`` and
        ``link_id`` are a seed file's fixed ids. ``auto_complete`` False: no completion is scheduled
        even with ``--videoid-auto-complete`` (a seed file is applied before the event loop runs)."""
        sandbox = self._sandbox
        ra = (fields.get("registration_authority") or sandbox.request_defaults().registration_authority).strip()
        number = parse_number(ra)
        authority = sandbox.registration_authority(number) if number is not None else {}
        if not authority:
            raise vendor_error("create_videoid.404.ra_not_found")
        mode = authority.get("videoid_mode", "disabled")
        if mode not in ("eidas", "external"):
            raise vendor_error("create_videoid.400.videoid_disabled", ra=ra)
        required = ("email", "mobile_phone_number", "profile") if profile_required else ("email", "mobile_phone_number")
        if any(not fields.get(name, "").strip() for name in required):
            raise vendor_error("create_videoid.400.missing_parameters")
        webhook_url = fields.get("webhook_url", "").strip() or None
        if webhook_url is not None and "://" not in webhook_url:
            # The vendor's samples send "my-webhook-url.com" and document the call as succeeding.
            webhook_url = f"http://{webhook_url}"
        # The identity comes later (identification, evidences, update): only the contact is checked now.
        checked = validation.validate_create_request(
            {**fields, "registration_authority": ra}, sandbox.request_defaults(), require_identity=False
        )
        request = sandbox.new_request(checked, rao=None, pk=pk)
        request.webhook_format = webhook_format
        request.videoid = VideoId(
            pk=videoid_pk if videoid_pk is not None else sandbox.rng.integer(100, 99_999),
            link_id=link_id or sandbox.rng.hex_uid(), mode=mode, webhook_url=webhook_url,
        )
        sandbox.store_request(request, Status.VIDEOPENDING)
        delay = sandbox.settings.videoid_auto_complete
        if mode == "eidas" and delay is not None and auto_complete:
            sandbox.spawn(self._complete_later(request, delay))
        return request

    async def _complete_later(self, request: SignatureRequest, delay: float) -> None:
        await self._sandbox.clock.sleep(delay)
        if request.status in _WAITING:
            self.identify(request, "complete")

    def find(self, pk: str, not_found_key: str) -> SignatureRequest:
        """A VideoID request by request pk."""
        request = self._sandbox.find_request(pk, not_found_key)
        if request.videoid is None:
            raise vendor_error(not_found_key, pk=pk)
        return request

    def by_videoid_pk(self, videoid_pk: str, not_found_key: str) -> SignatureRequest:
        """A VideoID request by its videoid pk (the newer API keys VideoID calls so)."""
        for request in self._sandbox.state.requests.values():
            if request.videoid is not None and str(request.videoid.pk) == str(videoid_pk):
                self._sandbox.changes.request(request.pk)
                return request
        raise vendor_error(not_found_key, pk=videoid_pk)

    def by_link(self, link_id: str) -> SignatureRequest | None:
        found = next(
            (r for r in self._sandbox.state.requests.values() if r.videoid and r.videoid.link_id == link_id), None
        )
        if found is not None:
            self._sandbox.changes.request(found.pk)
        return found

    def identify(self, request: SignatureRequest, outcome: str) -> None:
        """The video identification ended: ``complete``, ``incomplete`` or ``error``."""
        target = _OUTCOMES[outcome]
        allowed = _WAITING if outcome != "incomplete" else (Status.VIDEOPENDING,)
        if request.status not in allowed:
            raise vendor_error("identify.412.invalid_status", status=request.status.value, outcome=outcome)
        if outcome == "complete":
            self._fill_identity(request, fake_identity(self._sandbox.rng.integer(0, 2**31)))
        _videoid(request).reason = None if outcome == "complete" else f"identification {outcome}"
        self._sandbox.move(request, target)

    @staticmethod
    def _fill_identity(request: SignatureRequest, found: Mapping[str, str]) -> None:
        """Identity fields the request does not have yet, from what identification read."""
        current = dataclasses.asdict(request.identity)
        changes = {k: str(found[k]) for k in _IDENTITY_KEYS if found.get(k) and not current.get(k)}
        request.identity = dataclasses.replace(request.identity, **changes)
        request.contract = None

    # External mode ------------------------------------------------------------------

    def upload_evidences(self, request: SignatureRequest, body: dict[str, Any]) -> None:
        """Store evidences: invalid ones → VIDEOERROR (the reason is kept), then :meth:`_advance`."""
        videoid = _videoid(request)
        if request.status not in _WAITING:
            raise vendor_error("upload_data.412.invalid_status", status=request.status.value)
        review = review_evidences(body)
        videoid.evidences = body
        videoid.evidences_complete = review.complete
        videoid.reason = review.reason
        if review.invalid:
            self._sandbox.move(request, Status.VIDEOERROR)
            return
        if review.complete:
            self._fill_identity(request, review.ocr)
        self._advance(request)

    def upload_video(self, request: SignatureRequest, files: list[Upload]) -> None:
        """Store the ``video`` part of an upload call."""
        videoid = _videoid(request)
        upload = next((f for f in files if f.field == "video"), None)
        if upload is None or not upload.data:
            raise vendor_error("upload_video.400.missing_video")
        if request.status not in _WAITING:
            raise vendor_error("upload_video.412.invalid_status", status=request.status.value)
        videoid.video = upload.data
        self._advance(request)

    def _advance(self, request: SignatureRequest) -> None:
        """Evidences and video both complete → VIDEOREVIEW; evidences with parts missing →
        VIDEOINCOMPLETE; one of the two still to come → no change."""
        videoid = _videoid(request)
        if videoid.evidences_complete and videoid.video is not None:
            videoid.reason = None
            self._sandbox.move(request, Status.VIDEOREVIEW)
        elif videoid.evidences is not None and not videoid.evidences_complete and (
                request.status == Status.VIDEOPENDING):
            self._sandbox.move(request, Status.VIDEOINCOMPLETE)

    def video(self, pk: str) -> bytes:
        request = self.find(pk, "download_video.404.not_found")
        video = _videoid(request).video
        if video is None:
            raise vendor_error("download_video.404.no_video", pk=request.pk)
        return video

    # RAO decisions ------------------------------------------------------------------------

    def validate(self, request: SignatureRequest, fields: Mapping[str, str]) -> None:
        """Two-step mode, first step: the RAO checked the identification."""
        accounts.resolve_rao(self._sandbox.state, fields, "validate_request")
        if request.status != Status.VIDEOREVIEW:
            raise vendor_error("validate_request.412.invalid_status", status=request.status.value)
        _videoid(request).validated = True

    def approve(self, request: SignatureRequest, fields: Mapping[str, str]) -> None:
        """The RAO approves: ENROLLREADY (validating too unless the RA is in two-step mode)."""
        rao = accounts.resolve_rao(self._sandbox.state, fields, "approve_request")
        if request.status != Status.VIDEOREVIEW:
            raise vendor_error("approve_request.412.invalid_status", status=request.status.value)
        videoid = _videoid(request)
        two_step = bool(self._sandbox.registration_authority(request.registration_authority).get("videoid_two_step"))
        if two_step and not videoid.validated:
            raise vendor_error("approve_request.412.not_validated", pk=request.pk)
        missing = [k for k in validation.IDENTITY_FIELDS if not getattr(request.identity, k)]
        if missing:
            raise vendor_error("approve_request.412.identity_incomplete", pk=request.pk, fields=", ".join(missing))
        videoid.validated = True
        request.rao = rao
        self._sandbox.move(request, Status.ENROLLREADY)

    def refuse(self, request: SignatureRequest, fields: Mapping[str, str]) -> None:
        accounts.resolve_rao(self._sandbox.state, fields, "refuse_request")
        reason = fields.get("reason", "").strip()
        if not reason:
            raise vendor_error("refuse_request.400.missing_reason")
        if request.status not in (*_WAITING, Status.VIDEOREVIEW, Status.VIDEOERROR):
            raise vendor_error("refuse_request.412.invalid_status", status=request.status.value)
        videoid = _videoid(request)
        videoid.reason, videoid.refused = f"refused: {reason}", True
        self._sandbox.move(request, Status.CANCELLED)

    def cancel(self, pk: str) -> None:
        """Cancel any request that is not issued or cancelled yet."""
        request = self._sandbox.find_request(pk, "cancel_request.404.not_found")
        if request.status in (Status.ISSUED, Status.CANCELLED) or request.signing:
            raise vendor_error("cancel_request.412.invalid_status", status=request.status.value)
        self._sandbox.move(request, Status.CANCELLED)

    def update(self, pk: str, fields: Mapping[str, str]) -> None:
        """Correct the signer's data before issuance; the scratchcard must match."""
        request = self._sandbox.find_request(pk, "update_request.404.not_found")
        missing = [k for k in ("scratchcard", "email", "profile", "registration_authority", "country_name")
                   if not fields.get(k, "").strip()]
        if missing:
            raise vendor_error("update_request.400.missing_parameters", fields=", ".join(missing))
        if fields["scratchcard"].strip() != request.scratchcard:
            raise vendor_error("update_request.400.scratchcard_mismatch", pk=request.pk)
        if request.status in (Status.ISSUED, Status.CANCELLED) or request.signing:
            raise vendor_error("update_request.412.invalid_status", status=request.status.value)
        current = dataclasses.asdict(request.identity)
        merged = {**current, **{k: v for k, v in fields.items() if k in current and v.strip()},
                  "id_document_country": fields["country_name"].strip(), "registration_authority": fields[
                      "registration_authority"], "profile": fields["profile"], "env": request.env}
        checked = validation.validate_create_request(
            merged, self._sandbox.request_defaults(), require_identity=request.videoid is None
        )
        request.identity = checked.identity
        request.profile = checked.profile
        request.registration_authority = checked.registration_authority
        request.contract = None


def _videoid(request: SignatureRequest) -> VideoId:
    if request.videoid is None:
        raise RuntimeError(f"request {request.pk} is not a VideoID request")
    return request.videoid
