"""The signed audit export (core/audit_export.py): intact, and each way of tampering with it named."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from watchcentre.core.audit_chain import GENESIS, event_hash
from watchcentre.core.audit_export import export_file, verify_export
from watchcentre.core.records import AuditEvent

KEY = b"k" * 32
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def chain(n: int, first_seq: int = 1) -> list[AuditEvent]:
    out, prev = [], GENESIS
    for i in range(n):
        e = AuditEvent(
            seq=first_seq + i,
            at=T0 + timedelta(minutes=i),
            type="routed",
            actor="watchcentre",
            prev_hash=prev,
        )
        e = e.model_copy(update={"hash": event_hash(prev, e)})
        out.append(e)
        prev = e.hash or ""
    return out


def exported(events: list[AuditEvent]) -> bytes:
    return export_file(events, KEY, since=T0, until=None, exported_at=T0, exported_by="auditor:DPO")


def edit_record(data: bytes, index: int, change: Callable[[dict[str, object]], None]) -> bytes:
    lines = data.split(b"\n")
    record = orjson.loads(lines[index])
    change(record)
    lines[index] = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    return b"\n".join(lines)


def test_an_intact_export_verifies_with_and_without_the_key() -> None:
    data = exported(chain(5))
    assert verify_export(data, KEY) == []
    assert verify_export(data, None) == ["signature not checked: no key given"]
    assert verify_export(exported([]), KEY) == []


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda d: edit_record(d, 2, lambda r: r.update(actor="someone else")), "seq 2: hash does not match"),
        (lambda d: b"\n".join(d.split(b"\n")[:3] + d.split(b"\n")[4:]), "seq 4: follows seq 2"),
        (lambda d: d.replace(b'"count":5', b'"count":4'), "the header counts 4 records"),
        (lambda d: d[:-10] + b'0000000"}\n', "bad signature"),
        (lambda d: b"hello\nworld\n", "not an audit export"),
    ],
    ids=["record edited", "record removed", "header edited", "signature forged", "not an export"],
)
def test_tampering_is_named(tamper: Callable[[bytes], bytes], expected: str) -> None:
    problems = verify_export(tamper(exported(chain(5))), KEY)
    assert any(expected in p for p in problems), problems


def test_another_key_does_not_verify() -> None:
    assert verify_export(exported(chain(3)), b"x" * 32) == [
        "bad signature: the file was changed, or signed with another key"
    ]
