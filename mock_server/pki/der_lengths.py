"""asn1crypto re-encodes definite-length values as if they were indefinite-length: corrected here.

asn1crypto 1.5.1 (the latest release) decides that a value was read with an indefinite length,
and must be re-encoded in full (``dump(force=True)``), when the last octet of its cached header
is ``0x80`` (wbond/asn1crypto#249, open since 2022). A definite length whose lowest octet is
``0x80`` matches too: a SignedData of 7,552 content bytes has the header ``30 82 1D 80``. A
forced dump of a freshly built structure re-encodes every descendant several times over, so
that one PAdES CMS in about a hundred (7,575 bytes with an EC one-shot key) took 9-24 s inside
pyHanko instead of 15 ms.

A value read with an indefinite length keeps its end-of-contents octets as ``_trailer``; one
with a definite length has none. :func:`install` wraps each ``dump`` that carries the faulty
test so that a header ending in ``0x80`` without a trailer is rebuilt from the value's own
contents (the same octets for DER input, a cheap step) instead of forcing a full re-encoding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asn1crypto import core

# The classes whose own ``dump`` holds the test (asn1crypto 1.5.1, core.py).
_PATCHED = (core.Asn1Value, core.Choice, core.Primitive, core.Sequence, core.SequenceOf)
_MARK = "_oneshot_definite_length_fix"


def install() -> None:
    """Correct the indefinite-length test of asn1crypto's ``dump`` methods, once per process."""
    for cls in _PATCHED:
        dump = cls.__dict__["dump"]
        if not getattr(dump, _MARK, False):
            cls.dump = _definite_lengths_kept(dump)


def _definite_lengths_kept(dump: Callable[..., bytes]) -> Callable[..., bytes]:
    @functools.wraps(dump)
    def wrapper(self: Any, force: bool = False) -> bytes:
        header = self._header
        if not force and header is not None and header[-1:] == b"\x80" and not self._trailer:
            self._header = None
        return dump(self, force)

    setattr(wrapper, _MARK, True)
    return wrapper
