"""Handling markings: what a sender's `handling` code does to routing. The codes are data
(config/handling.yaml); this module is their shape and the rule each effect applies. Pure.

Effects:
* `none`: informative only (shown wherever the message is shown, routed as usual);
* `single-post`: never fanned out: at most one post receives it (the post it answers, otherwise
  the post of the primary country); other posts are named in the explanation as withheld;
* `centre-only`: only the centre's triage receives it; no post, no unit.

A marking follows its case: a message attached to a case carries the stricter of its own marking
and the case's (`strictest`), whatever path routes it.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

CODE_PATTERN = r"^[a-z][a-z0-9-]{0,40}$"


class Effect(StrEnum):
    NONE = "none"
    SINGLE_POST = "single-post"
    CENTRE_ONLY = "centre-only"


_RANK = {Effect.NONE: 0, Effect.SINGLE_POST: 1, Effect.CENTRE_ONLY: 2}
"""How much an effect restricts routing: the higher wins when two markings meet."""


class HandlingCode(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    effect: Effect
    description: str = Field(min_length=1)


class HandlingRules(BaseModel):
    """The known handling codes. An envelope with any other code is rejected (field `handling`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    codes: dict[str, HandlingCode] = Field(default_factory=dict)

    def problems(self) -> list[str]:
        pattern = re.compile(CODE_PATTERN)
        return [
            f"codes: {code!r} is not a valid code (lower case, digits, '-')"
            for code in self.codes
            if not pattern.match(code)
        ]

    def effect(self, code: str | None) -> Effect:
        if code is None or code not in self.codes:
            return Effect.NONE
        return self.codes[code].effect

    def strictest(self, case_code: str | None, own_code: str | None) -> str | None:
        """The marking a message attached to a case carries: the more restrictive effect wins; on a
        tie the case's marking (a message cannot loosen it), or the message's if the case has none."""
        if case_code is None:
            return own_code
        if own_code is None:
            return case_code
        return own_code if _RANK[self.effect(own_code)] > _RANK[self.effect(case_code)] else case_code

    def check(self, code: str | None) -> str | None:
        """Why this code is refused; None when it is known (or absent)."""
        if code is None or code in self.codes:
            return None
        known = ", ".join(sorted(self.codes)) or "none configured"
        return f"unknown handling code '{code}' (known: {known})"
