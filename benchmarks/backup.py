"""Backup time and size for N stored messages (docs/performance.md, docs/operations.md).

    python -m benchmarks.backup --messages 100000 --engine both

Fills a fresh database through the routing service itself (classification, routing, cases and the
audit chain, written by the group commit; a publisher that confirms at once stands in for the
broker, which the backup does not read), then times `watchcentre backup` on it: SQLite's online
backup, or pg_dump of the schema. Not part of the test suite: it takes minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import asyncpg

from benchmarks import corpus
from watchcentre.adapters.backup import backup_postgres, backup_sqlite
from watchcentre.adapters.config_files import load_config
from watchcentre.adapters.logging import configure_logging
from watchcentre.adapters.metrics import PrometheusMetrics
from watchcentre.bootstrap import build_classifier, build_service, open_store
from watchcentre.core.ports import OutboundCopy, SystemClock
from watchcentre.core.records import AuditEvent
from watchcentre.core.senders import SenderPolicy
from watchcentre.service import ServiceSettings
from watchcentre.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


class Confirmed:
    """A Publisher whose broker confirms everything at once."""

    async def publish_routed(self, copies: Sequence[OutboundCopy]) -> None:
        return None

    async def publish_dead(self, body: bytes, reason: str, headers: Mapping[str, str]) -> None:
        return None

    async def publish_events(self, events: Sequence[AuditEvent]) -> None:
        return None

    async def publish_reply(self, to: str, body: bytes, correlation_id: str | None) -> None:
        return None


async def fill(settings: Settings, n: int) -> float:
    config = load_config(ROOT / "config")
    store = await open_store(settings)
    service = build_service(
        config=config,
        classifier=build_classifier(config),
        store=store,
        publisher=Confirmed(),
        metrics=PrometheusMetrics(),
        clock=SystemClock(),
        settings=ServiceSettings(senders=SenderPolicy(development=True)),  # no broker: nobody to vouch
    )
    started = time.perf_counter()
    await service.start()
    try:
        bodies = corpus.envelopes(n, f"bk-{secrets.token_hex(3)}")
        for i in range(0, n, 500):
            await asyncio.gather(*(service.pipeline.handle(b) for b in bodies[i : i + 500]))
    finally:
        await service.stop()
        await store.close()
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def bench_database(engine: str, workdir: Path) -> AsyncIterator[tuple[Settings, str]]:
    """A database of its own for one run (a file in `workdir`, or a PostgreSQL schema dropped after)."""
    schema = f"wc_bench_{secrets.token_hex(4)}"
    url = f"sqlite:///{workdir / 'sqlite.db'}" if engine == "sqlite" else POSTGRES_URL
    try:
        yield Settings(database_url=url, database_schema=schema), schema
    finally:
        if engine == "postgres":
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                await conn.close()


async def database_bytes(engine: str, workdir: Path, schema: str) -> int:
    if engine == "sqlite":
        return sum(
            p.stat().st_size for p in await asyncio.to_thread(lambda: list(workdir.glob("sqlite.db*")))
        )
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        return int(
            await conn.fetchval(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
                schema,
            )
        )
    finally:
        await conn.close()


def per_engine(prog: str, one: Callable[[str, int, Path], Awaitable[None]]) -> None:
    """The command line both store benchmarks share: `--messages N --engine sqlite|postgres|both`."""
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="both")
    args = p.parse_args()
    configure_logging("json", "WARNING")  # a log line per routed message would be most of the time

    async def run() -> None:
        with tempfile.TemporaryDirectory(prefix="wc-bench-") as tmp:
            for engine in ("sqlite", "postgres") if args.engine == "both" else (args.engine,):
                await one(engine, args.messages, Path(tmp))

    asyncio.run(run())


async def one(engine: str, n: int, workdir: Path) -> None:
    async with bench_database(engine, workdir) as (settings, schema):
        filled = await fill(settings, n)
        to = workdir / f"{engine}.backup"
        if engine == "sqlite":
            result = await asyncio.to_thread(backup_sqlite, str(workdir / "sqlite.db"), to, None)
        else:
            result = await asyncio.to_thread(backup_postgres, POSTGRES_URL, schema, to, None)
        source = await database_bytes(engine, workdir, schema)
        print(
            f"{engine}: {n:,} messages stored in {filled:.0f} s; database {source / 1e6:.0f} MB;"
            f" backup {result.seconds:.2f} s, {result.bytes / 1e6:.0f} MB"
        )


if __name__ == "__main__":
    per_engine("python -m benchmarks.backup", one)
