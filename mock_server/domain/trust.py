"""The sandbox as a trust service: revocation (CRL, OCSP) and RFC 3161 time-stamping."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.x509 import ocsp

from mock_server.domain.lifecycle import CertificateRevoked
from mock_server.domain.model import IssuedCertificate, Rao
from mock_server.domain.ports import SandboxCore
from mock_server.pki.authority import SignerIdentity, certificate_summary
from mock_server.pki.revocation import (
    OcspQuery,
    Revocation,
    crl_der,
    issued_by_sandbox,
    malformed_ocsp_response,
    ocsp_response_der,
)
from mock_server.pki.signing import officer_certificate
from mock_server.pki.tsa import timestamp_reply

if TYPE_CHECKING:
    from mock_server.domain.store import State


_RAO_CERTIFICATE_LIFETIME = timedelta(days=730)


class TrustServices:
    """What the sandbox's CA and TSA answer, from the sandbox's current state."""

    def __init__(self, sandbox: SandboxCore) -> None:
        self._sandbox = sandbox
        # Every signature's CRL needs the revoked certificates, and walking every certificate ever
        # issued grew with the sandbox's age: the list is kept until a revocation, a certificate
        # issued revoked on purpose, or a new state (reset, restore) makes it stale.
        self._revoked: tuple[State, tuple[Revocation, ...]] | None = None
        self._rao_certificates: dict[tuple[int, str], dict[str, Any]] = {}

    async def rao_certificate(self, rao: Rao | None) -> dict[str, Any] | None:
        """The ``approving_rao.certificate`` object: the officer's own certificate, issued by the
        sandbox CA (in a signing worker) on first use, its key and serial drawn from the seed and
        the officer."""
        if rao is None:
            return None
        key = (rao.pk, rao.username)
        if key not in self._rao_certificates:
            sandbox = self._sandbox
            digest = hashlib.sha256(f"rao/{sandbox.settings.seed}/{rao.pk}/{rao.username}".encode()).digest()
            start = sandbox.clock.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
            identity = SignerIdentity("OneShot", "Operator", "", "IDC", "ES", rao.username, "")
            der = await sandbox.run(officer_certificate, sandbox.pki, identity, digest, int.from_bytes(digest[:8]) >> 1,
                                    start, start + _RAO_CERTIFICATE_LIFETIME, sandbox.revocation_urls)
            cert = x509.load_der_x509_certificate(der)
            self._rao_certificates[key] = {"profile": "", **certificate_summary(cert), "revokation_reason": None}
        return self._rao_certificates[key]

    def revocations(self) -> tuple[Revocation, ...]:
        """Every revoked certificate, in revocation order."""
        state = self._sandbox.state
        if self._revoked is None or self._revoked[0] is not state:
            revoked = sorted((c for c in state.certificates.values() if c.revoked_at is not None),
                             key=lambda c: c.revoked_at)
            self._revoked = state, tuple(Revocation(c.serial, c.revoked_at) for c in revoked)
        return self._revoked[1]

    def register(self, certificate: IssuedCertificate) -> None:
        """Record a certificate the CA has just issued (possibly revoked already, on purpose)."""
        self._sandbox.state.certificates[certificate.serial] = certificate
        if certificate.revoked_at is not None:
            self._revoked = None

    def revoke(self, serial: int | None = None, request_pk: int | None = None) -> IssuedCertificate:
        """Revoke a one-shot certificate, named by serial or by its request (idempotent)."""
        if request_pk is not None:
            request = self._sandbox.state.requests.get(request_pk)
            certificate = request.certificate if request is not None else None
        else:
            certificate = self._sandbox.state.certificates.get(serial) if serial is not None else None
        if certificate is None:
            raise LookupError("no certificate issued by the sandbox matches")
        if certificate.revoked_at is None:
            certificate.revoked_at = self._sandbox.clock.now()
            self._revoked = None
            request = self._sandbox.state.requests.get(certificate.request_pk)
            if request is not None:
                self._sandbox.events.publish(CertificateRevoked(request, certificate))
        return certificate

    async def crl(self) -> bytes:
        """The issuing CA's current CRL (DER)."""
        sandbox, revocations = self._sandbox, self.revocations()
        return await sandbox.run(crl_der, sandbox.pki, revocations, sandbox.clock.now(), len(revocations) + 1)

    async def ocsp(self, request_der: bytes) -> bytes:
        """An OCSP answer (DER) about one certificate of the issuing CA."""
        try:
            ocsp_request = ocsp.load_der_ocsp_request(request_der)
            nonce = ocsp_request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            nonce = None
        except ValueError:
            return malformed_ocsp_response()
        certificate = self._sandbox.state.certificates.get(ocsp_request.serial_number)
        status, revoked_at = "unknown", None
        if certificate is not None and issued_by_sandbox(self._sandbox.pki, ocsp_request):
            status = "revoked" if certificate.revoked_at else "good"
            revoked_at = certificate.revoked_at
        query = OcspQuery(
            issuer_name_hash=ocsp_request.issuer_name_hash,
            issuer_key_hash=ocsp_request.issuer_key_hash,
            serial=ocsp_request.serial_number,
            hash_algorithm=ocsp_request.hash_algorithm.name,
            nonce=nonce,
            status=status,
            revoked_at=revoked_at,
        )
        return await self._sandbox.run(ocsp_response_der, self._sandbox.pki, query, self._sandbox.clock.now())

    async def timestamp(self, request_der: bytes) -> bytes:
        """The TSA's DER answer to a DER RFC 3161 request."""
        sandbox = self._sandbox
        return await sandbox.run(timestamp_reply, sandbox.pki, request_der, sandbox.clock.now(), sandbox.rng.serial())
