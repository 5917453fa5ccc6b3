"""Retention end to end, on each database: a real service fed over AMQP, then `watchcentre retention
apply --now <five years on>`. A purged message's text is gone from the API, from every table and
from the database files' bytes; what stays (that it existed, sender, time, routing, its case's dates
and states) stays; statistics do not change; the audit chain still verifies; a message of a case
still open is kept; the dead letter past its limit has left P.dead."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from tests.integration.harness import Broker, envelope, running
from tests.integration.service_fixtures import CONFIG_DIR, POSTGRES_URL
from tests.integration.test_store import T0, Backend, accepted, backend
from watchcentre.adapters.config_files import load_config
from watchcentre.core.access import Role
from watchcentre.core.manual import Note
from watchcentre.core.ports import SystemClock
from watchcentre.core.records import AuditEvent
from watchcentre.security import issue_token, verify_audit
from watchcentre.settings import Settings

__all__ = ["backend"]  # the fixture, parametrised over both engines

# Names and numbers of people: each only in the text of what will be purged...
GONE = [
    "DUPONTEL Jean",
    "12AB34567",
    "+33612345678",
    "ZORRO-SECRET",
    "NOTE-LEHMANN",
    "EXTENDED-BECAUSE-KOWALSKI",
]
# ...and this one in a request whose case is still open (kept), which also proves the files are read.
KEPT = "CURIE-OPEN Marie"


def has(*types: str, n: int = 1, reference: str | None = None) -> Any:
    def check(events: list[dict[str, Any]]) -> bool:
        found = [e for e in events if e["type"] in types and reference in (None, e["reference"])]
        return len(found) >= n

    return check


@pytest.fixture
def settings(service_settings: Settings) -> Settings:
    return service_settings.model_copy(update={"deadline_tick_s": 3600.0})


async def _cli(settings: Settings, *argv: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "WATCHCENTRE_DATABASE_URL": settings.database_url.get_secret_value(),
        "WATCHCENTRE_DATABASE_SCHEMA": settings.database_schema,
        "WATCHCENTRE_CONFIG_DIR": str(CONFIG_DIR),
        "WATCHCENTRE_AMQP_PREFIX": settings.amqp_prefix,
        "WATCHCENTRE_AUDIT_ANCHOR_PATH": settings.audit_anchor_path,
        "WATCHCENTRE_AUDIT_ANCHOR_KEY_PATH": settings.audit_anchor_key_path,
        "WATCHCENTRE_LOG_FORMAT": "json",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "watchcentre",
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _tables_text(settings: Settings) -> str:
    """Every row of every table, as text."""
    url = settings.database_url.get_secret_value()
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return "\n".join(repr(conn.execute(f"SELECT * FROM {n}").fetchall()) for n in names)
        finally:
            conn.close()
    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": settings.database_schema})
    try:
        names = [
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1", settings.database_schema
            )
        ]
        return "\n".join([repr([tuple(r) for r in await conn.fetch(f"SELECT * FROM {n}")]) for n in names])
    finally:
        await conn.close()


async def _file_bytes(settings: Settings) -> bytes | None:
    """The bytes of the database files: SQLite's file and its WAL; PostgreSQL's relation files (every
    table, index and TOAST relation of the schema) after a CHECKPOINT, when this user may read them
    (None otherwise)."""
    url = settings.database_url.get_secret_value()
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute("CHECKPOINT")  # the pages on disk, not only in shared buffers
        root = Path(await conn.fetchval("SHOW data_directory"))
        rows = await conn.fetch(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1"
            " UNION SELECT pg_relation_filepath(c.reltoastrelid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.reltoastrelid <> 0"
            " UNION SELECT pg_relation_filepath(i.indexrelid) FROM pg_index i"
            " JOIN pg_class c ON c.reltoastrelid = i.indrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
            settings.database_schema,
        )
    finally:
        await conn.close()
    out = b""
    for (relative,) in rows:
        if relative is None:
            continue
        path = root / relative
        try:
            for segment in sorted(path.parent.iterdir()):
                if segment.name == path.name or segment.name.startswith((path.name + ".", path.name + "_")):
                    out += segment.read_bytes()
        except PermissionError:
            return None
    return out


async def test_a_purge_erases_the_text_everywhere_and_keeps_the_record(
    settings: Settings, broker: Broker
) -> None:
    closed = envelope(
        sender="ofast",
        subject=f"Identification de {GONE[0]}",
        body=f"Passeport {GONE[1]}, téléphone {GONE[2]}, trafic de cocaïne vers l'Espagne.",
        countries=["ES"],
    )
    still_open = envelope(
        sender="ofast", subject=f"Identification de {KEPT}", body="Trafic de cocaïne.", countries=["ES"]
    )
    info = envelope(
        sender="ofast", kind="information", subject=f"Signalement {GONE[0]}", body="Vol de véhicule."
    )
    async with running(settings) as inst, aiohttp.ClientSession() as http:
        store = inst.runtime.store
        operator = (
            await issue_token(store, SystemClock(), role=Role.OPERATOR, subject=None, name="op")
        ).token
        auditor = (await issue_token(store, SystemClock(), role=Role.AUDITOR, subject=None, name="aud")).token

        async def get(path: str, who: str = "operator") -> Any:
            token = operator if who == "operator" else auditor
            async with http.get(inst.url + path, headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200, (path, r.status, await r.text())
                return await r.json()

        for e in (closed, still_open, info):
            await broker.publish(e)
        await broker.publish(b'{"sender": "ofast", "subject": "' + GONE[3].encode() + b'"')  # not JSON
        await broker.wait_events(has("routed", "triaged", n=3))
        await broker.wait_events(has("rejected"))
        ref = (await store.get_message(closed["message_id"], "ofast")).reference  # type: ignore[union-attr]
        assert ref is not None
        # the post asks for more time (its reason names someone), then the unit withdraws: the case ends
        await broker.publish(
            envelope(
                sender="madrid",
                kind="status",
                reference=ref,
                subject="délai",
                body="-",
                expected_at=(datetime.now(UTC) + timedelta(days=5)).isoformat(),
                reason=GONE[5],
            )
        )
        await broker.wait_events(has("deadline_extended", reference=ref))
        await broker.publish(
            envelope(
                sender="ofast", kind="status", reference=ref, subject="retrait", body="-", state="withdrawn"
            )
        )
        await broker.wait_events(has("case_withdrawn", reference=ref))
        note = Note(
            at=datetime.now(UTC), author="op", text=f"{GONE[4]} rappelle", message_ids=[info["message_id"]]
        )
        await store.add_note(note, AuditEvent(at=note.at, type="note_added", actor="operator:op"))
        stats_before = await get("/api/stats")
        text = await _tables_text(settings)
        assert KEPT in text and [g for g in GONE if g not in text] == []

        later = (datetime.now(UTC) + timedelta(days=5 * 365)).isoformat()
        code, out, err = await _cli(settings, "retention", "apply", "--now", later, "--dry-run")
        assert code == 0, err
        assert orjson.loads(out)["counts"]["messages"]["erased"] == 5  # closed, its 2 status, info, rejected
        text = await _tables_text(settings)
        assert [g for g in GONE if g not in text] == []  # a dry run erases nothing
        assert await broker.count("dead") == 1

        code, out, err = await _cli(settings, "retention", "apply", "--now", later, "--by", "dpo")
        assert code == 0, err
        counts = orjson.loads(out)["counts"]
        assert counts["messages"] == {"erased": 5, "review_due": 0}
        assert counts["cases"]["erased"] == 1 and counts["notes"]["erased"] == 1
        assert counts["dead_letters"]["erased"] == 1
        assert await broker.count("dead") == 0
        assert counts["expired_tokens"]["erased"] == 2  # five years on, today's tokens are long expired
        operator = (
            await issue_token(store, SystemClock(), role=Role.OPERATOR, subject=None, name="op")
        ).token
        auditor = (await issue_token(store, SystemClock(), role=Role.AUDITOR, subject=None, name="aud")).token

        # the API: purged, without text; the routing decision and the case's dates and states remain
        gone = await get(f"/api/messages/{closed['message_id']}?sender=ofast")
        assert gone["purged_at"] is not None and gone["subject"] is None
        assert "body" not in gone["envelope"] and "subject" not in gone["envelope"]
        assert "post.madrid" in gone["recipients"] and gone["routing"]["recipients"] == gone["recipients"]
        assert gone["received_at"] and gone["sender"] == "ofast"
        case = await get(f"/api/requests/{ref}")
        assert case["state"] == "withdrawn" and case["subject"] == "" and case["purged_at"] is not None
        assert case["opened_at"] and case["closed_at"] and case["extension_reason"] is None
        kept = await get(f"/api/messages/{still_open['message_id']}?sender=ofast")
        assert kept["purged_at"] is None and kept["subject"] == f"Identification de {KEPT}"
        listed = await get("/api/messages?limit=50")
        assert not any(g in orjson.dumps(listed).decode() for g in GONE)
        assert await get("/api/stats") == stats_before

        # every table, and the files' bytes
        text = await _tables_text(settings)
        assert [g for g in GONE if g in text] == [] and KEPT in text
        files = await _file_bytes(settings)
        if files is None:
            pytest.skip("this user cannot read PostgreSQL's files: tables checked, files not")
        assert KEPT.encode() in files  # the positive control: the text is found where it is kept
        assert [g for g in GONE if g.encode() in files] == []

        # the audit: the purge is recorded (rule, count, ids); the chain and anchor verify
        purged = (await get("/api/audit?type=purged&limit=50", "auditor"))["items"]
        by_category = {e["details"]["category"]: e for e in purged}
        assert by_category["messages"]["actor"] == "operator:dpo"
        assert f"ofast/{closed['message_id']}" in by_category["messages"]["details"]["ids"]
        assert by_category["cases"]["details"]["ids"] == [ref]
        assert (await get("/api/audit/verify", "auditor"))["ok"] is True
    code, out, err = await _cli(settings, "audit", "verify")
    assert code == 0, err

    # a second pass finds nothing left to do
    code, out, err = await _cli(settings, "retention", "apply", "--now", later)
    assert code == 0, err
    again = orjson.loads(out)["counts"]
    assert [again[c]["erased"] for c in ("messages", "cases", "notes", "raw_envelopes", "dead_letters")] == [
        0
    ] * 5


async def test_two_instances_purging_at_once_erase_and_record_each_item_once(backend: Backend) -> None:
    """Each instance runs its own schedule: two passes at the same moment take turns on the writer
    lock; every message is erased and recorded once, and the chain still verifies."""
    await backend.store.save_batch([accepted(f"m{i}") for i in range(60)])
    other = await backend.reopen()
    rules = load_config(CONFIG_DIR).retention
    assert rules is not None
    later = datetime.now(UTC) + timedelta(days=5 * 365)
    try:
        a, b = await asyncio.gather(backend.store.purge(rules, later), other.purge(rules, later))
    finally:
        await other.close()
    assert sorted([a.counts["messages"].erased, b.counts["messages"].erased]) == [0, 60]
    records = [
        e for e in await backend.store.audit(event_type="purged") if e.details["category"] == "messages"
    ]
    assert sorted(i for e in records for i in e.details["ids"]) == sorted(f"ofast/m{i}" for i in range(60))
    assert (await verify_audit(backend.store)).ok


async def test_a_large_pass_is_cut_into_transactions_and_erases_everything(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from watchcentre.adapters.sql import retention

    monkeypatch.setattr(retention, "CHUNK", 7)  # 60 messages: 9 transactions
    await backend.store.save_batch([accepted(f"m{i}", subject=f"DUPONTEL {i}") for i in range(60)])
    note = Note(at=T0, author="operator:op", text="DUPONTEL rappelle", message_ids=["m3"])
    await backend.store.add_note(note, AuditEvent(at=T0, type="note_added", actor="operator:op"))
    rules = load_config(CONFIG_DIR).retention
    assert rules is not None
    report = await backend.store.purge(rules, datetime.now(UTC) + timedelta(days=5 * 365))
    assert report.counts["messages"].erased == 60 and len(set(report.counts["messages"].ids)) == 60
    assert report.counts["notes"].erased == 1  # erased with m3, in the first transaction
    assert "DUPONTEL" not in repr(await backend.sql("SELECT * FROM messages"))
    assert "DUPONTEL" not in repr(await backend.sql("SELECT * FROM notes"))
    records = [
        e for e in await backend.store.audit(event_type="purged") if e.details["category"] == "messages"
    ]
    assert len(records) == 9 and sum(e.details["count"] for e in records) == 60
