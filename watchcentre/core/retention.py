"""How long personal data is kept, as data (config/retention.yaml), and what a purge pass decided.

Directive (EU) 2016/680, art. 5: time limits for erasure, or for a periodic review of the need to
keep. Each category has either `erase_after` (erased when that much time has passed) or
`review_after` (kept, but counted as due for review from then on). Durations are those of
config/deadlines.yaml (`hours`, `days`). No I/O here: the purge itself is the store's
(`RetentionStore`), scheduled by `watchcentre/retention.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from watchcentre.core.envelope import Kind
from watchcentre.core.lifecycle import Duration
from watchcentre.core.records import AuditEvent, Status

MAX_KEEP = timedelta(days=100 * 366)
"""A limit longer than a century is a typo (or "forever" in disguise, which the law does not allow)."""

PURGED = "purged"
"""The audit event type of a pass that erased something: one per category (ids in chunks)."""
IDS_PER_RECORD = 1000

CATEGORIES = ("messages", "cases", "notes", "raw_envelopes", "expired_tokens", "dead_letters")
"""What a purge pass counts, in the order it reports them."""


class Limit(BaseModel):
    """Either erase after a time, or review after a time: exactly one of the two."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    erase_after: Duration | None = None
    review_after: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> Limit:
        if (self.erase_after is None) == (self.review_after is None):
            raise ValueError("give exactly one of erase_after and review_after")
        span = (self.erase_after or self.review_after or Duration(days=1)).delta
        if span > MAX_KEEP:
            raise ValueError(f"at most {MAX_KEEP.days} days")
        return self

    @property
    def erases(self) -> bool:
        return self.erase_after is not None

    @property
    def span(self) -> timedelta:
        chosen = self.erase_after or self.review_after
        assert chosen is not None  # _one
        return chosen.delta


class MessageRule(Limit):
    """Messages of a kind and a status (`any` for every one); the first rule matching applies. A
    rejected input has no kind: only a rule with `kind: any` matches it."""

    kind: Kind | Literal["any"] = "any"
    status: Status | Literal["any"] = "any"

    def matches(self, kind: str | None, status: str) -> bool:
        return self.kind in ("any", kind) and self.status in ("any", status)


class RetentionRules(BaseModel):
    """config/retention.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    apply_every: Duration = Field(
        default=Duration(hours=1), description="How often the service runs a purge pass."
    )
    messages: list[MessageRule] = Field(min_length=1)
    cases_after_end: Limit = Field(description="A case's free text, counted from the day it ended.")
    notes: Limit = Field(description="Shift-log notes, counted from when they were written.")
    raw_envelopes: Duration = Field(
        description="The raw bytes of a rejected input (kept for diagnosis), from when it came in."
    )
    expired_tokens: Duration = Field(description="A token's record, from when it expired or was revoked.")
    dead_letters: Duration = Field(description="A dead letter in P.dead, from when it was dead-lettered.")

    @model_validator(mode="after")
    def _complete(self) -> RetentionRules:
        missing = [f"{k or 'no kind'}/{s}" for k, s in COMBINATIONS if self.message_rule(k, s) is None]
        if missing:
            raise ValueError(f"messages: no rule for {', '.join(missing)} (end with kind: any, status: any)")
        if self.apply_every.delta > timedelta(days=1):
            raise ValueError("apply_every: at most a day (a limit must not be overrun by more)")
        return self

    def message_rule(self, kind: str | None, status: str) -> MessageRule | None:
        return next((r for r in self.messages if r.matches(kind, status)), None)

    def message_limits(self) -> dict[tuple[str | None, str], Limit]:
        """The limit in force for each (kind, status) a stored message can have."""
        out: dict[tuple[str | None, str], Limit] = {}
        for kind, status in COMBINATIONS:
            rule = self.message_rule(kind, status)
            assert rule is not None  # _complete
            out[(kind, status)] = rule
        return out


COMBINATIONS: tuple[tuple[str | None, str], ...] = (
    *((k.value, s.value) for k in Kind for s in (Status.ROUTED, Status.TRIAGE)),
    (None, Status.REJECTED.value),
)
"""Every (kind, status) a stored message can have: an accepted one has a kind, a rejected one none."""


@dataclass(frozen=True, slots=True)
class PurgeCount:
    """One category of one pass: how many were erased, how many are due for review (not erased)."""

    erased: int = 0
    review_due: int = 0
    ids: list[str] = field(default_factory=list)
    """What was erased: message `sender/message_id` (or `#id` for a rejected input), case references,
    note ids, token ids, dead-letter ids."""


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What one pass did (or, in a dry run, would do) as of `now`."""

    now: datetime
    dry_run: bool
    counts: dict[str, PurgeCount]

    def summary(self) -> dict[str, dict[str, int]]:
        return {
            c: {"erased": self.counts[c].erased, "review_due": self.counts[c].review_due}
            for c in CATEGORIES
            if c in self.counts
        }


def rule_text(rules: RetentionRules, category: str) -> str:
    """The rule a category was erased by, for its audit record."""
    if category == "messages":
        return "retention.yaml messages: by kind and status"
    span = {
        "cases": rules.cases_after_end.span,
        "notes": rules.notes.span,
        "raw_envelopes": rules.raw_envelopes.delta,
        "expired_tokens": rules.expired_tokens.delta,
        "dead_letters": rules.dead_letters.delta,
    }[category]
    return f"retention.yaml {category}: erase after {span.total_seconds() / 86400:g} days"


def purge_events(
    at: datetime, as_of: datetime, actor: str, category: str, rule: str, count: PurgeCount
) -> list[AuditEvent]:
    """The `purged` records of one category, written at `at`: the rule, the time its limits were
    applied at (`as_of`), how many, and which ids (chunked). Ids and counts only: never the text."""
    ids = count.ids
    chunks = [ids[i : i + IDS_PER_RECORD] for i in range(0, len(ids), IDS_PER_RECORD)] or [[]]
    return [
        AuditEvent(
            at=at,
            type=PURGED,
            actor=actor,
            details={
                "category": category,
                "rule": rule,
                "as_of": as_of.isoformat(),
                "count": count.erased,
                "part": part,
                "parts": len(chunks),
                "ids": chunk,
            },
        )
        for part, chunk in enumerate(chunks, start=1)
    ]
