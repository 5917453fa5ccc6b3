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

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.backup import ROOT, bench_database, database_bytes, fill, per_engine
from watchcentre.adapters.config_files import load_config
from watchcentre.adapters.sql import retention
from watchcentre.bootstrap import open_store

_END_ALL = {
    "sqlite": "UPDATE cases SET state = 'closed', data = json_set(data, '$.state', 'closed', '$.closed_at', $1)",
    "postgres": "UPDATE cases SET state = 'closed',"
    " data = data || jsonb_build_object('state', 'closed', 'closed_at', $1::text)",
}


async def one(engine: str, n: int, workdir: Path) -> None:
    rules = load_config(ROOT / "config").retention
    assert rules is not None
    async with bench_database(engine, workdir) as (settings, schema):
        filled = await fill(settings, n)
        store = await open_store(settings)
        d = store._d  # the benchmark's side door: end every case, time the scrub apart
        try:
            closed = (datetime.now(UTC) - timedelta(days=1)).isoformat()
            await d.write(lambda t: t.fetch(_END_ALL[engine], closed))
            if engine == "sqlite":
                await d.fetch("PRAGMA wal_checkpoint(TRUNCATE)")
            before = await database_bytes(engine, workdir, schema)
            later = datetime.now(UTC) + timedelta(days=5 * 365)
            t0 = time.perf_counter()
            dry = await store.purge(rules, later, at=datetime.now(UTC), dry_run=True)
            t1 = time.perf_counter()
            report = await store.purge(rules, later, at=datetime.now(UTC))
            t2 = time.perf_counter()
            after = await database_bytes(engine, workdir, schema)
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


if __name__ == "__main__":
    per_engine("python -m benchmarks.retention", one)
