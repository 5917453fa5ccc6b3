"""The network: the centre, the posts abroad and the countries each covers, and the French units.

The network is data (config/network.yaml); this module is its shape and its rules of consistency.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

from watchcentre.core.taxonomy import CRIME_CODES

CENTRE = "centre"
"""The id of the operations monitoring centre, as a sender and as a recipient."""

_ID_PATTERN = r"^[a-z][a-z0-9_-]{1,40}$"


class LiaisonOfficer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    city: str
    country: str
    countries: list[str] = Field(default_factory=list, description="Countries this officer follows.")


class Post(BaseModel):
    """An internal security post in an embassy; it covers one country or a whole region."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_ID_PATTERN)
    city: str
    country: str = Field(description="Host country of the embassy (ISO 3166-1 alpha-2).")
    countries: list[str] = Field(min_length=1, description="Countries covered (ISO 3166-1 alpha-2).")
    liaison_officers: list[LiaisonOfficer] = Field(default_factory=list)

    @field_validator("countries")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        return [c.upper() for c in v]


class Unit(BaseModel):
    """A French investigating unit; its crime areas say what it works on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_ID_PATTERN)
    name: str
    crime_areas: list[str] = Field(default_factory=list)

    @field_validator("crime_areas")
    @classmethod
    def _known_codes(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - CRIME_CODES)
        if unknown:
            raise ValueError(f"unknown crime type code(s): {', '.join(unknown)}")
        return v


class Network(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    home: list[str] = Field(
        min_length=1,
        description="Codes that are home (France and its overseas territories): never routed to.",
    )
    posts: list[Post]
    units: list[Unit]

    @cached_property
    def post_by_country(self) -> dict[str, Post]:
        return {c: p for p in self.posts for c in p.countries}

    @cached_property
    def posts_by_id(self) -> dict[str, Post]:
        return {p.id: p for p in self.posts}

    @cached_property
    def units_by_id(self) -> dict[str, Unit]:
        return {u.id: u for u in self.units}

    @cached_property
    def units_by_crime(self) -> dict[str, tuple[Unit, ...]]:
        out: dict[str, list[Unit]] = {}
        for u in self.units:
            for code in u.crime_areas:
                out.setdefault(code, []).append(u)
        return {code: tuple(units) for code, units in out.items()}

    def units_for(self, crime_type: str) -> tuple[Unit, ...]:
        """The units whose crime areas hold this crime type, in the order of the network file."""
        return self.units_by_crime.get(crime_type, ())

    @cached_property
    def home_set(self) -> frozenset[str]:
        return frozenset(self.home)

    def sender_kind(self, sender: str) -> str | None:
        """'centre', 'post', 'unit', or None for a sender the network does not know."""
        if sender == CENTRE:
            return CENTRE
        if sender in self.posts_by_id:
            return "post"
        if sender in self.units_by_id:
            return "unit"
        return None

    def problems(self, universe: Iterable[str]) -> list[str]:
        """Every inconsistency against the set of real country codes; empty when the network is sound."""
        known = set(universe)
        out: list[str] = []
        ids = [p.id for p in self.posts] + [u.id for u in self.units]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            out.append(f"ids used more than once: {', '.join(dupes)}")
        if CENTRE in ids:
            out.append(f"'{CENTRE}' is reserved for the centre and cannot be a post or unit id")
        for code in self.home:
            if code not in known:
                out.append(f"home: '{code}' is not an ISO 3166-1 alpha-2 code")
        seen: dict[str, str] = {}
        for post in self.posts:
            if post.country not in known:
                out.append(f"post {post.id}: host country '{post.country}' is not an ISO 3166-1 alpha-2 code")
            for code in post.countries:
                if code not in known:
                    out.append(f"post {post.id}: '{code}' is not an ISO 3166-1 alpha-2 code")
                elif code in self.home_set:
                    out.append(f"post {post.id}: '{code}' is home territory, not covered by a post")
                elif code in seen:
                    out.append(f"country {code} is covered by both {seen[code]} and {post.id}")
                else:
                    seen[code] = post.id
        missing = sorted(known - set(seen) - self.home_set)
        if missing:
            out.append(f"countries covered by no post: {', '.join(missing)}")
        return out
