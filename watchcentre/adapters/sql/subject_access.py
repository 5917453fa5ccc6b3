"""A person's request (docs/data-protection.md): every stored text that mentions an identifier.

A plain scan, page by page, matched in Python: case-insensitive for every script (SQLite's lower()
knows only ASCII), and blind to the separators people write numbers with ("+33 6 12-34", "12.34"),
so that a phone or passport number is found however it was typed. No index: a data-protection
officer's search is rare, and reads every text once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from watchcentre.adapters.sql.dialects import Dialect
from watchcentre.adapters.sql.store import _MESSAGE_COLUMNS, _NOTE, _fetch_in, _names, _note, _stored_message
from watchcentre.core.lifecycle import Case
from watchcentre.core.ports import Mentions

PAGE = 2000
_SEPARATORS = re.compile(r"[\s.\-/()]+")


def fold(text: str) -> str:
    """What is compared: case-folded, without the separators of numbers."""
    return _SEPARATORS.sub("", text.casefold())


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    data = json.loads(value) if isinstance(value, str) else value
    return "\n".join(_strings(data))


async def matching(d: Dialect, needle: str, limit: int) -> tuple[list[int], list[str], list[int], bool]:
    """(message row ids, case references, note ids) whose text mentions `needle`; and whether the
    scan stopped at `limit` of one kind."""
    want = fold(needle)
    messages: list[int] = []
    after = 0
    while rows := await d.fetch(
        "SELECT id, subject, envelope, raw, error FROM messages WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        PAGE,
    ):
        for r in rows:
            raw = bytes(r[3]).decode("utf-8", "replace") if r[3] is not None else ""
            text = "\n".join((r[1] or "", _json_text(r[2]), raw, r[4] or ""))
            if want in fold(text):
                messages.append(int(r[0]))
        after = int(rows[-1][0])
    cases: list[str] = []
    after_ref = ""
    while rows := await d.fetch(
        "SELECT reference, data FROM cases WHERE reference > $1 ORDER BY reference LIMIT $2", after_ref, PAGE
    ):
        cases += [r[0] for r in rows if want in fold(_json_text(r[1]))]
        after_ref = rows[-1][0]
    notes: list[int] = []
    after = 0
    while rows := await d.fetch("SELECT id, text FROM notes WHERE id > $1 ORDER BY id LIMIT $2", after, PAGE):
        notes += [int(r[0]) for r in rows if want in fold(r[1] or "")]
        after = int(rows[-1][0])
    truncated = max(len(messages), len(cases), len(notes)) > limit
    return messages[:limit], cases[:limit], notes[:limit], truncated


class SqlSubjectAccess:
    """core/ports.SubjectAccessStore on the store's database."""

    _d: Dialect
    get_case: Callable[[str], Awaitable[Case | None]]

    async def mentions(self, needle: str, limit: int = 500) -> Mentions:
        d = self._d
        ids, refs, note_ids, truncated = await matching(d, needle, limit)
        rows = await _fetch_in(d.fetch, f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE", "m.id", ids)
        notes = await _fetch_in(d.fetch, f"SELECT {_names(_NOTE)} FROM notes WHERE", "id", note_ids)
        return Mentions(
            messages=sorted((_stored_message(d, r) for r in rows), key=lambda m: m.id),
            cases=[c for c in [await self.get_case(r) for r in refs] if c is not None],
            notes=sorted((_note(d, r) for r in notes), key=lambda n: n.id or 0),
            truncated=truncated,
        )
