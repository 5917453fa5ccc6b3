"""Scenario `latency`: an open-loop publisher at a fixed rate (on a schedule, never waiting for the
broker) of Moroccan messages (hint MA → `P.post.rabat`); a consumer on `P.post.rabat` records
arrival − `x-bench-sent`. Against the reference router, then watchcentre (SQLite), in the same run."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from benchmarks import corpus
from benchmarks.common import BenchError, Broker, Figure, err, new_prefix, percentile, progress, router

STATS = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0))
P99_TARGET = 2.0


@dataclass
class Latencies:
    label: str
    ms: list[float]  # sorted
    publish_rate: float
    tail_seconds: float  # from the last publish to the last copy

    def stat(self, q: float) -> float:
        return percentile(self.ms, q)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


async def measure(kind: str, rate: float, seconds: float, idle_timeout: float = 30.0) -> Latencies:
    prefix = new_prefix()
    label = kind if kind == "reference" else "watchcentre/sqlite"
    n = max(1, int(rate * seconds))
    bodies = corpus.envelopes(n, prefix, seed=3, iso="MA")
    ids = [f"{prefix}-{i:07d}" for i in range(n)]
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    everything = asyncio.Event()

    async def on_copy(message: AbstractIncomingMessage) -> None:
        now = time.time()
        headers = message.headers or {}
        mid = _text(headers.get("x-bench-id")) or _text(headers.get("x-watchcentre-message-id"))
        if mid is None or mid in arrived:
            return
        at = _text(headers.get("x-bench-sent"))  # a string: AMQP would narrow a float to 32 bits
        arrived[mid] = now - (float(at) if at else sent[mid])
        if len(arrived) >= n:
            everything.set()

    async with Broker(prefix) as broker:
        await broker.declare()
        async with router(kind, prefix) as proc:
            await broker.wait_consumer(broker.names.inbound, proc)
            connection = broker.connection
            listen = await connection.channel()
            await listen.set_qos(prefetch_count=2000)
            rabat = await listen.get_queue(broker.names.queue_for("post.rabat"), ensure=False)
            await rabat.consume(on_copy, no_ack=True)
            publish = await connection.channel()
            exchange, inbound = publish.default_exchange, broker.names.inbound
            with progress() as bar:
                task = bar.add_task(f"{label}: {rate:g}/s for {seconds:g} s", total=n)
                start = time.perf_counter()
                for i, body in enumerate(bodies):
                    delay = start + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    now = time.time()
                    sent[ids[i]] = now
                    await exchange.publish(
                        aio_pika.Message(
                            body,
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=ids[i],
                            headers={"x-bench-sent": repr(now), "x-bench-id": ids[i]},
                        ),
                        routing_key=inbound,
                    )
                    if i % 50 == 0:
                        bar.update(task, completed=i + 1)
                published_in = time.perf_counter() - start
                bar.update(task, completed=n)
            # Wait while copies keep arriving: an overloaded router may still be catching up.
            seen, last_arrival = -1, time.monotonic()
            while not everything.is_set():
                if len(arrived) != seen:
                    seen, last_arrival = len(arrived), time.monotonic()
                elif time.monotonic() - last_arrival > idle_timeout:
                    raise BenchError(
                        f"{label}: {len(arrived)} of {n} copies reached P.post.rabat, none for {idle_timeout:.0f} s"
                    )
                proc.check_alive()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(everything.wait(), 0.5)
            caught_up = time.perf_counter() - start - published_in
            await listen.close()
            await publish.close()
    result = Latencies(label, sorted(v * 1000 for v in arrived.values()), n / published_in, caught_up)
    err.print(
        f"{label}: published {result.publish_rate:,.0f}/s, last copy {result.tail_seconds:.1f} s after; "
        + ", ".join(f"{name} {result.stat(q):.1f} ms" for name, q in STATS)
    )
    return result


async def run(rate: float, seconds: float) -> tuple[list[Figure], dict[str, Any]]:
    ref = await measure("reference", rate, seconds)
    wc = await measure("watchcentre", rate, seconds)
    figures: list[Figure] = []
    for name, q in STATS:
        figure = Figure("latency", f"watchcentre {name}", wc.stat(q), "ms", reference=ref.stat(q))
        if name == "p99":
            figure.target = f"≤ {P99_TARGET:g}× reference"
            figure.passed = wc.stat(q) <= P99_TARGET * ref.stat(q)
        figures.append(figure)
    figures.append(
        Figure("latency", "publish rate achieved", wc.publish_rate, "msg/s", reference=ref.publish_rate)
    )
    tail = f"last copy after last publish (reference {ref.tail_seconds:.1f} s)"
    figures.append(Figure("latency", tail, wc.tail_seconds, "s"))
    details = {
        "rate": rate,
        "seconds": seconds,
        **{
            r.label: {
                "publish_rate": r.publish_rate,
                "tail_seconds": r.tail_seconds,
                "count": len(r.ms),
                **{n: r.stat(q) for n, q in STATS},
            }
            for r in (ref, wc)
        },
    }
    return figures, details
