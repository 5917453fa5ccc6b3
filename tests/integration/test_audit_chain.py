"""Tamper evidence and tokens on both engines (SQLite file, PostgreSQL schema), through the real stores.

A test edits the audit behind the service's back (the append-only trigger switched off, as only a
database administrator could) and the verification names the record.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.test_store import T0, Backend, accepted, backend, rejected
from watchcentre.adapters.audit_anchor import FileAnchor
from watchcentre.anchoring import AnchorWriter
from watchcentre.core.access import Role
from watchcentre.core.audit_chain import GENESIS, checkpoint_line, sign_checkpoint
from watchcentre.core.ports import SystemClock
from watchcentre.core.records import AuditEvent
from watchcentre.security import authenticate, issue_token, revoke_token, verify_audit

__all__ = ["backend"]  # the fixture, parametrised over both engines

ANCHOR_KEY = b"test-anchor-key-" + b"0" * 32


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
    backend: Backend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from watchcentre.cli import main

    await seed(backend)
    anchor = cli_env(backend, monkeypatch, tmp_path)
    await AnchorWriter(backend.store, anchor, SystemClock(), 3600).checkpoint()

    assert await _run(main, ["audit", "verify"]) == 0
    seqs = [e.seq for e in await backend.store.audit()]
    await behind_the_back(backend, f"UPDATE audit SET reference = 'CASE-X' WHERE seq = {seqs[5]}")
    capsys.readouterr()
    assert await _run(main, ["audit", "verify"]) == 1
    out = capsys.readouterr()
    assert f"chain broken at seq {seqs[5]}" in out.err


def cli_env(backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FileAnchor:
    """Point `watchcentre` at this test's database and anchor; the anchor, as the service would write it."""
    if backend.engine == "sqlite":
        monkeypatch.setenv("WATCHCENTRE_DATABASE_URL", f"sqlite:///{backend.location}")
    else:
        from tests.integration.test_store import POSTGRES_URL

        monkeypatch.setenv("WATCHCENTRE_DATABASE_URL", POSTGRES_URL)
        monkeypatch.setenv("WATCHCENTRE_DATABASE_SCHEMA", backend.location)
    monkeypatch.setenv("WATCHCENTRE_LOG_FORMAT", "json")
    monkeypatch.setenv("WATCHCENTRE_AUDIT_ANCHOR_PATH", str(tmp_path / "anchor" / "audit-anchor.jsonl"))
    monkeypatch.setenv("WATCHCENTRE_AUDIT_ANCHOR_KEY", ANCHOR_KEY.decode())
    return FileAnchor(tmp_path / "anchor" / "audit-anchor.jsonl", ANCHOR_KEY)


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

    deps = HttpDeps(
        store=backend.store,
        network=NETWORK,
        readiness=ready,
        render_metrics=lambda: (b"", "text/plain"),
        version="t",
    )
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


# -- the tail, gaps and the anchor: what an attacker with database access does ---------------------------


async def many(b: Backend, n: int = 40) -> list[int]:
    """n records in a few transactions; their seqs."""
    for start in range(0, n, 10):
        await b.store.append_audit(
            [
                AuditEvent(at=T0, type="accessed", actor="post:rabat", message_id=f"m{i}")
                for i in range(start, start + 10)
            ]
        )
    return [e.seq for e in await b.store.audit(limit=1000) if e.seq is not None]


async def cut_the_tail(b: Backend, seqs: list[int], anchor: FileAnchor) -> str:
    await behind_the_back(b, f"DELETE FROM audit WHERE seq > {seqs[-21]}")
    return f"truncated after seq {seqs[-21]}: the anchor recorded seq {seqs[-1]}"


async def cut_the_tail_then_append(b: Backend, seqs: list[int], anchor: FileAnchor) -> str:
    # the 20 newest, and the auditor's reads of the trail recorded since (each verification is one)
    cut = len(await b.store.audit(after_seq=seqs[-21], limit=1000))
    await behind_the_back(b, f"DELETE FROM audit WHERE seq > {seqs[-21]}")
    await b.store.append_audit([AuditEvent(at=T0, type="accessed", actor="post:rabat", message_id="after")])
    assert (await verify_audit(b.store, page=7)).first_break is None  # the chain alone sees nothing
    return f"gap in seq: {cut} record(s) missing from seq {seqs[-20]}"


async def delete_a_middle_record(b: Backend, seqs: list[int], anchor: FileAnchor) -> str:
    await behind_the_back(b, f"DELETE FROM audit WHERE seq = {seqs[17]}")
    return f"gap in seq: 1 record(s) missing from seq {seqs[17]}"


async def edit_the_anchor(b: Backend, seqs: list[int], anchor: FileAnchor) -> str:
    # hide a cut tail: move the newest checkpoint back to the new head, without the key
    await behind_the_back(b, f"DELETE FROM audit WHERE seq > {seqs[-21]}")
    [head] = await b.store.audit(after_seq=seqs[-22], limit=1)
    lines = anchor.path.read_bytes().splitlines()
    cp = orjson.loads(lines[-1])
    cp.update(seq=head.seq, hash=head.hash)
    anchor.path.write_bytes(b"\n".join([*lines[:-1], orjson.dumps(cp)]) + b"\n")
    return "bad signature"


async def forge_a_checkpoint(b: Backend, seqs: list[int], anchor: FileAnchor) -> str:
    forged = sign_checkpoint(b"a-key-the-attacker-made-up-" + b"x" * 10, seqs[-1] + 5, "0" * 64, T0)
    with anchor.path.open("ab") as f:
        f.write(checkpoint_line(forged))
    return "bad signature"


