"""The sandbox's log: one line per HTTP request (text or JSON) on stderr, written in batches.

Formatting and writing the access line was a fifth of the cost of a small request, about half of
it one ``write`` system call per line; lines are now gathered and written together, at least every
:data:`FLUSH_INTERVAL_S`, at once for warnings and errors, and on a clean exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from typing import TextIO

FLUSH_INTERVAL_S = 0.1


class SecondCachedFormatter(logging.Formatter):
    """A formatter that formats the date part of a timestamp once per second, not once per line."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime(self.default_time_format, self.converter(second))
        return self.default_msec_format % (self._stamp, record.msecs)


class JsonFormatter(SecondCachedFormatter):
    """One JSON object per log line; access-log fields under ``http``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if hasattr(record, "http"):
            entry["http"] = record.http
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class BatchingStreamHandler(logging.StreamHandler):
    """A stream handler that writes the lines gathered since its last write in one go: every
    ``interval`` seconds from a thread of its own, and at once for a warning or worse."""

    def __init__(self, stream: TextIO, interval: float = FLUSH_INTERVAL_S) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._closed = threading.Event()
        threading.Thread(target=self._flush_every, args=(interval,), name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
                self._pending.append(line)
            if record.levelno >= logging.WARNING:
                self.flush()
        except Exception:  # noqa: BLE001 - logging reports a record it cannot handle, never raises
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            # Taken before writing: lines a dead stream refused are dropped, not kept forever.
            lines, self._pending = self._pending, []
            if lines:
                self.stream.write("".join(lines))
            self.stream.flush()

    def close(self) -> None:
        self._closed.set()
        self.flush()
        super().close()

    def _flush_every(self, interval: float) -> None:
        while not self._closed.wait(interval):
            with contextlib.suppress(OSError, ValueError):  # stderr closed or gone: try again later
                self.flush()


def configure_logging(log_format: str) -> None:
    """INFO and up from every logger to stderr, as ``text`` or ``json`` lines."""
    handler = BatchingStreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(SecondCachedFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # No format here shows threads or processes; looking them up for every record is a tenth of
    # the cost of a request (the logging HOWTO's "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # Python 3.12+
