"""The intake consumer on `P.inbound`: bounded prefetch, pause/resume, a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelInvalidStateError

from watchcentre.adapters.amqp.connect import CHANNEL_GONE
from watchcentre.core.ports import Delivery

log = structlog.get_logger("watchcentre.amqp")


SETTLE_TIMEOUT_S = 5.0
"""Seconds an ack or a nack may wait to be queued: on a connection gone under it the queue stops
draining, and the broker requeues what the channel held when it notices."""


class _Delivery:
    __slots__ = ("_message", "settled")

    def __init__(self, message: AbstractIncomingMessage) -> None:
        self._message = message
        self.settled = False

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def attempts(self) -> int:
        count = (self._message.headers or {}).get("x-delivery-count", 0)
        return 1 + (int(count) if isinstance(count, int | str) else 0)

    @property
    def reply_to(self) -> str | None:
        return self._message.reply_to or None

    @property
    def user_id(self) -> str | None:
        return self._message.user_id or None

    @property
    def stale(self) -> bool:
        """The channel it came on is gone: the broker has already put it back in the queue."""
        try:
            return self._message.channel.is_closed
        except ChannelInvalidStateError:
            return True

    async def ack(self) -> None:
        # On the underlying channel with wait=False, as the publisher publishes: the ack frame is
        # queued for the connection's writer, not awaited until it is on the socket (aio-pika's ack
        # has the writer drain after each one and wakes this task once more). An ack has no answer.
        message = self._message
        self.settled = True
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT_S):
                if message.delivery_tag is not None:
                    await message.channel.basic_ack(message.delivery_tag, wait=False)
        except CHANNEL_GONE as exc:  # it is redelivered, seen as already handled, and acked then
            log.warning("ack_lost", error=f"{type(exc).__name__}: {exc}")

    async def retry(self) -> None:
        self.settled = True
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT_S):
                await self._message.nack(requeue=True)
        except CHANNEL_GONE as exc:  # the broker requeued it when the channel closed
            log.warning("nack_lost", error=f"{type(exc).__name__}: {exc}")


Handler = Callable[[Delivery], Awaitable[None]]


class AmqpConsumer:
    """Consumes `P.inbound` with a bounded prefetch; each message is handled in its own task.

    `pause()` holds new deliveries before they are handled (at most `prefetch` of them wait, unacked,
    and nothing more is delivered); `resume()` lets them through. A delivery whose channel is gone
    while it waited is dropped: the broker has already put it back in the queue."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue, prefetch: int) -> None:
        self._channel = channel
        self._queue = queue
        self._prefetch = prefetch
        self._tag: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = asyncio.Event()
        self._open.set()
        self._stopping = False
        self.last_sent_at: datetime | None = None
        """The AMQP timestamp of the newest delivery that carried one (for the intake lag on /metrics)."""

    @property
    def paused(self) -> bool:
        return not self._open.is_set()

    @property
    def consuming(self) -> bool:
        """Registered as a consumer on an open channel (false while the broker is unreachable)."""
        return self._tag is not None and not self._channel.is_closed

    def state(self) -> dict[str, object]:
        """What an operator asks of a consumer gone silent (SIGUSR1): its tag, whether it is paused,
        how many handlers run, whether its channel is open. Read at once: the dump must not wait on
        the broker it may be asked about."""
        return {
            "tag": self._tag,
            "paused": self.paused,
            "handlers": len(self._tasks),
            "channel_closed": self._channel.is_closed,
        }

    def pause(self) -> None:
        if self._open.is_set():
            log.warning("intake_paused")
            self._open.clear()

    def resume(self) -> None:
        if not self._open.is_set():
            log.info("intake_resumed")
            self._open.set()

    async def start(self, handler: Handler) -> None:
        await self._channel.set_qos(prefetch_count=self._prefetch)

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            delivery = _Delivery(message)
            if message.timestamp is not None:
                ts = message.timestamp
                self.last_sent_at = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
            if not self._open.is_set():
                await self._open.wait()
                if self._stopping:
                    await delivery.retry()
                    return
                if delivery.stale:
                    return
            try:
                await handler(delivery)
            finally:
                if not delivery.settled and not delivery.stale and not self._stopping:
                    # the handler ended without acking or handing it back (cancelled from outside,
                    # or an error past its own handling): it would stay unacked, and its prefetch
                    # slot lost, for as long as the channel lives
                    log.error("delivery_unsettled", attempts=delivery.attempts, error=repr(sys.exc_info()[1]))
                    await asyncio.shield(delivery.retry())

        self._tag = await self._queue.consume(on_message)

    async def stop(self, deadline_s: float) -> int:
        """Stop taking new messages, wait up to `deadline_s` seconds for those in flight, then cancel
        the handlers still running: unacked, their messages go back to the queue when the channel
        closes, and another instance (or this one, restarted) handles them again. Returns how many
        were cancelled. Deliveries held by a pause are handed back at once."""
        self._stopping = True
        if self._tag is not None:
            # within the deadline: with the broker out, the robust channel would wait for it forever
            with contextlib.suppress(*CHANNEL_GONE, RuntimeError):
                async with asyncio.timeout(deadline_s):
                    await self._queue.cancel(self._tag)
            self._tag = None
        self._open.set()
        pending = set(self._tasks)
        if not pending:
            return 0
        _, still = await asyncio.wait(pending, timeout=deadline_s)
        if still:
            log.warning("handlers_cancelled", unfinished=len(still), deadline_s=deadline_s)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        return len(still)
