"""Tamper evidence and tokens on both engines (SQLite file, PostgreSQL schema), through the real stores.

A test edits the audit behind the service's back (the append-only trigger switched off, as only a
database administrator could) and the verification names the record.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from tests.integration.test_store import T0, Backend, accepted, backend, rejected
from watchcentre.core.access import Role
from watchcentre.core.audit_chain import GENESIS
from watchcentre.core.ports import SystemClock
from watchcentre.core.records import AuditEvent
from watchcentre.security import authenticate, issue_token, revoke_token, verify_audit

__all__ = ["backend"]  # the fixture, parametrised over both engines


async def seed(b: Backend) -> None:
    await b.store.save_batch([accepted("m1"), accepted("m2"), rejected(b"bad", "m3", "ofast")])
    await b.store.save_batch([accepted("m4", at=T0 + timedelta(minutes=1))])
    await b.store.append_audit(
        [
            AuditEvent(
                at=T0,
                type="accessed",
                actor="post:rabat",
                sender="ofast",
                message_id="m1",
                details={"x": 1.5},
            )
        ]
    )


async def behind_the_back(b: Backend, statement: str) -> None:
    """Run SQL with the append-only guard off, the way a rogue administrator would."""
    if b.engine == "sqlite":
        import aiosqlite

        async with aiosqlite.connect(b.location) as db:
            await db.executescript(
                f"DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; {statement};"
            )
            await db.commit()
        return
    import asyncpg

    from tests.integration.test_store import POSTGRES_URL

    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": b.location})
    try:
        await conn.execute(
            "BEGIN; ALTER TABLE audit DISABLE TRIGGER audit_no_change; "
            f"{statement}; ALTER TABLE audit ENABLE TRIGGER audit_no_change; COMMIT"
        )
    finally:
        await conn.close()


async def test_every_record_is_chained_to_the_previous_one(backend: Backend) -> None:
    await seed(backend)
    events = await backend.store.audit(limit=1000)
    assert len(events) == 8
    assert events[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    result = await verify_audit(backend.store, page=3)  # across pages
    assert result.ok and result.checked == 8 and result.first_break is None
    assert result.head_seq == events[-1].seq and result.head_hash == events[-1].hash


async def test_the_events_save_batch_returns_carry_their_hash(backend: Backend) -> None:
    [events] = await backend.store.save_batch([accepted("m1")])
    assert events is not None
    assert events == await backend.store.audit()


@pytest.mark.parametrize(
    ("edit", "broken"),
    [
        ("UPDATE audit SET actor = 'mallory' WHERE seq = {s3}", 3),
        ('UPDATE audit SET details = \'{{"to": ["post.paris"]}}\' WHERE seq = {s2}', 2),
        ("UPDATE audit SET at = at WHERE seq = {s5}", None),  # a no-op edit changes nothing
        ("DELETE FROM audit WHERE seq = {s4}", 5),  # the next record's link breaks
        ("UPDATE audit SET hash = 'f' WHERE seq = {s8}", 8),
    ],
)
async def test_an_edit_behind_the_services_back_is_named(
    backend: Backend, edit: str, broken: int | None
) -> None:
    await seed(backend)
    seqs = [e.seq for e in await backend.store.audit()]
    await behind_the_back(backend, edit.format(**{f"s{i + 1}": s for i, s in enumerate(seqs)}))
    result = await verify_audit(backend.store)
    if broken is None:
        assert result.ok
        return
    assert not result.ok and result.first_break is not None
    assert result.first_break.seq == seqs[broken - 1]
    assert result.first_break.problem


async def test_the_audit_verify_command_names_the_broken_record(
    backend: Backend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from watchcentre.cli import main

    await seed(backend)
    if backend.engine == "sqlite":
        monkeypatch.setenv("WATCHCENTRE_DATABASE_URL", f"sqlite:///{backend.location}")
    else:
        from tests.integration.test_store import POSTGRES_URL

        monkeypatch.setenv("WATCHCENTRE_DATABASE_URL", POSTGRES_URL)
        monkeypatch.setenv("WATCHCENTRE_DATABASE_SCHEMA", backend.location)
    monkeypatch.setenv("WATCHCENTRE_LOG_FORMAT", "json")

    assert await _run(main, ["audit", "verify"]) == 0
    seqs = [e.seq for e in await backend.store.audit()]
    await behind_the_back(backend, f"UPDATE audit SET reference = 'CASE-X' WHERE seq = {seqs[5]}")
    capsys.readouterr()
    assert await _run(main, ["audit", "verify"]) == 1
    out = capsys.readouterr()
    assert f"BROKEN at seq {seqs[5]}" in out.err


async def _run(main: Any, argv: list[str]) -> int:
    """The CLI runs its own event loop: run it in a thread."""
    import asyncio

    result: int = await asyncio.to_thread(main, argv)
    return result


# -- tokens on both engines ------------------------------------------------------------------------


async def test_tokens_issue_authenticate_expire_and_revoke(backend: Backend) -> None:
    store, clock = backend.store, SystemClock()
    issued = await issue_token(
        store, clock, role=Role.UNIT, subject="ofast", name="Agent Z", ttl=timedelta(days=1)
    )
    principal, why = await authenticate(store, clock, issued.token)
    assert why == "ok" and principal is not None
    assert (principal.label, principal.name, principal.token_id) == (
        "unit:ofast",
        "Agent Z",
        issued.record.id,
    )
    assert await authenticate(store, clock, issued.token + "x") == (None, "unknown")
    assert await authenticate(store, clock, "not-a-token") == (None, "malformed")

    class Later:
        def now(self) -> Any:
            return clock.now() + timedelta(days=1, seconds=1)

    assert await authenticate(store, Later(), issued.token) == (None, "expired")
    await revoke_token(store, clock, issued.record.id)
    assert await authenticate(store, clock, issued.token) == (None, "revoked")
    [record] = await store.tokens()
    assert record.revoked_at is not None and record.hash != issued.token
    rows = await backend.sql("SELECT hash FROM tokens")
    assert issued.token not in str(rows)
    types = [e.type for e in await store.audit()]
    assert types == ["token_issued", "token_revoked"]
    assert (await verify_audit(store)).ok


async def test_the_token_commands(
    backend: Backend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.service_fixtures import CONFIG_DIR
    from watchcentre.cli import main

    if backend.engine == "sqlite":
        monkeypatch.setenv("WATCHCENTRE_DATABASE_URL", f"sqlite:///{backend.location}")
    else:
        from tests.integration.test_store import POSTGRES_URL

        monkeypatch.setenv("WATCHCENTRE_DATABASE_URL", POSTGRES_URL)
        monkeypatch.setenv("WATCHCENTRE_DATABASE_SCHEMA", backend.location)
    monkeypatch.setenv("WATCHCENTRE_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("WATCHCENTRE_LOG_FORMAT", "json")

    post = await _post_id()
    assert await _run(main, ["token", "issue", "--role", "post", "--post", post, "--name", "Officer A"]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("wct_") and token not in out.err
    principal, _ = await authenticate(backend.store, SystemClock(), token)
    assert principal is not None and principal.label == f"post:{post}"
    assert await _run(main, ["token", "issue", "--role", "post", "--post", "atlantis", "--name", "B"]) == 2
    assert await _run(main, ["token", "issue", "--role", "auditor", "--name", "C", "--days", "400"]) == 2
    [record] = await backend.store.tokens()
    assert await _run(main, ["token", "revoke", record.id]) == 0
    assert await authenticate(backend.store, SystemClock(), token) == (None, "revoked")
    capsys.readouterr()
    assert await _run(main, ["token", "list"]) == 0
    listed = capsys.readouterr().out
    assert record.id in listed and token not in listed and record.hash not in listed


async def _post_id() -> str:
    from tests.integration.service_fixtures import CONFIG_DIR
    from watchcentre.adapters.config_files import load_config

    return load_config(CONFIG_DIR).network.posts[0].id


async def test_get_api_audit_verify_names_the_broken_record(backend: Backend) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from tests.integration.test_http import NETWORK
    from watchcentre.adapters.http_app import create_app
    from watchcentre.adapters.http_base import HttpDeps

    await seed(backend)
    auditor = await issue_token(backend.store, SystemClock(), role=Role.AUDITOR, subject=None, name="IG")

    async def ready() -> dict[str, bool]:
        return {}

    deps = HttpDeps(store=backend.store, network=NETWORK, readiness=ready,
                    render_metrics=lambda: (b"", "text/plain"), version="t")  # fmt: skip
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        headers = {"Authorization": f"Bearer {auditor.token}"}
        intact = await (await client.get("/api/audit/verify", headers=headers)).json()
        assert intact["ok"] is True and intact["first_break"] is None and intact["checked"] == 9
        seqs = [e.seq for e in await backend.store.audit()]
        await behind_the_back(backend, f"UPDATE audit SET message_id = 'm9' WHERE seq = {seqs[2]}")
        resp = await client.get("/api/audit/verify", headers=headers)
        broken = await resp.json()
    finally:
        await client.close()
    assert resp.status == 200
    assert broken["ok"] is False
    assert broken["first_break"] == {"seq": seqs[2], "problem": "hash does not match the record's content"}
    assert broken["head_hash"] == intact_hash_before(seqs[2], await backend.store.audit())
    assert broken["head_seq"] == seqs[1]  # the last good record, whose hash head_hash is


def intact_hash_before(seq: int | None, events: list[AuditEvent]) -> str | None:
    """The hash of the last good record before `seq`: where the verification stopped."""
    before = [e for e in events if e.seq is not None and seq is not None and e.seq < seq]
    return before[-1].hash if before else GENESIS
