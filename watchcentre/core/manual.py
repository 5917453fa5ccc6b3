"""Manual decisions an operator takes on the console: routing a triage item (or re-routing a routed
message) to recipients of their choice, and the shift log. Pure: the service publishes and records.

A manual routing has the same shape as an automatic one (`Routing`), so recipients and the audit
read it the same way; its explanation starts with `manual by <actor>: <reason>`. Each manual
decision on a message has a revision (1, 2, ...): the copies it publishes get deterministic AMQP
message ids from (sender, message_id, recipient, revision), so retrying the same decision never
produces a second copy, and a recipient can tell a re-route from a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from watchcentre.core.bounds import NOT_BLANK
from watchcentre.core.envelope import Routing
from watchcentre.core.errors import Invalid
from watchcentre.core.handling import HandlingRules
from watchcentre.core.lifecycle import Case
from watchcentre.core.network import Network
from watchcentre.core.records import AuditEvent
from watchcentre.core.routing import CENTRE_INBOX, TRIAGE, forbidden_by_marking, post_key, unit_key

MAX_REASON = 1000
MAX_RECIPIENTS = 20


class ManualRoutingError(Invalid, ValueError):
    """A manual decision that cannot be taken as asked; names the field at fault."""


class MarkingForbids(ManualRoutingError):
    """The message's (or its case's) handling marking does not allow these recipients, and the
    operator did not say they override it (409: the request is fine, the message's marking is not)."""


def marking_override(
    recipients: Sequence[str], marking: str | None, rules: HandlingRules, override_reason: str | None
) -> dict[str, Any] | None:
    """What a manual routing overrides of the marking (for its audit event), None when the marking
    allows it; MarkingForbids when it does not and `override_reason` is None (no explicit override)."""
    forbidden = forbidden_by_marking(recipients, marking, rules)
    if not forbidden:
        return None
    effect = rules.effect(marking).value
    if override_reason is None:
        raise MarkingForbids(
            "recipients",
            f"handling {marking} ({effect}) does not allow {', '.join(forbidden)}:"
            " set override_marking, with override_reason, to route it all the same",
        )
    why = override_reason.strip()
    if not why:
        raise ManualRoutingError("override_reason", "required to override a handling marking")
    if len(why) > MAX_REASON:
        raise ManualRoutingError("override_reason", f"at most {MAX_REASON} characters")
    return {"marking": marking, "effect": effect, "forbidden": forbidden, "reason": why}


def allowed_recipients(network: Network) -> list[str]:
    """Every routing key an operator may choose: each post, each unit, and the centre's inbox."""
    return [*(post_key(p.id) for p in network.posts), *(unit_key(u.id) for u in network.units), CENTRE_INBOX]


def decide_manually(
    *,
    previous: Routing | None,
    recipients: Sequence[str],
    reason: str,
    actor: str,
    network: Network,
    marking: str | None = None,
    rules: HandlingRules | None = None,
    override_reason: str | None = None,
) -> Routing:
    """The routing an operator chose, in the shape of an automatic decision.

    Crime types and countries stay as classified (the decision is about recipients); confidence is
    1.0, a person decided. The classifier's own evidence lines are kept after the operator's.
    `marking` (the stricter of the message's and its case's) must allow the recipients, unless
    `override_reason` says why the operator overrides it (see `marking_override`)."""
    why = reason.strip()
    if not why:
        raise ManualRoutingError("reason", "a reason is required for a manual routing")
    if len(why) > MAX_REASON:
        raise ManualRoutingError("reason", f"at most {MAX_REASON} characters")
    chosen = list(dict.fromkeys(r.strip() for r in recipients))
    if not chosen:
        raise ManualRoutingError("recipients", "choose at least one recipient")
    if len(chosen) > MAX_RECIPIENTS:
        raise ManualRoutingError("recipients", f"at most {MAX_RECIPIENTS} recipients")
    allowed = set(allowed_recipients(network))
    unknown = [r for r in chosen if r not in allowed]
    if TRIAGE in unknown:
        raise ManualRoutingError(
            "recipients", f"{TRIAGE} is where undecided messages wait: choose who gets it"
        )
    if unknown:
        raise ManualRoutingError("recipients", f"not a post or unit of the network: {', '.join(unknown)}")
    overridden = marking_override(chosen, marking, rules or HandlingRules(), override_reason)
    explanation = [f"manual by {actor}: {why}"]
    if overridden is not None:
        explanation.append(
            f"manual by {actor}: overrides handling {marking} ({overridden['effect']}): {overridden['reason']}"
        )
    explanation += [f"to {r}: chosen by {actor}" for r in chosen]
    if previous is not None:
        explanation += [
            f"previously: {line}" for line in previous.explanation if not line.startswith("manual by ")
        ]
    return Routing(
        crime_types=list(previous.crime_types) if previous else [],
        countries=list(previous.countries) if previous else [],
        recipients=chosen,
        explanation=explanation,
        confidence=1.0,
    )


def holders(previous_recipients: Sequence[str], routing: Routing) -> list[str]:
    """Who holds a copy after a manual routing: the new recipients first, then those who already had
    one (they keep seeing it). The triage queue is the centre's own: it drops out once decided."""
    return list(dict.fromkeys([*routing.recipients, *(r for r in previous_recipients if r != TRIAGE)]))


@dataclass(frozen=True, slots=True)
class ManualRouting:
    """One manual decision, as the store records it (with its audit events) in one transaction."""

    sender: str
    message_id: str
    revision: int
    routing: Routing
    recipients: list[str]  # holders(): the message's recipients column afterwards
    actor: str
    reason: str
    at: datetime
    events: list[AuditEvent] = field(default_factory=list)
    case: Case | None = None
    """The request's case after this decision (its recipients are the chosen ones now), written in
    the same transaction only if the stored case is still at `case.version`; else nothing is."""


class ManualRecord(BaseModel):
    """A manual decision as read back: who, when, why, to whom."""

    model_config = ConfigDict(frozen=True)

    revision: int
    at: datetime
    actor: str
    reason: str
    recipients: list[str]


# -- the shift log -----------------------------------------------------------------------------------

MAX_NOTE = 4000


LinkId = Annotated[str, Field(max_length=200)]  # a message id or case reference a note links to


class NoteInput(BaseModel):
    """What an operator writes: the note, and the messages and cases it is about."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_NOTE, pattern=NOT_BLANK)
    message_ids: list[LinkId] = Field(default_factory=list, max_length=50)
    references: list[LinkId] = Field(default_factory=list, max_length=50, description="Case references.")


class Note(BaseModel):
    """A handover note in the shift log."""

    model_config = ConfigDict(frozen=True)

    id: int | None = None
    at: datetime
    author: str
    text: str
    message_ids: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)


def clean_note(data: NoteInput) -> NoteInput:
    text = data.text.strip()
    if not text:
        raise ManualRoutingError("text", "write something")

    def ids(values: list[str]) -> list[str]:
        return list(dict.fromkeys(v.strip() for v in values if v.strip()))

    return NoteInput(text=text, message_ids=ids(data.message_ids), references=ids(data.references))


class Tallies(BaseModel):
    """Counts of accepted messages since a time, by crime type and by country (a message counts once
    under each of its labels); `total` counts messages."""

    since: datetime
    total: int
    crime_types: dict[str, int]
    countries: dict[str, int]


def details_of(record: ManualRouting) -> dict[str, Any]:
    return {"revision": record.revision, "reason": record.reason, "recipients": record.routing.recipients}
