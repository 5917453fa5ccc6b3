"""Anchors the audit chain's head outside the database: a signed checkpoint {seq, hash, at} appended
to the AuditAnchor at start, every `interval_s` when the head moved, and at stop.

The checkpoints let `audit verify` see what the chain alone cannot: the tail cut off, or records
removed and the chain re-linked over the gap (core/audit_chain.py, docs/security.md)."""

from __future__ import annotations

import asyncio

import structlog

from watchcentre.core.audit_chain import Checkpoint, checkpoint_line, sign_checkpoint
from watchcentre.core.ports import AuditAnchor, Clock, Store
from watchcentre.tasks import cancel_and_wait

log = structlog.get_logger("watchcentre.anchoring")

STOP_TIMEOUT_S = 5.0


class AnchorWriter:
    def __init__(self, store: Store, anchor: AuditAnchor, clock: Clock, interval_s: float) -> None:
        self.store = store
        self.anchor = anchor
        self.clock = clock
        self.interval_s = interval_s
        self._last: tuple[int, str] | None = None
        self._task: asyncio.Task[None] | None = None

    async def checkpoint(self) -> Checkpoint | None:
        """Sign and append the current head unless it is the one last written; the checkpoint or None."""
        seq = await self.store.last_seq()
        head = await self.store.audit(after_seq=seq - 1, limit=1) if seq else []
        if not head or head[0].seq is None or head[0].hash is None:
            return None
        at_seq, at_hash = head[0].seq, head[0].hash
        if self._last == (at_seq, at_hash):
            return None
        if self._last is not None and at_seq < self._last[0]:
            # the trail lost records since our last checkpoint: `audit verify` will say which
            log.error(
                "audit_head_went_back", anchored_seq=self._last[0], head_seq=at_seq, anchor=self.anchor.where
            )
        cp = sign_checkpoint(self.anchor.key, at_seq, at_hash, self.clock.now())
        await self.anchor.append(checkpoint_line(cp))
        self._last = (cp.seq, cp.hash)
        log.info("audit_anchored", seq=cp.seq, anchor=self.anchor.where)
        return cp

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.checkpoint()
            except Exception as exc:  # a database or disk hiccup must not end the anchoring
                log.warning("audit_anchor_failed", error=repr(exc), anchor=self.anchor.where)

    async def start(self) -> None:
        """Anchor the head now (an anchor that cannot be written fails the start), then every interval."""
        # the file exists from the first start on, even for an empty trail: a missing one is news
        await self.anchor.append(b"")
        await self.checkpoint()
        self._task = asyncio.create_task(self._run(), name="audit-anchor")

    async def stop(self) -> None:
        """Stop the ticks, then anchor the final head (call it once writers have stopped)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):  # a database that is out must not hold up the exit
                await self.checkpoint()
        except Exception as exc:  # shutting down goes on; the error is logged for the operator
            log.error("audit_anchor_failed_at_stop", error=repr(exc), anchor=self.anchor.where)
