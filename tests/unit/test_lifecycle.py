"""The request lifecycle, pure: transitions (table-driven), sides, and deadline maths."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from watchcentre.core.lifecycle import (
    Action,
    Case,
    CaseState,
    DeadlineRules,
    InvalidTransition,
    Side,
    apply,
    new_case,
)
from watchcentre.core.records import text_digest
from watchcentre.core.references import new_reference, well_formed

T0 = datetime(2026, 3, 6, 18, 0, tzinfo=UTC)  # a Friday evening: calendar days count the weekend
RULES = DeadlineRules.eu_default()
H = timedelta(hours=1)
D = timedelta(days=1)
S = CaseState


def case(priority: str = "normal", access: str | None = None, triage: bool = False) -> Case:
    return new_case(
        reference="WC-2026-000001",
        sender="ocrtis",
        message_id="m-1",
        priority=priority,
        access=access,
        subject="s",
        crime_types=[],
        countries=["ES"],
        recipients=["post.es"],
        triage=triage,
        opened_at=T0,
        rules=RULES,
    )


def at_state(state: CaseState) -> Case:
    return case().model_copy(update={"state": state})


@pytest.mark.parametrize(
    ("start", "action", "side", "end"),
    [
        (S.ROUTED, Action.ACK, Side.POST, S.ACKNOWLEDGED),
        (S.TRIAGE, Action.ACK, Side.CENTRE, S.ACKNOWLEDGED),
        (S.ACKNOWLEDGED, Action.PROGRESS, Side.POST, S.IN_PROGRESS),
        (S.ROUTED, Action.PROGRESS, Side.POST, S.IN_PROGRESS),
        (S.IN_PROGRESS, Action.ANSWER, Side.POST, S.ANSWERED),
        (S.ROUTED, Action.ANSWER, Side.POST, S.ANSWERED),
        (S.ANSWERED, Action.CLOSE, Side.UNIT, S.CLOSED),
        (S.IN_PROGRESS, Action.CLOSE, Side.CENTRE, S.CLOSED),
        (S.ACKNOWLEDGED, Action.REJECT, Side.POST, S.REJECTED),
        (S.ROUTED, Action.WITHDRAW, Side.UNIT, S.WITHDRAWN),
        (S.IN_PROGRESS, Action.CLARIFY_REQUEST, Side.POST, S.IN_PROGRESS),
    ],
)
def test_allowed_transitions(start: CaseState, action: Action, side: Side, end: CaseState) -> None:
    after, details = apply(at_state(start), action, side, T0 + H)
    assert after.state is end
    assert details["from"] == start.value and details["to"] == end.value and details["action"] == action.value


@pytest.mark.parametrize(
    ("start", "action", "side", "why"),
    [
        (S.ACKNOWLEDGED, Action.ACK, Side.POST, "cannot ack a case that is acknowledged"),
        (S.CLOSED, Action.PROGRESS, Side.POST, "cannot progress a case that is closed"),
        (S.ROUTED, Action.CLOSE, Side.UNIT, "cannot close a case that is routed"),
        (S.ANSWERED, Action.ANSWER, Side.POST, "cannot answer a case that is answered"),
        (S.ANSWERED, Action.WITHDRAW, Side.UNIT, "cannot withdraw a case that is answered"),
        (S.WITHDRAWN, Action.ACK, Side.POST, "cannot ack a case that is withdrawn"),
        (S.REJECTED, Action.EXTEND, Side.POST, "cannot extend a case that is rejected"),
        (S.ROUTED, Action.ACK, Side.UNIT, "a unit may not ack a case"),
        (S.ROUTED, Action.WITHDRAW, Side.POST, "a post may not withdraw a case"),
        (S.ROUTED, Action.CLARIFY_ANSWER, Side.UNIT, "no clarification request is pending"),
    ],
)
def test_refused_transitions_carry_the_current_state(
    start: CaseState, action: Action, side: Side, why: str
) -> None:
    with pytest.raises(InvalidTransition) as caught:
        apply(at_state(start), action, side, T0 + H)
    assert caught.value.current is start and caught.value.problem == why


@pytest.mark.parametrize(
    ("priority", "access", "ack", "answer"),
    [
        ("urgent", "direct", H, 8 * H),
        ("urgent", "indirect", H, 3 * D),
        ("urgent", None, H, 3 * D),  # default access: indirect
        ("normal", "direct", 24 * H, 7 * D),
        ("normal", "indirect", 24 * H, 7 * D),
    ],
)
def test_deadlines_follow_the_directive(
    priority: str, access: str | None, ack: timedelta, answer: timedelta
) -> None:
    c = case(priority, access)
    assert c.ack_due_at == T0 + ack
    assert c.due_at == T0 + answer and c.legal_due_at == T0 + answer
    assert c.warn_at == T0 + answer * 0.75
    assert c.time_left(T0) == answer.total_seconds()


def test_calendar_days_count_weekends() -> None:
    assert case().due_at == datetime(2026, 3, 13, 18, 0, tzinfo=UTC)  # the next Friday, same hour


def test_clarification_suspends_the_clock_and_resumes_it() -> None:
    c, _ = apply(case(), Action.ACK, Side.POST, T0 + H)
    paused, _ = apply(c, Action.CLARIFY_REQUEST, Side.POST, T0 + D)
    assert paused.due_at is None and paused.warn_at is None
    left = paused.time_left(T0 + D)
    assert left == (6 * D).total_seconds()
    assert paused.time_left(T0 + 5 * D) == left  # frozen while pending
    assert not paused.overdue(T0 + 30 * D)
    with pytest.raises(InvalidTransition):
        apply(paused, Action.CLARIFY_REQUEST, Side.POST, T0 + 2 * D)
    resumed, details = apply(paused, Action.CLARIFY_ANSWER, Side.UNIT, T0 + 3 * D)
    assert details["paused_seconds"] == (2 * D).total_seconds()
    assert resumed.due_at == T0 + 9 * D and resumed.legal_due_at == T0 + 9 * D
    assert resumed.time_left(T0 + 3 * D) == left


def test_an_answer_during_a_clarification_ends_the_pause() -> None:
    paused, _ = apply(case(), Action.CLARIFY_REQUEST, Side.POST, T0 + D)
    answered, _ = apply(paused, Action.ANSWER, Side.POST, T0 + 2 * D)
    assert answered.clarification_since is None and answered.paused_seconds == D.total_seconds()
    assert answered.answered_on_time() is True and answered.acknowledged_at == T0 + 2 * D


def test_an_extension_moves_the_effective_due_time_not_the_legal_one() -> None:
    c = case()
    new_time = T0 + 10 * D
    extended, details = apply(c, Action.EXTEND, Side.POST, T0 + D, expected_at=new_time, reason="court order")
    assert extended.due_at == new_time and extended.legal_due_at == T0 + 7 * D
    assert details["expected_at"] == new_time.isoformat() and extended.extension_reason == "court order"
    assert details["reason_sha256"] == text_digest("court order") and "court order" not in str(details)
    answered, _ = apply(extended, Action.ANSWER, Side.POST, T0 + 8 * D)
    assert answered.answered_on_time() is False  # late by the rules, even if announced


@pytest.mark.parametrize(
    ("expected_at", "reason", "why"),
    [
        (None, "r", "expected_at: a new expected time is required"),
        (T0 + 9 * D, "", "reason: an extension needs its reason"),
        (T0, "r", "expected_at: must be in the future"),
    ],
)
def test_an_extension_needs_a_future_time_and_a_reason(
    expected_at: datetime | None, reason: str, why: str
) -> None:
    with pytest.raises(InvalidTransition, match=why):
        apply(case(), Action.EXTEND, Side.POST, T0 + D, expected_at=expected_at, reason=reason)


def test_overdue_and_time_left() -> None:
    c = case("urgent", "direct")
    assert not c.overdue(T0 + 7 * H)
    assert c.overdue(T0 + 9 * H) and c.time_left(T0 + 9 * H) == -3600
    closed, _ = apply(c, Action.WITHDRAW, Side.UNIT, T0 + H)
    assert closed.time_left(T0 + 9 * H) is None and not closed.overdue(T0 + 9 * H)


def test_triage_opens_in_triage() -> None:
    assert case(triage=True).state is S.TRIAGE


def test_generated_references_cannot_be_enumerated() -> None:
    refs = [new_reference(2026) for _ in range(2000)]
    assert len(set(refs)) == len(refs)  # 50 random bits each: no two alike
    assert all(re.fullmatch(r"WC-2026-[0-9A-HJKMNP-TV-Z]{11}", r) and well_formed(r) for r in refs)
    assert len({r[8:10] for r in refs}) > 500  # no counter: the leading characters spread too

    def typo(r: str) -> str:
        return r[:-2] + ("0" if r[-2] != "0" else "1") + r[-1]

    assert sum(not well_formed(typo(r)) for r in refs) > 0.9 * len(refs)  # the check character tells
    assert not well_formed("WC-2026-000123") and not well_formed("OFAST/2026/17")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {
                "acknowledge": {"urgent": {"hours": 1}},
                "answer": [{"priority": "urgent", "within": {"hours": 8}}],
            },
            "no deadline for priority normal",
        ),
        (
            {
                "acknowledge": {"urgent": {"hours": 1}, "normal": {"hours": 1}},
                "answer": [
                    {"priority": "urgent", "access": "direct", "within": {"hours": 8}},
                    {"priority": "normal", "within": {"days": 7}},
                ],
            },
            "no rule for priority urgent with indirect access",
        ),
        ({"acknowledge": {"urgent": {"hours": 0}, "normal": {"hours": 1}}, "answer": []}, "above zero"),
        ({"warning_at": 1.5, "acknowledge": {}, "answer": []}, "less than 1"),
    ],
)
def test_bad_deadline_rules_are_refused_clearly(data: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        DeadlineRules.model_validate(data)


def test_the_shipped_deadlines_file_is_the_eu_default() -> None:
    from watchcentre.adapters.config_files import load_config

    assert load_config(Path(__file__).resolve().parents[2] / "config").deadlines == RULES


def test_a_bad_deadlines_file_is_refused_at_start_with_every_problem(tmp_path: Path) -> None:
    from watchcentre.adapters.config_files import ConfigError, load_config

    config = Path(__file__).resolve().parents[2] / "config"
    for f in config.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "deadlines.yaml").write_text(
        "warning_at: 2\nacknowledge: {urgent: {hours: 1}, normal: {hours: 24}}\n"
        "answer:\n  - {priority: urgent, within: {weeks: 1}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    problems = "\n".join(caught.value.problems)
    assert "deadlines.yaml: warning_at: Input should be less than 1" in problems
    assert "deadlines.yaml: answer.0.within.weeks: Extra inputs are not permitted" in problems
