"""The envelope: what senders publish on `P.inbound`, and the routed copy recipients receive.

Validation lives here so that every adapter (AMQP, HTTP, CLI) refuses the same things with the
same words. `decode_envelope` turns raw bytes into an `Envelope` or a `Rejection` naming the field.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from watchcentre.core.bounds import DEPTH_PROBLEM, sane_time, too_deep
from watchcentre.core.taxonomy import CRIME_CODES

MAX_BODY_BYTES = 256 * 1024
"""A message whose body is larger than this is refused (issue: oversize body)."""

MAX_RAW_BYTES = MAX_BODY_BYTES + 64 * 1024
"""Whole-envelope cap: the body limit plus room for the other fields."""

_ISO2 = re.compile(r"^[A-Z]{2}$")


class Kind(StrEnum):
    REQUEST = "request"
    REPLY = "reply"
    INFORMATION = "information"
    ALERT = "alert"
    ACK = "ack"  # a post acknowledges a request (docs/lifecycle.md)
    STATUS = "status"  # a party moves a case to `state`, or records a new `expected_at` with its `reason`
    CLARIFICATION = "clarification"  # `clarification`: request (post → unit) or answer (unit → post)


CASE_KINDS = frozenset({Kind.ACK, Kind.STATUS, Kind.CLARIFICATION})
"""Kinds that act on an existing case (named by `reference` or `in_reply_to`) instead of being classified."""


class Priority(StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"


def _check_body_size(body: str) -> str:
    size = len(body.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise ValueError(f"body is {size} bytes, over the {MAX_BODY_BYTES}-byte limit")
    return body


def _check_crime_codes(codes: list[str]) -> list[str]:
    unknown = [c for c in codes if c not in CRIME_CODES]
    if unknown:
        raise ValueError(f"unknown crime type code(s): {', '.join(unknown)}")
    return list(dict.fromkeys(codes))


def _normalise_iso2(codes: list[str]) -> list[str]:
    out = [c.strip().upper() for c in codes]
    bad = [c for c in out if not _ISO2.match(c)]
    if bad:
        raise ValueError(f"not an ISO 3166-1 alpha-2 code: {', '.join(bad)}")
    return list(dict.fromkeys(out))


Ident = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
SaneTime = Annotated[AwareDatetime, AfterValidator(sane_time)]


class Envelope(BaseModel):
    """An information-exchange message as a sender publishes it."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    message_id: Ident = Field(
        description="The sender's id for this message; the idempotency key with sender."
    )
    sender: Ident = Field(description="A unit id, a post id, or 'centre'.")
    kind: Kind
    subject: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    body: Annotated[str, AfterValidator(_check_body_size)]
    sent_at: SaneTime = Field(description="RFC 3339 time with an offset.")
    reference: Ident | None = Field(default=None, description="Case reference, for tracking.")
    priority: Priority = Priority.NORMAL
    countries: Annotated[list[str], AfterValidator(_normalise_iso2)] = Field(
        default_factory=list, max_length=50, description="ISO 3166-1 alpha-2 hints from the sender."
    )
    crime_types: Annotated[list[str], AfterValidator(_check_crime_codes)] = Field(
        default_factory=list, max_length=15, description="Taxonomy code hints from the sender."
    )
    in_reply_to: Ident | None = Field(default=None, description="message_id this one answers.")
    handling: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        default=None, description="Handling marking, e.g. the sender's restriction on onward sharing."
    )
    access: Literal["direct", "indirect"] | None = Field(
        default=None,
        description="request: whether the information asked for is directly accessible (sets the deadline).",
    )
    state: Literal["acknowledged", "in_progress", "answered", "closed", "rejected", "withdrawn"] | None = (
        Field(default=None, description="status: the state the case moves to.")
    )
    expected_at: SaneTime | None = Field(
        default=None,
        description="status: a new expected answer time (with `reason`), when a deadline cannot be met.",
    )
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        default=None, description="status: why (required with expected_at)."
    )
    clarification: Literal["request", "answer"] | None = Field(
        default=None,
        description="clarification: a request for clarification (suspends the deadline) or its answer.",
    )


class Routing(BaseModel):
    """What watchcentre decided, carried on every routed copy."""

    model_config = ConfigDict(frozen=True)

    crime_types: list[str]
    countries: list[str]
    recipients: list[str]
    explanation: list[str]
    confidence: float


class RoutedCopy(Envelope):
    """The envelope plus the routing decision: what lands in a recipient's queue."""

    routing: Routing


class Rejection(BaseModel):
    """Why an input was refused: the field at fault and the problem, in words an operator can act on."""

    model_config = ConfigDict(frozen=True)

    field: str
    problem: str
    message_id: str | None = None
    sender: str | None = None

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.problem}"


def _field_name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "envelope"


def rejection_from_validation(err: ValidationError, raw: Any) -> Rejection:
    first = err.errors(include_url=False)[0]
    msg = str(first["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    return rejection_from_problem(_field_name(first["loc"]), msg, raw)


def rejection_from_problem(field: str, msg: str, raw: Any) -> Rejection:
    ident = raw if isinstance(raw, dict) else {}
    mid, snd = ident.get("message_id"), ident.get("sender")
    return Rejection(
        field=field,
        problem=msg,
        message_id=mid if isinstance(mid, str) else None,
        sender=snd if isinstance(snd, str) else None,
    )


def decode_envelope(raw: bytes) -> Envelope | Rejection:
    """Parse raw bytes into an Envelope, or say exactly why not. Never raises on bad input."""
    if len(raw) > MAX_RAW_BYTES:
        return Rejection(field="body", problem=f"message is {len(raw)} bytes, over the size limit")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(field="envelope", problem=f"not valid UTF-8 (byte {exc.start})")
    try:
        return Envelope.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            if "recursion limit" in str(first["msg"]):  # the parser's own cap, above ours
                return Rejection(field="envelope", problem=DEPTH_PROBLEM)
            return Rejection(field="envelope", problem=f"not valid JSON ({first['msg']})")
        data = json.loads(raw)
        if not isinstance(data, dict):
            return Rejection(field="envelope", problem=f"expected a JSON object, got {type(data).__name__}")
        if too_deep(data):
            return rejection_from_problem("envelope", DEPTH_PROBLEM, data)
        return rejection_from_validation(exc, data)


def envelope_schema() -> dict[str, Any]:
    return Envelope.model_json_schema()
