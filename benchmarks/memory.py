"""Scenario `memory`: 100,000 preloaded messages drained by watchcentre (SQLite); VmRSS sampled every
250 ms. Peak RSS (VmHWM) and flatness: RSS at 90 % drained against RSS at 10 % drained."""

from __future__ import annotations

from typing import Any

from benchmarks import corpus
from benchmarks.common import (
    BenchError,
    Broker,
    Figure,
    err,
    new_prefix,
    post_by_country,
    router,
    watch_drain,
)

PEAK_TARGET_MB = 250.0
FLAT_TOLERANCE = 0.10  # RSS at 90 % may exceed RSS at 10 % by this fraction and still be "flat"


async def run(n: int = 100_000, engine: str = "sqlite") -> tuple[list[Figure], dict[str, Any]]:
    prefix = new_prefix()
    label = f"memory/watchcentre/{engine}"
    bodies = corpus.envelopes(n, prefix, seed=4, covered=set(post_by_country()))
    async with Broker(prefix) as broker:
        await broker.declare()
        await broker.preload(bodies)
        del bodies
        async with router("watchcentre", prefix, engine) as proc:
            drained = await watch_drain(broker, proc, n, exact_copies=False, label=label, rss_every=0.25)
    if drained.dead:
        raise BenchError(f"{label}: {drained.dead} messages dead-lettered")
    at10 = _rss_at(drained.samples, 0.10 * n)
    at90 = _rss_at(drained.samples, 0.90 * n)
    peak = drained.peak_rss_mb or max((s[2] or 0.0) for s in drained.samples)
    growth = (at90 - at10) / at10 if at10 and at90 else None
    err.print(
        f"{label}: peak {peak:.0f} MB; RSS {at10 or 0:.0f} MB at 10 % → {at90 or 0:.0f} MB at 90 % drained"
    )
    figures = [
        Figure(
            "memory",
            f"peak RSS, {n:,} messages",
            peak,
            "MB",
            target=f"≤ {PEAK_TARGET_MB:.0f} MB",
            passed=peak <= PEAK_TARGET_MB,
        ),
        Figure(
            "memory",
            "RSS at 90 % drained",
            at90 or 0.0,
            "MB",
            reference=at10,
            target=f"flat (≤ {1 + FLAT_TOLERANCE:.2f}× RSS at 10 %)",
            passed=None if growth is None else growth <= FLAT_TOLERANCE,
        ),
    ]
    details = {
        "messages": n,
        "rate": drained.rate,
        "peak_rss_mb": peak,
        "rss_at_10pct_mb": at10,
        "rss_at_90pct_mb": at90,
        "samples": [{"t": round(t, 2), "consumed": c, "rss_mb": r} for t, c, r in drained.samples],
    }
    return figures, details


def _rss_at(samples: list[tuple[float, int, float | None]], consumed: float) -> float | None:
    """RSS of the first sample taken once `consumed` messages were gone from the inbound queue."""
    return next((rss for _, done, rss in samples if done >= consumed and rss is not None), None)
