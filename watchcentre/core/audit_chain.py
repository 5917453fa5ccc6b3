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
import hmac
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
        seq=e.seq,
        at=e.at,
        type=e.type,
        actor=e.actor,
        sender=e.sender,
        message_id=e.message_id,
        reference=e.reference,
        details=e.details,
    )
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


# -- the walk: links, gaps in seq, and the anchor ------------------------------------------------------
#
# The chain alone cannot see its own tail cut off (the remaining records still link) nor a re-linked
# gap. A checkpoint {seq, hash, at}, HMAC-signed with a key the database never holds and written to
# a file outside it, pins the head: the trail must still hold every anchored (seq, hash), and must
# not end before the newest one. See docs/security.md for what that does and does not cover.

ANCHOR_CONTEXT = b"watchcentre.audit.anchor.v1\n"  # domain separation: this key signs nothing else


class Gap(BaseModel):
    """Seq numbers missing from the trail: `count` of them from `first_missing` on."""

    first_missing: int
    count: int


class Checkpoint(BaseModel):
    """One line of the anchor file: the chain head at `at`, signed."""

    model_config = {"extra": "forbid"}

    seq: int
    hash: str
    at: str
    sig: str


class AnchorProblem(BaseModel):
    """A problem with the anchor file, or between it and the trail; `line` in the file, from 1."""

    line: int | None = None
    seq: int | None = None
    problem: str


class AnchorCheck(BaseModel):
    """What the anchor says about the trail."""

    ok: bool
    where: str
    checkpoints: int
    newest_seq: int | None
    newest_at: str | None
    problems: list[AnchorProblem]


class Verification(BaseModel):
    """The result of walking the audit trail from its first record.

    head_seq / head_hash: the last record of the intact chain (before first_break, if any);
    last_seq: the newest record the database holds; gaps: every run of missing seq numbers;
    anchor: the checks against the signed checkpoints (None when no anchor was given);
    problems: one sentence per finding, for people."""

    ok: bool
    checked: int
    head_seq: int | None
    head_hash: str
    last_seq: int | None = None
    first_break: Break | None
    gaps: list[Gap] = []
    anchor: AnchorCheck | None = None
    problems: list[str] = []


def _signed_bytes(seq: int, hash: str, at: str) -> bytes:
    return ANCHOR_CONTEXT + orjson.dumps({"seq": seq, "hash": hash, "at": at}, option=orjson.OPT_SORT_KEYS)


def sign_checkpoint(key: bytes, seq: int, hash: str, at: datetime) -> Checkpoint:
    at_text = iso_utc(at)
    sig = hmac.new(key, _signed_bytes(seq, hash, at_text), hashlib.sha256).hexdigest()
    return Checkpoint(seq=seq, hash=hash, at=at_text, sig=sig)


def checkpoint_line(cp: Checkpoint) -> bytes:
    """One line of the anchor file (JSON, newline-terminated)."""
    return orjson.dumps(cp.model_dump(), option=orjson.OPT_SORT_KEYS) + b"\n"


def signature_ok(key: bytes, cp: Checkpoint) -> bool:
    expected = hmac.new(key, _signed_bytes(cp.seq, cp.hash, cp.at), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, cp.sig)


def read_anchor(data: bytes, key: bytes) -> tuple[list[Checkpoint], list[AnchorProblem]]:
    """The checkpoints whose signature holds, and a problem for every other line."""
    good: list[Checkpoint] = []
    problems: list[AnchorProblem] = []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            cp = Checkpoint.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValueError):
            torn = number == len(lines) and not data.endswith(b"\n")
            why = "incomplete last line (a write cut short?)" if torn else "not a checkpoint"
            problems.append(AnchorProblem(line=number, problem=why))
            continue
        if not signature_ok(key, cp):
            problems.append(
                AnchorProblem(
                    line=number,
                    seq=cp.seq,
                    problem="bad signature: the checkpoint was edited or forged (or the key differs)",
                )
            )
            continue
        good.append(cp)
    return good, problems


