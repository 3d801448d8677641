"""PAdES baseline signing of PDFs with pyHanko, and the upload-time PDF check.

Runs inside signing worker processes: everything here is synchronous and CPU-bound.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from PIL import Image
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.general import SigningError
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import read_certification_data
from pyhanko.stamp import TextStampStyle

from mock_server.pki.keysigner import KeySigner
from mock_server.pki.signeddata import Countersign, signed_data

log = logging.getLogger(__name__)

ENCRYPTED = "Encrypted documents cannot be signed"
FORBIDS_CHANGES = "Author signature forbids all changes"
# Signed attributes, the signature values, the time-stamp token's own structure: what a CMS
# holds besides its certificates (measured 2.3 KB with an RSA TSA; the rest is margin).
_CMS_OVERHEAD = 4096
_DIGEST = "sha256"


class DocumentRefused(Exception):
    """A PDF the sandbox cannot sign, with the reason a client is told."""


@dataclass(frozen=True)
class Appearance:
    """A visible signature: where, and what it shows."""

    page: int
    box: tuple[float, float, float, float]
    text: str
    image: bytes | None


@dataclass(frozen=True)
class PdfReport:
    """What the upload-time check learnt about a PDF."""

    page_count: int


def inspect_pdf(data: bytes) -> PdfReport:
    """Open ``data`` as pyHanko will at sign time; raise :class:`DocumentRefused` if unsignable."""
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypted:
            raise DocumentRefused(ENCRYPTED)
        certification = read_certification_data(reader)
        if certification is not None and certification.permission == MDPPerm.NO_CHANGES:
            raise DocumentRefused(FORBIDS_CHANGES)
        pages = reader.root["/Pages"]
        page_count = int(pages.get("/Count", 0))
    except DocumentRefused:
        raise
    except Exception as exc:  # any parser failure means "not signable"
        raise DocumentRefused(f"Malformed PDF: {_describe(exc)}") from exc
    return PdfReport(page_count=page_count)


@dataclass(frozen=True)
class ValidationMaterial:
    """What a B-LT signature embeds in the document security store: every certificate of the
    signer's and the TSA's chains, and the revocation answers that cover them."""

    certs: tuple[asn1_x509.Certificate, ...]
    crls: tuple[asn1_crl.CertificateList, ...]
    ocsps: tuple[asn1_ocsp.OCSPResponse, ...]


def cms_reserve(certificates: Iterable[bytes]) -> int:
    """pyHanko's ``bytes_reserved`` (hex digits, two per DER byte) for a CMS carrying ``certificates``
    (DER, the signer's and the TSA's) and a time-stamp token: known without signing twice, unlike
    pyHanko's own estimate."""
    return 2 * (_CMS_OVERHEAD + sum(len(der) for der in certificates))


@dataclass(frozen=True)
class SignatureSpec:
    """Who signs, under which field name, when (sandbox time) and with what evidence."""

    signer: KeySigner
    certificates: tuple[asn1_x509.Certificate, ...]  # the CMS's: the signer's and its CA chain
    field_name: str
    signing_time: datetime
    reserve: int  # see cms_reserve
    timestamp: Countersign | None = None  # the signature time-stamp token over a signature value
    validation: ValidationMaterial | None = None


def sign_pdf(data: bytes, spec: SignatureSpec, appearance: Appearance | None) -> bytes:
    """Sign ``data`` as PAdES baseline (ETSI.CAdES.detached): B-T with a timestamp (B-B
    without), B-LT when the spec holds validation material to embed.

    pyHanko writes the PDF (field, appearance, placeholder, byte range) through its interrupted
    signing steps; the CMS is the sandbox's own (:func:`signeddata.signed_data`), as for P7Ms and
    time-stamp tokens. pyHanko's own CMS assembly runs an event loop, attribute providers and a
    time-stamp request and response per signature: about a fifth of a signing job's CPU.
    """
    validation = spec.validation
    field_name = spec.field_name
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
        if writer.prev.encrypted:
            raise DocumentRefused(ENCRYPTED)
        if validation is not None:
            # B-LT in the signed revision itself: the signature covers the validation data too,
            # and validators need no incremental-update analysis (which odd files break).
            # pyHanko would rebuild this from a path validation and a dummy time-stamp on every
            # signature; the sandbox made the material itself and knows it is complete.
            DocumentSecurityStore.supply_dss_in_writer(
                writer, None, certs=validation.certs, crls=validation.crls, ocsps=validation.ocsps
            )
        meta = signers.PdfSignatureMetadata(
            field_name=field_name, md_algorithm=_DIGEST, subfilter=fields.SigSeedSubFilter.PADES,
        )
        field_spec, style = None, None
        if appearance is not None:
            field_spec = fields.SigFieldSpec(
                sig_field_name=field_name, on_page=appearance.page, box=appearance.box
            )
            style = _stamp_style(appearance)
        pdf_signer = signers.PdfSigner(meta, spec.signer, stamp_style=style, new_field_spec=field_spec)
        session = pdf_signer.init_signing_session(writer)
        session.system_time = spec.signing_time
        # No validation context, so no pre-sign validation: the sandbox issued every certificate.
        document = session.prepare_tbs_document(validation_info=None, bytes_reserved=spec.reserve)
        digest, output = document.digest_tbs_document()
        signature = signed_data(
            spec.signer, _DIGEST, digest.document_digest, spec.certificates, timestamp=spec.timestamp
        )
        digest.fill_with_cms(output, signature)
        return output.getvalue()
    except DocumentRefused:
        raise
    except SigningError as exc:
        raise DocumentRefused(str(exc)) from exc
    except Exception as exc:  # pyHanko can die with bare assertions
        log.warning("signing failed, document refused", exc_info=True)
        raise DocumentRefused(f"Malformed PDF: {_describe(exc)}") from exc


def _stamp_style(appearance: Appearance) -> TextStampStyle:
    background = None
    if appearance.image is not None:
        background = PdfImage(Image.open(io.BytesIO(appearance.image)))
    return TextStampStyle(
        # pyHanko applies %-interpolation to stamp_text; the text is already final.
        stamp_text=appearance.text.replace("%", "%%"),
        background=background,
        background_opacity=1.0,
        border_width=0,
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"the document structure is broken (missing {exc.args[0]})"
    text = str(exc).strip()
    return text if text else f"the document structure is broken ({type(exc).__name__})"


def tamper(pdf: bytes) -> bytes:
    """The same signed PDF with one byte of the signed content changed (whitespace, so it
    still parses): validators report that the signed bytes were modified."""
    at = pdf.find(b"\nendobj")
    if at < 0:
        raise DocumentRefused("no object to tamper with")
    return pdf[:at] + b" " + pdf[at + 1:]
