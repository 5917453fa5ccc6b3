"""Stopping the AMQP consumer: handlers still running when the shutdown deadline passes are
cancelled, unacked, so the broker hands their messages to the next consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from watchcentre.adapters.amqp import AmqpConsumer
from watchcentre.core.ports import Delivery


class Message:
    """An incoming message as aio-pika hands it over; records how it was settled."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.headers: dict[str, Any] = {}
        self.redelivered = False
        self.reply_to = None
        self.user_id = None
        self.timestamp = None
        self.delivery_tag = 1
        self.channel = self  # the underlying channel: the consumer acks there
        self.settled: list[str] = []

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        self.settled.append("ack")

    async def nack(self, requeue: bool = True) -> None:
        self.settled.append("nack")

    async def reject(self, requeue: bool = False) -> None:
        self.settled.append("reject")


class Queue:
    def __init__(self) -> None:
        self.callback: Callable[[AbstractIncomingMessage], Awaitable[None]] | None = None
        self.cancelled = False

    async def consume(self, callback: Callable[[AbstractIncomingMessage], Awaitable[None]]) -> str:
        self.callback = callback
        return "ctag-1"

    async def cancel(self, tag: str) -> None:
        self.cancelled = True

    def deliver(self, message: Message) -> asyncio.Task[None]:
        """As aio-pika does: each message's callback in a task of its own."""
        assert self.callback is not None
        return asyncio.create_task(self.callback(cast(AbstractIncomingMessage, message)))


class Channel:
    is_closed = False

    async def set_qos(self, prefetch_count: int) -> None:
        pass


async def test_handlers_past_the_shutdown_deadline_are_cancelled_and_left_unacked() -> None:
    queue = Queue()
    consumer = AmqpConsumer(cast(AbstractChannel, Channel()), cast(AbstractQueue, queue), prefetch=10)
    started, finished, cancelled = asyncio.Event(), [], []

    async def handler(delivery: Delivery) -> None:
        if delivery.body == b"stuck":
            started.set()
            try:
                await asyncio.Event().wait()  # a handler that would never end
            except asyncio.CancelledError:
                cancelled.append(delivery.body)
                raise
        await delivery.ack()
        finished.append(delivery.body)

    await consumer.start(handler)
    quick, stuck = Message(b"quick"), Message(b"stuck")
    tasks = [queue.deliver(quick), queue.deliver(stuck)]
    async with asyncio.timeout(5):  # a broken fake must fail the test, not hang it
        await started.wait()
    assert await consumer.stop(deadline_s=0.05) == 1
    assert queue.cancelled  # no new deliveries
    assert all(t.done() for t in tasks)  # nothing left running after stop
    assert finished == [b"quick"] and quick.settled == ["ack"]
    assert cancelled == [b"stuck"] and stuck.settled == []  # unacked: the broker redelivers it


async def test_a_stop_with_nothing_in_flight_returns_at_once() -> None:
    queue = Queue()
    consumer = AmqpConsumer(cast(AbstractChannel, Channel()), cast(AbstractQueue, queue), prefetch=10)

    async def handler(delivery: Delivery) -> None:
        await delivery.ack()

    await consumer.start(handler)
    assert await consumer.stop(deadline_s=5.0) == 0
