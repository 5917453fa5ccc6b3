"""Backup and restore, on both engines: a copy taken while the service drains its intake is
consistent (`audit verify` passes on it with the anchor copied beside it), restores into a new
database, and a service run on that database routes nothing the copy already holds a second time
when the senders send everything again; at the end the counts equal the original's."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.integration.harness import Broker, envelope, running
from tests.integration.service_fixtures import POSTGRES_URL
from tests.integration.store_totals import totals
from watchcentre.adapters.audit_anchor import FileAnchor, load_key
from watchcentre.adapters.backup import anchor_copy_path, backup_postgres, backup_sqlite
from watchcentre.bootstrap import open_store, sqlite_path
from watchcentre.cli import main
from watchcentre.security import verify_audit
from watchcentre.settings import Settings

N = 400
REALIGN_AUDIT_SEQ = (
    "SELECT setval(pg_get_serial_sequence('{schema}.audit', 'seq'), coalesce(max(seq), 1), max(seq) IS NOT NULL)"
    " FROM {schema}.audit"
)
"""The restore step of docs/operations.md, for PostgreSQL."""


def routed(n: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: len([e for e in events if e["type"] == "routed"]) >= n


async def counts_of(settings: Settings) -> dict[str, Any]:
    store = await open_store(settings)
    try:
        return await totals(store)
    finally:
        await store.close()


def handled(metrics_text: bytes) -> float:
    """Inputs finished by this instance: routed, triaged, dead-lettered or seen as duplicates."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text.decode()):
        for s in family.samples:
            if s.name in ("watchcentre_messages_routed_total", "watchcentre_messages_duplicate_total"):
                total += s.value
            if s.name == "watchcentre_messages_rejected_total":
                total += s.value
    return total


async def restore(settings: Settings, copy: Path, tmp_path: Path) -> tuple[Settings, Callable[[], Any]]:
    """The copy as a new database, the way docs/operations.md says; (its settings, a cleanup)."""
    url = settings.database_url.get_secret_value()
    anchor = anchor_copy_path(copy)
    if url.startswith("sqlite:"):
        target = tmp_path / "restored" / "watchcentre.db"
        target.parent.mkdir()
        shutil.copyfile(copy, target)
        new = settings.model_copy(
            update={"database_url": SecretStr(f"sqlite:///{target}"), "audit_anchor_path": str(anchor)}
        )

        async def nothing() -> None:
            return None

        return new, nothing
    name = f"wc_restore_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    target_url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    target = await asyncpg.connect(target_url)
    try:  # database-wide, so not in the schema's dump: the search configurations use it (docs)
        await target.execute("CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public")
    finally:
        await target.close()
    done = await asyncio.to_thread(
        subprocess.run,
        ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={target_url}", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # pg_dump saves a sequence's value outside its snapshot: realign the audit seq on the copy's
    # last record, or the restored service numbers on after a gap `audit verify` reports (docs)
    conn = await asyncpg.connect(target_url)
    try:
        await conn.execute(REALIGN_AUDIT_SEQ.format(schema=settings.database_schema))
    finally:
        await conn.close()
    new = settings.model_copy(
        update={"database_url": SecretStr(target_url), "audit_anchor_path": str(anchor)}
    )

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()

    return new, drop


def take_backup(settings: Settings, to: Path) -> None:
    url = settings.database_url.get_secret_value()
    anchor = Path(settings.audit_anchor_path)
    if url.startswith("sqlite:"):
        backup_sqlite(sqlite_path(url), to, anchor)
    else:
        backup_postgres(url, settings.database_schema, to, anchor)


async def test_a_backup_taken_during_a_drain_restores_and_routes_nothing_twice(
    service_settings: Settings, broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if service_settings.database_url.get_secret_value().startswith("postgres") and not shutil.which(
        "pg_restore"
    ):
        pytest.skip("pg_dump/pg_restore are not installed (Debian: postgresql-client)")
    inputs = [envelope(kind="information", countries=["ES"], message_id=f"b-{i:04d}") for i in range(N)]
    copy = tmp_path / "backup" / "watchcentre.backup"
    copy.parent.mkdir()
    await broker.declare_topology()
    for e in inputs[: N // 2]:
        await broker.publish(e)

    async with running(service_settings):
        await broker.wait_events(routed(20))
        # the backup runs while the service drains the first half and takes the second
        backup = asyncio.create_task(asyncio.to_thread(take_backup, service_settings, copy))
        for e in inputs[N // 2 :]:
            await broker.publish(e)
        await backup
        await broker.wait_events(routed(N), within=60)
    original = await counts_of(service_settings)
    first_copies = {m.message_id for m in await broker.drain("post.madrid")}
    assert original["routed"] == N and len(first_copies) == N

    restored, cleanup = await restore(service_settings, copy, tmp_path)
    try:
        store = await open_store(restored)
        try:
            key = load_key(None, restored.audit_anchor_key_path, create=False)
            check = await verify_audit(store, FileAnchor(anchor_copy_path(copy), key))
            assert check.ok, check.problems
            before = await totals(store)
        finally:
            await store.close()
        assert 0 < before["routed"] <= N

        # senders send everything again (the copy lost what came after it); the restored service
        # routes only what the copy does not hold, under the same copy ids as the first time
        async with running(restored) as inst:
            for e in inputs:
                await broker.publish(e)
            await broker.wait_events(routed(N + N - before["routed"]), within=60)
            metrics = inst.runtime.service.intake.metrics
            for _ in range(600):  # duplicates raise no event: wait for the counter to reach N
                if handled(metrics.render()[0]) >= N:  # type: ignore[attr-defined]
                    break
                await asyncio.sleep(0.05)
            assert handled(metrics.render()[0]) == N  # type: ignore[attr-defined]
        second_copies = [m.message_id for m in await broker.drain("post.madrid")]
        assert len(second_copies) == N - before["routed"] == len(set(second_copies))
        assert set(second_copies) <= first_copies  # same copy ids: a recipient can drop a repeat
        assert await counts_of(restored) == original

        # and `watchcentre audit verify` on the restored database, against its anchor, passes
        monkeypatch.setenv("WATCHCENTRE_DATABASE_URL", restored.database_url.get_secret_value())
        monkeypatch.setenv("WATCHCENTRE_DATABASE_SCHEMA", restored.database_schema)
        monkeypatch.setenv("WATCHCENTRE_AUDIT_ANCHOR_PATH", restored.audit_anchor_path)
        monkeypatch.setenv("WATCHCENTRE_AUDIT_ANCHOR_KEY_PATH", restored.audit_anchor_key_path)
        assert await asyncio.to_thread(main, ["audit", "verify"]) == 0
    finally:
        await cleanup()
