"""Logging never breaks the caller: a log line goes to the current standard error, redacted."""

from __future__ import annotations

import io
import sys

import pytest
import structlog

from watchcentre.adapters.logging import configure_logging


def test_logging_survives_the_stream_it_was_configured_with_being_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The suite once turned a 401 into a 500: structlog kept the (captured, since closed) stderr of
    # an earlier test, and the failed-authentication log line raised "I/O operation on closed file".
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("json", "INFO")
    log = structlog.get_logger("t")
    log.info("before", token="wct_" + "a" * 43)
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    try:
        log.warning("after", url="amqp://guest:s3cret@host/")  # must not raise
    finally:
        configure_logging("console", "INFO")
    line = second.getvalue()
    assert '"event": "after"' in line and "s3cret" not in line and "amqp://guest:***@host/" in line
