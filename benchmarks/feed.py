"""Scenario `feed`: does the operator console's live feed slow the routing down? The same backlog is
drained by watchcentre (SQLite) with no console open, then with 50 feed clients connected to
`GET /api/console/feed` (WebSocket, operator token), in the same run. Each client counts the
messages it was shown; the figure is the drain rate with the clients against the rate without."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import orjson

from benchmarks import corpus
from benchmarks.common import (
    BenchError,
    Broker,
    Drained,
    Figure,
    database,
    err,
    new_prefix,
    operator_token,
    post_by_country,
    watch_drain,
    watchcentre,
)

LOSS_TARGET = 0.10


async def _client(session: aiohttp.ClientSession, url: str, token: str, shown: list[int], i: int) -> None:
    async with session.ws_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frame = orjson.loads(msg.data)
            if frame.get("type") == "events":
                shown[i] += len(frame.get("items") or [])


async def drain_with(clients: int, n: int) -> tuple[Drained | None, list[int]]:
    prefix = new_prefix()
    label = f"watchcentre/sqlite, {clients} feed clients"
    bodies = corpus.envelopes(n, prefix, seed=9, covered=set(post_by_country()))
    shown = [0] * clients
    async with Broker(prefix) as broker, database("sqlite") as db:
        await broker.declare()
        await broker.preload(bodies)
        token = await operator_token(db)
        async with watchcentre(prefix, db) as proc, aiohttp.ClientSession() as session:
            url = f"ws://127.0.0.1:{proc.http_port}/api/console/feed"
            tasks = [asyncio.create_task(_client(session, url, token, shown, i)) for i in range(clients)]
            try:
                remaining = await broker.depth(broker.names.inbound)
                if remaining < max(1, n // 10):  # a tiny backlog (the smoke run) can be gone already
                    err.print(f"[yellow]{label}: only {remaining} of {n} left once connected: not timed[/]")
                    return None, shown
                result = await watch_drain(broker, proc, remaining, exact_copies=False, label=label)
                broken = [t for t in tasks if t.done() and t.exception() is not None]
                if broken:
                    raise BenchError(f"{label}: {len(broken)} feed clients failed: {broken[0].exception()!r}")
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
        if result.dead:
            raise BenchError(f"{label}: {result.dead} messages dead-lettered")
    err.print(f"{label}: {result.messages} messages in {result.seconds:.2f} s = {result.rate:,.0f} msg/s")
    return result, shown


async def run(n: int, clients: int = 50) -> tuple[list[Figure], dict[str, Any]]:
    alone, _ = await drain_with(0, n)
    watched, shown = await drain_with(clients, n)
    if alone is None or watched is None:
        return [], {"messages": n, "clients": clients, "timed": False}
    loss = 1 - watched.rate / alone.rate if alone.rate else 0.0
    err.print(f"feed: each client was shown {min(shown)}–{max(shown)} messages; drain slowed by {loss:.0%}")
    figures = [
        Figure("feed", "drain, no console open", alone.rate, "msg/s"),
        Figure(
            "feed",
            f"drain, {clients} live feed clients",
            watched.rate,
            "msg/s",
            reference=alone.rate,
            target=f"≥ {1 - LOSS_TARGET:.1f}× (≤ {LOSS_TARGET:.0%} lost)",
            passed=loss <= LOSS_TARGET,
        ),
        Figure(
            "feed",
            "messages shown per client (min)",
            float(min(shown)),
            "",
            reference=float(watched.messages),
        ),
    ]
    return figures, {
        "messages": n,
        "clients": clients,
        "alone": alone.rate,
        "watched": watched.rate,
        "shown_min": min(shown),
        "shown_max": max(shown),
    }
