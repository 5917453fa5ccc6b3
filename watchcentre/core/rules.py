"""The rules in force: everything the pipeline decides from, built once from one config directory.

A `Rules` object is immutable; `RulesRef` holds the one in force. The pipeline reads the reference
once per message and decides that whole message with it, so a reload (SIGHUP, or an operator over
HTTP) takes effect between two messages: one in flight finishes with the rules it started with.
Swapping is one attribute assignment on the event loop's thread, so no lock is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from watchcentre.core.classify import Classifier
from watchcentre.core.handling import HandlingRules
from watchcentre.core.lifecycle import DeadlineRules
from watchcentre.core.network import Network
from watchcentre.core.routing import Competence
from watchcentre.core.senders import SenderPolicy


@dataclass(frozen=True)
class Rules:
    network: Network
    classifier: Classifier
    handling: HandlingRules = field(default_factory=HandlingRules)
    deadlines: DeadlineRules = field(default_factory=DeadlineRules.eu_default)
    senders: SenderPolicy = field(default_factory=SenderPolicy)
    competence: Competence = field(default_factory=Competence)
    digest: str = ""
    """SHA-256 over the config files read: which configuration is in force."""
    files: Mapping[str, str] = field(default_factory=dict)
    """Each file's own SHA-256, by file name."""


def competence_of(classifier: Classifier) -> Competence:
    """Routing to a unit needs the confidence the countries need (the classifier's threshold)."""
    w = classifier.rules.weights
    return Competence(threshold=w.country_threshold, crime_threshold=w.crime_threshold)


class RulesRef:
    """The one reference to the rules in force, swapped whole."""

    def __init__(self, rules: Rules) -> None:
        self._rules = rules

    @property
    def current(self) -> Rules:
        return self._rules

    def swap(self, rules: Rules) -> Rules:
        """Put `rules` in force; returns the ones it replaces."""
        old, self._rules = self._rules, rules
        return old


class ConfigReload(BaseModel):
    """What a reload did: `changed` (the new configuration is in force), `unchanged` (the files are
    the ones in force), `rejected` (invalid: every problem listed, the running one kept)."""

    outcome: Literal["changed", "unchanged", "rejected"]
    digest: str = Field(description="The digest of the configuration in force after the reload.")
    previous: str | None = Field(default=None, description="The digest it replaced (changed only).")
    files: dict[str, str] = Field(default_factory=dict, description="SHA-256 of each file read.")
    problems: list[str] = Field(default_factory=list)
    by: str = Field(description="Who asked: `signal:SIGHUP` or the operator.")
