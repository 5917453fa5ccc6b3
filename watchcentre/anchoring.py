"""Anchors the audit chain's head outside the database: a signed checkpoint {seq, hash, at} appended
to the AuditAnchor at start, every `interval_s` when the head moved, and at stop.

The checkpoints let `audit verify` see what the chain alone cannot: the tail cut off, or records
removed and the chain re-linked over the gap (core/audit_chain.py, docs/security.md)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Protocol

import structlog

from watchcentre.core.audit_chain import Checkpoint, checkpoint_line, sign_checkpoint, verify_links
from watchcentre.core.ports import AuditAnchor, Clock, Store
from watchcentre.tasks import cancel_and_wait

log = structlog.get_logger("watchcentre.anchoring")

STOP_TIMEOUT_S = 5.0
LINK_PAGE = 2000
"""Records read per query when checking the links since the last checkpoint."""


class AnchorEvents(Protocol):
    """What the on-call engineer is told (metrics): a checkpoint not written, the chain broken."""

    def anchor_failed(self) -> None: ...

    def audit_chain_broken(self) -> None: ...


class AnchorWriter:
    def __init__(
        self,
        store: Store,
        anchor: AuditAnchor,
        clock: Clock,
        interval_s: float,
        events: AnchorEvents | None = None,
    ) -> None:
        self.store = store
        self.anchor = anchor
        self.clock = clock
        self.interval_s = interval_s
        self.events = events
        self._last: tuple[int, str] | None = None
        self._task: asyncio.Task[None] | None = None
        self.confirmed_at: datetime | None = None
        """When a checkpoint last covered the head (written, or the head had not moved)."""

    async def checkpoint(self) -> Checkpoint | None:
        """Sign and append the current head unless it is the one last written; the checkpoint or None."""
        seq = await self.store.last_seq()
        head = await self.store.audit(after_seq=seq - 1, limit=1) if seq else []
        if not head or head[0].seq is None or head[0].hash is None:
            return None
        at_seq, at_hash = head[0].seq, head[0].hash
        if self._last == (at_seq, at_hash):
            self.confirmed_at = self.clock.now()
            return None
        if self._last is not None and at_seq < self._last[0]:
            # the trail lost records since our last checkpoint: `audit verify` will say which
            log.error(
                "audit_head_went_back", anchored_seq=self._last[0], head_seq=at_seq, anchor=self.anchor.where
            )
            self._broken()
        elif self._last is not None and not await self._links_hold(self._last, at_seq):
            return None  # a head over a broken link is not signed: the last good checkpoint stays newest
        cp = sign_checkpoint(self.anchor.key, at_seq, at_hash, self.clock.now())
        await self.anchor.append(checkpoint_line(cp))
        self._last = (cp.seq, cp.hash)
        self.confirmed_at = self.clock.now()
        log.info("audit_anchored", seq=cp.seq, anchor=self.anchor.where)
        return cp

    async def _links_hold(self, last: tuple[int, str], head_seq: int) -> bool:
        """Whether the records after the last checkpoint link to it and to each other up to the head
        (only the new records are read: a full `audit verify` is the operator's)."""
        after, prev_hash = last
        while after < head_seq:
            page = await self.store.audit(after_seq=after, limit=LINK_PAGE)
            page = [e for e in page if e.seq is not None and e.seq <= head_seq]
            if not page:
                break
            broken, prev_hash, _ = verify_links(page, prev_hash)
            if broken is not None:
                log.error(
                    "audit_chain_broken", seq=broken.seq, problem=broken.problem, anchor=self.anchor.where
                )
                self._broken()
                return False
            last_seq = page[-1].seq
            assert last_seq is not None
            after = last_seq
        return True

    def _broken(self) -> None:
        if self.events is not None:
            self.events.audit_chain_broken()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.checkpoint()
            except Exception as exc:  # a database or disk hiccup must not end the anchoring
                log.warning("audit_anchor_failed", error=repr(exc), anchor=self.anchor.where)
                if self.events is not None:
                    self.events.anchor_failed()

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
