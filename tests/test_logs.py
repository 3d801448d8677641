"""The access log: a line queued as fields is the line its log record formats to, and a logger
someone else attached a handler or filter to still gets real records."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mock_server.server import logs


@pytest.fixture
def configured(monkeypatch):
    """``configure_logging`` onto a string stream; the logging set-up before is restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    monkeypatch.setattr(logs, "_configured", None)

    def configure(log_format: str) -> tuple[logs.BatchingStreamHandler, io.StringIO]:
        logs.configure_logging(log_format)
        handler = root.handlers[0]
        handler.stream = stream = io.StringIO()
        return handler, stream

    yield configure
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("pk", [None, 35247, "35247"])
# Paths as clients send them: ids, an escaped space and a percent sign, a non-ASCII name, a quote.
@pytest.mark.parametrize("path", ["/api/v1/sign/35247", "/api/v1/request/12%20%25x", "/oneshot/api/v1/ñandú",
                                  '/api/v1/"quoted"'])
def test_a_queued_access_line_is_the_line_its_record_formats_to(configured, monkeypatch, log_format, pk, path):
    handler, stream = configured(log_format)
    created = 1_764_000_000.25
    monkeypatch.setattr(logs.time, "time", lambda: created)
    logs.log_access("POST", path, 200, 12.345, pk)
    assert handler._pending and not isinstance(handler._pending[0], str)  # fields, not yet a line
    handler.flush()

    record = logging.LogRecord(logs.access_logger.name, logging.INFO, __file__, 0, logs.ACCESS_FORMAT,
                               ("POST", path, 200, 12.345, pk or "-"), None)
    record.created, record.msecs = created, 250.0
    record.http = {"method": "POST", "path": path, "status": 200, "ms": 12.3, "request_pk": pk}
    assert stream.getvalue() == handler.format(record) + "\n"
    if log_format == "json":
        assert json.loads(stream.getvalue())["http"]["request_pk"] == pk


def test_a_handler_of_the_access_logger_gets_real_records(configured):
    _, stream = configured("text")
    seen: list[logging.LogRecord] = []
    listener = logging.Handler()
    listener.emit = seen.append
    logs.access_logger.addHandler(listener)
    try:
        logs.log_access("GET", "/api/v1/hello", 200, 1.0, None)
    finally:
        logs.access_logger.removeHandler(listener)
    [record] = seen
    assert record.getMessage() == "GET /api/v1/hello 200 1.0ms pk=-" and record.http["path"] == "/api/v1/hello"
    logging.getLogger().handlers[0].flush()
    assert "GET /api/v1/hello 200 1.0ms pk=-" in stream.getvalue()  # propagated as a record too


def test_a_filter_on_the_access_logger_is_obeyed(configured):
    handler, stream = configured("text")
    drop_hellos = logging.Filter()
    drop_hellos.filter = lambda record: "/hello" not in record.getMessage()
    logs.access_logger.addFilter(drop_hellos)
    try:
        logs.log_access("GET", "/api/v1/hello", 200, 1.0, None)
        logs.log_access("GET", "/api/v1/version", 200, 1.0, None)
    finally:
        logs.access_logger.removeFilter(drop_hellos)
    handler.flush()
    assert "/api/v1/version" in stream.getvalue() and "/api/v1/hello" not in stream.getvalue()
