"""Routing to the competent unit, in the alertmanager style: an input, the recipients it gets.

The table is written against the shipped config/network.yaml, unit by unit, so a change of a unit's
crime areas shows here as a changed row."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from watchcentre.adapters.config_files import load_config
from watchcentre.core import parties
from watchcentre.core.access import Principal, Role, can_see
from watchcentre.core.classify import Classification, Evidence
from watchcentre.core.envelope import Envelope
from watchcentre.core.handling import HandlingRules
from watchcentre.core.network import Network
from watchcentre.core.records import Status, StoredMessage
from watchcentre.core.routing import Competence, Original, crime_confidence, decide

ROOT = Path(__file__).resolve().parents[2]


@cache
def shipped() -> tuple[Network, HandlingRules]:
    config = load_config(ROOT / "config")
    return config.network, config.handling


def env(**kw: Any) -> Envelope:
    base: dict[str, Any] = {
        "message_id": "m1",
        "sender": "madrid",
        "kind": "information",
        "subject": "s",
        "body": "b",
        "sent_at": datetime(2026, 11, 23, tzinfo=UTC),
    }
    return Envelope.model_validate(base | kw)


def found(scores: dict[str, float], hint: str | None = None) -> Classification:
    """What the classifier found: crime scores (primary first), the country the post is in."""
    evidence = [Evidence(hint, "hint", hint, "hint", 0, 0, 2.0)] if hint else []
    return Classification(
        crime_types=list(scores),
        countries=["ES"],
        country_confidence={"ES": 0.95},
        crime_scores=scores,
        home_mentions=[],
        evidence=evidence,
    )


SURE = 6.0  # one decisive phrase in the subject and one in the body: confidence 0.75
INBOX = "centre.inbox"

TABLE = [
    # (name, envelope fields, crime scores, expected recipients) — every unit of config/network.yaml
    ("terrorism → sdat", {}, {"terrorism": SURE}, [INBOX, "unit.sdat"]),
    ("organised crime → oclco, scrc", {}, {"organised_crime": SURE}, [INBOX, "unit.oclco", "unit.scrc"]),
    ("drugs → ofast", {}, {"drug_trafficking": SURE}, [INBOX, "unit.ofast"]),
    ("firearms → oclco-armes", {}, {"firearms_trafficking": SURE}, [INBOX, "unit.oclco-armes"]),
    ("migrant smuggling → oltim", {}, {"migrant_smuggling": SURE}, [INBOX, "unit.oltim"]),
    ("document fraud → oltim", {}, {"document_fraud": SURE}, [INBOX, "unit.oltim"]),
    ("human trafficking → ocrteh", {}, {"human_trafficking": SURE}, [INBOX, "unit.ocrteh"]),
    ("cybercrime → ofac", {}, {"cybercrime": SURE}, [INBOX, "unit.ofac"]),
    ("child sexual exploitation → ofmin", {}, {"child_sexual_exploitation": SURE}, [INBOX, "unit.ofmin"]),
    (
        "financial crime → ocrgdf, oclciff",
        {},
        {"financial_crime": SURE},
        [INBOX, "unit.ocrgdf", "unit.oclciff"],
    ),
    ("environment → oclaesp", {}, {"environmental_crime": SURE}, [INBOX, "unit.oclaesp"]),
    (
        "property crime → ocldi, scrc, drpj-paris",
        {},
        {"property_crime": SURE},
        [INBOX, "unit.ocldi", "unit.scrc", "unit.drpj-paris"],
    ),
    (
        "violent crime → ocrvp, drpj-paris",
        {},
        {"violent_crime": SURE},
        [INBOX, "unit.ocrvp", "unit.drpj-paris"],
    ),
    ("wanted person → ocrvp, bnrf", {}, {"wanted_person": SURE}, [INBOX, "unit.ocrvp", "unit.bnrf"]),
    ("civil protection → cogic", {}, {"civil_protection": SURE}, [INBOX, "unit.cogic"]),
    ("an alert too", {"kind": "alert"}, {"drug_trafficking": SURE}, [INBOX, "unit.ofast"]),
    ("only the primary type's units", {}, {"cybercrime": SURE, "financial_crime": 2.0}, [INBOX, "unit.ofac"]),
    # too little confidence: the centre (its inbox) decides
    ("one phrase in the body: centre decides", {}, {"drug_trafficking": 2.0}, [INBOX]),
    ("a close second type: centre decides", {}, {"drug_trafficking": 6.0, "organised_crime": 5.0}, [INBOX]),
    ("no crime type: centre decides", {}, {}, [INBOX]),
    # the sender said so: sure
    (
        "a crime type hint from the post",
        {"crime_types": ["cybercrime"]},
        "hint:cybercrime",
        [INBOX, "unit.ofac"],
    ),
    # what is not a post's information or alert does not go to units by competence
    ("a request from a post", {"kind": "request"}, {"drug_trafficking": SURE}, [INBOX]),
    (
        "a unit's request goes to posts only",
        {"sender": "ofast", "kind": "request"},
        {"drug_trafficking": SURE},
        ["post.madrid"],
    ),
    # markings still apply
    (
        "centre-only marking withholds the unit",
        {"handling": "centre-only"},
        {"drug_trafficking": SURE},
        ["centre.triage"],
    ),
]


@pytest.mark.parametrize(("fields", "scores", "expected"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_recipients(fields: dict[str, Any], scores: dict[str, float] | str, expected: list[str]) -> None:
    network, handling = shipped()
    if isinstance(scores, str):
        code = scores.removeprefix("hint:")
        classification = found({code: 2.0}, hint=code)
    else:
        classification = found(scores)
    e = env(**fields)
    if e.handling and handling.check(e.handling) is not None:
        pytest.skip(f"no marking {e.handling} in the shipped handling.yaml")
    assert (
        decide(e, classification, network, handling=handling, competence=Competence()).recipients == expected
    )


def test_the_table_names_every_unit_of_the_network() -> None:
    network, _ = shipped()
    named = {r for t in TABLE for r in t[3] if r.startswith("unit.")}
    assert named == {f"unit.{u.id}" for u in network.units}


def test_the_explanation_says_why_the_unit_and_why_not() -> None:
    network, _ = shipped()
    routed = decide(env(), found({"drug_trafficking": SURE}), network)
    assert "to unit.ofast: crime drug_trafficking (0.75) is in the crime areas of ofast" in routed.explanation
    assert any(line.startswith("to centre.inbox: sender madrid is a post") for line in routed.explanation)
    unsure = decide(env(), found({"drug_trafficking": 2.0}), network)
    assert "crime drug_trafficking (0.50) below 0.60: too uncertain for ofast, the centre decides" in (
        unsure.explanation
    )
    assert unsure.confidence == 0.5


def test_confidence_of_the_primary_type() -> None:
    assert crime_confidence(found({})) == 0.0
    assert crime_confidence(found({"drug_trafficking": 2.0})) == 0.5
    assert crime_confidence(found({"drug_trafficking": 4.0})) == pytest.approx(0.6667, abs=1e-4)
    assert crime_confidence(found({"drug_trafficking": 4.0, "organised_crime": 4.0})) == 0.4
    assert crime_confidence(found({"cybercrime": 2.0}, hint="cybercrime")) == 1.0


def test_the_competent_unit_may_see_and_answer_what_it_received_and_no_other_unit_may() -> None:
    network, _ = shipped()
    routing = decide(env(), found({"drug_trafficking": SURE}), network)
    stored = StoredMessage(
        id=1,
        sender="madrid",
        message_id="m1",
        kind="information",
        priority="normal",
        reference=None,
        subject="s",
        status=Status.ROUTED,
        received_at=datetime(2026, 11, 23, tzinfo=UTC),
        recipients=routing.recipients,
    )
    ofast = Principal(role=Role.UNIT, subject="ofast", name="ofast desk")
    oclco = Principal(role=Role.UNIT, subject="oclco", name="oclco desk")
    assert can_see(ofast, stored)
    assert not can_see(oclco, stored)
    original = Original("madrid", "m1", tuple(routing.recipients))
    assert parties.party_to(original, "ofast", network)  # may reply to it (in_reply_to)
    assert not parties.party_to(original, "oclco", network)  # linking to it is linking to nothing
