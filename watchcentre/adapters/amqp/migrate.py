"""`watchcentre broker migrate-queues`: delivery queues of another type (classic ones from before
quorum queues) re-created as the service declares them, their messages kept.

RabbitMQ cannot change a queue's type: it must be deleted and declared again, under the same name
(recipients consume by name). For each queue the broker refuses to redeclare, while no one consumes
from it and no instance of the service runs:

1. declare `<name>.migrating` (quorum) with the queue's bindings, and unbind the old queue: a
   copy published meanwhile lands in the holding queue;
2. move every message to the holding queue (each re-published, confirmed, then acked);
3. delete the old queue (once found empty and unused), declare it as the service does, bind it;
4. move the messages back, and delete the holding queue (once found empty).

Every step is idempotent and a message is acked only after its copy is confirmed: run it again
after an interruption and it finishes the job; a crash between a publish and its ack leaves a
message in both places (a recipient drops the repeat by its message_id). Messages moved lose their
`x-delivery-count` and `x-death` headers' broker-side meaning (they are new publications).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import aiormq
import structlog
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed
from pamqp import commands as spec

from watchcentre.adapters.amqp.topology import QUORUM, DeliveryQueue

log = structlog.get_logger("watchcentre.amqp")

HOLDING_SUFFIX = ".migrating"
BATCH = 200


class MigrationRefused(Exception):
    """A queue cannot be migrated now (it has consumers); nothing of it was changed."""


@dataclass(frozen=True)
class Migrated:
    queue: str
    messages: int


async def _state(connection: aiormq.abc.AbstractConnection, queue: DeliveryQueue) -> str:
    """'right' (exists as declared), 'wrong' (exists with other arguments) or 'missing'."""
    channel = await connection.channel()
    try:
        await channel.queue_declare(queue.name, durable=True, arguments=dict(queue.arguments))
        return "right"
    except ChannelPreconditionFailed:
        return "wrong"
    finally:
        if not channel.is_closed:
            await channel.close()


async def _exists(connection: aiormq.abc.AbstractConnection, name: str) -> spec.Queue.DeclareOk | None:
    channel = await connection.channel()
    try:
        return await channel.queue_declare(name, passive=True)
    except ChannelNotFoundEntity:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()


async def _move(connection: aiormq.abc.AbstractConnection, source: str, target: str) -> int:
    """Every ready message of `source` to `target` (default exchange), confirmed before acked."""
    channel = await connection.channel(publisher_confirms=True)
    moved = 0
    try:
        while True:
            got: list[aiormq.abc.DeliveredMessage] = []
            for _ in range(BATCH):
                message = await channel.basic_get(source, no_ack=False)
                if message.delivery_tag is None:  # Basic.GetEmpty
                    break
                got.append(message)
            if not got:
                return moved
            await asyncio.gather(
                *(
                    channel.basic_publish(
                        m.body, exchange="", routing_key=target, properties=m.header.properties
                    )
                    for m in got
                )
            )
            last = got[-1].delivery_tag
            assert last is not None
            await channel.basic_ack(last, multiple=True)
            moved += len(got)
    finally:
        await channel.close()


async def _delete_if_idle(connection: aiormq.abc.AbstractConnection, name: str) -> None:
    """Delete a queue found empty and without consumers (quorum queues refuse the if-empty and
    if-unused flags: checked first, the bindings being gone, nothing arrives in between)."""
    found = await _exists(connection, name)
    if found is None:
        return
    if found.message_count or found.consumer_count:
        raise MigrationRefused(
            f"{name} still has {found.message_count} message(s), {found.consumer_count} consumer(s): "
            "stop every publisher and consumer, then run this again"
        )
    channel = await connection.channel()
    try:
        await channel.queue_delete(name)
    finally:
        await channel.close()


async def migrate_queue(connection: AbstractRobustConnection, queue: DeliveryQueue) -> Migrated | None:
    """Migrate one queue if it needs it (None when it is already right and nothing is held)."""
    raw = cast(aiormq.Channel, await (await connection.channel()).get_underlay_channel()).connection
    holding = queue.name + HOLDING_SUFFIX
    state = await _state(raw, queue)
    held = await _exists(raw, holding)
    if state == "right" and held is None:
        return None
    channel = await raw.channel()
    try:
        moved = 0
        if state == "wrong":
            current = await _exists(raw, queue.name)
            if current is not None and current.consumer_count:
                raise MigrationRefused(
                    f"{queue.name} has {current.consumer_count} consumer(s): stop them (and every "
                    "watchcentre instance), then run this again"
                )
            await channel.queue_declare(holding, durable=True, arguments=dict(QUORUM))
            for exchange, key in queue.bindings:
                await channel.queue_bind(holding, exchange, routing_key=key)
                await channel.queue_unbind(queue.name, exchange, routing_key=key)
            moved = await _move(raw, queue.name, holding)
            await _delete_if_idle(raw, queue.name)
        await channel.queue_declare(queue.name, durable=True, arguments=dict(queue.arguments))
        for exchange, key in queue.bindings:
            await channel.queue_bind(queue.name, exchange, routing_key=key)
        if await _exists(raw, holding) is not None:
            for exchange, key in queue.bindings:
                await channel.queue_unbind(holding, exchange, routing_key=key)
            moved = max(moved, await _move(raw, holding, queue.name))
            await _delete_if_idle(raw, holding)
        log.info("queue_migrated", queue=queue.name, messages=moved)
        return Migrated(queue.name, moved)
    finally:
        if not channel.is_closed:
            await channel.close()


async def migrate_queues(
    connection: AbstractRobustConnection, queues: Sequence[DeliveryQueue]
) -> list[Migrated]:
    """Every queue of `queues` that the broker refuses to redeclare as the service does, migrated."""
    done: list[Migrated] = []
    for queue in queues:
        migrated = await migrate_queue(connection, queue)
        if migrated is not None:
            done.append(migrated)
    return done