class TrailWalk:
    """Verifies the trail page by page (`feed` each page in seq order, then `finish`): the links from
    GENESIS, gaps in seq, and each anchored (seq, hash). Pure: the caller reads the pages and the file."""

    def __init__(self, checkpoints: Iterable[Checkpoint] = ()) -> None:
        self.prev = GENESIS
        self.checked = 0
        self.head_seq: int | None = None  # the last record of the intact chain
        self.last_seq: int | None = None  # the last record read
        self.first_break: Break | None = None
        self.gaps: list[Gap] = []
        self.anchored: dict[int, list[Checkpoint]] = {}
        for cp in checkpoints:
            self.anchored.setdefault(cp.seq, []).append(cp)
        self.matched: set[int] = set()
        self.anchor_problems: list[AnchorProblem] = []

    def feed(self, events: Iterable[AuditEvent]) -> None:
        for e in events:
            assert e.seq is not None
            self.checked += 1
            expected_seq = (self.last_seq or 0) + 1
            if e.seq > expected_seq:
                self.gaps.append(Gap(first_missing=expected_seq, count=e.seq - expected_seq))
            self.last_seq = e.seq
            if self.first_break is None:
                broken, self.prev, _ = verify_links([e], self.prev)
                if broken is None:
                    self.head_seq = e.seq
                self.first_break = broken
            for cp in self.anchored.get(e.seq, ()):
                self.matched.add(e.seq)
                if cp.hash != e.hash:
                    self.anchor_problems.append(
                        AnchorProblem(
                            seq=e.seq,
                            problem=f"seq {e.seq} differs from the record anchored at {cp.at}:"
                            " it was rewritten",
                        )
                    )

    def finish(
        self,
        *,
        anchor_where: str | None = None,
        anchor_problems: Iterable[AnchorProblem] = (),
        anchor_missing: bool = False,
    ) -> Verification:
        """The verdict. `anchor_where` names the anchor (None: no anchor was checked); `anchor_missing`:
        it was never written (the service writes one at start, so a trail without one is uncovered)."""
        anchor: AnchorCheck | None = None
        problems: list[str] = []
        if self.first_break is not None:
            problems.append(f"chain broken at seq {self.first_break.seq}: {self.first_break.problem}")
        problems += [
            f"gap in seq: {g.count} record(s) missing from seq {g.first_missing}"
            f" (seq {g.first_missing}..{g.first_missing + g.count - 1})"
            for g in self.gaps
        ]
        if anchor_where is not None:
            found = [*anchor_problems, *self.anchor_problems]
            last = self.last_seq or 0
            if anchor_missing and last:
                found.append(AnchorProblem(problem="no anchor file: the tail of the trail is not covered"))
            newest = max(self.anchored.values(), key=lambda cps: cps[0].seq, default=None)
            if newest is not None and newest[0].seq > last:
                cp = newest[0]
                found.append(
                    AnchorProblem(
                        seq=cp.seq,
                        problem=f"truncated after seq {last}: the anchor recorded seq {cp.seq} at {cp.at};"
                        " the records after it were removed",
                    )
                )
            for seq in sorted(s for s in self.anchored if s <= last and s not in self.matched):
                cp = self.anchored[seq][0]
                found.append(
                    AnchorProblem(
                        seq=seq, problem=f"anchored seq {seq} (at {cp.at}) is missing from the trail"
                    )
                )
            anchor = AnchorCheck(
                ok=not found,
                where=anchor_where,
                checkpoints=sum(len(cps) for cps in self.anchored.values()),
                newest_seq=newest[0].seq if newest else None,
                newest_at=max(cp.at for cp in newest) if newest else None,
                problems=found,
            )
            problems += [
                f"anchor {anchor_where}" + (f" line {p.line}" if p.line else "") + f": {p.problem}"
                for p in found
            ]
        return Verification(
            ok=not problems,
            checked=self.checked,
            head_seq=self.head_seq,
            head_hash=self.prev,
            last_seq=self.last_seq,
            first_break=self.first_break,
            gaps=self.gaps,
            anchor=anchor,
            problems=problems,
        )
