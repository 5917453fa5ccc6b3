"""structlog set-up: JSON lines in production (not a TTY), readable lines at a terminal."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values are never written: credentials, tokens, message content.
SENSITIVE_KEYS = frozenset(
    {
        "token",
        "authorization",
        "cookie",
        "password",
        "secret",
        "body",
        "raw",
        "envelope",
        "amqp_url",
        "database_url",
        "wc_session",
    }
)
# (the scheme bounded: unbounded, a long run of letters made this quadratic)
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]{0,30}://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@", re.I
)
_TOKEN = re.compile(r"wct_[A-Za-z0-9_-]+")
# Any bearer credential (the metrics token has no wct_ prefix) and the session cookie, as they
# appear in a header quoted by a traceback: `Authorization: Bearer …`, `Cookie: wc_session=…`.
_BEARER = re.compile(r"(?P<keep>bearer\s+)[^\s'\",;]+", re.I)
_SESSION = re.compile(r"(?P<keep>wc_session=)[^\s'\",;]+", re.I)

MAX_TRACEBACK_CHARS = 8000
"""A traceback longer than this is cut in the middle: a hostile input that recursed 1000 frames deep
must not write 155 KB to the log per request."""


def scrub(text: str) -> str:
    """Passwords out of URLs (amqp://user:***@host), bearer tokens and session cookies out of free text."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)
    text = _SESSION.sub(r"\g<keep>***", _BEARER.sub(r"\g<keep>***", text))
    return _TOKEN.sub("wct_***", text)


def bounded(text: str, limit: int = MAX_TRACEBACK_CHARS) -> str:
    """`text` with its middle cut when over `limit` (the head says where, the tail says what)."""
    if len(text) <= limit:
        return text
    head, tail = limit // 4, limit - limit // 4
    return f"{text[:head]}\n... [{len(text) - head - tail} characters cut] ...\n{text[-tail:]}"


def bound_exception(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor, after format_exc_info: a bounded traceback."""
    if isinstance(event.get("exception"), str):
        event["exception"] = bounded(event["exception"])
    return event


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no secret and no message body reaches a log line."""
    for key, value in list(event.items()):
        if key.lower() in SENSITIVE_KEYS:
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = scrub(value)
    return event


class _ScrubFilter(logging.Filter):
    """The same for the standard library's loggers (aiohttp, aio-pika, asyncpg), on the handler so
    that every logger's records pass it, tracebacks included: aiohttp logs its own when a header is
    over 8 KiB, quoting the header (a bearer token) in the exception message."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:  # the handler's formatter uses exc_text as it is, once set
            record.exc_text = bounded(scrub(record.exc_text))
        if record.stack_info:
            record.stack_info = bounded(scrub(record.stack_info))
        return True


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the time of the call, not at configuration time
    (a replaced or closed stream, e.g. under a test runner's capture, must not break logging)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(fmt: str = "auto", level: str = "INFO") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _ScrubFilter) for f in handler.filters):
            handler.addFilter(_ScrubFilter())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            bound_exception,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
