"""Need-to-know, handling markings and the audit chain in the core: table-driven, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.test_routing import NET, cls, env
from watchcentre.core.access import Principal, Role, TokenRecord, can_see, role_problems, sees_event
from watchcentre.core.audit_chain import GENESIS, event_hash, verify_links
from watchcentre.core.handling import Effect, HandlingCode, HandlingRules
from watchcentre.core.records import AuditEvent, Status, StoredMessage
from watchcentre.core.routing import Original, decide

T = datetime(2026, 1, 1, tzinfo=UTC)


def msg(sender: str, recipients: list[str], status: Status = Status.ROUTED) -> StoredMessage:
    return StoredMessage(
        id=1,
        sender=sender,
        message_id="m",
        kind="request",
        priority="normal",
        reference=None,
        subject="s",
        status=status,
        received_at=T,
        recipients=recipients,
    )


P = {
    "operator": Principal(role=Role.OPERATOR, name="o"),
    "auditor": Principal(role=Role.AUDITOR, name="a"),
    "post:rabat": Principal(role=Role.POST, subject="rabat", name="p"),
    "unit:ofast": Principal(role=Role.UNIT, subject="ofast", name="u"),
}


@pytest.mark.parametrize(
    ("who", "message", "sees"),
    [
        ("operator", msg("ofast", ["post.rabat"]), True),
        ("operator", msg("x", [], Status.REJECTED), True),
        ("auditor", msg("ofast", ["post.rabat"]), False),
        ("post:rabat", msg("ofast", ["post.rabat"]), True),
        ("post:rabat", msg("ofast", ["post.madrid"]), False),
        ("post:rabat", msg("rabat", ["centre.inbox"]), True),
        ("post:rabat", msg("rabat", [], Status.REJECTED), False),
        ("unit:ofast", msg("ofast", ["post.rabat"]), True),
        ("unit:ofast", msg("rabat", ["unit.ofast", "centre.inbox"]), True),
        ("unit:ofast", msg("rabat", ["centre.inbox"]), False),
        ("unit:ofast", msg("ocrtis", ["post.rabat"]), False),
    ],
)
def test_can_see(who: str, message: StoredMessage, sees: bool) -> None:
    assert can_see(P[who], message) is sees


MADRID_CASE = ("ofast", ("post.madrid",))


@pytest.mark.parametrize(
    ("who", "message", "case", "sees"),
    [
        # a case event: the case's parties (and operators) only
        ("operator", None, MADRID_CASE, True),
        ("post:rabat", None, MADRID_CASE, False),
        ("post:rabat", None, ("ofast", ("post.rabat",)), True),
        ("unit:ofast", None, MADRID_CASE, True),
        ("unit:ofast", None, ("ocrtis", ("post.madrid",)), False),
        ("auditor", None, MADRID_CASE, False),
        # an event carrying a message: the message's own rule, whatever its case says
        ("post:rabat", ("routed", "ofast", ("post.madrid",)), ("ofast", ("post.rabat",)), False),
        ("post:rabat", ("routed", "ofast", ("post.rabat",)), None, True),
        ("post:rabat", ("rejected", "rabat", ()), None, False),
        # an operator's act (a note, a re-injection): operators only
        ("operator", None, None, True),
        ("post:rabat", None, None, False),
        ("unit:ofast", None, None, False),
    ],
)
def test_a_feed_event_by_the_apis_rules(
    who: str,
    message: tuple[str, str, tuple[str, ...]] | None,
    case: tuple[str, tuple[str, ...]] | None,
    sees: bool,
) -> None:
    assert sees_event(P[who], message=message, case=case) is sees


@pytest.mark.parametrize(
    ("role", "subject", "ok"),
    [
        (Role.OPERATOR, None, True),
        (Role.OPERATOR, "rabat", False),
        (Role.POST, None, False),
        (Role.POST, "rabat", True),
        (Role.POST, "atlantis", False),
        (Role.UNIT, "ofast", True),
        (Role.UNIT, "rabat", False),
        (Role.AUDITOR, None, True),
    ],
)
def test_role_problems(role: Role, subject: str | None, ok: bool) -> None:
    assert (role_problems(role, subject, NET) == []) is ok


def test_a_token_is_unusable_once_expired_or_revoked() -> None:
    t = TokenRecord(
        id="i", name="n", role=Role.AUDITOR, created_at=T, expires_at=T + timedelta(days=1), hash="h"
    )
    assert t.problem(T) is None
    assert t.problem(T + timedelta(days=1)) == "expired"
    assert t.model_copy(update={"revoked_at": T}).problem(T) == "revoked"


RULES = HandlingRules(
    codes={
        "no-onward": HandlingCode(effect=Effect.SINGLE_POST, description="d"),
        "centre-only": HandlingCode(effect=Effect.CENTRE_ONLY, description="d"),
        "restricted": HandlingCode(effect=Effect.NONE, description="d"),
    }
)

HANDLING_CASES: list[tuple[str, dict[str, Any], dict[str, float], Original | None, list[str], str]] = [
    (
        "no-onward never fans out",
        {"handling": "no-onward"},
        {"MA": 0.9, "ES": 0.8},
        None,
        ["post.rabat"],
        "withheld from post.madrid",
    ),
    (
        "no-onward to one country is unchanged",
        {"handling": "no-onward"},
        {"ES": 0.9},
        None,
        ["post.madrid"],
        "no onward sharing",
    ),
    (
        "no-onward reply keeps the post it answers",
        {"handling": "no-onward", "kind": "reply", "in_reply_to": "q"},
        {"ES": 0.9},
        Original("rabat", "q", ("centre.inbox",)),
        ["post.rabat"],
        "withheld from post.madrid",
    ),
    (
        "centre-only goes to triage alone",
        {"handling": "centre-only"},
        {"MA": 0.9, "ES": 0.9},
        None,
        ["centre.triage"],
        "withheld from post.rabat, post.madrid",
    ),
    (
        "restricted routes as usual",
        {"handling": "restricted"},
        {"MA": 0.9, "ES": 0.9},
        None,
        ["post.rabat", "post.madrid"],
        "marking shown",
    ),
]


@pytest.mark.parametrize(
    ("name", "fields", "found", "original", "expected", "why"),
    HANDLING_CASES,
    ids=[c[0] for c in HANDLING_CASES],
)
def test_handling_markings_in_routing(
    name: str,
    fields: dict[str, Any],
    found: dict[str, float],
    original: Original | None,
    expected: list[str],
    why: str,
) -> None:
    routing = decide(env(**fields), cls(found), NET, original, RULES)
    assert routing.recipients == expected
    assert any(why in line for line in routing.explanation), routing.explanation
    assert not any(
        line.startswith(f"to {r}:")
        for r in ("post.madrid",)
        if r not in expected
        for line in routing.explanation
    )


def test_unknown_handling_codes_are_refused() -> None:
    assert RULES.check(None) is None and RULES.check("no-onward") is None
    assert "unknown handling code 'secret'" in (RULES.check("secret") or "")
    assert HandlingRules(codes={"Bad Code": HandlingCode(effect=Effect.NONE, description="d")}).problems()


def _chain(n: int) -> list[AuditEvent]:
    out, prev = [], GENESIS
    for i in range(1, n + 1):
        e = AuditEvent(
            seq=i,
            at=T,
            type="received",
            actor="x",
            details={"i": i, "nested": {"b": 1, "a": 2}},
            prev_hash=prev,
        )
        e = e.model_copy(update={"hash": event_hash(prev, e)})
        out.append(e)
        prev = e.hash or ""
    return out


def test_the_chain_verifies_and_names_the_first_break() -> None:
    events = _chain(5)
    assert verify_links(events, GENESIS)[0] is None
    edited = [*events[:2], events[2].model_copy(update={"actor": "mallory"}), *events[3:]]
    broken, _, _ = verify_links(edited, GENESIS)
    assert broken is not None and broken.seq == 3
    dropped = [*events[:1], *events[2:]]
    broken, _, _ = verify_links(dropped, GENESIS)
    assert broken is not None and broken.seq == 3 and "prev_hash" in broken.problem
