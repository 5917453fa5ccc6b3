"""The shape of config/gazetteer.yaml: country vocabulary that the reference data sets miss."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from watchcentre.core.classify import PlaceRules


class Ambiguous(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: str
    weight: float = Field(ge=0.0, le=1.0)


class GazetteerExtra(BaseModel):
    """Demonyms, aliases and city names in English and French; ambiguous names at a lower weight;
    a stoplist of words never taken as places (common words that are also city names)."""

    model_config = ConfigDict(extra="forbid")

    demonyms: dict[str, list[str]] = Field(default_factory=dict)
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    cities: dict[str, str] = Field(default_factory=dict)
    ambiguous: dict[str, Ambiguous] = Field(default_factory=dict)
    stoplist: list[str] = Field(default_factory=list)
    in_passing: PlaceRules = Field(default_factory=PlaceRules)
    min_city_population: int = Field(default=500_000, ge=15_000)

    def countries(self) -> set[str]:
        """Every country code the file mentions, to check against the real ones."""
        return (
            set(self.demonyms)
            | set(self.aliases)
            | set(self.cities.values())
            | {a.country for a in self.ambiguous.values()}
        )
