"""Real-world odd PDFs: each either signs and validates, or is refused with a clear 4xx."""

from __future__ import annotations

import pytest

from tests.helpers import blank_pdf, covers_whole_document, validate

SIGNS = [
    "empty-a4.pdf",
    "fontembed.pdf",
    "four-stamps-fixed.pdf",
    "info-bin-producer-string.pdf",
    "leaky-graphics-state-doc.pdf",
    "extensions-direct.pdf",
    "minimal-pdf-ua-and-a.pdf",
    "minimal-hybrid-xref.pdf",
    "minimal-hybrid-xref-mswordstyle.pdf",
    "minimal-badxref.pdf",
    "minimal-broken-xref-size.pdf",
    "circular-page-tree.pdf",
    "minimal-signed-twice-both-created.pdf",
]
REFUSED = {
    "certified-with-indirect-refs-in-dir.pdf": (400, "Author signature forbids all changes"),
    "minimal-aes256.pdf": (400, "Encrypted documents cannot be signed"),
    "minimal-rc4.pdf": (400, "Encrypted documents cannot be signed"),
    "minimal-pubkey-aes256.pdf": (400, "Encrypted documents cannot be signed"),
    "malformed-encrypt-dict1.pdf": (400, "cannot be signed"),
    "minimal-illegal-header.pdf": (415, "Unsupported file type"),
    "minimal-startxref-hopeless.pdf": (400, "Malformed PDF"),
    "broken-objstream1.pdf": (400, "Malformed PDF"),
}


@pytest.mark.parametrize("name", SIGNS)
async def test_signable_pdf_signs_and_validates(sandbox, corpus, name):
    original = (corpus / name).read_bytes()
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk, original, name)
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    assert answer.status == 200, answer.body
    signed = await sandbox.signed(pk, uid)
    assert signed.startswith(original), "the signature must be an incremental update"
    status = await validate(signed)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert covers_whole_document(status), status.pretty_print_details()


async def test_earlier_signatures_stay_valid(sandbox, corpus):
    original = (corpus / "minimal-signed-twice-both-created.pdf").read_bytes()
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk, original)
    await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    signed = await sandbox.signed(pk, uid)
    for index in (0, 1):
        earlier = await validate(signed, index)
        assert earlier.intact and earlier.valid
    assert (await validate(signed, 2)).trusted


@pytest.mark.parametrize("name", sorted(REFUSED))
async def test_unsignable_pdf_refused_at_upload_in_envelope(sandbox, corpus, name):
    status, reason = REFUSED[name]
    pk = await sandbox.create_request()
    answer = await sandbox.upload(pk, ("file", name, (corpus / name).read_bytes()))
    assert answer.status == status
    assert answer.content_type == "application/json"
    assert answer.body["status"].startswith(str(status))
    assert reason in answer.body["details"]


async def test_refusal_never_breaks_the_request(sandbox, corpus):
    pk = await sandbox.create_request()
    good = await sandbox.upload_pdf(pk, blank_pdf())
    refused = await sandbox.upload(pk, ("file", "enc.pdf", (corpus / "minimal-aes256.pdf").read_bytes()))
    assert refused.status == 400
    listing = await sandbox.call("GET", f"/api/v1/documents/{pk}")
    assert list(listing.body["details"]) == [good]
    assert (await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})).status == 200
    assert (await validate(await sandbox.signed(pk, good))).bottom_line
