"""The retention pass on a schedule, and what `watchcentre retention apply` runs once.

Each instance runs its own timer; the passes are safe together: the store's purge is one serial
transaction whose erasures are conditional (`purged_at IS NULL`), so an item is erased and
recorded once whichever instance gets there first, and a dead letter is taken off `P.dead` by one
consumer only. Speaks only to ports.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from watchcentre.core.ports import Clock, RetentionStore
from watchcentre.core.records import SYSTEM_ACTOR
from watchcentre.core.retention import PurgeCount, PurgeReport, RetentionRules
from watchcentre.tasks import cancel_and_wait

log = structlog.get_logger("watchcentre.retention")

DeadLetterPurge = Callable[[datetime, datetime, RetentionRules, bool, str], Awaitable[PurgeCount]]
"""(now, at, rules, dry_run, actor): drop the dead letters past `rules.dead_letters`, each recorded
`purged` before it leaves `P.dead` (dry run: count them)."""


async def apply_once(
    store: RetentionStore,
    rules: RetentionRules,
    now: datetime,
    *,
    at: datetime | None = None,
    dry_run: bool = False,
    actor: str = SYSTEM_ACTOR,
    dead_letters: DeadLetterPurge | None = None,
) -> PurgeReport:
    """One pass with the limits applied as of `now`, recorded at `at` (default `now`)."""
    report = await store.purge(rules, now, at=at, dry_run=dry_run, actor=actor)
    if dead_letters is not None:
        dropped = await dead_letters(now, at or now, rules, dry_run, actor)
        report = dataclasses.replace(report, counts={**report.counts, "dead_letters": dropped})
    return report


class RetentionScheduler:
    """A pass every `rules.apply_every`; the first one shortly after start."""

    def __init__(
        self,
        store: RetentionStore,
        rules: RetentionRules,
        clock: Clock,
        dead_letters: DeadLetterPurge | None = None,
    ) -> None:
        self.store, self.rules, self.clock, self.dead_letters = store, rules, clock, dead_letters
        self._task: asyncio.Task[None] | None = None

    async def tick(self, now: datetime | None = None) -> PurgeReport:
        return await apply_once(
            self.store, self.rules, now or self.clock.now(), dead_letters=self.dead_letters
        )

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # an outage must not end the schedule: the next pass catches up
                log.warning("retention_pass_failed", error=repr(exc))
            await asyncio.sleep(self.rules.apply_every.delta.total_seconds())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
