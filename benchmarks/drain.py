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
        f"{result.copies} copies, peak RSS {result.peak_rss_mb or 0:.0f} MB, CPU ms/input "
        + ", ".join(f"{k} {v:.2f}" for k, v in result.cpu_ms.items())
    )
    return result


async def run(n: int, engines: Sequence[str]) -> tuple[list[Figure], dict[str, Any]]:
    """Inputs per second, and CPU ms per input of the router, the broker and PostgreSQL."""
    ref = await drain_once("reference", n)
    label = f"drain {n:,}"
    figures = [Figure(label, "reference router", ref.rate, "msg/s")]
    details: dict[str, Any] = {"messages": n, "reference": _detail(ref)}
    for engine in engines:
        wc = await drain_once("watchcentre", n, engine)
        target = TARGETS[engine]
        figures.append(
            Figure(
                label,
                f"inputs/s, {engine}",
                wc.rate,
                "msg/s",
                reference=ref.rate,
                target=f"≥ {target}× reference",
                passed=wc.rate >= target * ref.rate,
            )
        )
        figures.extend(cpu_figures(label, engine, wc, ref))
        if wc.peak_rss_mb is not None:
            figures.append(
                Figure(label, f"peak RSS, {engine}", wc.peak_rss_mb, "MB", reference=ref.peak_rss_mb)
            )
        details[f"watchcentre_{engine}"] = _detail(wc)
    return figures, details


async def run_copies(n: int) -> tuple[list[Figure], dict[str, Any]]:
    """The issue's first row: a backlog drained into SQLite, in routed copies per second (the
    reference makes one copy per input; watchcentre one per recipient)."""
    ref = await drain_once("reference", n)
    wc = await drain_once("watchcentre", n, "sqlite")
    label = f"drain {n:,}"
    figures = [
        Figure(
            label,
            "routed copies/s, sqlite",
            wc.copy_rate,
            "copies/s",
            reference=ref.copy_rate,
            target=f"≥ {TARGETS['sqlite']}× reference",
            passed=wc.copy_rate >= TARGETS["sqlite"] * ref.copy_rate,
        ),
        *cpu_figures(label, "sqlite", wc, ref),
    ]
    return figures, {"messages": n, "reference": _detail(ref), "watchcentre_sqlite": _detail(wc)}


CPU_TARGET_MS = {"sqlite": 1.3}


def cpu_figures(label: str, engine: str, wc: Drained, ref: Drained) -> list[Figure]:
    """CPU ms per input: the service (against the reference router's), the broker, PostgreSQL."""
    target = CPU_TARGET_MS.get(engine)
    figures = [
        Figure(
            label,
            f"CPU ms/input, service, {engine}",
            wc.cpu_ms.get("router", 0.0),
            "ms",
            reference=ref.cpu_ms.get("router"),
            target=f"≤ {target} ms" if target else "",
            passed=wc.cpu_ms.get("router", 0.0) <= target if target else None,
        ),
        Figure(
            label,
            f"CPU ms/input, RabbitMQ, {engine}",
            wc.cpu_ms.get("broker", 0.0),
            "ms",
            reference=ref.cpu_ms.get("broker"),
        ),
    ]
    if engine == "postgres":
        figures.append(Figure(label, "CPU ms/input, PostgreSQL", wc.cpu_ms.get("postgres", 0.0), "ms"))
    return figures


def _detail(d: Drained) -> dict[str, Any]:
    return {
        "rate": d.rate,
        "copy_rate": d.copy_rate,
        "seconds": d.seconds,
        "copies": d.copies,
        "dead": d.dead,
        "peak_rss_mb": d.peak_rss_mb,
        "cpu_ms_per_input": d.cpu_ms,
    }
