"""Batching for the database: many concurrent callers, one call per batch (group commit for the
writes, grouped look-ups for the duplicate checks).

Callers `await submit(item)` and get their own result. A single task takes whatever is
waiting (up to `max_batch`) and flushes it in one call. Under light load each item is written at
once (no added latency); under load, items pile up while the previous flush runs and the next
flush takes them all: the batch size follows the load by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from watchcentre.tasks import cancel_and_wait

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self, flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, max_batch: int = 500
    ) -> None:
        self._flush = flush
        self._max = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"batcher-{getattr(self._flush, '__name__', 'flush')}")

    async def stop(self) -> None:
        """Flush what is pending, then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        while self._pending:
            await self._flush_once()
        await cancel_and_wait(task)

    async def submit(self, item: T) -> R:
        if self._task is None:
            raise RuntimeError("batcher is not running")
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        self._wake.set()
        return await fut

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._flush_once()

    async def _flush_once(self) -> None:
        batch, self._pending = self._pending[: self._max], self._pending[self._max :]
        try:
            results = await self._flush([item for item, _ in batch])
        except Exception as exc:  # every caller in the batch sees the failure and retries its input
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.batches += 1
        self.items += len(batch)
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)
