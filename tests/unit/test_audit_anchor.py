"""The audit trail's verification in the core: links, gaps in seq and the signed anchor. Table-driven,
no I/O: each case builds a trail and an anchor file's bytes, does to them what an attacker would,
and names the problems the verification must report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from watchcentre.core.audit_chain import (
    GENESIS,
    TrailWalk,
    Verification,
    checkpoint_line,
    event_hash,
    read_anchor,
    sign_checkpoint,
)
from watchcentre.core.records import AuditEvent

KEY = b"k" * 32
T = datetime(2026, 1, 1, tzinfo=UTC)


def chain(seqs: list[int], prev: str = GENESIS, actor: str = "svc") -> list[AuditEvent]:
    """Records with these seq numbers, each correctly linked to the one before (as a store writes them)."""
    out = []
    for seq in seqs:
        e = AuditEvent(seq=seq, at=T + timedelta(seconds=seq), type="routed", actor=actor, prev_hash=prev)
        e = e.model_copy(update={"hash": event_hash(prev, e)})
        out.append(e)
        prev = e.hash or ""
    return out


def anchor_at(trail: list[AuditEvent], *seqs: int, key: bytes = KEY) -> bytes:
    by_seq = {e.seq: e for e in trail}
    return b"".join(
        checkpoint_line(sign_checkpoint(key, s, by_seq[s].hash or "", T + timedelta(minutes=i)))
        for i, s in enumerate(seqs)
    )


def verify(trail: list[AuditEvent], anchor: bytes | None, page: int = 7) -> Verification:
    checkpoints, problems = read_anchor(anchor, KEY) if anchor is not None else ([], [])
    walk = TrailWalk(checkpoints)
    for i in range(0, len(trail), page):  # the store hands the trail over page by page
        walk.feed(trail[i : i + page])
    return walk.finish(anchor_where="anchor.jsonl", anchor_problems=problems, anchor_missing=anchor is None)


ORIGINAL = chain(list(range(1, 101)))


def truncated() -> tuple[list[AuditEvent], bytes]:
    return ORIGINAL[:-20], anchor_at(ORIGINAL, 50, 100)


def relinked_after_truncation() -> tuple[list[AuditEvent], bytes]:
    # the tail cut, then the service appends again: seq goes on from 101, linked to seq 80
    kept = ORIGINAL[:-20]
    return kept + chain([101, 102], prev=kept[-1].hash or ""), anchor_at(ORIGINAL, 50, 100)


def middle_deleted() -> tuple[list[AuditEvent], bytes]:
    return ORIGINAL[:39] + ORIGINAL[40:], anchor_at(ORIGINAL, 100)


def rewritten_and_rechained() -> tuple[list[AuditEvent], bytes]:
    # every record rewritten and every hash recomputed: the chain alone holds, the anchor does not
    return chain(list(range(1, 101)), actor="mallory"), anchor_at(ORIGINAL, 50, 100)


def line_edited() -> tuple[list[AuditEvent], bytes]:
    # the newest checkpoint moved back to seq 80 (to hide a truncation): its signature no longer holds
    lines = anchor_at(ORIGINAL, 50, 100).splitlines(keepends=True)
    cp = orjson.loads(lines[1])
    cp.update(seq=80, hash=ORIGINAL[79].hash)
    return ORIGINAL[:80], lines[0] + orjson.dumps(cp) + b"\n"


def forged() -> tuple[list[AuditEvent], bytes]:
    return ORIGINAL, anchor_at(ORIGINAL, 50) + anchor_at(ORIGINAL, 100, key=b"not-the-key" * 4)


def garbage_and_torn() -> tuple[list[AuditEvent], bytes]:
    return ORIGINAL, anchor_at(ORIGINAL, 100) + b"hello\n" + anchor_at(ORIGINAL, 100)[:40]


@dataclass
class Case:
    name: str
    build: Callable[[], tuple[list[AuditEvent], bytes | None]]
    problems: list[str]  # a fragment of each expected problem, in order


CASES = [
    Case("untouched, anchored at the head", lambda: (ORIGINAL, anchor_at(ORIGINAL, 30, 60, 100)), []),
    Case(
        "untouched, anchored earlier (the head moved since)", lambda: (ORIGINAL, anchor_at(ORIGINAL, 90)), []
    ),
    Case("empty trail, no anchor yet", lambda: ([], None), []),
    Case("untouched, no anchor file", lambda: (ORIGINAL, None), ["no anchor file"]),
    Case("the last 20 records cut", truncated, ["truncated after seq 80: the anchor recorded seq 100"]),
    Case(
        "the tail cut and the service appended again",
        relinked_after_truncation,
        ["gap in seq: 20 record(s) missing from seq 81 (seq 81..100)", "anchored seq 100"],
    ),
    Case(
        "a record in the middle deleted",
        middle_deleted,
        ["chain broken at seq 41", "gap in seq: 1 record(s) missing from seq 40 (seq 40..40)"],
    ),
    Case("rewritten and re-chained", rewritten_and_rechained, ["seq 50 differs", "seq 100 differs"]),
    Case("a checkpoint edited", line_edited, ["line 2: bad signature"]),
    Case("a checkpoint forged without the key", forged, ["line 2: bad signature"]),
    Case(
        "a line that is no checkpoint, a torn last line", garbage_and_torn, ["not a checkpoint", "incomplete"]
    ),
    Case(
        "seq starts late, linked to the genesis",
        lambda: (chain([3, 4, 5]), None),
        ["gap in seq: 2 record(s) missing from seq 1", "no anchor file"],
    ),
    Case(
        "the first records deleted",
        lambda: (ORIGINAL[2:], anchor_at(ORIGINAL, 100)),
        ["chain broken at seq 3", "gap in seq: 2 record(s) missing from seq 1"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_verification_names_every_problem(case: Case) -> None:
    trail, anchor = case.build()
    result = verify(trail, anchor)
    assert result.ok is (not case.problems)
    assert len(result.problems) == len(case.problems), result.problems
    for fragment, problem in zip(case.problems, result.problems, strict=True):
        assert fragment in problem
    assert result.checked == len(trail)
    assert result.last_seq == (trail[-1].seq if trail else None)


def test_an_intact_trail_reports_its_head_and_the_newest_checkpoint() -> None:
    result = verify(ORIGINAL, anchor_at(ORIGINAL, 100, 60))
    assert result.ok and result.head_seq == 100 and result.head_hash == ORIGINAL[-1].hash
    assert result.anchor is not None and result.anchor.ok
    assert (result.anchor.checkpoints, result.anchor.newest_seq) == (2, 100)


def test_a_checkpoint_signs_seq_hash_and_time_together() -> None:
    cp = sign_checkpoint(KEY, 7, "ab" * 32, T)
    assert read_anchor(checkpoint_line(cp), KEY) == ([cp], [])
    for change in ({"seq": 8}, {"hash": "cd" * 32}, {"at": "2026-01-01T00:00:01.000000Z"}):
        edited = checkpoint_line(cp.model_copy(update=change))
        good, problems = read_anchor(edited, KEY)
        assert good == [] and "bad signature" in problems[0].problem
