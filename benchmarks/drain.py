"""Scenario `drain`: N preloaded messages, drained by the reference router, then by watchcentre
(SQLite and/or PostgreSQL), each under its own prefix. Rate = N / (first → last message consumed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks import corpus
from benchmarks.common import (
    BenchError,
    Broker,
    Drained,
    Figure,
    err,
    new_prefix,
    post_by_country,
    router,
    watch_drain,
)

TARGETS = {"sqlite": 0.6, "postgres": 0.5}


async def drain_once(kind: str, n: int, engine: str = "sqlite") -> Drained:
    prefix = new_prefix()
    label = kind if kind == "reference" else f"watchcentre/{engine}"
    bodies = corpus.envelopes(n, prefix, covered=set(post_by_country()))
    async with Broker(prefix) as broker:
        await broker.declare()
        await broker.preload(bodies)
        async with router(kind, prefix, engine) as proc:
            result = await watch_drain(broker, proc, n, exact_copies=kind == "reference", label=label)
        if kind == "reference" and result.copies != n:
            raise BenchError(f"{label}: {result.copies} copies in the post queues for {n} messages")
        if result.dead:
            raise BenchError(f"{label}: {result.dead} messages dead-lettered to {broker.names.dead}")
    err.print(
        f"{label}: {n} messages in {result.seconds:.2f} s = {result.rate:,.0f} msg/s, "
        f"{result.copies} copies, peak RSS {result.peak_rss_mb or 0:.0f} MB"
    )
    return result


async def run(n: int, engines: Sequence[str]) -> tuple[list[Figure], dict[str, Any]]:
    ref = await drain_once("reference", n)
    figures = [Figure("drain", "reference router", ref.rate, "msg/s")]
    details: dict[str, Any] = {"messages": n, "reference": _detail(ref)}
    for engine in engines:
        wc = await drain_once("watchcentre", n, engine)
        target = TARGETS[engine]
        figures.append(
            Figure(
                "drain",
                f"watchcentre ({engine})",
                wc.rate,
                "msg/s",
                reference=ref.rate,
                target=f"≥ {target}× reference",
                passed=wc.rate >= target * ref.rate,
            )
        )
        if wc.peak_rss_mb is not None:
            figures.append(
                Figure(
                    "drain",
                    f"watchcentre ({engine}) peak RSS",
                    wc.peak_rss_mb,
                    "MB",
                    reference=ref.peak_rss_mb,
                )
            )
        details[f"watchcentre_{engine}"] = _detail(wc)
    return figures, details


def _detail(d: Drained) -> dict[str, Any]:
    return {
        "rate": d.rate,
        "seconds": d.seconds,
        "copies": d.copies,
        "dead": d.dead,
        "peak_rss_mb": d.peak_rss_mb,
    }
