"""Statistics over cases for management: counts by crime type, country, post and state; time to
acknowledge and to answer (median and 90th percentile, nearest rank); share answered on time (by the
rules' due time, clarification pauses included, extensions not). Pure."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from watchcentre.core.lifecycle import Case


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least `share` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "median": statistics.median(values) if values else None,
        "p90": percentile(values, 0.9),
    }


def case_stats(cases: Sequence[Case]) -> dict[str, Any]:
    by_crime: Counter[str] = Counter()
    by_country: Counter[str] = Counter()
    by_post: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    to_ack: list[float] = []
    to_answer: list[float] = []
    on_time = 0
    for case in cases:
        by_crime.update(case.crime_types or ["unclassified"])
        by_country.update(case.countries or ["none"])
        by_post.update(
            [r.removeprefix("post.") for r in case.recipients if r.startswith("post.")] or ["triage"]
        )
        by_state[case.state.value] += 1
        if case.acknowledged_at is not None:
            to_ack.append((case.acknowledged_at - case.opened_at).total_seconds())
        if case.answered_at is not None:
            to_answer.append((case.answered_at - case.opened_at).total_seconds())
            on_time += bool(case.answered_on_time())
    return {
        "total": len(cases),
        "by_crime_type": dict(sorted(by_crime.items())),
        "by_country": dict(sorted(by_country.items())),
        "by_post": dict(sorted(by_post.items())),
        "by_state": dict(sorted(by_state.items())),
        "time_to_ack_seconds": _summary(to_ack),
        "time_to_answer_seconds": _summary(to_answer),
        "answered": len(to_answer),
        "answered_on_time": on_time,
        "share_answered_on_time": round(on_time / len(to_answer), 4) if to_answer else None,
    }


def stats_rows(stats: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The statistics as (section, key, value) rows, for CSV."""
    rows: list[tuple[str, str, str]] = [("total", "cases", str(stats["total"]))]
    for section in ("by_crime_type", "by_country", "by_post", "by_state"):
        rows += [(section, key, str(n)) for key, n in stats[section].items()]
    for section in ("time_to_ack_seconds", "time_to_answer_seconds"):
        rows += [(section, key, "" if v is None else str(v)) for key, v in stats[section].items()]
    for key in ("answered", "answered_on_time", "share_answered_on_time"):
        rows.append(("answers", key, "" if stats[key] is None else str(stats[key])))
    return rows
