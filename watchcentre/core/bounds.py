"""Bounds on hostile input, shared by every adapter: how deep JSON may nest and which times are sane.

A 600-deep JSON document or a time in year 9999 with a -23:59 offset is no message anyone sends: it
is refused with the field at fault (400 over HTTP, dead letter + `rejected` audit over AMQP) before
it can reach recursion or datetime overflow deeper in (docs/security.md, "Hostile input").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

NOT_BLANK = "[^\\s\u0085\ufeff]"
"""The pattern of a text that must hold something to read: a character that is white space in
neither the server's regex engine (Unicode White_Space: U+0085 too) nor the ECMAScript of the
OpenAPI document's clients (U+FEFF too), so that both refuse the same blank texts."""

MAX_JSON_DEPTH = 32
"""Nesting levels a JSON document may have: an envelope needs 3, a console request 4."""

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Times outside [EARLIEST, LATEST) are refused: no case or message lives there, and the far ends
overflow when converted to UTC."""


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsed JSON nests more than `limit` arrays/objects deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


DEPTH_PROBLEM = f"nested more than {MAX_JSON_DEPTH} levels deep"


def time_problem(at: datetime) -> str | None:
    """Why `at` is not a sane time, or None."""
    try:
        utc = at.astimezone(UTC)
    except OverflowError:
        return f"out of range: between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)"
    if not EARLIEST <= utc < LATEST:
        return f"out of range: between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)"
    return None


def sane_time(at: datetime) -> datetime:
    """A pydantic AfterValidator: `at`, or ValueError naming the range."""
    problem = time_problem(at)
    if problem is not None:
        raise ValueError(problem)
    return at


_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
"""Bidi overrides/isolates and zero-width characters: shown raw, a subject can display reversed
("gnp.exe" as "exe.png") or hide words. The console's dom.js `visible` uses the same list."""


def visible(text: str) -> str:
    """`text` with each bidi-control and zero-width character shown as a marker, e.g. ⟨U+202E⟩."""
    return _INVISIBLE.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)
