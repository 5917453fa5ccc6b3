"""The bounds on hostile input (core/bounds.py), the extension bound (core/lifecycle.py) and the
log redaction at the handler (adapters/logging.py), in isolation."""

from __future__ import annotations

import io
import logging
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from tests.unit.test_lifecycle import RULES, T0, D, case
from watchcentre.adapters.logging import MAX_TRACEBACK_CHARS, configure_logging
from watchcentre.core.bounds import MAX_JSON_DEPTH, time_problem, too_deep, visible
from watchcentre.core.envelope import Rejection, decode_envelope
from watchcentre.core.lifecycle import Action, DeadlineRules, InvalidTransition, Side, apply


def nest(depth: int) -> object:
    value: object = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def test_depth_is_counted_without_recursion() -> None:
    assert not too_deep(nest(MAX_JSON_DEPTH)) and too_deep(nest(MAX_JSON_DEPTH + 1))
    assert too_deep(nest(100_000))  # far past the interpreter's recursion limit
    assert not too_deep({"a": [1, 2, {"b": "c"}], "d": "e"})


@pytest.mark.parametrize(
    ("at", "sane"),
    [
        (datetime(2024, 5, 1, tzinfo=UTC), True),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-23, minutes=-59))), False),
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23, minutes=59))), False),
        (datetime(1999, 12, 31, 23, 59, tzinfo=UTC), False),
        (datetime(2100, 1, 1, tzinfo=UTC), False),
    ],
)
def test_times_outside_the_sane_range_are_a_problem_never_an_overflow(at: datetime, sane: bool) -> None:
    assert (time_problem(at) is None) is sane


def test_a_too_deep_envelope_is_a_rejection_naming_the_problem() -> None:
    for depth in (40, 300, 5000):
        raw = b'{"message_id": "m", "sender": "ofast", "countries": ' + b"[" * depth + b"]" * depth + b"}"
        decoded = decode_envelope(raw)
        assert isinstance(decoded, Rejection)
        assert (decoded.field, decoded.problem) == (
            "envelope",
            f"nested more than {MAX_JSON_DEPTH} levels deep",
        )


def test_bidi_and_zero_width_characters_are_made_visible() -> None:
    assert visible("Facture \u202egnp.exe\u200b\ufeff") == "Facture ⟨U+202E⟩gnp.exe⟨U+200B⟩⟨U+FEFF⟩"
    assert visible("Trafic de cocaïne – الرباط") == "Trafic de cocaïne – الرباط"  # real text untouched


def test_an_extension_is_bounded_past_the_legal_due_time() -> None:
    c = case()  # normal: legal due T0 + 7 days
    limit = T0 + 7 * D + RULES.extend_at_most.delta
    ok, _ = apply(c, Action.EXTEND, Side.POST, T0 + D, expected_at=limit, reason="r")
    assert ok.due_at == limit
    with pytest.raises(InvalidTransition, match="at most 30 days past the legal due time") as refused:
        apply(c, Action.EXTEND, Side.POST, T0 + D, expected_at=limit + timedelta(seconds=1), reason="r")
    assert refused.value.current is c.state
    with pytest.raises(InvalidTransition, match="at most 12 hours"):
        apply(
            c,
            Action.EXTEND,
            Side.POST,
            T0 + D,
            expected_at=T0 + 8 * D,
            reason="r",
            extend_at_most=timedelta(hours=12),
        )


def test_the_extension_bound_is_validated() -> None:
    data = RULES.model_dump()
    with pytest.raises(ValidationError, match="extend_at_most: at most 366 days"):
        DeadlineRules.model_validate({**data, "extend_at_most": {"days": 400}})
    with pytest.raises(ValidationError, match="above zero"):
        DeadlineRules.model_validate({**data, "extend_at_most": {"days": 0}})


def test_a_traceback_through_the_stdlib_handler_is_redacted_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []  # basicConfig installs its handler only on a bare root
    try:
        configure_logging("json", "INFO")
        token = "wct_" + "T" * 43
        try:
            raise ValueError(
                f"Got more than 8190 bytes when reading: b'Bearer {token}' wc_session=abc123 " + "x" * 50_000
            )
        except ValueError:
            logging.getLogger("aiohttp.server").exception("Error handling request")
        for h in root.handlers:
            h.flush()
    finally:
        for h in root.handlers:
            root.removeHandler(h)
        root.handlers = saved
        configure_logging("console", "INFO")
    text = stream.getvalue()
    assert "Error handling request" in text and "Traceback" in text
    assert token not in text and token[4:20] not in text and "abc123" not in text
    assert "Bearer ***" in text and "wc_session=***" in text
    assert len(text) < MAX_TRACEBACK_CHARS + 500 and "characters cut" in text
