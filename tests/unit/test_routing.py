"""Routing decisions, table-driven, on a small network (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from watchcentre.core.classify import Classification
from watchcentre.core.envelope import Envelope
from watchcentre.core.network import Network, Post, Unit
from watchcentre.core.routing import Original, choose_original, copy_id, decide

NET = Network(
    home=["FR", "GP"],
    posts=[
        Post(id="rabat", city="Rabat", country="MA", countries=["MA", "EH"]),
        Post(id="madrid", city="Madrid", country="ES", countries=["ES", "AD"]),
        Post(
            id="singapore",
            city="Singapore",
            country="SG",
            countries=["AU", "BN", "ID", "MY", "PH", "SG", "TL"],
        ),
    ],
    units=[Unit(id="ofast", name="OFAST", crime_areas=["drug_trafficking"])],
)


def env(**kw: Any) -> Envelope:
    base: dict[str, Any] = {
        "message_id": "m1",
        "sender": "ofast",
        "kind": "request",
        "subject": "s",
        "body": "b",
        "sent_at": datetime(2026, 11, 23, tzinfo=UTC),
    }
    return Envelope.model_validate(base | kw)


def cls(countries: dict[str, float], home: list[str] | None = None, threshold: float = 0.6) -> Classification:
    return Classification(
        crime_types=["drug_trafficking"],
        countries=[c for c, v in countries.items() if v >= threshold],
        country_confidence=countries,
        crime_scores={"drug_trafficking": 4.0},
        home_mentions=home or [],
    )


CASES = [
    # (name, envelope fields, countries found, original, expected recipients)
    ("unit to one country", {}, {"MA": 0.95}, None, ["post.rabat"]),
    ("unit to a region's post", {}, {"ID": 0.95}, None, ["post.singapore"]),
    (
        "fan-out, one copy per post",
        {},
        {"MA": 0.9, "ES": 0.9, "AD": 0.8},
        None,
        ["post.rabat", "post.madrid"],
    ),
    ("no country: triage", {}, {}, None, ["centre.triage"]),
    ("low confidence: triage", {}, {"MA": 0.4}, None, ["centre.triage"]),
    ("a country no post covers: triage", {}, {"ZZ": 0.9}, None, ["centre.triage"]),
    ("the centre writes like a unit", {"sender": "centre"}, {"ES": 0.9}, None, ["post.madrid"]),
    (
        "post information to the centre",
        {"sender": "rabat", "kind": "information"},
        {"MA": 1.0},
        None,
        ["centre.inbox"],
    ),
    (
        "post reply to a unit's request",
        {"sender": "rabat", "kind": "reply", "in_reply_to": "r1"},
        {},
        Original("ofast", "r1", ("post.rabat",)),
        ["unit.ofast", "centre.inbox"],
    ),
    (
        "post reply to nothing known: triage too",
        {"sender": "rabat", "kind": "reply", "in_reply_to": "zz"},
        {},
        None,
        ["centre.inbox", "centre.triage"],
    ),
    (
        "unit answering a post's question",
        {"kind": "reply", "in_reply_to": "q1"},
        {},
        Original("rabat", "q1", ("unit.ofast",)),
        ["post.rabat"],
    ),
]


@pytest.mark.parametrize(
    ("name", "fields", "found", "original", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_recipients(
    name: str, fields: dict[str, Any], found: dict[str, float], original: Original | None, expected: list[str]
) -> None:
    routing = decide(env(**fields), cls(found), NET, original)
    assert routing.recipients == expected
    assert routing.explanation, "every decision says why"
    for r in expected:
        assert any(line.startswith(f"to {r}:") for line in routing.explanation)


def test_confidence_is_the_weakest_routed_country() -> None:
    routing = decide(env(), cls({"MA": 0.95, "ES": 0.7}), NET)
    assert routing.confidence == 0.7
    assert routing.countries == ["MA", "ES"]


def test_triage_explains_that_france_is_home() -> None:
    routing = decide(env(), cls({}, home=["FR"]), NET)
    assert any("only France" in line for line in routing.explanation)


def test_reply_prefers_the_original_that_was_routed_to_the_replier() -> None:
    a = Original("ofast", "same-id", ("post.madrid",))
    b = Original("bnrf", "same-id", ("post.rabat",))
    assert choose_original([a, b], "post.rabat") is b
    assert choose_original([a, b], "post.elsewhere") is a
    assert choose_original([], "post.rabat") is None


def test_copy_ids_are_deterministic_per_input_and_revision() -> None:
    assert copy_id("ofast", "m1") == copy_id("ofast", "m1")
    assert copy_id("ofast", "m1") != copy_id("ofast", "m2")
    assert copy_id("ofast", "m1") != copy_id("bnrf", "m1")
    assert copy_id("ofast", "m1", revision=1) != copy_id("ofast", "m1")


def test_france_only_goes_to_triage_and_says_why() -> None:
    routing = decide(env(), cls({}, home=["FR"]), NET)
    assert routing.recipients == ["centre.triage"]
    assert "to centre.triage: only France is concerned: no post abroad to route to" in routing.explanation


def test_no_country_at_all_says_so() -> None:
    routing = decide(env(), cls({}), NET)
    assert "to centre.triage: no foreign country found" in routing.explanation
