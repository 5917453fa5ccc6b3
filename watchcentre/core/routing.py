"""Routing decisions: who receives a message, and why. Pure: the caller looks things up first.

Recipients are named by their routing key on the `P.routed` exchange:
`post.<ID>`, `unit.<ID>`, `centre.inbox` (messages for the centre) and `centre.triage`
(what the rules could not route, for an operator to decide).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from watchcentre.core.classify import Classification
from watchcentre.core.envelope import Envelope, Kind, Routing
from watchcentre.core.handling import Effect, HandlingRules
from watchcentre.core.network import CENTRE, Network

TRIAGE = "centre.triage"
CENTRE_INBOX = "centre.inbox"


def post_key(post_id: str) -> str:
    return f"post.{post_id}"


def unit_key(unit_id: str) -> str:
    return f"unit.{unit_id}"


def sender_key(network: Network, sender: str) -> str | None:
    kind = network.sender_kind(sender)
    if kind == "post":
        return post_key(sender)
    if kind == "unit":
        return unit_key(sender)
    if kind == CENTRE:
        return CENTRE_INBOX
    return None


@dataclass(frozen=True, slots=True)
class Original:
    """The message an envelope answers (found by its `in_reply_to`), as far as routing needs it."""

    sender: str
    message_id: str
    recipients: tuple[str, ...]
    reference: str | None = None


def choose_original(candidates: Sequence[Original], replier_key: str | None) -> Original | None:
    """Several senders may have used the same message_id: prefer the one routed to the replier."""
    for c in candidates:
        if replier_key and replier_key in c.recipients:
            return c
    return candidates[0] if candidates else None


def decide(
    envelope: Envelope,
    classification: Classification,
    network: Network,
    original: Original | None = None,
    handling: HandlingRules | None = None,
) -> Routing:
    """The routing of one valid envelope from a known sender, its handling marking applied."""
    why: list[str] = []
    recipients: list[str] = []
    confidence = 1.0
    kind = network.sender_kind(envelope.sender)

    def add(key: str, reason: str) -> None:
        if key not in recipients:
            recipients.append(key)
            why.append(f"to {key}: {reason}")

    unmatched_reply = (
        original is None and envelope.kind == Kind.REPLY and bool(envelope.in_reply_to or envelope.reference)
    )
    if original is not None:
        back = sender_key(network, original.sender)
        if back and back != sender_key(network, envelope.sender):
            add(back, f"in reply to {original.message_id} sent by {original.sender}")
    elif unmatched_reply:
        # a reply to nothing its sender is a party to: the same words whether or not it exists
        if kind == "post":
            add(CENTRE_INBOX, f"sender {envelope.sender} is a post: the centre sees all post traffic")
        add(TRIAGE, unmatched(envelope))
        confidence = 0.0
    elif envelope.in_reply_to:
        why.append(f"in_reply_to {envelope.in_reply_to}: no such message known")

    if unmatched_reply:
        pass  # an operator decides: no rule adds recipients
    elif kind == "post":
        add(CENTRE_INBOX, f"sender {envelope.sender} is a post: the centre sees all post traffic")
        if envelope.kind == Kind.REPLY and original is None:
            add(TRIAGE, "a reply to no known request: an operator must match it")
            confidence = 0.0
    else:
        routed = [c for c in classification.countries if c in network.post_by_country]
        for c in classification.countries:
            if c not in network.post_by_country:
                why.append(f"country {c}: covered by no post")
        for c in routed:
            post = network.post_by_country[c]
            add(
                post_key(post.id),
                f"country {c} ({classification.country_confidence[c]:.2f}) is covered by {post.id}",
            )
        if routed:
            confidence = min(classification.country_confidence[c] for c in routed)
        elif not any(r.startswith("post.") for r in recipients):
            confidence = max(classification.country_confidence.values(), default=0.0)
            if classification.country_confidence:
                reason = "no foreign country with enough confidence"
            elif classification.home_mentions:
                reason = "only France is concerned: no post abroad to route to"
            else:
                reason = "no foreign country found"
            add(TRIAGE, reason)

    recipients, why = restrict(recipients, why, envelope.handling, handling or HandlingRules())
    why.extend(classification.explanation())
    return Routing(
        crime_types=classification.crime_types,
        countries=[c for c in classification.countries if c in network.post_by_country],
        recipients=recipients,
        explanation=why,
        confidence=round(confidence, 4),
    )


def restrict(
    recipients: Sequence[str], why: Sequence[str], code: str | None, rules: HandlingRules
) -> tuple[list[str], list[str]]:
    """Recipients and explanation after a handling marking's effect: `centre-only` leaves only the
    centre's triage, `single-post` the first post; what is withheld is named, never silently dropped."""
    recipients, why = list(recipients), list(why)
    effect = rules.effect(code)
    if effect is Effect.CENTRE_ONLY:
        withheld = [r for r in recipients if r != TRIAGE]
        why = _without(why, withheld)
        why.append(
            f"handling {code}: centre only, to {TRIAGE}"
            + (f"; withheld from {', '.join(withheld)}" if withheld else "")
        )
        return [TRIAGE], why
    if effect is Effect.SINGLE_POST:
        posts = [r for r in recipients if r.startswith("post.")]
        if len(posts) > 1:
            why = _without(why, posts[1:])
            why.append(
                f"handling {code}: no onward sharing, only {posts[0]}; withheld from {', '.join(posts[1:])}"
            )
            return [r for r in recipients if not r.startswith("post.") or r == posts[0]], why
        why.append(f"handling {code}: no onward sharing (one post at most)")
        return recipients, why
    if code:
        why.append(f"handling {code}: marking shown to every recipient")
    return recipients, why


def forbidden_by_marking(recipients: Sequence[str], code: str | None, rules: HandlingRules) -> list[str]:
    """The chosen recipients a marking does not allow (a manual routing must say it overrides it)."""
    effect = rules.effect(code)
    if effect is Effect.CENTRE_ONLY:
        return [r for r in recipients if r not in (TRIAGE, CENTRE_INBOX)]
    if effect is Effect.SINGLE_POST:
        return [r for r in recipients if r.startswith("post.")][1:]
    return []


def unmatched(envelope: Envelope) -> str:
    """Why a reply or case action linked to nothing its sender is a party to goes to triage. Built
    from the envelope alone: a non-party learns nothing of whether what it named exists."""
    named = [f"reference {envelope.reference}"] if envelope.reference else []
    named += [f"in_reply_to {envelope.in_reply_to}"] if envelope.in_reply_to else []
    return (
        f"{envelope.kind.value} from {envelope.sender}: no case or message it is a party to matches"
        f" {' and '.join(named)}; an operator must match it"
    )


def _without(why: list[str], withheld: Sequence[str]) -> list[str]:
    """The explanation without the lines that sent a copy to a recipient now withheld."""
    return [w for w in why if not any(w.startswith(f"to {r}:") for r in withheld)]


def copy_id(sender: str, message_id: str, revision: int = 0) -> str:
    """Deterministic AMQP message_id of the routed copies of one input (or of one manual routing,
    `revision`), the same in every recipient's queue: a recipient drops a copy it has seen."""
    h = hashlib.sha256(f"{sender}\x00{message_id}\x00{revision}".encode()).hexdigest()
    return h[:32]
