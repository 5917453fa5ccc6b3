"""python -m benchmarks {all,full,classify,drain,latency,memory,recovery,scaleout,feed,smoke} [--messages N]
[--engine sqlite|postgres|both] [--rate R] [--seconds S] [--json PATH]

`all`: the hot-path table (classify, drain 10,000 in copies/s, drain 20,000 on both engines, latency
at 500/s, start → healthy), each with the reference router of the same run and CPU ms per input.
`full`: that and the rest (scaleout, feed, memory at 100,000).

Exit status: 0 when every scenario ran (whatever the figures), 1 when something is broken (a
subprocess died, messages were not all routed, a dependency is unreachable), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import classify, drain, feed, latency, memory, recovery, scaleout
from benchmarks.common import (
    RESULTS_DIR,
    BenchError,
    Figure,
    err,
    kill_all_sync,
    machine_info,
    render,
    write_json,
)

SCENARIOS = ("all", "full", "classify", "drain", "latency", "memory", "recovery", "scaleout", "feed", "smoke")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="watchcentre benchmarks")
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument(
        "--messages",
        type=int,
        help="drain: 20,000 (smoke 500); memory: 100,000; scaleout: 20,000; feed: 10,000",
    )
    p.add_argument("--engine", choices=("sqlite", "postgres", "both"), help="drain: sqlite (all: both)")
    p.add_argument("--rate", type=float, help="latency: messages per second (default 500; smoke 100)")
    p.add_argument("--seconds", type=float, help="latency: duration (default 60; smoke 3)")
    p.add_argument(
        "--json", type=Path, default=RESULTS_DIR / "latest.json", help="where to write the results"
    )
    return p.parse_args(argv)


async def run(args: argparse.Namespace, figures: list[Figure], details: dict[str, Any]) -> None:
    smoke, everything = args.scenario == "smoke", args.scenario in ("all", "full")
    full = args.scenario == "full"
    default_engine = "both" if everything else "sqlite"
    engine = args.engine or default_engine
    engines = ["sqlite", "postgres"] if engine == "both" else [engine]

    async def step(name: str, coro: Any) -> None:
        started = time.monotonic()
        found, detail = await coro
        figures.extend(found)
        details[name] = {**detail, "wall_seconds": round(time.monotonic() - started, 1)}

    if args.scenario in ("classify", "all", "full", "smoke"):
        if smoke:
            found, detail = classify.run(300, 0.5, RESULTS_DIR / "classify_profile_smoke.txt")
        else:
            found, detail = classify.run(2000, 5.0)
        figures.extend(found)
        details["classify"] = detail
    if everything:
        await step("drain_copies", drain.run_copies(10_000))
    if args.scenario in ("drain", "all", "full", "smoke"):
        await step("drain", drain.run(args.messages or (500 if smoke else 20_000), engines))
    if args.scenario in ("latency", "all", "full", "smoke"):
        default_s = 3.0 if smoke else 30.0 if everything else 60.0
        rate, seconds = args.rate or (100.0 if smoke else 500.0), args.seconds or default_s
        await step("latency", latency.run(rate, seconds))
    if args.scenario in ("recovery", "all", "full", "smoke"):
        await step("recovery", recovery.run(1 if smoke else 3))
    if args.scenario == "scaleout" or full:
        await step("scaleout", scaleout.run(args.messages or 20_000))
    if args.scenario in ("feed", "full", "smoke"):
        await step("feed", feed.run(1200, clients=5) if smoke else feed.run(args.messages or 10_000))
    if args.scenario == "memory" or full:
        await step(
            "memory", memory.run(args.messages if args.scenario == "memory" and args.messages else 100_000)
        )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    figures: list[Figure] = []
    details: dict[str, Any] = {"scenario": args.scenario, "argv": sys.argv[1:]}
    status = 0

    info: dict[str, Any] = {}

    async def main_task() -> None:
        info.update(await machine_info())
        await run(args, figures, details)

    try:
        asyncio.run(main_task())
    except BenchError as exc:
        err.print(f"[red]broken:[/] {exc}")
        details["error"] = str(exc)
        status = 1
    except Exception as exc:
        err.print_exception()
        details["error"] = f"{type(exc).__name__}: {exc}"
        status = 1
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        details["error"] = "interrupted"
        status = 130
    finally:
        kill_all_sync()
    if figures:
        render(figures)
    write_json(args.json, figures, details, info)
    return status


if __name__ == "__main__":
    sys.exit(main())
