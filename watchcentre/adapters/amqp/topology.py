"""The names and the topology: every queue and exchange, declared idempotently.

Names (P = prefix): queue `P.inbound` (quorum, delivery limit, dead-letters to `P.dead`), fed by the
fanout exchange `P.intake` (what provisioned senders publish to) and, in development, by the default
exchange; receipt queues `P.reply.<sender>` (declared by their owners); topic exchange `P.routed`
with a durable queue per recipient (`P.post.<ID>`, `P.unit.<ID>`, `P.centre.inbox`,
`P.centre.triage`); queue `P.dead`; topic exchange `P.events`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from watchcentre.core.senders import INTAKE, reply_queue

DELIVERY_LIMIT = 20
"""Broker-side backstop: the service dead-letters a failing message itself well before this."""


@dataclass(frozen=True)
class Names:
    prefix: str

    @property
    def inbound(self) -> str:
        return f"{self.prefix}.inbound"

    @property
    def intake(self) -> str:
        return f"{self.prefix}.{INTAKE}"

    def reply_for(self, sender: str) -> str:
        return reply_queue(self.prefix, sender)

    @property
    def dead(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def routed(self) -> str:
        return f"{self.prefix}.routed"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    def queue_for(self, routing_key: str) -> str:
        """`post.rabat` → `P.post.rabat`: one durable queue per recipient routing key."""
        return f"{self.prefix}.{routing_key}"


async def declare_topology(
    channel: AbstractChannel, names: Names, recipient_keys: Sequence[str]
) -> tuple[AbstractQueue, AbstractExchange, AbstractExchange]:
    """Declare everything idempotently; return (inbound queue, routed exchange, events exchange)."""
    await channel.declare_queue(names.dead, durable=True, arguments={"x-queue-type": "quorum"})
    inbound = await declare_inbound(channel, names)
    intake = await channel.declare_exchange(names.intake, aio_pika.ExchangeType.FANOUT, durable=True)
    await inbound.bind(intake)
    routed = await channel.declare_exchange(names.routed, aio_pika.ExchangeType.TOPIC, durable=True)
    events = await channel.declare_exchange(names.events, aio_pika.ExchangeType.TOPIC, durable=True)
    await _declare_recipient_queues(channel, names, list(recipient_keys))
    return inbound, routed, events


async def _declare_recipient_queues(
    channel: AbstractChannel, names: Names, keys: list[str], lanes: int = 8
) -> None:
    """A durable queue per recipient, bound to `P.routed` by its key. A channel answers one declare
    at a time, so ~90 recipients cost ~180 round trips in a row; spread over `lanes` short-lived
    channels of the same connection they overlap (93 queues: 1.07 → 0.22 s on a fresh broker,
    0.21 → 0.04 s when they exist)."""
    raw = cast(aiormq.Channel, await channel.get_underlay_channel())

    async def lane(chunk: list[str]) -> None:
        lane_channel = await raw.connection.channel()
        try:
            for key in chunk:
                queue = names.queue_for(key)
                await lane_channel.queue_declare(queue, durable=True)
                await lane_channel.queue_bind(queue, names.routed, routing_key=key)
        finally:
            await lane_channel.close()

    await asyncio.gather(*(lane(keys[i::lanes]) for i in range(lanes) if keys[i::lanes]))


async def declare_inbound(channel: AbstractChannel, names: Names) -> AbstractQueue:
    """Declare `P.inbound` (idempotent). Declared on a robust channel, it is re-declared after a
    reconnection and the consumers started on it are restored."""
    return await channel.declare_queue(
        names.inbound,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": names.dead,
        },
    )
