"""Who may see and do what: principals, roles, need-to-know. Pure: no I/O.

Every route and every later feature (cases, statistics, the live feed) asks the same three questions:

* `may_use(principal, area)`: may this role use this part of the API at all? (No → 403.)
* `can_see(principal, message)`: is this message visible to it? (No → answered as if it did not
  exist: 404, absent from lists, searches, counts and feeds.)
* `visibility(principal)` (messages), `case_visibility(principal)` (cases): the same rule as a store
  filter (`Visibility`), so a list is scoped in the query itself, never filtered after a LIMIT.

Roles: `operator` (everything operational), `post:<ID>` (messages routed to or sent by that post),
`unit:<ID>` (the requests it sent and their answers), `auditor` (the audit trail, nothing else).
Rejected inputs are visible to operators only: their `sender` is whatever the input claimed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from watchcentre.core.network import Network, Post, Unit
from watchcentre.core.records import Status, StoredMessage, Visibility
from watchcentre.core.routing import post_key, unit_key


class Role(StrEnum):
    OPERATOR = "operator"
    POST = "post"
    UNIT = "unit"
    AUDITOR = "auditor"


class Area(StrEnum):
    """Parts of the API, each with the roles that may use it."""

    MESSAGES = "messages"  # messages (later: cases, statistics, live feed)
    NETWORK = "network"  # posts and units directory
    AUDIT = "audit"  # the audit trail and its verification
    REFERENCE = "reference"  # schemas, OpenAPI document
    METRICS = "metrics"
    CONSOLE = "console"  # the operator console: live feed, triage, dead letters, shift log


_AREAS: dict[Area, frozenset[Role]] = {
    Area.MESSAGES: frozenset({Role.OPERATOR, Role.POST, Role.UNIT}),
    Area.NETWORK: frozenset({Role.OPERATOR, Role.POST, Role.UNIT}),
    Area.AUDIT: frozenset({Role.AUDITOR}),
    Area.REFERENCE: frozenset(Role),
    Area.METRICS: frozenset({Role.OPERATOR}),
    Area.CONSOLE: frozenset({Role.OPERATOR}),
}

SUBJECT_PATTERN = r"^[a-z][a-z0-9_-]{1,40}$"
_SUBJECT = re.compile(SUBJECT_PATTERN)


class Principal(BaseModel):
    """Who is asking: a role, the post or unit it speaks for (if any), a person's name, its token."""

    model_config = ConfigDict(frozen=True)

    role: Role
    subject: str | None = Field(default=None, description="The post or unit id for post: and unit: roles.")
    name: str = Field(description="The person (or system) the token was issued to.")
    token_id: str | None = None
    expires_at: datetime | None = None

    @property
    def label(self) -> str:
        """`operator`, `auditor`, `post:<ID>`, `unit:<ID>`: the role as written on the command line."""
        return f"{self.role.value}:{self.subject}" if self.subject else self.role.value

    @property
    def key(self) -> str | None:
        """The routing key of the post or unit this principal speaks for."""
        if self.role is Role.POST and self.subject:
            return post_key(self.subject)
        if self.role is Role.UNIT and self.subject:
            return unit_key(self.subject)
        return None


def role_problems(role: Role, subject: str | None, network: Network | None = None) -> list[str]:
    """Why (role, subject) is not a valid principal; empty when it is."""
    if role in (Role.POST, Role.UNIT):
        if not subject:
            return [f"role {role.value} needs --{role.value} ID"]
        if not _SUBJECT.match(subject):
            return [f"{role.value} id {subject!r} is not a valid id"]
        if network is not None:
            known = network.posts_by_id if role is Role.POST else network.units_by_id
            if subject not in known:
                return [f"no {role.value} '{subject}' in the network"]
    elif subject:
        return [f"role {role.value} takes no post or unit id"]
    return []


def may_use(principal: Principal, area: Area) -> bool:
    return principal.role in _AREAS[area]


def visibility(principal: Principal) -> Visibility | None:
    """The store filter for what this principal may see; None means everything."""
    if principal.role is Role.OPERATOR:
        return None
    if principal.role in (Role.POST, Role.UNIT) and principal.subject and principal.key:
        return Visibility(senders=frozenset({principal.subject}), recipients=frozenset({principal.key}))
    return Visibility(senders=frozenset(), recipients=frozenset())  # auditor: no message at all


def case_visibility(principal: Principal) -> Visibility | None:
    """The store filter for the cases this principal may see; None means every case. A post sees the
    cases routed to it, a unit the requests it sent (it opened those cases); anyone else none."""
    if principal.role is Role.OPERATOR:
        return None
    if principal.role is Role.POST and principal.key:
        return Visibility(senders=frozenset(), recipients=frozenset({principal.key}))
    if principal.role is Role.UNIT and principal.subject:
        return Visibility(senders=frozenset({principal.subject}), recipients=frozenset())
    return Visibility(senders=frozenset(), recipients=frozenset())


def case_visible(vis: Visibility | None, *, sender: str, recipients: Iterable[str]) -> bool:
    """The case Visibility rule itself, as the stores apply it in SQL."""
    return vis is None or sender in vis.senders or any(r in vis.recipients for r in recipients)


def visible(vis: Visibility | None, *, status: str, sender: str | None, recipients: Iterable[str]) -> bool:
    """The Visibility rule itself, as the stores apply it in SQL."""
    if vis is None:
        return True
    if status == Status.REJECTED:
        return False
    return (sender is not None and sender in vis.senders) or any(r in vis.recipients for r in recipients)


def sees_event(
    principal: Principal,
    *,
    message: tuple[str, str | None, Sequence[str]] | None,
    case: tuple[str, Sequence[str]] | None,
) -> bool:
    """A live-feed event, by the rules of the API: one that carries a message (its `(status, sender,
    recipients)`) only when that message is visible; one about a case (its `(sender, recipients)`)
    only when that case is; anything else (notes, re-injections) operators only."""
    if message is not None:
        status, sender, recipients = message
        return visible(visibility(principal), status=status, sender=sender, recipients=recipients)
    if case is not None:
        sender, recipients = case
        return case_visible(case_visibility(principal), sender=sender, recipients=recipients)
    return principal.role is Role.OPERATOR


def can_see(principal: Principal, message: StoredMessage) -> bool:
    """Whether the message exists as far as this principal is concerned."""
    return visible(
        visibility(principal), status=message.status, sender=message.sender, recipients=message.recipients
    )


def visible_posts(principal: Principal, network: Network) -> list[Post]:
    if principal.role is Role.OPERATOR:
        return list(network.posts)
    if principal.role is Role.POST:
        return [p for p in network.posts if p.id == principal.subject]
    return []


def visible_units(principal: Principal, network: Network) -> list[Unit]:
    if principal.role is Role.OPERATOR:
        return list(network.units)
    if principal.role is Role.UNIT:
        return [u for u in network.units if u.id == principal.subject]
    return []


# -- tokens ------------------------------------------------------------------------------------------

TOKEN_PREFIX = "wct_"


class TokenRecord(BaseModel):
    """An issued bearer token as the store keeps it: never the token, only its SHA-256."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    role: Role
    subject: str | None = None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    hash: str = Field(repr=False)

    def principal(self) -> Principal:
        return Principal(
            role=self.role, subject=self.subject, name=self.name, token_id=self.id, expires_at=self.expires_at
        )

    def problem(self, now: datetime) -> str | None:
        """Why this token cannot be used now; None when it can."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return None


def new_token() -> tuple[str, str]:
    """(token id, secret token): 32 random bytes, shown once to whoever issues it."""
    return secrets.token_hex(8), TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
