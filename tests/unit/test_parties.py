"""Who is a party to a case or a message, and markings that follow the case: table-driven (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from watchcentre.core.access import Principal, Role
from watchcentre.core.envelope import Envelope
from watchcentre.core.handling import Effect, HandlingCode, HandlingRules
from watchcentre.core.lifecycle import Action, CaseState, DeadlineRules, Side, new_case, reassign
from watchcentre.core.manual import ManualRoutingError, MarkingForbids, decide_manually, marking_override
from watchcentre.core.network import Network, Post, Unit
from watchcentre.core.parties import (
    case_original,
    counterparts,
    may,
    may_answer,
    party_to,
    principal_side,
    side_of,
)
from watchcentre.core.routing import Original, forbidden_by_marking, restrict, unmatched

NET = Network(
    home=["FR"],
    posts=[
        Post(id="madrid", city="Madrid", country="ES", countries=["ES"]),
        Post(id="rome", city="Rome", country="IT", countries=["IT"]),
        Post(id="rabat", city="Rabat", country="MA", countries=["MA"]),
    ],
    units=[
        Unit(id="ofast", name="OFAST", crime_areas=["drug_trafficking"]),
        Unit(id="oclco", name="OCLCO", crime_areas=["organised_crime"]),
    ],
)
AT = datetime(2026, 11, 23, tzinfo=UTC)
RULES = HandlingRules(
    codes={
        "no-onward": HandlingCode(effect=Effect.SINGLE_POST, description="one post"),
        "centre-only": HandlingCode(effect=Effect.CENTRE_ONLY, description="centre"),
        "restricted": HandlingCode(effect=Effect.NONE, description="shown"),
    }
)


def case(recipients: list[str], state: str = "routed", handling: str | None = None) -> Any:
    c = new_case(
        reference="WC-2026-000001",
        sender="ofast",
        message_id="req-1",
        priority="normal",
        access=None,
        subject="s",
        crime_types=[],
        countries=["ES"],
        recipients=recipients,
        triage=state == "triage",
        opened_at=AT,
        rules=DeadlineRules.eu_default(),
        handling=handling,
    )
    return c


MADRIDS = case(["post.madrid"])


@pytest.mark.parametrize(
    ("sender", "side", "answers"),
    [
        ("madrid", Side.POST, True),  # the post it is routed to
        ("rome", None, False),  # another post
        ("ofast", Side.UNIT, False),  # the requesting unit
        ("oclco", None, False),  # another unit
        ("centre", Side.CENTRE, True),  # the centre oversees every case
        ("nobody", None, False),
    ],
)
def test_side_of_a_sender_and_who_may_answer(sender: str, side: Side | None, answers: bool) -> None:
    assert side_of(MADRIDS, sender, NET) == side
    assert may_answer(MADRIDS, sender, NET) is answers


@pytest.mark.parametrize(
    ("role", "subject", "side"),
    [
        (Role.OPERATOR, None, Side.CENTRE),
        (Role.POST, "madrid", Side.POST),
        (Role.POST, "rome", None),
        (Role.UNIT, "ofast", Side.UNIT),
        (Role.UNIT, "oclco", None),
        (Role.AUDITOR, None, None),
    ],
)
def test_principal_side_is_the_same_rule_over_http(
    role: Role, subject: str | None, side: Side | None
) -> None:
    assert principal_side(Principal(role=role, subject=subject, name="x"), MADRIDS) == side


@pytest.mark.parametrize(
    ("side", "action", "allowed"),
    [
        (Side.POST, Action.ACK, True),
        (Side.POST, Action.CLOSE, False),
        (Side.UNIT, Action.ACK, False),
        (Side.UNIT, Action.CLARIFY_ANSWER, True),
        (Side.CENTRE, Action.WITHDRAW, True),
        (None, Action.ACK, False),
    ],
)
def test_may(side: Side | None, action: Action, allowed: bool) -> None:
    assert may(side, action) is allowed


@pytest.mark.parametrize(
    ("sender", "party"),
    [
        ("madrid", True),
        ("ofast", True),
        ("centre", True),
        ("rome", False),
        ("oclco", False),
        ("nobody", False),
    ],
)
def test_party_to_a_message(sender: str, party: bool) -> None:
    original = Original("ofast", "req-1", ("post.madrid",), "WC-2026-000001")
    assert party_to(original, sender, NET) is party
    assert party_to(case_original(MADRIDS), sender, NET) is party


@pytest.mark.parametrize(
    ("side", "recipients"),
    [
        (Side.POST, ["unit.ofast", "centre.inbox"]),
        (Side.UNIT, ["post.madrid"]),
        (Side.CENTRE, ["unit.ofast", "post.madrid"]),
    ],
)
def test_counterparts(side: Side, recipients: list[str]) -> None:
    assert counterparts(MADRIDS, side, NET) == recipients


def envelope(**kw: Any) -> Envelope:
    base: dict[str, Any] = {
        "message_id": "m1",
        "sender": "rome",
        "kind": "reply",
        "subject": "s",
        "body": "b",
        "sent_at": AT,
    }
    return Envelope.model_validate(base | kw)


def test_the_unmatched_reason_is_built_from_the_envelope_alone() -> None:
    real, fake = envelope(reference="WC-2026-000001"), envelope(reference="WC-1999-000009")
    assert unmatched(real).replace("WC-2026-000001", "X") == unmatched(fake).replace("WC-1999-000009", "X")
    assert "ofast" not in unmatched(real) and "req-1" not in unmatched(real)


# -- markings follow the case ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case_code", "own", "result"),
    [
        (None, None, None),
        (None, "restricted", "restricted"),
        ("restricted", None, "restricted"),
        ("centre-only", None, "centre-only"),
        ("centre-only", "no-onward", "centre-only"),  # the stricter wins, whoever has it
        ("no-onward", "centre-only", "centre-only"),
        ("no-onward", "restricted", "no-onward"),
        ("restricted", "no-onward", "no-onward"),
        ("no-onward", None, "no-onward"),  # a message cannot loosen its case's marking
    ],
)
def test_the_strictest_marking_wins(case_code: str | None, own: str | None, result: str | None) -> None:
    assert RULES.strictest(case_code, own) == result


@pytest.mark.parametrize(
    ("code", "recipients", "kept", "forbidden"),
    [
        (None, ["post.madrid", "post.rome"], ["post.madrid", "post.rome"], []),
        ("restricted", ["post.madrid", "post.rome"], ["post.madrid", "post.rome"], []),
        (
            "no-onward",
            ["unit.ofast", "post.madrid", "post.rome"],
            ["unit.ofast", "post.madrid"],
            ["post.rome"],
        ),
        ("centre-only", ["unit.ofast", "centre.inbox"], ["centre.triage"], ["unit.ofast"]),
    ],
)
def test_a_marking_restricts_recipients(
    code: str | None, recipients: list[str], kept: list[str], forbidden: list[str]
) -> None:
    after, why = restrict(recipients, [f"to {r}: x" for r in recipients], code, RULES)
    assert after == kept
    assert not any(line.startswith(f"to {r}:") for r in forbidden for line in why)  # withheld, named
    assert forbidden_by_marking(recipients, code, RULES) == forbidden


def test_manual_routing_refuses_what_the_marking_forbids_unless_overridden() -> None:
    ask: dict[str, Any] = {
        "previous": None,
        "recipients": ["post.madrid"],
        "reason": "r",
        "actor": "op",
        "network": NET,
    }
    with pytest.raises(MarkingForbids) as refused:
        decide_manually(**ask, marking="centre-only", rules=RULES)
    assert refused.value.field == "recipients" and "override_marking" in refused.value.problem
    with pytest.raises(ManualRoutingError) as blank:
        decide_manually(**ask, marking="centre-only", rules=RULES, override_reason="  ")
    assert blank.value.field == "override_reason"
    routing = decide_manually(**ask, marking="centre-only", rules=RULES, override_reason="urgent")
    assert routing.recipients == ["post.madrid"]
    assert "manual by op: overrides handling centre-only (centre-only): urgent" in routing.explanation
    assert marking_override(["post.madrid"], "centre-only", RULES, "urgent") == {
        "marking": "centre-only",
        "effect": "centre-only",
        "forbidden": ["post.madrid"],
        "reason": "urgent",
    }
    assert marking_override(["post.madrid"], "no-onward", RULES, None) is None  # one post is allowed
    assert decide_manually(**ask, marking="restricted", rules=RULES).recipients == ["post.madrid"]


@pytest.mark.parametrize(
    ("state", "recipients", "after"),
    [
        ("triage", ["post.rome"], CaseState.ROUTED),  # awaits Rome's acknowledgement
        ("triage", ["centre.inbox"], CaseState.TRIAGE),  # no post has it yet
        ("routed", ["post.rome"], CaseState.ROUTED),
    ],
)
def test_a_request_routed_by_hand_is_the_chosen_posts_case(
    state: str, recipients: list[str], after: CaseState
) -> None:
    before = case(["centre.triage"] if state == "triage" else ["post.madrid"], state)
    changed, details = reassign(before, recipients, AT)
    assert changed.recipients == recipients and changed.state is after
    assert details["from"] == state and details["to"] == after.value
    assert changed.due_at == before.due_at and changed.ack_due_at == before.ack_due_at  # deadlines kept
    assert side_of(changed, "rome", NET) == (Side.POST if "post.rome" in recipients else None)
