"""Channels the broker closed while the connection stayed up, on the real RabbitMQ.

aio-pika reopens a robust channel the broker closed, repeating every declare made on it first; if
one of those fails, the channel stays closed until the connection itself is lost. In a cluster's
leader election that left routing silent for a minute (test_cluster, once in ten CI runs). The
publisher now opens its own channels, and `ChannelWatch` reopens a robust channel left closed."""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustChannel

from tests.integration.harness import AMQP_URL
from tests.integration.processes import async_true, poll_until
from watchcentre.adapters.amqp import AmqpConsumer, ChannelWatch, connect
from watchcentre.adapters.amqp.connect import OwnChannel
from watchcentre.core.ports import Delivery

pytestmark = pytest.mark.integration


async def test_a_consumer_whose_channel_could_not_be_reopened_is_consuming_again(amqp_prefix: str) -> None:
    inbound, side = f"{amqp_prefix}.watched", f"{amqp_prefix}.watched-side"
    connection = await connect(AMQP_URL)
    other = await connection.channel()
    try:
        channel: AbstractRobustChannel = await connection.channel(publisher_confirms=False)
        # the consumer's channel also declared another queue, as the service's declares its topology
        await channel.declare_queue(side, durable=True, arguments={"x-max-length": 100})
        queue = await channel.declare_queue(inbound, durable=True)
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def handle(delivery: Delivery) -> None:
            await received.put(delivery.body)
            await delivery.ack()

        consumer = AmqpConsumer(channel, queue, prefetch=10)
        await consumer.start(handle)
        await other.default_exchange.publish(aio_pika.Message(b"before"), routing_key=inbound)
        assert await asyncio.wait_for(received.get(), 10) == b"before"

        await close_with_a_failing_reopen(channel, other, side)
        await other.queue_delete(side)  # the election is over: a reopen would now work
        await other.default_exchange.publish(aio_pika.Message(b"during"), routing_key=inbound)
        # under aio-pika alone nothing tries again: the message waits, unconsumed (a bounded wait
        # for a negative claim)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(received.get(), 3)
        assert channel.is_closed and not consumer.consuming

        watch = ChannelWatch(connection, {"consume": channel}, interval_s=0.2)
        watch.start()
        try:
            assert await asyncio.wait_for(received.get(), 10) == b"during"
        finally:
            await watch.stop()
        assert consumer.consuming
        await consumer.stop(deadline_s=5)
    finally:
        for name in (inbound, side):
            with contextlib.suppress(aiormq.exceptions.AMQPError):
                await other.queue_delete(name)
        await connection.close()


async def test_a_reopen_that_keeps_failing_is_tried_again_until_it_works(amqp_prefix: str) -> None:
    side = f"{amqp_prefix}.failing-side"
    connection = await connect(AMQP_URL)
    other = await connection.channel()
    try:
        channel: AbstractRobustChannel = await connection.channel(publisher_confirms=False)
        await channel.declare_queue(side, durable=True, arguments={"x-max-length": 100})
        await close_with_a_failing_reopen(channel, other, side)
        watch = ChannelWatch(connection, {"topology": channel}, interval_s=0.1)
        watch.start()
        try:
            # about ten attempts, each failing on the conflict (a bounded wait for a negative claim)
            await asyncio.sleep(1.0)
            assert not channel.is_initialized
            await other.queue_delete(side)  # the conflict ends: the next attempt works
            await poll_until(async_true(lambda: not channel.is_closed), 5, "the channel reopened")
        finally:
            await watch.stop()
    finally:
        with contextlib.suppress(aiormq.exceptions.AMQPError):
            await other.queue_delete(side)
        await connection.close()


async def test_a_late_nack_from_a_replaced_channel_leaves_its_successor_open() -> None:
    # publishes in flight on one channel are nacked one after another: the first replaces the
    # channel, the later ones must not close the new one (and every publish in flight on it)
    connection = await connect(AMQP_URL)
    try:
        own = OwnChannel(connection, confirms=True)
        first = await own.get()
        await own.drop(first)
        second = await own.get()
        assert second is not first and first.is_closed
        await own.drop(first)  # the late nack
        assert not second.is_closed and await own.get() is second
        await own.close()
        assert second.is_closed
    finally:
        await connection.close()


async def test_a_delivery_its_handler_left_unsettled_is_handed_back(amqp_prefix: str) -> None:
    # a cancellation leaking out of a library into a handler ends it without an ack or a nack: the
    # message would stay unacked, and its prefetch slot lost, as long as the channel lives
    name = f"{amqp_prefix}.unsettled"
    connection = await connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=False)
        queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        seen: asyncio.Queue[int] = asyncio.Queue()

        async def handle(delivery: Delivery) -> None:
            await seen.put(delivery.attempts)
            if delivery.attempts == 1:
                raise asyncio.CancelledError  # not from the consumer: from somewhere below
            await delivery.ack()

        consumer = AmqpConsumer(channel, queue, prefetch=10)
        await consumer.start(handle)
        await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=name)
        # handed back, delivered again, handled: not left unacked for as long as the channel lives
        assert [await asyncio.wait_for(seen.get(), 10) for _ in range(2)] == [1, 2]
        await consumer.stop(deadline_s=5)
        assert (
            await channel.declare_queue(name, passive=True)
        ).declaration_result.message_count == 0  # acked
        await channel.queue_delete(name)
    finally:
        await connection.close()


async def close_with_a_failing_reopen(
    channel: AbstractRobustChannel, other: AbstractChannel, side: str
) -> None:
    """The queue `side`, declared on `channel`, now exists with other arguments (as a declare fails in
    a leader election), and the broker closes `channel`: aio-pika's reopen, which declares the queue
    again first, fails and leaves the channel without an underlying one."""
    await other.queue_delete(side)
    await other.declare_queue(side, durable=True, arguments={"x-max-length": 200})
    underlay = await channel.get_underlay_channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await underlay.basic_ack(999_999, wait=True)  # an unknown delivery tag: the broker closes it
        await underlay.basic_qos(prefetch_count=10)  # (the close arrives with the next answer)
    await poll_until(async_true(lambda: not channel.is_initialized), 10, "aio-pika's reopen failed")
