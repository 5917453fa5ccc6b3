"""The operations gauges of /metrics, computed on scrape with a short cache (never per message).

A scrape asks the database (`Store.ops_counts`: open cases by state, overdue, warnings, triage
backlog, audit head) and the broker (queue depths by passive declare) at most once per `ttl_s`,
however many Prometheus servers scrape; a scrape that finds them fresh only renders. A source that
does not answer within `timeout_s` leaves its gauges at their last values and sets
`watchcentre_ops_source_up{source}` to 0, so a scrape never hangs on an outage.

The intake lag is an estimate of the age of the oldest input waiting in `P.inbound` (AMQP gives no
such figure). Two upper bounds, the smaller wins: the time since the queue was last seen empty (all
that waits arrived after that), and the age of the newest delivery by its AMQP `timestamp`, when the
sender set one (the queue is first-in first-out: what still waits is younger). A sender's
timestamp alone is never trusted beyond the first bound once the queue has been seen empty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol

import structlog

from watchcentre.core.ports import Clock, OpsCounts, Store

log = structlog.get_logger("watchcentre.ops")


class OpsSink(Protocol):
    def set_counts(self, counts: OpsCounts) -> None: ...

    def set_queues(self, depths: Mapping[str, int | None], lag_s: float) -> None: ...

    def set_anchor_age(self, seconds: float | None) -> None: ...

    def source_up(self, source: str, up: bool) -> None: ...

    def set_ready(self, checks: Mapping[str, bool]) -> None: ...


class OpsGauges:
    def __init__(
        self,
        *,
        store: Store,
        queue_depths: Callable[[], Awaitable[Mapping[str, int | None]]],
        last_sent_at: Callable[[], datetime | None],
        anchored_at: Callable[[], datetime | None],
        readiness: Callable[[], Awaitable[Mapping[str, bool]]],
        sink: OpsSink,
        clock: Clock,
        ttl_s: float = 5.0,
        timeout_s: float = 3.0,
    ) -> None:
        self._store = store
        self._depths = queue_depths
        self._last_sent_at = last_sent_at
        self._anchored_at = anchored_at
        self._readiness = readiness
        self._sink = sink
        self._clock = clock
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._lock = asyncio.Lock()
        self._fresh_until = 0.0
        self._started = clock.now()
        self._seen_empty: datetime | None = None

    async def refresh(self) -> None:
        """Bring the gauges up to date unless they are younger than `ttl_s` (one refresh at a time)."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._fresh_until:
            return
        async with self._lock:
            if loop.time() < self._fresh_until:
                return  # another scrape refreshed them while this one waited
            await asyncio.gather(self._database(), self._broker(), self._ready())
            now = self._clock.now()
            anchored = self._anchored_at()
            self._sink.set_anchor_age(None if anchored is None else (now - anchored).total_seconds())
            self._fresh_until = loop.time() + self._ttl_s

    async def _database(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                counts = await self._store.ops_counts(self._clock.now())
        except Exception as exc:  # an outage shows as source_up 0, never as a failed scrape
            log.warning("ops_gauges_unavailable", source="database", error=repr(exc))
            self._sink.source_up("database", False)
            return
        self._sink.set_counts(counts)
        self._sink.source_up("database", True)

    async def _broker(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                depths = await self._depths()
        except Exception as exc:
            log.warning("ops_gauges_unavailable", source="broker", error=repr(exc))
            self._sink.source_up("broker", False)
            return
        self._sink.set_queues(depths, self._lag_s(depths.get("inbound")))
        self._sink.source_up("broker", True)

    async def _ready(self) -> None:
        """What GET /ready answers, for an alert that needs no HTTP probe."""
        try:
            async with asyncio.timeout(self._timeout_s):
                checks = await self._readiness()
        except Exception as exc:
            log.warning("ops_gauges_unavailable", source="readiness", error=repr(exc))
            checks = {"probe": False}
        self._sink.set_ready(checks)

    def _lag_s(self, inbound: int | None) -> float:
        now = self._clock.now()
        if not inbound:
            self._seen_empty = now
            return 0.0
        bounds = [(now - (self._seen_empty or self._started)).total_seconds()]
        sent = self._last_sent_at()
        if sent is not None:
            by_timestamp = (now - sent).total_seconds()
            # before the queue was ever seen empty, the sender's timestamp is the better estimate
            bounds = [by_timestamp] if self._seen_empty is None else [*bounds, by_timestamp]
        return max(min(bounds), 0.0)
