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
    {"token", "authorization", "cookie", "password", "secret", "body", "raw", "envelope", "amqp_url",
     "database_url", "wc_session"}
)  # fmt: skip
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@", re.I)
_TOKEN = re.compile(r"wct_[A-Za-z0-9_-]{8,}")


def scrub(text: str) -> str:
    """Passwords out of URLs (amqp://user:***@host), bearer tokens out of free text."""
    return _TOKEN.sub("wct_***", _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text))


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no secret and no message body reaches a log line."""
    for key, value in list(event.items()):
        if key.lower() in SENSITIVE_KEYS:
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = scrub(value)
    return event


class _ScrubFilter(logging.Filter):
    """The same for the standard library's loggers (aiohttp, aio-pika, asyncpg)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
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
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
