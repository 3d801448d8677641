"""What each benchmark flow signs as and what it signs: a seeded identity and document per flow.

Every random choice of a run comes from :class:`Draws`, keyed by the run's seed, the phase and the
flow's index in that phase, so that a slow call reported with its identity can be replayed.
"""

from __future__ import annotations

import io
import random
import re
import string
import unicodedata
from dataclasses import dataclass
from functools import cached_property

from faker import Faker
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.stamp import TextStamp, TextStampStyle

from mock_server.domain.contract import A4, MARGIN, ContractFacts, render_contract
from mock_server.pki.authority import COMMON_NAME_MAX_BYTES, common_name

LOCALES = ("es_ES", "pt_PT", "pl_PL", "en_GB", "it_IT", "fr_FR", "de_DE")
ID_DOCUMENT_TYPES = ("IDC", "PAS", "PNO", "TIN", "CI", "CE")
COUNTRIES = ("ES", "PT", "PL", "IT", "FR", "DE", "GB")
PROFILE = "PFnubeNC"
REGISTRATION_AUTHORITY = "9999"
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_ALPHANUMERICS = string.ascii_uppercase + string.digits
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
# Letters NFKD does not split into an ASCII letter and an accent.
_ASCII_FOLDS = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "Æ": "AE",
                              "œ": "oe", "Œ": "OE", "đ": "d", "Đ": "D"})
# Draws of a surname that fits the room left at the bound: enough to end at exactly 64 bytes for
# most identities drawn long.
_FILL_TRIES = 40
_LONG_SHARE = 0.2
# Flows that upload a document of their own rather than one of the shared four: a test suite sends
# the same fixtures again and again, an integrator's app sends every document once.
_ONE_OFF_SHARE = 0.25
_FILE_ID = re.compile(rb"/ID \[ <[0-9a-f]{32}> <[0-9a-f]{32}> \]")
_SURNAME_2_SHARE = 0.6


@dataclass(frozen=True)
class Document:
    """A PDF a classic flow uploads."""

    name: str
    pdf: bytes

    def one_off(self, rng: random.Random) -> Document:
        """The same pages as another document: a new file identifier (the trailer's /ID, same
        length, so every offset holds), hence new bytes the sandbox has never checked."""
        ids = list(_FILE_ID.finditer(self.pdf))[-1]
        fresh = b"/ID [ <%s> <%s> ]" % (rng.randbytes(16).hex().encode(), rng.randbytes(16).hex().encode())
        return Document(f"{self.name}, one-off", self.pdf[:ids.start()] + fresh + self.pdf[ids.end():])


class Draws:
    """The one seeded source of a run: identities, documents, pauses and digests of every flow."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._fakers = {locale: Faker(locale) for locale in LOCALES}
        self.documents = documents()

    def flow(self, phase: str, index: int) -> FlowDraw:
        """The choices of flow ``index`` of ``phase``."""
        return FlowDraw(self, phase, index)

    def stream(self, phase: str, index: int, purpose: str) -> random.Random:
        """An independent random stream: what a flow draws for one purpose does not shift another's."""
        # A str seed is hashed with SHA-512: the same on every run, whatever PYTHONHASHSEED is.
        return random.Random(f"{self.seed}/{phase}/{index}/{purpose}")

    def identity(self, rng: random.Random) -> dict[str, str]:
        """A signer's create-request fields, drawn from ``rng``."""
        fake = self._fakers[rng.choice(LOCALES)]
        fake.seed_instance(rng.getrandbits(64))
        given = [fake.first_name() for _ in range(rng.choice((1, 1, 1, 2, 3)))]
        surname_1 = [fake.last_name()]
        surname_2 = [fake.last_name()] if rng.random() < _SURNAME_2_SHARE else []
        parts = [given, surname_1, surname_2]
        _shorten(parts)
        if rng.random() < _LONG_SHARE:
            _lengthen(parts, fake)
        return {
            "given_name": " ".join(given),
            "surname_1": "-".join(surname_1),
            # Left out, not sent blank, as a client with one surname would.
            **({"surname_2": "-".join(surname_2)} if surname_2 else {}),
            "id_document_type": rng.choice(ID_DOCUMENT_TYPES),
            "id_document_country": rng.choice(COUNTRIES),
            "serial_number": _serial_number(rng),
            "email": _email(given[0], surname_1[0], rng),
            "mobile_phone_number": "+34" + rng.choice("67") + "".join(rng.choices(string.digits, k=8)),
            "registration_authority": REGISTRATION_AUTHORITY,
            "profile": PROFILE,
        }


