"""Tamper evidence for the audit trail: every record carries a SHA-256 chained to the previous one.

    hash(n) = sha256( prev_hash(n) as 64 hex characters  ||  canonical(n) )
    prev_hash(n) = hash(n-1), and 64 zeros for the first record (seq order)

`canonical` is orjson with sorted keys (at every level) of
{seq, at, type, actor, sender, message_id, reference, details}, `at` as ISO-8601 UTC with
microseconds (`2024-05-01T10:00:00.000000Z`). The stores compute it from the values exactly as
they store them, in the transaction that inserts the record, so reading a row back gives the same
bytes. Editing, deleting or reordering any record breaks its link or its successor's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel

from watchcentre.core.records import AuditEvent

GENESIS = "0" * 64


def iso_utc(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(
    *,
    seq: int,
    at: datetime,
    type: str,
    actor: str,
    sender: str | None,
    message_id: str | None,
    reference: str | None,
    details: dict[str, Any],
) -> bytes:
    record = {
        "seq": seq,
        "at": iso_utc(at),
        "type": type,
        "actor": actor,
        "sender": sender,
        "message_id": message_id,
        "reference": reference,
        "details": details,
    }
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def link_hash(prev_hash: str, record: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + record).hexdigest()


def event_hash(prev_hash: str, e: AuditEvent) -> str:
    """The hash an event (with its seq, as read back from the store) must carry."""
    if e.seq is None:
        raise ValueError("an event gets its hash once it has a seq")
    record = canonical(
        seq=e.seq, at=e.at, type=e.type, actor=e.actor, sender=e.sender,
        message_id=e.message_id, reference=e.reference, details=e.details,
    )  # fmt: skip
    return link_hash(prev_hash, record)


class Break(BaseModel):
    """The first record whose link or hash does not match."""

    seq: int
    problem: str


def verify_links(events: Iterable[AuditEvent], prev_hash: str) -> tuple[Break | None, str, int]:
    """Walk events in seq order from `prev_hash`; (first break or None, last good hash, records checked)."""
    checked = 0
    for e in events:
        assert e.seq is not None
        checked += 1
        if e.prev_hash != prev_hash:
            return (
                Break(seq=e.seq, problem="prev_hash does not match the previous record's hash"),
                prev_hash,
                checked,
            )
        try:
            expected = event_hash(prev_hash, e)
        except (TypeError, ValueError, orjson.JSONEncodeError) as exc:
            return Break(seq=e.seq, problem=f"record cannot be encoded: {exc}"), prev_hash, checked
        if e.hash != expected:
            return Break(seq=e.seq, problem="hash does not match the record's content"), prev_hash, checked
        prev_hash = expected
    return None, prev_hash, checked
