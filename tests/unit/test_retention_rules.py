"""config/retention.yaml: validated at start with every problem listed; which limit applies to what."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from watchcentre.adapters.config_files import ConfigError, load_config
from watchcentre.core.retention import COMBINATIONS, RetentionRules

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _with_retention(tmp_path: Path, text: str) -> Path:
    for f in CONFIG.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "retention.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_the_shipped_rules_load_and_cover_every_message() -> None:
    rules = load_config(CONFIG).retention
    assert rules is not None
    limits = rules.message_limits()
    assert set(limits) == set(COMBINATIONS)
    assert limits[("request", "routed")].span == timedelta(days=1095)
    assert limits[(None, "rejected")].span == timedelta(days=90)
    assert not limits[("alert", "triage")].erases  # reviewed, not erased
    assert limits[("information", "triage")].span == timedelta(days=730)


def test_without_the_file_nothing_is_erased(tmp_path: Path) -> None:
    for f in CONFIG.glob("*.yaml"):
        if f.name != "retention.yaml":
            shutil.copy(f, tmp_path / f.name)
    assert load_config(tmp_path).retention is None


def test_a_bad_retention_file_is_refused_at_start_with_every_problem(tmp_path: Path) -> None:
    root = _with_retention(
        tmp_path,
        "messages:\n"
        "  - {kind: request, status: any, erase_after: {weeks: 2}}\n"
        "  - {kind: parcel, status: any, erase_after: {days: 1}}\n"
        "  - {kind: any, status: any, erase_after: {days: 1}, review_after: {days: 1}}\n"
        "cases_after_end: {erase_after: {days: 0}}\n"
        "notes: {review_after: {days: 40000}}\n"
        "raw_envelopes: {days: 30}\n"
        "dead_letters: {days: 30}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    problems = "\n".join(caught.value.problems)
    assert "retention.yaml: messages.0.erase_after.weeks: Extra inputs are not permitted" in problems
    assert "retention.yaml: messages.1.kind.str-enum[Kind]: Input should be" in problems
    assert (
        "retention.yaml: messages.2: Value error, give exactly one of erase_after and review_after"
        in problems
    )
    assert (
        "retention.yaml: cases_after_end.erase_after: Value error, a duration needs hours or days" in problems
    )
    assert "retention.yaml: notes: Value error, at most 36600 days" in problems
    assert "retention.yaml: expired_tokens: Field required" in problems


def test_every_message_must_have_a_limit(tmp_path: Path) -> None:
    root = _with_retention(
        tmp_path,
        "messages:\n  - {kind: request, status: any, erase_after: {days: 10}}\n"
        "cases_after_end: {erase_after: {days: 1}}\nnotes: {erase_after: {days: 1}}\n"
        "raw_envelopes: {days: 1}\nexpired_tokens: {days: 1}\ndead_letters: {days: 1}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    (problem,) = caught.value.problems
    assert problem.startswith("retention.yaml: (top level): Value error, messages: no rule for reply/routed")
    assert "no kind/rejected" in problem


def test_the_first_matching_rule_applies() -> None:
    rules = RetentionRules.model_validate(
        {
            "messages": [
                {"kind": "request", "status": "triage", "review_after": {"days": 5}},
                {"kind": "request", "erase_after": {"days": 7}},
                {"erase_after": {"days": 9}},
            ],
            "cases_after_end": {"erase_after": {"days": 1}},
            "notes": {"erase_after": {"days": 1}},
            "raw_envelopes": {"days": 1},
            "expired_tokens": {"days": 1},
            "dead_letters": {"days": 1},
        }
    )
    limits = rules.message_limits()
    assert (limits[("request", "triage")].erases, limits[("request", "triage")].span.days) == (False, 5)
    assert limits[("request", "routed")].span.days == 7
    assert limits[(None, "rejected")].span.days == 9
