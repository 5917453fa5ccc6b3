"""The names and the topology: every queue and exchange, declared idempotently.

Names (P = prefix): queue `P.inbound` (quorum, delivery limit, dead-letters to `P.dead`), fed by the
fanout exchange `P.intake` (what provisioned senders publish to) and, in development, by the default
exchange; receipt queues `P.reply.<sender>` (declared by their owners); topic exchange `P.routed`
with a quorum queue per recipient (`P.post.<ID>`, `P.unit.<ID>`, `P.centre.inbox`,
`P.centre.triage`); quorum queue `P.dead`; topic exchange `P.events`.

Every queue that holds deliveries is a quorum queue, replicated over the cluster's nodes. A queue of
another type (a classic one, from before) cannot be redeclared as quorum: the broker refuses with
PRECONDITION_FAILED. The declares are made on short-lived channels, so such a refusal is collected
for every queue concerned and reported at once (`QueueTypeMismatch`), never on a channel that the
service keeps; `watchcentre broker migrate-queues` moves those queues over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from watchcentre.core.senders import INTAKE, reply_queue

DELIVERY_LIMIT = 20
"""Broker-side backstop: the service dead-letters a failing message itself well before this, and at
the latest on the broker's last delivery (service/intake.py)."""

QUORUM: Mapping[str, Any] = {"x-queue-type": "quorum"}
"""The arguments of every delivery queue but `P.inbound` (`inbound_arguments`). The broker compares
them on each declare: any other code that declares one of these queues must use the same."""


class QueueTypeMismatch(Exception):
    """Queues that exist with other arguments than the service declares (classic, not quorum)."""

    def __init__(self, queues: Sequence[str]) -> None:
        self.queues = list(queues)
        shown = ", ".join(self.queues[:5]) + (
            f" and {len(self.queues) - 5} more" if len(self.queues) > 5 else ""
        )
        super().__init__(
            f"{len(self.queues)} queue(s) exist with other arguments than watchcentre declares (classic "
            f"queues from an older version, or declared by hand): {shown}. Nothing was consumed. Run "
            '`watchcentre broker migrate-queues` (docs/operations.md, "Migrating from classic queues")'
        )


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
        """`post.rabat` → `P.post.rabat`: one quorum queue per recipient routing key."""
        return f"{self.prefix}.{routing_key}"


@dataclass(frozen=True)
class DeliveryQueue:
    """A queue that holds deliveries: its declare arguments and its bindings (exchange, key)."""

    name: str
    arguments: Mapping[str, Any]
    bindings: tuple[tuple[str, str], ...] = ()


def inbound_arguments(names: Names) -> dict[str, Any]:
    return {
        **QUORUM,
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": names.dead,
    }


def delivery_queues(names: Names, recipient_keys: Sequence[str]) -> list[DeliveryQueue]:
    """Every queue the service declares for delivery, as it declares it."""
    return [
        DeliveryQueue(names.dead, QUORUM),
        DeliveryQueue(names.inbound, inbound_arguments(names), ((names.intake, ""),)),
        *(DeliveryQueue(names.queue_for(k), QUORUM, ((names.routed, k),)) for k in recipient_keys),
    ]


async def declare_topology(
    channel: AbstractChannel, names: Names, recipient_keys: Sequence[str]
) -> tuple[AbstractQueue, AbstractExchange, AbstractExchange]:
    """Declare everything idempotently; return (inbound queue, routed exchange, events exchange).
    Raises QueueTypeMismatch, naming every queue concerned, when some exist with other arguments."""
    routed, events = await declare_exchanges(channel, names)
    await declare_queues(channel, delivery_queues(names, recipient_keys))
    # again on this (robust) channel, which re-declares them after a reconnection; they match now
    await channel.declare_queue(names.dead, durable=True, arguments=dict(QUORUM))
    inbound = await declare_inbound(channel, names)
    return inbound, routed, events


async def declare_exchanges(
    channel: AbstractChannel, names: Names
) -> tuple[AbstractExchange, AbstractExchange]:
    """`P.intake`, `P.routed`, `P.events`; returns (routed, events)."""
    await channel.declare_exchange(names.intake, aio_pika.ExchangeType.FANOUT, durable=True)
    routed = await channel.declare_exchange(names.routed, aio_pika.ExchangeType.TOPIC, durable=True)
    events = await channel.declare_exchange(names.events, aio_pika.ExchangeType.TOPIC, durable=True)
    return routed, events


async def declare_queues(channel: AbstractChannel, queues: Sequence[DeliveryQueue], lanes: int = 8) -> None:
    """Declare and bind each queue on short-lived channels of `channel`'s connection. A channel
    answers one declare at a time, so ~90 recipients cost ~180 round trips in a row; spread over
    `lanes` channels they overlap (docs/performance.md, "Declaring the queues"). A queue the broker refuses (PRECONDITION_FAILED: it exists with other arguments)
    closes its lane's channel; the lane opens another and goes on, and every such queue is named
    in one QueueTypeMismatch at the end."""
    raw = cast(aiormq.Channel, await channel.get_underlay_channel())
    refused: list[str] = []

    async def lane(chunk: Sequence[DeliveryQueue]) -> None:
        lane_channel = await raw.connection.channel()
        try:
            for queue in chunk:
                try:
                    await lane_channel.queue_declare(
                        queue.name, durable=True, arguments=dict(queue.arguments)
                    )
                except aiormq.exceptions.ChannelPreconditionFailed:
                    refused.append(queue.name)
                    lane_channel = await raw.connection.channel()
                    continue
                for exchange, key in queue.bindings:
                    await lane_channel.queue_bind(queue.name, exchange, routing_key=key)
        finally:
            await lane_channel.close()

    await asyncio.gather(*(lane(queues[i::lanes]) for i in range(lanes) if queues[i::lanes]))
    if refused:
        raise QueueTypeMismatch(sorted(refused))


async def declare_inbound(channel: AbstractChannel, names: Names) -> AbstractQueue:
    """Declare `P.inbound` (idempotent). Declared on a robust channel, it is re-declared after a
    reconnection and the consumers started on it are restored."""
    return await channel.declare_queue(names.inbound, durable=True, arguments=inbound_arguments(names))
