"""Watch lists: an operator watches an identifier or a phrase, with a reason and an expiry; a new
message that matches raises one alert per message and watch (`watch_hit`). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from watchcentre.core.identifiers import Identifier, IdKind
from watchcentre.core.text import fold, phrase_key, tokens

IdKindName = Literal["phone", "email", "iban", "document", "imo", "plate", "btc", "eth"]
assert set(IdKindName.__args__) == {k.value for k in IdKind}  # type: ignore[attr-defined]


class WatchInput(BaseModel):
    """POST /api/watches: what to watch, why, until when."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["identifier", "phrase"]
    id_kind: IdKindName | None = Field(default=None, description="For an identifier: its kind.")
    value: str = Field(min_length=1, max_length=200, description="As written; normalised when stored.")
    label: str = Field(min_length=1, max_length=100, description="Shown on the alert.")
    reason: str = Field(min_length=1, max_length=500)
    expires_at: datetime


class Watch(BaseModel):
    id: int
    kind: Literal["identifier", "phrase"]
    id_kind: str | None
    value: str = Field(description="Normalised: E.164 phone, compact IBAN, folded phrase…")
    label: str
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None

    def active(self, now: datetime) -> bool:
        return self.ended_at is None and self.expires_at > now


class WatchHit(BaseModel):
    """A new message that matched a watch: the console's alert until an operator acknowledges it."""

    watch: Watch
    message_pk: int
    at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None


def searchable(text: str) -> str:
    """Text as phrase watches compare it: folded tokens between single spaces, one at each end."""
    return " " + " ".join(tokens(fold(text))) + " "


def phrase_value(phrase: str) -> str:
    return phrase_key(phrase)


def hits(watches: Sequence[Watch], identifiers: Iterable[Identifier], texts: Sequence[str]) -> list[Watch]:
    """The watches a message matches: an identifier it holds, or a phrase its text contains (whole
    words, accents and case aside)."""
    held = {(i.kind, i.value) for i in identifiers}
    text: str | None = None
    out = []
    for w in watches:
        if w.kind == "identifier":
            if (w.id_kind, w.value) in held:
                out.append(w)
        else:
            text = text if text is not None else searchable(" \n ".join(texts))
            if f" {w.value} " in text:
                out.append(w)
    return out