class FlowDraw:
    """One flow's choices, each drawn on first use from its own stream."""

    def __init__(self, draws: Draws, phase: str, index: int) -> None:
        self.draws = draws
        self.phase = phase
        self.index = index

    @cached_property
    def identity(self) -> dict[str, str]:
        """The signer, as create-request fields."""
        return self.draws.identity(self.draws.stream(self.phase, self.index, "identity"))

    @cached_property
    def document(self) -> Document:
        """The PDF a classic flow uploads."""
        rng = self.draws.stream(self.phase, self.index, "document")
        document = rng.choice(self.draws.documents)
        return document.one_off(rng) if rng.random() < _ONE_OFF_SHARE else document

    @cached_property
    def random(self) -> random.Random:
        """Anything else the flow draws: pauses, digests."""
        return self.draws.stream(self.phase, self.index, "flow")

    def describe(self) -> dict[str, object]:
        """Where the flow came from and what it sent, to replay a slow call."""
        name = identity_common_name(self.identity)
        return {"phase": self.phase, "index": self.index, "identity": self.identity, "common_name_chars": len(name),
                "common_name_utf8_bytes": len(name.encode()), "document": self.document.name}


def identity_common_name(identity: dict[str, str]) -> str:
    """The certificate's common name for the create-request fields ``identity``."""
    return common_name(identity["given_name"], identity["surname_1"], identity.get("surname_2", ""))


def _joined(parts: list[list[str]]) -> str:
    given, surname_1, surname_2 = parts
    return common_name(" ".join(given), "-".join(surname_1), "-".join(surname_2))


def _shorten(parts: list[list[str]]) -> None:
    # Three given names and two surnames can pass the bound: drop given names, then the second surname.
    given, _, surname_2 = parts
    while _bytes(_joined(parts)) > COMMON_NAME_MAX_BYTES and (len(given) > 1 or surname_2):
        if len(given) > 1:
            given.pop()
        else:
            surname_2.clear()


def _lengthen(parts: list[list[str]], fake: Faker) -> None:
    # Hyphenated surnames onto the last one while the common name fits, most often up to the bound.
    last = parts[2] if parts[2] else parts[1]
    for _ in range(_FILL_TRIES):
        room = COMMON_NAME_MAX_BYTES - _bytes(_joined(parts))
        if room < 2:
            return
        name = fake.last_name()
        if _bytes(name.upper()) + 1 <= room:
            last.append(name)


def _bytes(text: str) -> int:
    return len(text.encode())


def _serial_number(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:  # a DNI: 8 digits and their check letter
        number = rng.randrange(10**8)
        return f"{number:08d}{_DNI_LETTERS[number % 23]}"
    if kind == 1:  # an NIE: X, Y or Z standing for 0, 1 or 2, 7 digits and the check letter
        prefix, number = rng.randrange(3), rng.randrange(10**7)
        return f"{'XYZ'[prefix]}{number:07d}{_DNI_LETTERS[(prefix * 10**7 + number) % 23]}"
    return "".join(rng.choices(_ALPHANUMERICS, k=rng.randint(6, 16)))


def _email(given: str, surname: str, rng: random.Random) -> str:
    local = ".".join(_ascii(word) for word in (given.split()[0], surname))
    if rng.random() < 0.5:
        local += str(rng.randrange(1, 1000))
    return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"


def _ascii(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.translate(_ASCII_FOLDS))
    return "".join(c for c in decomposed.lower() if c in string.ascii_lowercase + string.digits) or "signer"


def documents() -> tuple[Document, ...]:
    """The PDFs classic flows draw from: one and several pages, with and without text."""
    contract = render_contract(ContractFacts(0, "BENCH", "IDC ES 0", "b@example.com", "+34600000000",
                                             PROFILE, REGISTRATION_AUTHORITY, "-"))
    return (
        Document("contract, 1 page", contract),
        Document("blank, 1 page", _pdf(1, None)),
        Document("blank, 3 pages", _pdf(3, None)),
        Document("text, 6 pages", _pdf(6, "Benchmark document\nPage text, to be signed.")),
    )


def _pdf(pages: int, text: str | None) -> bytes:
    writer = PdfFileWriter()
    for _ in range(pages):
        contents = writer.add_object(generic.StreamObject(stream_data=b""))
        writer.insert_page(PageObject(contents=contents, media_box=A4))
    if text:
        style = TextStampStyle(stamp_text=text, border_width=0, text_box_style=TextBoxStyle(font_size=11))
        for page in range(pages):
            TextStamp(writer, style=style).apply(page, MARGIN, 700)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
