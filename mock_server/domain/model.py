"""The sandbox's domain objects. No HTTP here: both API families and the control API
read and change these through :mod:`mock_server.domain.service`."""

from __future__ import annotations

import enum
import functools
import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime

from mock_server.pki.authority import SignerIdentity
from mock_server.pki.cades import HashToSign
from mock_server.pki.signing import SignJob


class Status(enum.StrEnum):
    """Request statuses, spelt as the vendor does."""

    CREATED = "CREATED"
    VIDEOPENDING = "VIDEOPENDING"
    VIDEOREVIEW = "VIDEOREVIEW"
    VIDEOINCOMPLETE = "VIDEOINCOMPLETE"
    VIDEOERROR = "VIDEOERROR"
    ENROLLREADY = "ENROLLREADY"
    ISSUED = "ISSUED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class StatusChange:
    """One step of a request's history."""

    status: Status
    previous: Status | None
    at: datetime


@dataclass
class Rao:
    """A registration authority officer account."""

    pk: int
    username: str
    password: str
    pin: str
    registration_authority: int


@dataclass
class Token:
    """Stored RAO credentials; password and pin may be left for each call to supply.

    ``builtin`` tokens come with the sandbox; ``protected`` ones cannot be deleted.
    """

    uid: str
    username: str
    password: str | None
    pin: str | None
    builtin: bool = False
    protected: bool = False


@dataclass
class Image:
    """A signature image (PNG or JPEG)."""

    uid: str
    filename: str
    mime: str
    data: bytes
    width: int
    height: int
    uploaded_at: datetime


@dataclass
class Metadata:
    """A base64 metadata blob with its OID, referenced by the sign call."""

    uid: str
    oid: str
    metadata: str


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart body, as any API family received it."""

    field: str
    filename: str
    content_type: str
    data: bytes

    @functools.cached_property
    def sha256(self) -> str:
        """The SHA-256 of ``data`` (hex), worked out once for all who need it: the upload check,
        the document, the request journal."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Download:
    """Bytes a client downloads, with the content type and file name they are served with."""

    data: bytes
    content_type: str
    filename: str


@dataclass
class Document:
    """A PDF uploaded to a request, and its signed version once signed."""

    uid: str
    key: str
    filename: str
    mime: str
    ext: str
    data: bytes
    digest: str
    page_count: int
    uploaded_at: datetime
    signed: bytes | None = None
    hash_file: HashToSign | None = None

    @classmethod
    def from_upload(
        cls, uid: str, upload: Upload, now: datetime, page_count: int = 0, hash_file: HashToSign | None = None
    ) -> Document:
        """A request's PDF, or its hash file (a digest signed as a detached CMS) when ``hash_file``."""
        default_name, mime = ("hashfile.json", "application/json") if hash_file else ("document.pdf", "application/pdf")
        filename = upload.filename or default_name
        return cls(
            uid=uid,
            key=upload.field,
            filename=filename,
            mime=mime,
            ext=os.path.splitext(filename)[1] or os.path.splitext(default_name)[1],
            data=upload.data,
            digest=upload.sha256,
            page_count=page_count,
            uploaded_at=now,
            hash_file=hash_file,
        )


@dataclass(frozen=True)
class Identity(SignerIdentity):
    """The signer as the create call described them: what the certificate names, plus the phone."""

    mobile_phone_number: str = ""


@dataclass
class IssuedCertificate:
    """A one-shot certificate issued at sign time, and its revocation."""

    serial: int
    der: bytes
    issued_at: datetime
    request_pk: int
    revoked_at: datetime | None = None


@dataclass
class VideoId:
    """The video identification of a VideoID request."""

    pk: int
    link_id: str
    mode: str  # "eidas" (the sandbox's link page) or "external" (the integrator's evidences)
    webhook_url: str | None = None
    evidences: dict | None = None
    evidences_complete: bool = False
    video: bytes | None = None
    reason: str | None = None
    validated: bool = False
    refused: bool = False


@dataclass
class SignatureRequest:
    """One signer, one one-shot certificate, N documents."""

    pk: int
    identity: Identity
    profile: str
    registration_authority: int
    rao: Rao | None
    env: str
    scratchcard: str
    communication_language: str
    created_at: datetime
    status: Status
    history: list[StatusChange] = field(default_factory=list)
    documents: dict[str, Document] = field(default_factory=dict)
    identity_images: dict[str, bytes] = field(default_factory=dict)
    contract: bytes | None = None
    signed_contract: bytes | None = None
    # How to sign the contract under the request's certificate, until someone asks for it.
    contract_job: SignJob | None = None
    certificate: IssuedCertificate | None = None
    async_mode: bool = False
    callback: str | None = None
    webhook_format: str | None = None  # the newer API family's requests default to "new"
    signing: bool = False
    failure: str | None = None
    videoid: VideoId | None = None

    @property
    def contract_signed(self) -> bool:
        """Whether the contract is (or, on first demand, will be) signed."""
        return self.signed_contract is not None or self.contract_job is not None

