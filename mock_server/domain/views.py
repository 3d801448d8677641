"""JSON-shaped views of domain objects, as the vendor shows them (shared by all API families)."""

from __future__ import annotations

from typing import Any

from cryptography import x509

from mock_server.domain.model import (
    Document,
    Image,
    IssuedCertificate,
    Rao,
    SignatureRequest,
    StatusChange,
    Token,
)
from mock_server.domain.sms import OutboxMessage
from mock_server.pki.authority import certificate_summary

_VENDOR_TIME = "%Y-%m-%dT%H:%M:%S.%f"


def request_detail(request: SignatureRequest, rao_certificate: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``details`` object of GET /request/{pk}; ``rao_certificate`` is the approving officer's."""
    identity = request.identity
    certificates = []
    if request.certificate is not None:
        cert = x509.load_der_x509_certificate(request.certificate.der)
        revoked = request.certificate.revoked_at is not None
        certificates.append({"profile": request.profile, **certificate_summary(cert, revoked)})
    user = _rao_user(request.rao, request.pk) if request.rao else None
    return {
        "pk": request.pk,
        "status": request.status.value,
        "given_name": identity.given_name,
        "surname_1": identity.surname_1,
        "surname_2": identity.surname_2,
        "email": identity.email,
        "mobile_phone_number": identity.mobile_phone_number,
        "serial_number": identity.serial_number,
        "id_document_type": identity.id_document_type,
        "id_document_country": identity.id_document_country,
        "country_name": identity.id_document_country,
        "registration_authority": request.registration_authority,
        "profile": request.profile,
        "scratchcard": request.scratchcard,
        "validity_time": "1",
        "paperless_mode": True,
        "secure_element": 2,
        "videoid_mode": request.videoid is not None,
        "communication_language": request.communication_language,
        "approving_user": user,
        "registering_user": user,
        "approving_rao": {**_rao(request.rao), "certificate": rao_certificate} if request.rao else None,
        "certificate_set": certificates,
    }


def signer_name(request: SignatureRequest) -> str:
    """The signer's given name and surnames as entered ("" while a VideoID request has none yet)."""
    identity = request.identity
    return " ".join(filter(None, (identity.given_name, identity.surname_1, identity.surname_2)))


def _rao_user(rao: Rao, request_pk: int) -> dict[str, Any]:
    return {
        "pk": rao.pk,
        "request": request_pk,
        "permission_profile": 1,
        "registration_authority": rao.registration_authority,
    }


def _rao(rao: Rao) -> dict[str, Any]:
    return {
        "pk": rao.pk,
        "given_name": "OneShot",
        "surname_1": "Operator",
        "surname_2": "",
        "id_document_number": rao.username,
        "id_document_issuer": "",
        "id_document_description": "",
        "is_identificator": False,
        "registration_authority": [],
        "registration_authority_master": rao.registration_authority,
    }


def history(request: SignatureRequest) -> list[dict[str, Any]]:
    """The request's status changes, oldest first."""
    return [status_change(change) for change in request.history]


def status_change(change: StatusChange) -> dict[str, Any]:
    return {
        "status": change.status.value,
        "previous_status": change.previous.value if change.previous else None,
        "date": change.at.strftime(_VENDOR_TIME),
    }


def document_listing(documents: list[Document]) -> dict[str, Any]:
    """The ``details`` object of GET /documents/{pk}."""
    return {
        d.uid: {
            "upload_date": d.uploaded_at.strftime("%d/%m/%Y %H:%M:%S"),
            "ext": d.ext,
            "size": len(d.data),
            "mime": d.mime,
            "filename": d.filename,
        }
        for d in documents
    }


def upload_entry(document: Document) -> dict[str, Any]:
    """One entry of a several-file upload answer."""
    return {"digest": document.digest, "uid": document.uid, "key": document.key, "filename": document.filename}


def image_listing(images: list[Image]) -> dict[str, Any]:
    """The ``details`` object of GET /images."""
    return {
        i.uid: {
            "upload_date": i.uploaded_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "ext": i.filename[i.filename.rfind("."):] if "." in i.filename else "",
            "size": [i.width, i.height],
            "mime": i.mime,
            "filename": i.filename,
        }
        for i in images
    }


def token_credentials(token: Token) -> dict[str, Any]:
    """A token as the vendor shows it: the username, and whether password and pin are stored."""
    return {"username": token.username, "password": token.password is not None, "pin": token.pin is not None}


def outbox_message(message: OutboxMessage) -> dict[str, Any]:
    return {
        "request": message.request,
        "to": message.to,
        "channel": message.channel,
        "text": message.text,
        "otp": message.otp,
        "sent_at": message.sent_at.isoformat(),
        "delivered_at": message.delivered_at.isoformat() if message.delivered_at else None,
    }


def document_summary(document: Document) -> dict[str, Any]:
    """A document as the control API shows it."""
    return {
        "uid": document.uid,
        "filename": document.filename,
        "size": len(document.data),
        "sha256": document.digest,
        "kind": "hash" if document.hash_file is not None else "pdf",
        "pages": document.page_count,
        "signed": document.signed is not None,
    }


def certificate_status(certificate: IssuedCertificate) -> dict[str, Any]:
    """A one-shot certificate as the control API shows it."""
    return {
        "serial": format(certificate.serial, "x"),
        "request": certificate.request_pk,
        "issued_at": certificate.issued_at.isoformat(),
        "revoked_at": certificate.revoked_at.isoformat() if certificate.revoked_at else None,
    }


def videoid_summary(request: SignatureRequest) -> dict[str, Any] | None:
    """A VideoID request's identification, as the control API shows it."""
    videoid = request.videoid
    if videoid is None:
        return None
    return {
        "videoid_pk": videoid.pk,
        "mode": videoid.mode,
        "evidences": videoid.evidences is not None,
        "evidences_complete": videoid.evidences_complete,
        "video": videoid.video is not None,
        "validated": videoid.validated,
        "reason": videoid.reason,
    }


def videoid_created(request: SignatureRequest, base_url: str) -> dict[str, Any]:
    """The answer to a VideoID create: eIDAS requests get the sandbox's link page."""
    videoid = request.videoid
    if videoid is None:
        raise ValueError(f"request {request.pk} is not a VideoID request")
    link = f"{base_url}/videoid/{videoid.link_id}" if videoid.mode == "eidas" else ""
    return {"videoid_pk": videoid.pk, "videoid_link": link, "request_pk": request.pk}
