"""What the service layer refuses, in domain terms. Each adapter says it its own way, in one place
(HTTP: the error middleware answers 404, 409 or 400 with the usual JSON error body). Pure: no I/O."""

from __future__ import annotations

from typing import Literal

Kind = Literal["not_found", "conflict", "invalid"]


class DomainError(Exception):
    """A refusal the caller can act on: `field` names what is at fault, `problem` says why; `kind`
    says which of the three it is (a class's own, or an instance's for the older errors below)."""

    kind: Kind = "invalid"
    current: str | None = None
    """The current state that does not allow it, when there is one (conflicts)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(DomainError):
    """What is asked for does not exist, or not for this caller (both look the same from outside)."""

    kind: Kind = "not_found"


class Conflict(DomainError):
    """The thing's current state (`current`, when there is one) does not allow it."""

    kind: Kind = "conflict"

    def __init__(self, field: str, problem: str, current: str | None = None) -> None:
        super().__init__(field, problem)
        self.current = current


class Invalid(DomainError):
    """The request itself is wrong: `field` names the part at fault."""

    kind: Kind = "invalid"
