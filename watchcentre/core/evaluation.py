"""How well rules label messages against a truth (a labelled corpus, operators' corrections): precision
and recall per crime type and per country, micro-averaged, and primary-type accuracy. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Truth:
    """One item: what it is about (None: not known for that dimension) and what the rules said."""

    crime_types: Sequence[str] | None
    countries: Sequence[str] | None
    got_crime_types: Sequence[str]
    got_countries: Sequence[str]


@dataclass
class _Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, expected: set[str], got: set[str]) -> None:
        self.tp += len(expected & got)
        self.fp += len(got - expected)
        self.fn += len(expected - got)

    def figures(self) -> dict[str, float | int]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(f, 4),
            "support": self.tp + self.fn,
        }


@dataclass
class Evaluation:
    items: int = 0
    primary_right: int = 0
    primary_items: int = 0
    crime: _Counts = field(default_factory=_Counts)
    country: _Counts = field(default_factory=_Counts)
    per_crime: dict[str, _Counts] = field(default_factory=dict)
    per_country: dict[str, _Counts] = field(default_factory=dict)

    @property
    def primary_accuracy(self) -> float:
        return round(self.primary_right / self.primary_items, 4) if self.primary_items else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "primary_accuracy": self.primary_accuracy,
            "primary_right": self.primary_right,
            "primary_items": self.primary_items,
            "crime_types": self.crime.figures(),
            "countries": self.country.figures(),
            "per_crime_type": {c: n.figures() for c, n in sorted(self.per_crime.items())},
            "per_country": {c: n.figures() for c, n in sorted(self.per_country.items())},
        }


def evaluate(items: Iterable[Truth]) -> Evaluation:
    ev = Evaluation()
    for t in items:
        ev.items += 1
        if t.crime_types is not None:
            expected, got = set(t.crime_types), set(t.got_crime_types)
            ev.crime.add(expected, got)
            for code in expected | got:
                ev.per_crime.setdefault(code, _Counts()).add(expected & {code}, got & {code})
            if t.crime_types:
                ev.primary_items += 1
                ev.primary_right += list(t.got_crime_types[:1]) == list(t.crime_types[:1])
        if t.countries is not None:
            expected, got = set(t.countries), set(t.got_countries)
            ev.country.add(expected, got)
            for code in expected | got:
                ev.per_country.setdefault(code, _Counts()).add(expected & {code}, got & {code})
    return ev


def summary_line(name: str, ev: Evaluation) -> str:
    c, k = ev.crime.figures(), ev.country.figures()
    return (
        f"{name:<22} {ev.items:>6}  primary {ev.primary_accuracy:6.1%}  crime P/R {c['precision']:.2f}/{c['recall']:.2f}"
        f"  countries P/R {k['precision']:.2f}/{k['recall']:.2f} (F1 {k['f1']:.2f})"
    )
