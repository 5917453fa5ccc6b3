"""Channels the broker closed while the connection stayed up, on the real RabbitMQ.

aio-pika reopens a robust channel the broker closed, repeating every declare made on it first; if
one of those fails, the channel stays closed until the connection itself is lost. In a cluster's
leader election that left routing silent for a minute (test_cluster, once in ten CI runs). The
publisher now opens its own channels, and `ChannelWatch` reopens a robust channel left closed."""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq
import pytest

from tests.integration.harness import AMQP_URL
from tests.integration.processes import async_true, poll_until
from watchcentre.adapters.amqp import AmqpConsumer, ChannelWatch, connect
from watchcentre.core.ports import Delivery

pytestmark = pytest.mark.integration


async def test_a_consumer_whose_channel_could_not_be_reopened_is_consuming_again(amqp_prefix: str) -> None:
    queue_name = f"{amqp_prefix}.watched"
    connection = await connect(AMQP_URL)
    other = await connection.channel()
    try:
        channel = await connection.channel(publisher_confirms=False)
        queue = await channel.declare_queue(queue_name, durable=True, arguments={"x-max-length": 100})
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def handle(delivery: Delivery) -> None:
            await received.put(delivery.body)
            await delivery.ack()

        consumer = AmqpConsumer(channel, queue, prefetch=10)
        await consumer.start(handle)
        await other.default_exchange.publish(aio_pika.Message(b"before"), routing_key=queue_name)
        assert await asyncio.wait_for(received.get(), 10) == b"before"

        # the queue now exists with other arguments (as a declare fails in a leader election): the
        # channel's reopen, which declares it again first, fails
        await other.queue_delete(queue_name)
        await other.declare_queue(queue_name, durable=True, arguments={"x-max-length": 200})
        underlay = await channel.get_underlay_channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            await underlay.basic_ack(999_999, wait=True)  # an unknown delivery tag: the broker closes it
            await underlay.basic_qos(prefetch_count=10)  # (the close arrives with the next answer)
        await poll_until(async_true(lambda: channel.is_closed), 10, "the channel is closed")
        await asyncio.sleep(1.0)  # aio-pika's own reopen has been tried and failed: nothing retries it
        assert channel.is_closed and not consumer.consuming

        watch = ChannelWatch(connection, {"consume": channel}, interval_s=0.2)
        watch.start()
        try:
            await asyncio.sleep(1.0)  # while the conflict lasts, each attempt fails and is retried
            assert channel.is_closed and watch.reopened == 0
            await other.queue_delete(queue_name)  # the election is over
            await poll_until(async_true(lambda: not channel.is_closed), 10, "the channel reopened")
            assert watch.reopened == 1
            await other.default_exchange.publish(aio_pika.Message(b"after"), routing_key=queue_name)
            assert await asyncio.wait_for(received.get(), 10) == b"after"
        finally:
            await watch.stop()
        await consumer.stop(deadline_s=5)
    finally:
        await other.queue_delete(queue_name)
        await connection.close()
