"""What-if's speed on N stored messages (docs/performance.md, docs/configuration.md).

    python -m benchmarks.whatif --messages 100000 [--db PATH]

Fills a SQLite store through the routing service itself (as benchmarks/backup.py does: ~1 KB EN/FR
messages about one foreign country each), or reuses `--db` when it already holds them, then replays
every message through a candidate configuration in which Spain moved from the Madrid post to the
Lisbon one (so about a tenth of the messages change), as `watchcentre whatif` does. Not part of the
test suite: filling takes minutes."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.backup import fill
from watchcentre.adapters.config_files import load_config
from watchcentre.adapters.logging import configure_logging
from watchcentre.adapters.sql import SqlStore
from watchcentre.bootstrap import build_classifier, build_rules
from watchcentre.core.senders import SenderPolicy
from watchcentre.service.whatif import what_if
from watchcentre.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def candidate(workdir: Path) -> Path:
    directory = workdir / "candidate"
    shutil.copytree(ROOT / "config", directory, dirs_exist_ok=True)
    network = directory / "network.yaml"
    text = network.read_text(encoding="utf-8")
    network.write_text(
        text.replace("countries: [ES, AD]", "countries: [AD]").replace(
            "countries: [PT]", "countries: [PT, ES]"
        ),
        encoding="utf-8",
    )
    return directory


async def run(n: int, db: Path, workdir: Path) -> None:
    if not await asyncio.to_thread(db.exists):
        await asyncio.to_thread(db.parent.mkdir, parents=True, exist_ok=True)
        filled = await fill(Settings(database_url=f"sqlite:///{db}"), n)  # type: ignore[arg-type]
        size_mb = (await asyncio.to_thread(db.stat)).st_size / 1e6
        print(f"filled {n:,} messages in {filled:.0f} s ({size_mb:.0f} MB)")
    started = time.perf_counter()
    config = load_config(candidate(workdir))
    rules = build_rules(config, build_classifier(config), SenderPolicy())
    built = time.perf_counter() - started
    store = await SqlStore.sqlite(str(db))
    try:
        report = await what_if(store, rules)
    finally:
        await store.close()
    print(
        f"what-if: {report.messages:,} messages replayed in {report.seconds:.1f} s"
        f" ({report.messages / report.seconds:,.0f} messages/s; candidate built in {built:.1f} s);"
        f" {report.changed:,} would change; outcomes {report.outcomes}"
    )


async def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.whatif")
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--db", type=Path, help="a SQLite file to fill once and reuse")
    args = p.parse_args()
    configure_logging("json", "WARNING")
    with tempfile.TemporaryDirectory(prefix="wc-whatif-bench-") as tmp:
        await run(args.messages, args.db or Path(tmp) / "whatif.db", Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
