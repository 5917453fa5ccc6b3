"""The cost of a retention pass on N stored messages (docs/performance.md, docs/data-protection.md).

    python -m benchmarks.retention --messages 100000 --engine both

Fills a fresh database through the routing service (as benchmarks.backup does), ends every case
(the worst case: nothing is held back by an open case), then times one dry run and one pass of
`config/retention.yaml` applied five years on: the pass erases every message's text, records it in
the audit, and scrubs the files (SQLite VACUUM + TRUNCATE checkpoint; PostgreSQL VACUUM FULL of the
tables it rewrote). Prints the database size before and after, and the pass's time with the scrub
timed apart. Not part of the test suite: it takes minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from benchmarks.backup import POSTGRES_URL, ROOT, fill
from watchcentre.adapters.config_files import load_config
from watchcentre.adapters.logging import configure_logging
from watchcentre.adapters.sql import retention
from watchcentre.bootstrap import open_store
from watchcentre.settings import Settings

_END_ALL = {
    "sqlite": "UPDATE cases SET state = 'closed', data = json_set(data, '$.state', 'closed', '$.closed_at', $1)",
    "postgres": "UPDATE cases SET state = 'closed',"
    " data = data || jsonb_build_object('state', 'closed', 'closed_at', $1::text)",
}


async def _size(engine: str, workdir: Path, schema: str) -> int:
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


async def one(engine: str, n: int, workdir: Path) -> None:
    schema = f"wc_bench_{secrets.token_hex(4)}"
    url = f"sqlite:///{workdir / 'sqlite.db'}" if engine == "sqlite" else POSTGRES_URL
    settings = Settings(database_url=url, database_schema=schema)  # type: ignore[arg-type]
    rules = load_config(ROOT / "config").retention
    assert rules is not None
    try:
        filled = await fill(settings, n)
        store = await open_store(settings)
        d = store._d  # the benchmark's side door: end every case, time the scrub apart
        try:
            closed = (datetime.now(UTC) - timedelta(days=1)).isoformat()
            await d.write(lambda t: t.fetch(_END_ALL[engine], closed))
            if engine == "sqlite":
                await d.fetch("PRAGMA wal_checkpoint(TRUNCATE)")
            before = await _size(engine, workdir, schema)
            later = datetime.now(UTC) + timedelta(days=5 * 365)
            t0 = time.perf_counter()
            dry = await store.purge(rules, later, at=datetime.now(UTC), dry_run=True)
            t1 = time.perf_counter()
            report = await store.purge(rules, later, at=datetime.now(UTC))
            t2 = time.perf_counter()
            after = await _size(engine, workdir, schema)
            await retention.scrub_files(d)  # again, on the purged store: the scrub's own cost
            t3 = time.perf_counter()
        finally:
            await store.close()
        counts = report.summary()
        print(
            f"{engine}: {n:,} messages stored in {filled:.0f} s; database {before / 1e6:.0f} MB before,"
            f" {after / 1e6:.0f} MB after; dry run {t1 - t0:.2f} s"
            f" ({dry.counts['messages'].erased:,} messages); pass {t2 - t1:.2f} s, of which the scrub"
            f" ~{t3 - t2:.2f} s; erased {counts}"
        )
    finally:
        if engine == "postgres":
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                await conn.close()


async def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.retention")
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="both")
    args = p.parse_args()
    configure_logging("json", "WARNING")
    with tempfile.TemporaryDirectory(prefix="wc-retention-bench-") as tmp:
        for engine in ("sqlite", "postgres") if args.engine == "both" else (args.engine,):
            await one(engine, args.messages, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
