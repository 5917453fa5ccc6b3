"""The Store, on both engines: SQLite in a temporary file, PostgreSQL in a throwaway schema.

Every test runs against each engine through the same `backend` fixture; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest

from tests.integration.store_totals import seen, totals
from watchcentre.adapters.sql import SqlStore
from watchcentre.core.envelope import Envelope, Kind, Priority, Rejection, Routing
from watchcentre.core.ports import Store, TransientError
from watchcentre.core.records import (
    Accepted,
    AuditEvent,
    MessageQuery,
    Outcome,
    Rejected,
    Status,
    body_digest,
)
from watchcentre.core.routing import Original

POSTGRES_URL = os.environ.get("WATCHCENTRE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


# -- building outcomes -----------------------------------------------------------------------------


def event(
    type_: str, sender: str | None, message_id: str | None, at: datetime = T0, **details: Any
) -> AuditEvent:
    return AuditEvent(
        at=at, type=type_, actor="watchcentre", sender=sender, message_id=message_id, details=details
    )


def accepted(
    message_id: str,
    sender: str = "ofast",
    *,
    crime_types: Sequence[str] = ("drug_trafficking",),
    countries: Sequence[str] = ("MA",),
    recipients: Sequence[str] = ("post.rabat", "centre.inbox"),
    status: Status = Status.ROUTED,
    at: datetime = T0,
    subject: str = "Trafic de cocaïne",
    reference: str | None = None,
) -> Accepted:
    envelope = Envelope(
        message_id=message_id,
        sender=sender,
        kind=Kind.REQUEST,
        subject=subject,
        body="Demande d'identification d'un suspect à Tanger.",
        sent_at=at,
        reference=reference,
        priority=Priority.URGENT,
    )
    routing = Routing(
        crime_types=list(crime_types),
        countries=list(countries),
        recipients=list(recipients),
        explanation=["test"],
        confidence=0.9,
    )
    done = "routed" if status == Status.ROUTED else "triaged"
    events = [
        event("received", sender, message_id, at),
        event(done, sender, message_id, at, to=list(recipients)),
    ]
    return Accepted(envelope=envelope, routing=routing, status=status, received_at=at, events=events)


def rejected(
    raw: bytes, message_id: str | None = None, sender: str | None = None, at: datetime = T0
) -> Rejected:
    rejection = Rejection(field="kind", problem="not a known kind", message_id=message_id, sender=sender)
    return Rejected(
        raw=raw, rejection=rejection, received_at=at, events=[event("rejected", sender, message_id, at)]
    )


# -- the fixture -----------------------------------------------------------------------------------


@dataclass
class Backend:
    """A fresh store, and a side door to its database for what the Store API does not show."""

    engine: str
    store: Store
    location: str  # SQLite file, or PostgreSQL schema

    async def sql(self, statement: str) -> list[tuple[Any, ...]]:
        if self.engine == "sqlite":
            async with aiosqlite.connect(self.location) as db:
                rows = await db.execute_fetchall(statement)
                await db.commit()
                return [tuple(r) for r in rows]
        conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": self.location})
        try:
            return [tuple(r) for r in await conn.fetch(statement)]
        finally:
            await conn.close()

    async def reopen(self) -> Store:
        if self.engine == "sqlite":
            return await SqlStore.sqlite(self.location)
        return await SqlStore.postgres(POSTGRES_URL, schema=self.location)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = str(tmp_path / "data" / "watchcentre.db")  # the parent does not exist yet
        store = await SqlStore.sqlite(path)
        yield Backend("sqlite", store, path)
        await store.close()
        return
    schema = f"wc_test_{secrets.token_hex(4)}"
    pg = await SqlStore.postgres(POSTGRES_URL, schema=schema)
    yield Backend("postgres", pg, schema)
    await pg.close()
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


async def save_one(store: Store, outcome: Outcome) -> list[AuditEvent] | None:
    [result] = await store.save_batch([outcome])
    return result


# -- accepted messages and duplicates --------------------------------------------------------------


async def test_an_accepted_message_is_stored_with_its_routing(backend: Backend) -> None:
    store = backend.store
    events = await save_one(store, accepted("m1", reference="CASE-7", at=T0))

    assert events is not None and [e.type for e in events] == ["received", "routed"]
    m = await store.get_message("m1")
    assert m is not None
    assert (m.sender, m.message_id, m.status, m.reference) == ("ofast", "m1", Status.ROUTED, "CASE-7")
    assert (m.kind, m.priority, m.subject) == ("request", "urgent", "Trafic de cocaïne")
    assert m.received_at == T0
    assert (m.crime_types, m.countries, m.recipients) == (
        ["drug_trafficking"],
        ["MA"],
        ["post.rabat", "centre.inbox"],
    )
    assert m.envelope is not None and m.envelope["body"].startswith("Demande")
    assert m.routing is not None and m.routing["confidence"] == 0.9
    assert m.error is None
    assert await seen(store, "ofast", "m1")
    assert not await seen(store, "ofast", "m2")


async def test_a_duplicate_returns_none_and_writes_nothing(backend: Backend) -> None:
    store = backend.store
    await save_one(store, accepted("m1", subject="first"))
    before = await totals(store)

    assert await save_one(store, accepted("m1", subject="second")) is None

    assert await totals(store) == before
    m = await store.get_message("m1")
    assert m is not None and m.subject == "first"


async def test_the_same_message_id_from_another_sender_is_a_different_message(backend: Backend) -> None:
    store = backend.store
    results = await store.save_batch([accepted("m1", "ofast"), accepted("m1", "post.rabat")])

    assert all(r is not None for r in results)
    assert (await totals(store))["routed"] == 2
    m = await backend.store.get_message("m1", sender="ofast")
    assert m is not None and m.sender == "ofast"


async def test_within_one_batch_the_first_of_two_duplicates_wins(backend: Backend) -> None:
    store = backend.store
    raw = b'{"kind": "nonsense"}'
    results = await store.save_batch(
        [accepted("m1", subject="first"), accepted("m1", subject="second"), rejected(raw), rejected(raw)]
    )

    assert [r is not None for r in results] == [True, False, True, False]
    m = await store.get_message("m1")
    assert m is not None and m.subject == "first"
    assert await totals(store) == {"routed": 1, "triage": 0, "rejected": 1, "audit_events": 3}


async def test_a_message_with_a_nul_character_is_stored(backend: Backend) -> None:
    """PostgreSQL text refuses NUL: the message must not take its whole batch down with it."""
    results = await backend.store.save_batch([accepted("m1", subject="a\x00b"), accepted("m2")])

    assert all(r is not None for r in results)
    m = await backend.store.get_message("m1")
    assert m is not None and m.subject is not None and m.subject.startswith("a")


# -- audit events ----------------------------------------------------------------------------------


async def test_events_get_increasing_seq_in_batch_order(backend: Backend) -> None:
    store = backend.store
    first = await store.save_batch([accepted("m1"), accepted("m2", status=Status.TRIAGE)])
    second = await store.save_batch([accepted("m3")])

    committed = [e for r in [*first, *second] for e in (r or [])]
    seqs = [e.seq for e in committed]
    assert all(isinstance(s, int) for s in seqs)
    assert seqs == sorted(seqs) and len(set(seqs)) == 6
    assert [(e.message_id, e.type) for e in committed] == [
        ("m1", "received"),
        ("m1", "routed"),
        ("m2", "received"),
        ("m2", "triaged"),
        ("m3", "received"),
        ("m3", "routed"),
    ]

    stored = await store.audit()
    assert stored == committed  # same seq, time, details, in the same order
    assert stored[1].details == {"to": ["post.rabat", "centre.inbox"]}
    assert await store.audit(after_seq=stored[3].seq or 0) == committed[4:]


async def test_the_audit_filters_by_sender_message_and_type(backend: Backend) -> None:
    store = backend.store
    await store.save_batch(
        [accepted("m1", "ofast"), accepted("m2", "post.rabat"), rejected(b"x", "m3", "ofast")]
    )

    assert [e.message_id for e in await store.audit(sender="ofast")] == ["m1", "m1", "m3"]
    assert [e.type for e in await store.audit(message_id="m2")] == ["received", "routed"]
    assert [e.message_id for e in await store.audit(event_type="rejected")] == ["m3"]
    assert len(await store.audit(limit=2)) == 2


async def test_the_audit_refuses_update_and_delete(backend: Backend) -> None:
    await save_one(backend.store, accepted("m1"))

    with pytest.raises(Exception, match="append-only"):
        await backend.sql("UPDATE audit SET actor = 'mallory'")
    with pytest.raises(Exception, match="append-only"):
        await backend.sql("DELETE FROM audit")
    if backend.engine == "postgres":
        with pytest.raises(Exception, match="append-only"):
            await backend.sql("TRUNCATE audit")
    assert [e.actor for e in await backend.store.audit()] == ["watchcentre", "watchcentre"]


# -- rejections ------------------------------------------------------------------------------------


async def test_a_rejection_keeps_the_raw_bytes_and_is_deduped_by_digest(backend: Backend) -> None:
    store = backend.store
    raw = b'{"message_id": "m1", "sender": "ofast", "kind": "nonsense"}'
    not_json = b"\xff\xfe garbage"
    results = await store.save_batch([rejected(raw, "m1", "ofast"), rejected(not_json)])
    assert all(r is not None for r in results)

    assert await save_one(store, rejected(raw, "m1", "ofast")) is None
    assert await store.seen_rejection(body_digest(raw))
    assert not await store.seen_rejection(body_digest(b"other"))
    assert not await seen(store, "ofast", "m1")  # a rejection is not an accepted message

    rows = await backend.sql("SELECT raw, digest FROM messages ORDER BY id")
    assert [(bytes(r[0]), r[1]) for r in rows] == [(raw, body_digest(raw)), (not_json, body_digest(not_json))]
    m = await store.get_message("m1")
    assert m is not None and m.status == Status.REJECTED
    assert m.error == "kind: not a known kind"
    assert m.envelope == {"message_id": "m1", "sender": "ofast", "kind": "nonsense"}
    [garbage] = [r for r in await store.list_messages(MessageQuery(status=Status.REJECTED)) if r.id != m.id]
    assert (garbage.envelope, garbage.sender, garbage.message_id) == (None, None, None)


async def test_a_corrected_envelope_is_accepted_after_its_rejection(backend: Backend) -> None:
    store = backend.store
    await save_one(store, rejected(b'{"message_id": "m1", "sender": "ofast"}', "m1", "ofast"))

    events = await save_one(store, accepted("m1", "ofast", at=T0 + timedelta(minutes=5)))

    assert events is not None
    assert await seen(store, "ofast", "m1")
    m = await store.get_message("m1", sender="ofast")
    assert m is not None and m.status == Status.ROUTED  # the newest row wins
    assert await totals(store) == {"routed": 1, "triage": 0, "rejected": 1, "audit_events": 3}


async def test_unusual_rejected_inputs_are_stored(backend: Backend) -> None:
    """JSON that no database JSON type takes (NaN, a lone surrogate, NUL) is kept as raw bytes only."""
    inputs = [b'{"a": NaN}', b'{"a": "\\ud800"}', b'{"a": "\\u0000"}', b"[1, 2]", b'"text"']
    results = await backend.store.save_batch([rejected(raw) for raw in inputs])

    assert all(r is not None for r in results)
    assert (await totals(backend.store))["rejected"] == len(inputs)


# -- lookups and lists -----------------------------------------------------------------------------


async def test_originals_are_the_accepted_messages_with_that_id_newest_first(backend: Backend) -> None:
    store = backend.store
    await store.save_batch(
        [
            accepted("req-1", "ofast", recipients=["post.rabat"], reference="CASE-1"),
            rejected(b"bad", "req-1", "ocrtis"),
            accepted("req-1", "post.madrid", recipients=["centre.inbox", "unit.ofast"]),
            accepted("other", "ofast"),
        ]
    )

    assert await store.originals("req-1") == [
        Original("post.madrid", "req-1", ("centre.inbox", "unit.ofast"), None),
        Original("ofast", "req-1", ("post.rabat",), "CASE-1"),
    ]
    assert await store.originals("unknown") == []


async def test_get_message_returns_none_when_unknown(backend: Backend) -> None:
    await save_one(backend.store, accepted("m1", "ofast"))

    assert await backend.store.get_message("m2") is None
    assert await backend.store.get_message("m1", sender="someone-else") is None


@pytest.fixture
async def listed(backend: Backend) -> Backend:
    """Six messages, one a minute from T0, ids in that order."""
    await backend.store.save_batch(
        [
            accepted(
                "a", "ofast", crime_types=["drug_trafficking"], countries=["MA"], recipients=["post.rabat"]
            ),
            accepted(
                "b",
                "ocrtis",
                crime_types=["human_trafficking", "migrant_smuggling"],
                countries=["ES", "MA"],
                recipients=["post.madrid", "post.rabat"],
                at=T0 + timedelta(minutes=1),
            ),
            accepted(
                "c",
                "ofast",
                crime_types=["cybercrime"],
                countries=[],
                recipients=["centre.triage"],
                status=Status.TRIAGE,
                at=T0 + timedelta(minutes=2),
            ),
            rejected(b"broken", "d", "ofast", at=T0 + timedelta(minutes=3)),
            accepted(
                "e",
                "post.madrid",
                crime_types=["drug_trafficking"],
                countries=["ES"],
                recipients=["centre.inbox"],
                at=T0 + timedelta(minutes=4),
            ),
            accepted(
                "f",
                "ofast",
                crime_types=[],
                countries=["IT"],
                recipients=["post.rome"],
                at=T0 + timedelta(minutes=5),
            ),
        ]
    )
    return backend


async def ids(store: Store, **filters: Any) -> list[str | None]:
    return [m.message_id for m in await store.list_messages(MessageQuery(**filters))]


async def test_the_list_is_newest_first(listed: Backend) -> None:
    assert await ids(listed.store) == ["f", "e", "d", "c", "b", "a"]


async def test_the_list_filters_by_crime_type_country_and_recipient(listed: Backend) -> None:
    store = listed.store
    assert await ids(store, crime_type="drug_trafficking") == ["e", "a"]
    assert await ids(store, crime_type="migrant_smuggling") == ["b"]
    assert await ids(store, country="MA") == ["b", "a"]
    assert await ids(store, country="ES") == ["e", "b"]
    assert await ids(store, recipient="post.rabat") == ["b", "a"]
    assert await ids(store, recipient="post") == []  # a recipient is an exact routing key
    assert await ids(store, crime_type="drug_trafficking", country="ES", recipient="centre.inbox") == ["e"]


async def test_the_list_filters_by_status_and_sender(listed: Backend) -> None:
    store = listed.store
    assert await ids(store, status=Status.TRIAGE) == ["c"]
    assert await ids(store, status=Status.REJECTED) == ["d"]
    assert await ids(store, status=Status.ROUTED) == ["f", "e", "b", "a"]
    assert await ids(store, sender="ofast") == ["f", "d", "c", "a"]
    assert await ids(store, sender="ofast", status=Status.ROUTED, country="IT") == ["f"]


async def test_the_list_filters_by_time(listed: Backend) -> None:
    store = listed.store
    since, until = T0 + timedelta(minutes=1), T0 + timedelta(minutes=4)
    assert await ids(store, since=since) == ["f", "e", "d", "c", "b"]
    assert await ids(store, until=until) == ["d", "c", "b", "a"]  # until is exclusive
    assert await ids(store, since=since, until=until) == ["d", "c", "b"]
    paris = since.astimezone(timezone(timedelta(hours=2)))
    assert await ids(store, since=paris) == ["f", "e", "d", "c", "b"]  # any offset means the same instant


async def test_the_list_pages_with_before_id(listed: Backend) -> None:
    store = listed.store
    seen: list[str | None] = []
    before: int | None = None
    while page := await store.list_messages(MessageQuery(limit=4, before_id=before)):
        seen += [m.message_id for m in page]
        before = page[-1].id
    assert seen == ["f", "e", "d", "c", "b", "a"]


async def test_the_list_pages_within_a_filter(listed: Backend) -> None:
    store = listed.store
    [newest] = await store.list_messages(MessageQuery(country="MA", limit=1))
    [older] = await store.list_messages(MessageQuery(country="MA", limit=1, before_id=newest.id))
    assert (newest.message_id, older.message_id) == ("b", "a")
    assert await store.list_messages(MessageQuery(country="MA", before_id=older.id)) == []
    assert await ids(store, status=Status.ROUTED, before_id=newest.id) == ["a"]


# -- totals, health, lifecycle ---------------------------------------------------------------------


async def test_counts_are_totals_by_status_and_audit_events(listed: Backend) -> None:
    assert await totals(listed.store) == {"routed": 4, "triage": 1, "rejected": 1, "audit_events": 11}


async def test_an_empty_store_counts_zero(backend: Backend) -> None:
    assert await totals(backend.store) == {"routed": 0, "triage": 0, "rejected": 0, "audit_events": 0}
    assert await backend.store.save_batch([]) == []


async def test_a_batch_of_500_outcomes_is_saved_in_one_call(backend: Backend) -> None:
    outcomes: list[Outcome] = [accepted(f"m{i}", at=T0 + timedelta(seconds=i)) for i in range(450)]
    outcomes += [rejected(f"bad {i}".encode(), f"r{i}", "ofast") for i in range(50)]

    results = await backend.store.save_batch(outcomes)

    assert len(results) == 500 and all(r is not None for r in results)
    seqs = [e.seq for r in results for e in (r or [])]
    assert len(seqs) == 950 and seqs == sorted(seqs) and len(set(seqs)) == 950
    assert await totals(backend.store) == {"routed": 450, "triage": 0, "rejected": 50, "audit_events": 950}
    assert [r is None for r in await backend.store.save_batch(outcomes[:10])] == [True] * 10


async def test_reopening_keeps_everything(backend: Backend) -> None:
    await save_one(backend.store, accepted("m1"))

    again = await backend.reopen()
    try:
        assert await seen(again, "ofast", "m1")
        assert await save_one(again, accepted("m1")) is None
        assert (await totals(again))["audit_events"] == 2
    finally:
        await again.close()


async def test_two_instances_opening_together_and_writing_together(backend: Backend) -> None:
    one, two = await asyncio.gather(backend.reopen(), backend.reopen())
    try:
        batches = [[accepted(f"{n}-{i}") for i in range(20)] for n in range(4)]
        await asyncio.gather(*(s.save_batch(b) for s, b in zip([one, two, one, two], batches, strict=True)))
        seqs = [e.seq for e in await backend.store.audit(limit=1000)]
        assert seqs == sorted(seqs) and len(seqs) == 160
    finally:
        await asyncio.gather(one.close(), two.close())


async def test_ping_answers_and_fails_once_closed(backend: Backend) -> None:
    await backend.store.ping()
    again = await backend.reopen()
    await again.close()
    with pytest.raises(TransientError):
        await again.ping()


async def test_an_unreachable_postgresql_is_a_transient_error() -> None:
    with pytest.raises(TransientError):
        await SqlStore.postgres("postgresql://postgres@127.0.0.1:1/test")


async def test_sqlite_copies_its_log_into_the_database_file_by_itself(tmp_path: Path) -> None:
    """WAL checkpoints run off the commit path (sql.dialects.Checkpointer), and they do run: a copy of
    the database file alone, without its -wal log (a naive backup), holds every committed message."""
    path = tmp_path / "wc.db"
    store = await SqlStore.sqlite(str(path))
    try:
        for i in range(0, 300, 100):
            await store.save_batch([accepted(f"cp{j}") for j in range(i, i + 100)])
        # Nothing to await from outside: copy the file alone until the copy holds them all (a copy
        # taken while a checkpoint writes may be torn: that is "not yet" too).
        copied, deadline = 0, time.monotonic() + 10
        while copied < 300 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            copy = tmp_path / "copy.db"
            copy.write_bytes(path.read_bytes())
            (tmp_path / "copy.db-wal").unlink(missing_ok=True)
            try:
                async with aiosqlite.connect(copy) as db:
                    query = "SELECT count(*) FROM messages WHERE message_id LIKE 'cp%'"
                    copied = next(iter(await db.execute_fetchall(query)))[0]
            except sqlite3.DatabaseError:
                copied = 0
        assert copied == 300
        assert (tmp_path / "wc.db-wal").stat().st_size > 0  # the store is open: no close-time checkpoint
    finally:
        await store.close()


STOP_DURING_CHECKPOINTS = """
import asyncio, os, sys
from tests.integration.test_store import accepted
from watchcentre.adapters.sql import SqlStore

async def main(folder):
    for i in range(300):
        store = await SqlStore.sqlite(os.path.join(folder, f"wc{i % 3}.db"), checkpoint_every=0.0)
        await store.save_batch([accepted(f"m{i}-{j}") for j in range(20)])
        await asyncio.sleep(0)
        await store.close()
    print("closed 300 times")

asyncio.run(main(sys.argv[1]))
"""


def test_sqlite_closes_cleanly_while_checkpoints_are_running(tmp_path: Path) -> None:
    """Closing the store while its checkpoint thread is busy must wait for it: closing a sqlite3
    connection under a running statement crashes the whole process (it did, before the close was
    queued on the checkpoint thread). In a child process, so that a crash is a failure, not the end
    of the test run."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", STOP_DURING_CHECKPOINTS, str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "closed 300 times" in done.stdout
