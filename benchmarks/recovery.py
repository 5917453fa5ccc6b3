"""Scenario `recovery`: how soon watchcentre is useful after a start, a crash and a broker drop.

* start: `watchcentre serve` spawned → GET /health answers 200 (a fresh SQLite database), 3 times.
* SIGKILL: the service is killed, a probe message is published while it is down, the service is
  started again on the same database → the probe's copy is in its post's queue.
* broker drop: RabbitMQ closes the service's connection (`rabbitmqctl close_connection`) → a probe
  published just after is routed (the service reconnected, restored its consumer and routed it).

Each time runs from the moment the service could start working (process spawned, broker reachable)
to the first routed copy, so it includes reconnection, topology declaration and the consumer restart.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import statistics
import subprocess
import time
from typing import Any

import aio_pika

from benchmarks import corpus
from benchmarks.common import BenchError, Broker, Figure, Managed, database, err, new_prefix, watchcentre

START_TARGET = 1.0  # issue 16
ROUTING_AGAIN_TARGET = 5.0


async def _publish_probe(broker: Broker, prefix: str) -> None:
    body = corpus.envelopes(1, f"{prefix}-probe-{secrets.token_hex(3)}", iso="MA")[0]
    channel = await broker.connection.channel(publisher_confirms=True)
    try:
        await channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=broker.names.inbound,
        )
    finally:
        await channel.close()


async def _routed_beyond(
    broker: Broker, queue: str, count: int, proc: Managed | None, within: float
) -> float:
    """Seconds until `queue` holds more than `count` messages."""
    started = time.monotonic()
    while await broker.depth(queue) <= count:
        if proc is not None:
            proc.check_alive()
        if time.monotonic() - started > within:
            raise BenchError(f"no copy in {queue} within {within:.0f} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def _close_connections(name: str) -> int:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pids = [
        line.split("\t", 1)[0]
        for line in out.splitlines()
        if f'"connection_name","{name}"' in line or f'<<"connection_name">>,longstr,<<"{name}">>' in line
    ]
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "benchmark"], timeout=60, check=True)
    return len(pids)


async def run(starts: int = 3) -> tuple[list[Figure], dict[str, Any]]:
    prefix = new_prefix()
    name = f"bench-{prefix}"
    rabat = f"{prefix}.post.rabat"
    start_times: list[float] = []
    details: dict[str, Any] = {}
    figures: list[Figure] = []
    async with Broker(prefix) as broker, database("sqlite") as db:
        await broker.declare()
        for _ in range(starts):
            t0 = time.monotonic()
            async with watchcentre(prefix, db, name=name):
                start_times.append(time.monotonic() - t0)
        median = statistics.median(start_times)
        err.print(f"start → healthy: {', '.join(f'{t:.2f}' for t in start_times)} s")
        figures.append(
            Figure(
                "recovery",
                f"start → /health 200 (median of {starts})",
                median,
                "s",
                target=f"≤ {START_TARGET:.0f} s",
                passed=median <= START_TARGET,
            )
        )

        # SIGKILL, a message arrives meanwhile, restart
        async with watchcentre(prefix, db, name=name) as proc:
            assert proc.proc is not None
            proc.proc.kill()
            await proc.proc.wait()
        before = await broker.depth(rabat)
        await _publish_probe(broker, prefix)
        t0 = time.monotonic()
        async with watchcentre(prefix, db, name=name) as proc:
            healthy = time.monotonic() - t0
            after_kill = healthy + await _routed_beyond(broker, rabat, before, proc, 60)
            err.print(
                f"SIGKILL → restarted → probe routed: {after_kill:.2f} s (healthy after {healthy:.2f} s)"
            )
            figures.append(
                Figure(
                    "recovery",
                    "SIGKILL, restart → routing again",
                    after_kill,
                    "s",
                    target=f"≤ {ROUTING_AGAIN_TARGET:.0f} s",
                    passed=after_kill <= ROUTING_AGAIN_TARGET,
                )
            )
            details["sigkill_restart_seconds"] = after_kill

            # the broker drops the service's connection
            before = await broker.depth(rabat)
            closed = 0
            if shutil.which("rabbitmqctl") is not None:
                try:
                    closed = await asyncio.to_thread(_close_connections, name)
                except (OSError, subprocess.SubprocessError) as exc:
                    err.print(f"[yellow]rabbitmqctl failed ({exc}): broker-drop figure skipped[/]")
            if not closed:
                err.print("[yellow]no connection closed with rabbitmqctl: broker-drop figure skipped[/]")
            else:
                t0 = time.monotonic()
                await _publish_probe(broker, prefix)
                again = await _routed_beyond(broker, rabat, before, proc, 60)
                err.print(f"broker closed {closed} connection(s) → probe routed: {again:.2f} s")
                figures.append(
                    Figure(
                        "recovery",
                        "broker drops the connection → routing again",
                        again,
                        "s",
                        target=f"≤ {ROUTING_AGAIN_TARGET:.0f} s",
                        passed=again <= ROUTING_AGAIN_TARGET,
                    )
                )
                details["broker_drop_seconds"] = again
                details["connections_closed"] = closed
    details["start_seconds"] = start_times
    return figures, details
