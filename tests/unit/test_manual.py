"""Manual routing decisions and shift-log notes, table-driven (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from watchcentre.core.envelope import Routing
from watchcentre.core.manual import (
    ManualRoutingError,
    NoteInput,
    allowed_recipients,
    clean_note,
    decide_manually,
    holders,
)
from watchcentre.core.network import Network, Post, Unit
from watchcentre.core.routing import copy_id

NET = Network(
    home=["FR"],
    posts=[
        Post(id="rabat", city="Rabat", country="MA", countries=["MA"]),
        Post(id="madrid", city="Madrid", country="ES", countries=["ES"]),
    ],
    units=[Unit(id="ofast", name="OFAST", crime_areas=["drug_trafficking"])],
)
TRIAGED = Routing(
    crime_types=["drug_trafficking"],
    countries=[],
    recipients=["centre.triage"],
    explanation=["to centre.triage: no foreign country found", "crime drug_trafficking (score 4.0)"],
    confidence=0.0,
)


def test_allowed_recipients_are_posts_units_and_the_centre_inbox_never_triage() -> None:
    assert allowed_recipients(NET) == ["post.rabat", "post.madrid", "unit.ofast", "centre.inbox"]


def test_a_manual_decision_has_the_shape_of_an_automatic_one() -> None:
    r = decide_manually(
        previous=TRIAGED,
        recipients=["post.madrid", " post.madrid"],
        reason=" Spanish suspect ",
        actor="operator:Alice",
        network=NET,
    )
    assert r.recipients == ["post.madrid"]
    assert r.explanation[:2] == [
        "manual by operator:Alice: Spanish suspect",
        "to post.madrid: chosen by operator:Alice",
    ]
    assert "previously: crime drug_trafficking (score 4.0)" in r.explanation
    assert (r.crime_types, r.countries, r.confidence) == (["drug_trafficking"], [], 1.0)


@pytest.mark.parametrize(
    ("recipients", "reason", "field", "words"),
    [
        (["post.madrid"], "", "reason", "required"),
        (["post.madrid"], "   \n", "reason", "required"),
        (["post.madrid"], "x" * 1001, "reason", "1000"),
        ([], "why", "recipients", "at least one"),
        (["post.paris"], "why", "recipients", "post.paris"),
        (["centre.triage"], "why", "recipients", "centre.triage"),
        ([f"post.p{i}" for i in range(21)], "why", "recipients", "at most 20"),
    ],
)
def test_a_manual_decision_names_what_is_wrong(
    recipients: list[str], reason: str, field: str, words: str
) -> None:
    with pytest.raises(ManualRoutingError) as caught:
        decide_manually(
            previous=TRIAGED, recipients=recipients, reason=reason, actor="operator:A", network=NET
        )
    assert caught.value.field == field and words in caught.value.problem


def test_who_holds_a_copy_after_a_re_route() -> None:
    first = decide_manually(previous=TRIAGED, recipients=["post.rabat"], reason="r", actor="a", network=NET)
    assert holders(["centre.triage"], first) == ["post.rabat"]
    second = decide_manually(previous=first, recipients=["post.madrid"], reason="r2", actor="a", network=NET)
    assert holders(["post.rabat"], second) == ["post.madrid", "post.rabat"]
    assert not any(line.startswith("previously: manual by") for line in second.explanation)


def test_each_revision_gets_its_own_copy_ids() -> None:
    ids = {copy_id("ofast", "m1", rev) for rev in range(3)}
    assert len(ids) == 3
    assert copy_id("ofast", "m1", 1) == copy_id("ofast", "m1", 1)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"text": "  Quiet night  "}, {"text": "Quiet night", "message_ids": [], "references": []}),
        (
            {"text": "t", "message_ids": [" m1", "m1", ""], "references": ["FR-1 "]},
            {"text": "t", "message_ids": ["m1"], "references": ["FR-1"]},
        ),
    ],
)
def test_notes_are_cleaned(data: dict[str, Any], expected: dict[str, Any]) -> None:
    assert clean_note(NoteInput.model_validate(data)).model_dump() == expected


def test_a_blank_note_is_refused() -> None:
    # refused by the model itself (its schema says "not blank", so the OpenAPI document does too)
    with pytest.raises(ValidationError) as caught:
        NoteInput(text="   ")
    assert caught.value.errors()[0]["loc"] == ("text",)
    with pytest.raises(ManualRoutingError) as refused:  # and by clean_note, for a model built unchecked
        clean_note(NoteInput.model_construct(text="   ", message_ids=[], references=[]))
    assert refused.value.field == "text"


def test_a_note_link_over_200_characters_is_refused_by_the_schema() -> None:
    # the limit is in the model, so the OpenAPI document states it (the fuzzer sent 201 characters
    # the document allowed and the server refused); 200 are accepted
    assert NoteInput(text="t", references=["R" * 200]).references == ["R" * 200]
    for field in ("message_ids", "references"):
        with pytest.raises(ValidationError) as caught:
            NoteInput.model_validate({"text": "t", field: ["x" * 201]})
        assert caught.value.errors()[0]["loc"] == (field, 0)
