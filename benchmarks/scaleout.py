"""Scenario `scaleout`: the same preloaded backlog drained by one watchcentre and then by two
watchcentre instances sharing the queue and one PostgreSQL database, in the same run."""

from __future__ import annotations

import contextlib
from typing import Any

from benchmarks import corpus
from benchmarks.common import (
    BenchError,
    Broker,
    Drained,
    Figure,
    database,
    err,
    new_prefix,
    post_by_country,
    watch_drain,
    watchcentre,
)


async def drain_with(instances: int, n: int) -> Drained:
    prefix = new_prefix()
    label = f"watchcentre/postgres ×{instances}"
    bodies = corpus.envelopes(n, prefix, seed=7, covered=set(post_by_country()))
    async with Broker(prefix) as broker, database("postgres") as db:
        await broker.declare()
        await broker.preload(bodies)
        async with contextlib.AsyncExitStack() as stack:
            procs = [await stack.enter_async_context(watchcentre(prefix, db)) for _ in range(instances)]
            # the first instance starts draining while the second starts: time what is left once
            # every instance is up
            remaining = await broker.depth(broker.names.inbound)
            if remaining < n // 2:
                raise BenchError(f"{label}: only {remaining} of {n} messages left once all instances were up")
            result = await watch_drain(broker, procs[0], remaining, exact_copies=False, label=label)
        if result.dead:
            raise BenchError(f"{label}: {result.dead} messages dead-lettered")
    err.print(f"{label}: {result.messages} messages in {result.seconds:.2f} s = {result.rate:,.0f} msg/s")
    return result


async def run(n: int) -> tuple[list[Figure], dict[str, Any]]:
    one = await drain_with(1, n)
    two = await drain_with(2, n)
    figures = [
        Figure("scaleout", "one instance (PostgreSQL)", one.rate, "msg/s"),
        Figure("scaleout", "two instances, one queue, one database", two.rate, "msg/s", reference=one.rate),
    ]
    return figures, {"messages": n, "one": one.rate, "two": two.rate}