@pytest.mark.parametrize(
    "attack",
    [cut_the_tail, cut_the_tail_then_append, delete_a_middle_record, edit_the_anchor, forge_a_checkpoint],
)
async def test_an_attack_on_the_tail_gaps_or_anchor_is_detected(
    backend: Backend,
    attack: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from watchcentre.cli import main

    anchor = cli_env(backend, monkeypatch, tmp_path)
    auditor = await issue_token(backend.store, SystemClock(), role=Role.AUDITOR, subject=None, name="IG")
    seqs = await many(backend)
    await AnchorWriter(backend.store, anchor, SystemClock(), 3600).checkpoint()  # what the service does
    async with audit_api(backend, anchor, auditor.token) as verify:
        intact = await verify()
        assert (
            intact["ok"] is True and intact["problems"] == [] and intact["anchor"]["newest_seq"] == seqs[-1]
        )
        assert await _run(main, ["audit", "verify"]) == 0

        expected = await attack(backend, seqs, anchor)

        capsys.readouterr()
        assert await _run(main, ["audit", "verify"]) == 1
        err = capsys.readouterr().err
        assert "audit trail NOT intact" in err and expected in err
        found = await verify()
    assert found["ok"] is False
    assert any(expected in p for p in found["problems"]), found["problems"]


def audit_api(backend: Backend, anchor: FileAnchor, token: str) -> Any:
    """GET /api/audit/verify on an HTTP adapter wired to this store and anchor, as an auditor."""
    import contextlib

    from aiohttp.test_utils import TestClient, TestServer

    from tests.integration.test_http import NETWORK
    from watchcentre.adapters.http_app import create_app
    from watchcentre.adapters.http_base import HttpDeps

    async def ready() -> dict[str, bool]:
        return {}

    @contextlib.asynccontextmanager
    async def api() -> Any:
        deps = HttpDeps(
            store=backend.store,
            network=NETWORK,
            readiness=ready,
            render_metrics=lambda: (b"", "text/plain"),
            version="t",
            audit_anchor=anchor,
        )
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
        await client.start_server()

        async def verify() -> dict[str, Any]:
            resp = await client.get("/api/audit/verify", headers={"Authorization": f"Bearer {token}"})
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
            return body

        try:
            yield verify
        finally:
            await client.close()

    return api()


async def test_verify_without_the_key_says_so(
    backend: Backend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from watchcentre.cli import main

    cli_env(backend, monkeypatch, tmp_path)
    monkeypatch.delenv("WATCHCENTRE_AUDIT_ANCHOR_KEY")
    monkeypatch.setenv("WATCHCENTRE_AUDIT_ANCHOR_KEY_PATH", str(tmp_path / "no-such.key"))
    assert await _run(main, ["audit", "verify"]) == 2
    assert "no audit anchor key" in capsys.readouterr().err
    assert not (tmp_path / "no-such.key").exists()  # verifying never makes a key up


async def test_a_checkpoint_is_written_only_when_the_head_moved(backend: Backend, tmp_path: Path) -> None:
    anchor = FileAnchor(tmp_path / "anchor.jsonl", ANCHOR_KEY)
    writer = AnchorWriter(backend.store, anchor, SystemClock(), 3600)
    assert await writer.checkpoint() is None  # an empty trail: nothing to anchor
    await seed(backend)
    first = await writer.checkpoint()
    assert first is not None and await writer.checkpoint() is None
    await backend.store.append_audit([AuditEvent(at=T0, type="accessed", actor="post:rabat")])
    second = await writer.checkpoint()
    assert second is not None and second.seq > first.seq
    assert len(anchor.path.read_bytes().splitlines()) == 2


async def test_the_service_anchors_its_final_head_at_shutdown(
    broker: Any, service_settings: Any, tmp_path: Path
) -> None:
    import aiohttp
    from pydantic import SecretStr

    from tests.integration.harness import envelope, running
    from watchcentre.bootstrap import open_store

    path = tmp_path / "anchor" / "audit-anchor.jsonl"
    settings = service_settings.model_copy(
        update={
            "audit_anchor_path": str(path),
            "audit_anchor_key": SecretStr(ANCHOR_KEY.decode()),
            "audit_anchor_interval_s": 3600.0,
        }
    )
    async with running(settings) as inst:
        assert path.read_bytes() == b""  # made at start; an empty trail has no head to anchor yet
        auditor = await issue_token(
            inst.runtime.store, SystemClock(), role=Role.AUDITOR, subject=None, name="IG"
        )
        await broker.publish(envelope(countries=["MA"]))
        await broker.wait_events(lambda evs: any(e["type"] in ("routed", "triaged") for e in evs), within=30)
        async with aiohttp.ClientSession() as http:
            resp = await http.get(
                f"http://127.0.0.1:{inst.port}/api/audit/verify",
                headers={"Authorization": f"Bearer {auditor.token}"},
            )
            running_view = await resp.json()
        assert running_view["ok"] is True and running_view["anchor"]["where"] == str(path)
    [line] = path.read_bytes().splitlines()  # the one checkpoint: written at shutdown
    checkpoint = orjson.loads(line)
    store = await open_store(settings)
    try:
        events = await store.audit(limit=1000)
        assert (checkpoint["seq"], checkpoint["hash"]) == (events[-1].seq, events[-1].hash)
        assert (await verify_audit(store, FileAnchor(path, ANCHOR_KEY))).ok
    finally:
        await store.close()
