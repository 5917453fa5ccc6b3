"""The audit trail of a period as a signed file for an inspection, and its offline verification.

The file is JSON lines: a header, the records in seq order (contiguous, so that the hash chain links
from the first to the last), and a trailer carrying an HMAC-SHA256 over every byte before it, with
the audit anchor's key under its own context (this key signs nothing else in this shape). Whoever
holds the key checks the signature; anyone can check that each record's hash matches its content
and links to the one before, and compare the last hash with the anchor file.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

import orjson

from watchcentre.core.audit_chain import event_hash, iso_utc
from watchcentre.core.records import AuditEvent

EXPORT_KIND = "watchcentre.audit.export.v1"
EXPORT_CONTEXT = b"watchcentre.audit.export.v1\n"  # domain separation from the anchor's checkpoints


def _line(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS) + b"\n"


def _sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, EXPORT_CONTEXT + body, hashlib.sha256).hexdigest()


def export_file(
    events: Sequence[AuditEvent],
    key: bytes,
    *,
    since: datetime | None,
    until: datetime | None,
    exported_at: datetime,
    exported_by: str,
) -> bytes:
    header = {
        "kind": EXPORT_KIND,
        "since": iso_utc(since) if since else None,
        "until": iso_utc(until) if until else None,
        "exported_at": iso_utc(exported_at),
        "exported_by": exported_by,
        "count": len(events),
        "first_seq": events[0].seq if events else None,
        "last_seq": events[-1].seq if events else None,
        "last_hash": events[-1].hash if events else None,
    }
    body = _line(header) + b"".join(_line(e.model_dump(mode="json")) for e in events)
    return body + _line({"signature": _sign(key, body)})


def verify_export(data: bytes, key: bytes | None) -> list[str]:
    """Every problem found, one sentence each (none: the file is intact). Without `key`, the
    signature is not checked (said so), only the records' hashes and links."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) < 2:
        return ["not an audit export: fewer than two lines"]
    problems: list[str] = []
    try:
        header = orjson.loads(lines[0])
        trailer = orjson.loads(lines[-1])
        records = [AuditEvent.model_validate_json(raw) for raw in lines[1:-1]]
    except (orjson.JSONDecodeError, ValueError) as exc:
        return [f"not an audit export: {exc}"]
    if not isinstance(header, dict) or header.get("kind") != EXPORT_KIND:
        return [f"not an audit export: the first line is not a {EXPORT_KIND} header"]
    body = b"\n".join(lines[:-1]) + b"\n"
    signature = trailer.get("signature") if isinstance(trailer, dict) else None
    if key is None:
        problems.append("signature not checked: no key given")
    elif not isinstance(signature, str) or not hmac.compare_digest(_sign(key, body), signature):
        problems.append("bad signature: the file was changed, or signed with another key")
    if header.get("count") != len(records):
        problems.append(f"the header counts {header.get('count')} records, the file holds {len(records)}")
    previous: AuditEvent | None = None
    for e in records:
        if e.prev_hash is None or e.hash != event_hash(e.prev_hash, e):
            problems.append(f"seq {e.seq}: hash does not match the record's content")
        if previous is not None:
            if e.seq != (previous.seq or 0) + 1:
                problems.append(f"seq {e.seq}: follows seq {previous.seq} (records missing)")
            elif e.prev_hash != previous.hash:
                problems.append(f"seq {e.seq}: prev_hash does not match seq {previous.seq}'s hash")
        previous = e
    if records and (header.get("first_seq"), header.get("last_seq"), header.get("last_hash")) != (
        records[0].seq,
        records[-1].seq,
        records[-1].hash,
    ):
        problems.append("the header's first_seq, last_seq or last_hash differ from the records")
    return problems
