"""The sandbox's log: one line per HTTP request (text or JSON) on stderr, written in batches.

Formatting and writing the access line was a fifth of the cost of a small request, about half of
it one ``write`` system call per line; lines are now gathered and written together, at least every
:data:`FLUSH_INTERVAL_S`, at once for warnings and errors, and on a clean exit. Under ``serve``'s
logging an access line is not even a log record on the request path: :func:`log_access` queues its
fields and the flush formats them as the record would have been (a record and its trip through
the logger were about a tenth of a hello's cost). Anywhere else it is an INFO record of ``mock_server.access``.
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
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_FORMAT = "%s %s %s %.1fms pk=%s"
access_logger = logging.getLogger("mock_server.access")
# The fields of one access line: when (time.time()), method, path, status, milliseconds, request pk.
AccessFields = tuple[float, str, str, int, float, "str | int | None"]


class SecondCachedFormatter(logging.Formatter):
    """A formatter that formats the date part of a timestamp once per second, not once per line."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return super().formatTime(record, datefmt)
        return self._time_of(record.created, record.msecs)

    def _time_of(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime(self.default_time_format, self.converter(second))
        return self.default_msec_format % (self._stamp, msecs)


class TextFormatter(SecondCachedFormatter):
    """Lines of :data:`TEXT_FORMAT`."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format_access(self, fields: AccessFields) -> str:
        """The line :func:`log_access`'s record would format to, made from its fields."""
        return TEXT_FORMAT % {"asctime": self._time_of(fields[0], _msecs(fields[0])), "levelname": "INFO",
                              "name": access_logger.name, "message": _access_message(fields)}


class JsonFormatter(SecondCachedFormatter):
    """One JSON object per log line; access-log fields under ``http``."""

    def format(self, record: logging.LogRecord) -> str:
        return self._line(self.formatTime(record), record.levelname, record.name, record.getMessage(),
                          getattr(record, "http", None),
                          self.formatException(record.exc_info) if record.exc_info else None)

    def format_access(self, fields: AccessFields) -> str:
        """The JSON line :func:`log_access`'s record would format to, made from its fields."""
        return self._line(self._time_of(fields[0], _msecs(fields[0])), "INFO", access_logger.name,
                          _access_message(fields), _access_http(fields))

    @staticmethod
    def _line(when: str, level: str, logger: str, message: str, http: object, exception: str | None = None) -> str:
        entry: dict[str, object] = {"time": when, "level": level, "logger": logger, "message": message}
        if http is not None:
            entry["http"] = http
        if exception:
            entry["exception"] = exception
        return json.dumps(entry)


class BatchingStreamHandler(logging.StreamHandler):
    """A stream handler that writes the lines gathered since its last write in one go: every
    ``interval`` seconds from a thread of its own, and at once for a warning or worse."""

    def __init__(self, stream: TextIO, interval: float = FLUSH_INTERVAL_S) -> None:
        super().__init__(stream)
        self._pending: list[str | AccessFields] = []  # lines, and access lines' fields still to format
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

    def add_access(self, fields: AccessFields) -> None:
        """Queue an access line's fields, formatted when written."""
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(fields)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            # Taken before writing: lines a dead stream refused are dropped, not kept forever.
            pending, self._pending = self._pending, []
            if pending:
                self.stream.write("".join(self._line(item) for item in pending))
            self.stream.flush()

    def close(self) -> None:
        self._closed.set()
        self.flush()
        super().close()

    def _line(self, item: str | AccessFields) -> str:
        if isinstance(item, str):
            return item
        return self.formatter.format_access(item) + self.terminator  # type: ignore[union-attr]

    def _flush_every(self, interval: float) -> None:
        while not self._closed.wait(interval):
            with contextlib.suppress(OSError, ValueError):  # stderr closed or gone: try again later
                self.flush()


_configured: BatchingStreamHandler | None = None  # the handler configure_logging installed


def log_access(method: str, path: str, status: int, ms: float, request_pk: str | int | None) -> None:
    """One access line: queued as fields for :func:`configure_logging`'s handler when its records
    would reach that handler alone, unfiltered; an INFO record of ``mock_server.access`` otherwise."""
    if not access_logger.isEnabledFor(logging.INFO):
        return
    fields = (time.time(), method, path, status, ms, request_pk)
    if _configured is not None and _reaches_only(_configured):
        _configured.add_access(fields)
        return
    # makeRecord + handle, not info(): the caller's file and line would be this function on every
    # line, and looking them up is a quarter of the cost of logging the request.
    access_logger.handle(access_logger.makeRecord(
        access_logger.name, logging.INFO, __file__, 0, ACCESS_FORMAT, _access_args(fields), None,
        extra={"http": _access_http(fields)},
    ))


def _reaches_only(handler: logging.Handler) -> bool:
    # What Logger.callHandlers walks: each logger's filters and handlers up to the root's.
    logger: logging.Logger | None = access_logger
    while logger is not None:
        if logger.filters or (logger.handlers and logger is not logging.root):
            return False
        logger = logger.parent if logger.propagate else None
    handlers = logging.root.handlers
    return len(handlers) == 1 and handlers[0] is handler and not handler.filters \
        and handler.level <= logging.INFO and isinstance(handler.formatter, TextFormatter | JsonFormatter)


def _access_args(fields: AccessFields) -> tuple[object, ...]:
    return (*fields[1:5], fields[5] or "-")


def _access_message(fields: AccessFields) -> str:
    return ACCESS_FORMAT % _access_args(fields)


def _access_http(fields: AccessFields) -> dict[str, object]:
    _, method, path, status, ms, request_pk = fields
    return {"method": method, "path": path, "status": status, "ms": round(ms, 1), "request_pk": request_pk}


def _msecs(created: float) -> float:
    return int((created - int(created)) * 1000) + 0.0  # as LogRecord works it out


def configure_logging(log_format: str) -> None:
    """INFO and up from every logger to stderr, as ``text`` or ``json`` lines."""
    global _configured
    handler = BatchingStreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    _configured = handler
    # No format here shows threads or processes; looking them up for every record is a tenth of
    # the cost of a request (the logging HOWTO's "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # Python 3.12+
