"""The upload-time check of PDFs, done once per distinct document.

A client's test suite uploads the same few fixture PDFs over and over, and parsing one with
pyHanko was half the event loop's work in a signing flow (0.5-1 ms for a small PDF, the rest of
the flow's calls take about 0.3 ms each). The check depends on the bytes alone, so its verdict
is kept per SHA-256 of the content; a refusal is not kept (it is rare, and its message is
rebuilt from the same bytes).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from mock_server.pki.pades import PdfReport

Inspector = Callable[[bytes], Awaitable[PdfReport]]
# Reports are a few dozen bytes each: the bound keeps memory flat under an endless stream of new documents.
MAX_REMEMBERED = 4096


class CheckedPdfs:
    """The check's report for each document content seen lately (least recently used first out)."""

    def __init__(self, inspect: Inspector, size: int = MAX_REMEMBERED) -> None:
        self._inspect = inspect
        self._size = size
        self._reports: OrderedDict[str, PdfReport] = OrderedDict()

    async def report(self, data: bytes, sha256: str | None = None) -> PdfReport:
        """``data``'s report, from an earlier check of the same bytes or from a new one (which raises
        :class:`~mock_server.pki.pades.DocumentRefused` for an unsignable PDF). ``sha256``: the
        digest (hex) when the caller has it already, as an upload does."""
        key = sha256 or hashlib.sha256(data).hexdigest()
        report = self._reports.get(key)
        if report is not None:
            self._reports.move_to_end(key)
            return report
        report = await self._inspect(data)
        self._reports[key] = report
        if len(self._reports) > self._size:
            self._reports.popitem(last=False)
        return report
