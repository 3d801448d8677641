"""What the sandbox's desks (the trust services, the VideoID desk, the signature desk, a seed file)
and the services around it (webhooks, namespaces) need of the sandbox they serve, as protocols.

The desks work on the :class:`~mock_server.domain.service.Sandbox` that builds them without importing
it: the facade imports its desks, never the other way round, so no domain module imports another in
a circle (``tests/test_layout.py`` computes the import graph).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

from mock_server.domain import validation
from mock_server.domain.changes import ChangeLog
from mock_server.domain.clock import Clock
from mock_server.domain.ids import RandomSource
from mock_server.domain.lifecycle import EventBus
from mock_server.domain.model import IssuedCertificate, Rao, SignatureRequest, Status, Upload
from mock_server.domain.retention import Retention
from mock_server.domain.store import State
from mock_server.pki.authority import PkiMaterial, RevocationUrls
from mock_server.pki.revocation import Revocation

Runner = Callable[..., Awaitable[Any]]  # runs a function in a signing worker


class DeskSettings(Protocol):
    """The settings the desks read."""

    @property
    def seed(self) -> int: ...

    @property
    def videoid_auto_complete(self) -> float | None: ...

    @property
    def namespace(self) -> str: ...

    @property
    def certificate_lifetime(self) -> timedelta: ...


class NamespaceServices(Protocol):
    """What everything around a namespace's sandbox works with: its settings, clock, change log and
    events, its Registration Authorities' settings, and what makes a change durable."""

    @property
    def settings(self) -> DeskSettings: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def changes(self) -> ChangeLog: ...

    @property
    def events(self) -> EventBus: ...

    @property
    def commit(self) -> Callable[[], Awaitable[None]]: ...

    def registration_authority(self, ra: int) -> dict[str, Any]: ...


class SandboxCore(NamespaceServices, Protocol):
    """The state and the services every desk works with."""

    @property
    def state(self) -> State: ...

    @property
    def rng(self) -> RandomSource: ...

    @property
    def pki(self) -> PkiMaterial: ...

    @property
    def revocation_urls(self) -> RevocationUrls: ...

    @property
    def run(self) -> Runner: ...


class VideoIdCreation(Protocol):
    """How a seed file creates its VideoID requests (the VideoID desk's ``create``)."""

    def create(self, fields: Mapping[str, str], webhook_format: str | None = None,
               profile_required: bool = False, *, pk: int | None = None, videoid_pk: int | None = None,
               link_id: str | None = None, auto_complete: bool = True) -> SignatureRequest: ...


class RequestDesk(SandboxCore, Protocol):
    """The lifecycle of requests: what the VideoID desk and a seed file create and move requests with."""

    @property
    def videoid(self) -> VideoIdCreation: ...

    def request_defaults(self) -> validation.RequestDefaults: ...

    def create_request(self, fields: Mapping[str, str], files: list[Upload], pk: int | None = None,
                       webhook_format: str | None = None) -> SignatureRequest: ...

    def new_request(self, checked: validation.ValidatedRequest, rao: Rao | None,
                    pk: int | None = None) -> SignatureRequest: ...

    def store_request(self, request: SignatureRequest, first_status: Status) -> None: ...

    def find_request(self, pk: str | int, not_found_key: str, **values: Any) -> SignatureRequest: ...

    def move(self, request: SignatureRequest, status: Status, at: datetime | None = None) -> None: ...

    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...


class KeySource(Protocol):
    """Where one-shot keys come from (the key pool)."""

    async def take(self) -> bytes: ...


class OtpCheck(Protocol):
    """What the signature desk asks of the OTP desk."""

    def redeem(self, request: int, code: str) -> bool: ...


class CertificateRegistry(Protocol):
    """What the signature desk asks of the trust services."""

    def revocations(self) -> tuple[Revocation, ...]: ...

    def register(self, certificate: IssuedCertificate) -> None: ...


class SigningSandbox(RequestDesk, Protocol):
    """What the signature desk signs a request's documents with."""

    @property
    def keys(self) -> KeySource: ...

    @property
    def otp(self) -> OtpCheck: ...

    @property
    def trust(self) -> CertificateRegistry: ...

    def read_request(self, pk: str | int, not_found_key: str, **values: Any) -> SignatureRequest: ...

    def lock(self, request: SignatureRequest) -> AbstractAsyncContextManager[Any]: ...


class WebhookSource(NamespaceServices, Protocol):
    """What the webhook dispatcher needs of the sandbox whose events it delivers."""

    @property
    def retention(self) -> Retention: ...


class NamespaceSandbox(Protocol):
    """What the namespaces do with each namespace's sandbox: start, stop and end its background work."""

    def resume(self) -> None: ...

    async def stop(self) -> None: ...

    async def close(self) -> None: ...
