"""What the service records: audit events, stored messages, and the outcome of handling one input."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from watchcentre.core.envelope import Envelope, Rejection, Routing
from watchcentre.core.identifiers import Identifier


class EventType(StrEnum):
    RECEIVED = "received"
    REJECTED = "rejected"
    CLASSIFIED = "classified"
    ROUTED = "routed"
    TRIAGED = "triaged"
    ACCESSED = "accessed"  # a person read one message (who, what, when)
    LISTED = "listed"  # a person listed or searched messages (the ids returned)
    TOKEN_ISSUED = "token_issued"
    TOKEN_REVOKED = "token_revoked"
    REPLAYED = "replayed"  # an operator moved a dead letter back to P.inbound (`watchcentre dead replay`)
    NOTE_ADDED = "note_added"  # an operator wrote a handover note in the shift log
    CONFIG_CHANGED = "config_changed"  # a reload put a new configuration in force (digests, who asked)
    CONFIG_REJECTED = "config_rejected"  # a reload found the configuration invalid (every problem)
    SEARCHED = "searched"  # an auditor searched every stored text for an identifier (a person's request)
    EXPORTED = "exported"  # an auditor exported what concerns a person, or the audit trail of a period
    MATCHED = "matched"  # a new message shares identifiers with earlier ones (cross-matching)
    WATCH_HIT = "watch_hit"  # a new message matches a watch-list entry (an alert)
    WATCH_ADDED = "watch_added"
    WATCH_ENDED = "watch_ended"
    ALERT_ACKNOWLEDGED = "alert_acknowledged"  # an operator saw a deadline alert (the console)
    INBOX_MARKED = "inbox_marked"  # an operator marked a centre.inbox item read / handled (or not)
    COMPOSED = "composed"  # an operator wrote a message from the centre (who; the pipeline routed it)


class Status(StrEnum):
    ROUTED = "routed"
    TRIAGE = "triage"
    REJECTED = "rejected"


SYSTEM_ACTOR = "watchcentre"


class AuditEvent(BaseModel):
    """One append-only audit record. `seq` is given by the store when the record is committed."""

    model_config = ConfigDict(frozen=True)

    seq: int | None = None
    at: datetime
    type: str
    actor: str
    sender: str | None = None
    message_id: str | None = None
    reference: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str | None = Field(default=None, description="The previous record's hash (tamper evidence).")
    hash: str | None = Field(
        default=None, description="SHA-256 over prev_hash and this record's canonical encoding."
    )


@dataclass(frozen=True, slots=True)
class Visibility:
    """Need-to-know as a store filter: a message is visible when it was accepted (not rejected) and
    its sender is one of `senders` or one of its recipients is in `recipients`; a case, when its
    requester is one of `senders` or one of its recipients is in `recipients`. None means all."""

    senders: frozenset[str]
    recipients: frozenset[str]


@dataclass(frozen=True, slots=True)
class CaseCursor:
    """A place in the newest-first order of cases (opened_at, then reference, both descending): a
    page `before` it holds the cases that come after it in that order."""

    opened_at: datetime
    reference: str


class StoredMessage(BaseModel):
    """A message as the store holds it: what came in, what was decided, where it stands."""

    id: int
    sender: str | None
    message_id: str | None
    kind: str | None
    priority: str | None
    reference: str | None
    subject: str | None
    status: Status
    received_at: datetime
    crime_types: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    recipients: list[str] = Field(default_factory=list)
    envelope: dict[str, Any] | None = None
    routing: dict[str, Any] | None = None
    error: str | None = None
    handling: str | None = Field(default=None, description="The envelope's handling marking, if any.")
    purged_at: datetime | None = Field(
        default=None,
        description="When its text was erased (retention): subject, body and raw input are gone.",
    )


def handling_of(envelope: dict[str, Any] | None) -> str | None:
    value = envelope.get("handling") if envelope else None
    return value if isinstance(value, str) else None


class DeadLetterView(BaseModel):
    """One message waiting in `P.dead`, as the console's work queue shows it. `id` is derived from its
    bytes (stable between listings); `text` is the body as UTF-8 (invalid bytes replaced)."""

    id: str
    reason: str | None
    sender: str | None
    message_id: str | None
    size: int
    digest: str = Field(description="SHA-256 of the dead letter's bytes.")
    text: str
    arrived_at: datetime | None = Field(
        default=None, description="When it was dead-lettered (unknown for letters from older versions)."
    )


class MessageQuery(BaseModel):
    """Filters for listing messages; every field optional, newest first."""

    model_config = ConfigDict(extra="forbid")

    crime_type: str | None = None
    country: str | None = None
    recipient: str | None = None
    status: Status | None = None
    sender: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="Page: messages with a smaller id than this."
    )
    limit: int = Field(default=50, ge=1, le=500)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid envelope and the routing it received; its copies are confirmed by the broker."""

    envelope: Envelope
    routing: Routing
    status: Status
    received_at: datetime
    events: list[AuditEvent] = field(default_factory=list)
    identifiers: tuple[Identifier, ...] = ()  # found in its subject and body (core/identifiers.py)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input that was dead-lettered, with the reason; `raw` is kept so an operator can correct it."""

    raw: bytes
    rejection: Rejection
    received_at: datetime
    events: list[AuditEvent] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return body_digest(self.raw)


Outcome = Accepted | Rejected


def body_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def text_digest(text: str) -> str:
    """What an audit record holds of free text (a reason, a note): its SHA-256, never the text, so
    that erasing the text (retention) leaves the hash chain intact. Whoever still holds the text can
    show it is the one recorded."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
