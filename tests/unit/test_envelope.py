"""Envelope decoding: every bad input is refused with the field at fault, never an exception."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchcentre.core.envelope import MAX_BODY_BYTES, Envelope, Rejection, decode_envelope

GOOD: dict[str, Any] = {
    "message_id": "m1",
    "sender": "ofast",
    "kind": "request",
    "subject": "Cocaïne",
    "body": "Saisie à Tanger",
    "sent_at": "2026-11-23T10:00:00+01:00",
}


def test_a_good_envelope_decodes_with_defaults() -> None:
    env = decode_envelope(orjson.dumps(GOOD))
    assert isinstance(env, Envelope)
    assert env.priority == "normal" and env.countries == [] and env.reference is None


def test_country_hints_are_normalised_to_upper_case_and_deduplicated() -> None:
    env = decode_envelope(orjson.dumps(GOOD | {"countries": ["ma", "MA", " es "]}))
    assert isinstance(env, Envelope) and env.countries == ["MA", "ES"]


CASES = [
    (b"", "envelope", "not valid JSON"),
    (b"\xc3\x28", "envelope", "not valid UTF-8"),
    (b'"a string"', "envelope", "expected a JSON object"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "sender"}), "sender", "Field required"),
    (orjson.dumps(GOOD | {"kind": "rumour"}), "kind", "Input should be"),
    (orjson.dumps(GOOD | {"priority": "whenever"}), "priority", "Input should be"),
    (orjson.dumps(GOOD | {"sent_at": "yesterday"}), "sent_at", ""),
    (orjson.dumps(GOOD | {"body": "é" * (MAX_BODY_BYTES // 2 + 1)}), "body", "over the"),
    (orjson.dumps(GOOD | {"countries": ["MAR"]}), "countries", "not an ISO 3166-1 alpha-2 code: MAR"),
    (orjson.dumps(GOOD | {"crime_types": ["drugs"]}), "crime_types", "unknown crime type code(s): drugs"),
    (orjson.dumps(GOOD | {"message_id": ""}), "message_id", ""),
    (orjson.dumps(GOOD | {"extra": 1}), "extra", "unknown field"),
]


@pytest.mark.parametrize(("raw", "field", "problem"), CASES)
def test_bad_input_names_the_field(raw: bytes, field: str, problem: str) -> None:
    out = decode_envelope(raw)
    assert isinstance(out, Rejection)
    assert out.field == field
    assert problem in out.problem


def test_a_rejection_keeps_the_ids_it_could_read() -> None:
    out = decode_envelope(orjson.dumps(GOOD | {"kind": "rumour"}))
    assert isinstance(out, Rejection) and (out.sender, out.message_id) == ("ofast", "m1")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert isinstance(decode_envelope(raw), Envelope | Rejection)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*GOOD, "countries", "crime_types", "x"]), json_values))
def test_arbitrary_objects_either_decode_or_name_a_field(obj: dict[str, Any]) -> None:
    out = decode_envelope(json.dumps(GOOD | obj).encode())
    assert isinstance(out, Envelope) or (isinstance(out, Rejection) and out.field and out.problem)


def test_the_published_json_schema_is_up_to_date() -> None:
    from pathlib import Path

    from watchcentre.core.envelope import envelope_schema

    published = json.loads((Path(__file__).resolve().parents[2] / "docs/envelope.schema.json").read_text())
    current = envelope_schema()
    assert {k: v for k, v in published.items() if k not in ("$schema", "$id")} == current, (
        "regenerate docs/envelope.schema.json (see README)"
    )
