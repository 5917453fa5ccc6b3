"""Operators' corrections of what a message is about, kept as labels: the truth `watchcentre eval`
measures the rules against, and the rules that most often needed one. Pure.

A correction is optional per field: `crime_types` or `countries` None means the operator did not
say (nothing is learnt about it), an empty list that there is none. Primary first for crime types."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from watchcentre.core.classify import Classification
from watchcentre.core.errors import Invalid
from watchcentre.core.taxonomy import CRIME_CODES

MAX_CRIME_TYPES = 15
MAX_COUNTRIES = 60


class Label(BaseModel):
    model_config = ConfigDict(frozen=True)

    sender: str
    message_id: str
    at: datetime
    actor: str
    reason: str
    crime_types: list[str] | None = Field(
        description="The operator's crime types, primary first; None: not said."
    )
    countries: list[str] | None = Field(description="The operator's foreign countries; None: not said.")
    predicted_crime_types: list[str] = Field(default_factory=list, description="What the rules had said.")
    predicted_countries: list[str] = Field(default_factory=list)
    blamed: list[str] = Field(
        default_factory=list,
        description="The rules (phrase or pattern) behind each wrong label, `X: missed` for a miss.",
    )


def checked(
    crime_types: Sequence[str] | None, countries: Sequence[str] | None, known_countries: Iterable[str]
) -> tuple[list[str] | None, list[str] | None]:
    """The corrections, cleaned; Invalid naming the field for an unknown code."""
    crimes = None
    if crime_types is not None:
        crimes = list(dict.fromkeys(c.strip() for c in crime_types))
        unknown = [c for c in crimes if c not in CRIME_CODES]
        if unknown:
            raise Invalid("crime_types", f"not taxonomy codes: {', '.join(unknown)}")
        if len(crimes) > MAX_CRIME_TYPES:
            raise Invalid("crime_types", f"at most {MAX_CRIME_TYPES}")
    places = None
    if countries is not None:
        places = list(dict.fromkeys(c.strip().upper() for c in countries))
        known = set(known_countries)
        unknown = [c for c in places if c not in known]
        if unknown:
            raise Invalid("countries", f"not ISO 3166-1 alpha-2 codes: {', '.join(unknown)}")
        if len(places) > MAX_COUNTRIES:
            raise Invalid("countries", f"at most {MAX_COUNTRIES}")
    return crimes, places


def blame(
    cls: Classification, crime_types: Sequence[str] | None, countries: Sequence[str] | None
) -> list[str]:
    """The rules behind each label the operator removed (`code: rule "phrase"`, folded), and `code:
    missed` for each label they added, so the console can show which rules most often needed one."""
    out: list[str] = []
    wrong: set[str] = set()
    if crime_types is not None:
        wrong |= set(cls.crime_types) - set(crime_types)
        out += [f"{c}: missed" for c in crime_types if c not in cls.crime_types]
    if countries is not None:
        wrong |= set(cls.countries) - set(countries)
        out += [f"{c}: missed" for c in countries if c not in cls.countries]
    for e in cls.evidence:
        if e.target in wrong and not e.negated_by and e.rule != "hint":
            out.append(f'{e.target}: {e.rule} "{" ".join(e.text.lower().split())}"')
    return list(dict.fromkeys(out))


def most_blamed(labels: Iterable[Label], limit: int = 10) -> list[tuple[str, int]]:
    """The rules most often behind a correction, most first (ties by name)."""
    counts: dict[str, int] = {}
    for label in labels:
        for rule in label.blamed:
            counts[rule] = counts.get(rule, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
