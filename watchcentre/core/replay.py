"""What-if: a stored message decided again by candidate rules, compared with what was decided. Pure.

`before` is what the rules decided when the message came in: for a message an operator routed by
hand, the automatic decision that preceded it, not the operator's override (a rule change is
judged against the rules, and an override says nothing of them). Case actions (ack, status,
clarification) follow their case, not the rules: they are not replayed. A purged message (no
subject or body left, data protection) is counted and skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from watchcentre.core.classify import Classification
from watchcentre.core.envelope import CASE_KINDS, Envelope, Routing
from watchcentre.core.routing import Original, decide
from watchcentre.core.rules import Rules

_IN_REPLY = re.compile(r"^to (\S+): in reply to (.+) sent by (\S+)$")
_PREVIOUSLY = "previously: "
_TARGET = re.compile(r"\b(?:country|crime) ([A-Za-z_]+)\b")


@dataclass(frozen=True, slots=True)
class Decided:
    """A stored message as a replay needs it: what came in, and what the rules decided then."""

    id: int
    sender: str
    message_id: str
    envelope: dict[str, Any] | None
    recipients: list[str]
    """The rules' decision (for a message routed by hand: the automatic one before it)."""
    explanation: list[str]


@dataclass(frozen=True, slots=True)
class Change:
    message_id: str
    sender: str
    before: list[str]
    after: list[str]
    why: list[str]


class Outcome(StrEnum):
    SAME = "same"
    CHANGED = "changed"
    PURGED = "purged"
    CASE_ACTION = "case_action"
    UNREADABLE = "unreadable"


def purged(envelope: dict[str, Any] | None) -> bool:
    """No text left to decide from: the message was purged (or never had any)."""
    if not envelope:
        return True
    subject, body = envelope.get("subject"), envelope.get("body")
    return not (isinstance(subject, str) and subject.strip()) and not (isinstance(body, str) and body.strip())


def original_of(explanation: Sequence[str]) -> Original | None:
    """The message it answered, as the stored explanation names it (`to K: in reply to M sent by S`)."""
    for line in explanation:
        while line.startswith(_PREVIOUSLY):
            line = line[len(_PREVIOUSLY) :]
        if m := _IN_REPLY.match(line):
            return Original(m.group(3), m.group(2), (m.group(1),))
    return None


def replay(decided: Decided, rules: Rules) -> tuple[Outcome, Change | None]:
    """Decide the message again with `rules`; the change, if its recipients differ."""
    if purged(decided.envelope):
        return Outcome.PURGED, None
    try:
        env = Envelope.model_validate(decided.envelope)
    except ValidationError:
        return Outcome.UNREADABLE, None
    if env.kind in CASE_KINDS:
        return Outcome.CASE_ACTION, None
    cls = rules.classifier.classify(env.subject, env.body, env.countries, env.crime_types)
    routing = decide(
        env, cls, rules.network, original_of(decided.explanation), rules.handling, rules.competence
    )
    before, after = decided.recipients, routing.recipients
    if set(before) == set(after):
        return Outcome.SAME, None
    return Outcome.CHANGED, Change(
        decided.message_id, decided.sender, list(before), list(after), why(decided, routing, cls)
    )


def why(decided: Decided, routing: Routing, cls: Classification) -> list[str]:
    """The candidate's reasons for each recipient it adds, the reasons it no longer holds for each it
    drops, and the phrases (evidence) those reasons rest on."""
    before, after, explanation = set(decided.recipients), set(routing.recipients), routing.explanation
    added = [
        line for line in explanation if line.startswith("to ") and line.split(":", 1)[0][3:] not in before
    ]
    old = {
        line.split(":", 1)[0][3:]: line for line in _unwrapped(decided.explanation) if line.startswith("to ")
    }
    dropped = [
        f"no longer {old.get(r, f'to {r}: (no reason recorded)')}"
        for r in decided.recipients
        if r not in after
    ]
    decisions = [
        line
        for line in explanation
        if not line.startswith("to ") and (": covered by no post" in line or "the centre decides" in line)
    ]
    targets = {t for line in [*added, *dropped, *decisions] for t in _TARGET.findall(line)}
    evidence = [e.describe() for e in cls.evidence if e.target in targets and not e.negated_by]
    return [*added, *dropped, *decisions, *evidence[:6]]


def _unwrapped(lines: Sequence[str]) -> list[str]:
    out = []
    for line in lines:
        while line.startswith(_PREVIOUSLY):
            line = line[len(_PREVIOUSLY) :]
        out.append(line)
    return out
