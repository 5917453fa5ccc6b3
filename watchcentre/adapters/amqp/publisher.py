"""The confirmed publisher: routed copies and dead letters (confirmed), events and receipts (not)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

import aio_pika
import aiormq
import orjson
import structlog
from aio_pika.abc import AbstractChannel
from aiormq import spec
from aiormq.exceptions import PublishError

from watchcentre.adapters.amqp.connect import CHANNEL_GONE
from watchcentre.adapters.amqp.topology import Names
from watchcentre.core.ports import OutboundCopy, TransientError
from watchcentre.core.records import AuditEvent

log = structlog.get_logger("watchcentre.amqp")

ERROR_HEADER = "x-watchcentre-error"
PUBLISH_TIMEOUT_S = 30.0
"""Seconds to wait for a broker confirm before the publish counts as failed (TransientError)."""
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
NO_ROUTE = 312


class AmqpPublisher:
    """Routed copies and dead letters on a confirm channel; events on a plain one."""

    def __init__(
        self, confirm_channel: AbstractChannel, events_channel: AbstractChannel, names: Names
    ) -> None:
        self._confirm = confirm_channel
        self._plain = events_channel
        self._names = names

    async def publish_routed(self, copies: Sequence[OutboundCopy]) -> None:
        # Straight on the underlying aiormq channel, with wait=False: aio-pika's publish holds the
        # channel lock until the frame is on the socket (one writer round-trip per publish, one
        # publish at a time per channel); here a publish only queues its frame and the copies'
        # confirms are awaited together. Nack, return (on_return_raises) and channel loss still
        # raise, as with aio-pika.
        #
        # A copy returned as unroutable (NO_ROUTE: a recipient's queue or its binding is gone, e.g.
        # deleted by hand, or not restored after a reconnection) is not the input's fault: the
        # recipient's queue is declared and bound again, and that copy published once more. Handing
        # the input back instead would burn its delivery count against the broker's limit.
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):  # also bounds waiting for a reconnection
                unroutable = await self._publish(copies)
                if unroutable:
                    keys = sorted({c.routing_key for c in unroutable})
                    log.warning("recipient_queue_missing", routing_keys=keys)
                    await self._declare_recipients(keys)
                    if await self._publish(unroutable):
                        raise TransientError(f"routed publish unroutable after declaring {keys}")
        except CHANNEL_GONE as exc:
            raise TransientError(f"routed publish not confirmed: {type(exc).__name__}: {exc}") from exc

    async def _publish(self, copies: Sequence[OutboundCopy]) -> list[OutboundCopy]:
        """Publish and await every confirm; return the copies the broker returned as unroutable."""
        channel = cast(aiormq.Channel, await self._confirm.get_underlay_channel())
        exchange = self._names.routed
        results = await asyncio.gather(
            *(
                channel.basic_publish(
                    c.body,
                    exchange=exchange,
                    routing_key=c.routing_key,
                    properties=spec.Basic.Properties(
                        content_type="application/json",
                        delivery_mode=PERSISTENT,
                        message_id=c.message_id,
                        headers=dict(c.headers),
                        priority=c.priority,
                    ),
                    mandatory=True,
                    wait=False,
                )
                for c in copies
            ),
            return_exceptions=True,
        )
        unroutable: list[OutboundCopy] = []
        for copy, result in zip(copies, results, strict=True):
            if isinstance(result, PublishError) and _no_route(result):
                unroutable.append(copy)
            elif isinstance(result, BaseException):
                raise result
        return unroutable

    async def _declare_recipients(self, routing_keys: Sequence[str]) -> None:
        routed = await self._confirm.declare_exchange(
            self._names.routed, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for key in routing_keys:
            queue = await self._confirm.declare_queue(self._names.queue_for(key), durable=True)
            await queue.bind(routed, routing_key=key)

    async def publish_dead(self, body: bytes, reason: str, headers: Mapping[str, str]) -> None:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await self._confirm.default_exchange.publish(
                    aio_pika.Message(
                        body,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        headers={ERROR_HEADER: reason, **headers},
                        timestamp=datetime.now(UTC),  # the console shows when it arrived
                    ),
                    routing_key=self._names.dead,
                    mandatory=True,
                )
        except CHANNEL_GONE as exc:
            raise TransientError(f"dead-letter publish not confirmed: {type(exc).__name__}") from exc

    async def publish_events(self, events: Sequence[AuditEvent]) -> None:
        # Not confirmed, and wait=False: each publish only queues its frame for the writer.
        channel = cast(aiormq.Channel, await self._plain.get_underlay_channel())
        exchange = self._names.events
        for e in events:
            await channel.basic_publish(
                orjson.dumps(e.model_dump(mode="json")),
                exchange=exchange,
                routing_key=e.type,
                properties=spec.Basic.Properties(
                    content_type="application/json",
                    message_id=str(e.seq) if e.seq is not None else None,
                    message_type=e.type,
                ),
                mandatory=False,  # a live feed nobody listens to is not an error
                wait=False,
            )

    async def publish_reply(self, to: str, body: bytes, correlation_id: str | None) -> None:
        # Not confirmed: a receipt is a courtesy; the sender can always ask the HTTP API.
        channel = cast(aiormq.Channel, await self._plain.get_underlay_channel())
        await channel.basic_publish(
            body,
            exchange="",
            routing_key=to,
            properties=spec.Basic.Properties(
                content_type="application/json", correlation_id=correlation_id, message_type="receipt"
            ),
            mandatory=False,
            wait=False,
        )


def _no_route(exc: PublishError) -> bool:
    delivery = getattr(exc.message, "delivery", None)
    return isinstance(delivery, spec.Basic.Return) and delivery.reply_code == NO_ROUTE
