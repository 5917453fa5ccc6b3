"""The confirmed publisher: routed copies and dead letters (confirmed), events and receipts (not)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractRobustConnection
from aiormq import spec
from aiormq.exceptions import ChannelInvalidStateError, DeliveryError, PublishError
from pamqp.common import FieldTable
from pydantic import TypeAdapter

from watchcentre.adapters.amqp.connect import CHANNEL_GONE, OwnChannel
from watchcentre.adapters.amqp.topology import QUORUM, Names
from watchcentre.core.ports import OutboundCopy, TransientError
from watchcentre.core.records import AuditEvent

log = structlog.get_logger("watchcentre.amqp")

ERROR_HEADER = "x-watchcentre-error"
PUBLISH_TIMEOUT_S = 30.0
"""Seconds to wait for a broker confirm before the publish counts as failed (TransientError)."""
UNCONFIRMED_TIMEOUT_S = 5.0
"""Seconds an event batch or a receipt may wait for its channel (a reconnection): best effort, they
must not hold the commit that announces them."""
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
EVENTS_BATCH = "batch"
"""The routing key (and AMQP type) of every `P.events` message: a JSON array of audit records."""
EVENTS_JSON = TypeAdapter(list[AuditEvent])
NO_ROUTE = 312


class AmqpPublisher:
    """Routed copies and dead letters on a confirm channel; events and receipts on a plain one. Both
    are the publisher's own (`OwnChannel`): a closed one is replaced at the next publish."""

    def __init__(self, connection: AbstractRobustConnection, names: Names) -> None:
        self._confirm = OwnChannel(connection, confirms=True)
        self._plain = OwnChannel(connection, confirms=False)
        self._names = names

    async def close(self) -> None:
        await self._confirm.close()
        await self._plain.close()

    async def publish_routed(self, copies: Sequence[OutboundCopy]) -> None:
        # One publish per OutboundCopy, whatever its fan-out: RabbitMQ's sender-selected
        # distribution routes it by its routing key and every key in its `BCC` header (which the
        # broker strips before delivery), one copy per queue, under one confirm.
        #
        # Straight on the underlying aiormq channel, with wait=False: aio-pika's publish holds the
        # channel lock until the frame is on the socket (one writer round-trip per publish, one
        # publish at a time per channel); here a publish only queues its frame and the confirms
        # are awaited together. Nack, return (on_return_raises) and channel loss still raise, as
        # with aio-pika.
        #
        # A publish returned as unroutable (NO_ROUTE: it reached no queue at all, e.g. its only
        # recipient's queue or binding is gone, deleted by hand or not restored after a
        # reconnection) is not the input's fault: its recipients' queues are declared and bound
        # again, and it is published once more. Handing the input back instead would burn its
        # delivery count against the broker's limit. The broker returns a message only when it
        # reached no queue: one recipient's queue missing among several is not seen here
        # (docs/guarantees.md).
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):  # also bounds waiting for a reconnection
                unroutable = await self._publish(copies)
                if unroutable:
                    keys = sorted({key for c in unroutable for key in c.routing_keys})
                    log.warning("recipient_queue_missing", routing_keys=keys)
                    await self._declare_recipients(keys)
                    if await self._publish(unroutable):
                        raise TransientError(f"routed publish unroutable after declaring {keys}")
        except CHANNEL_GONE as exc:
            raise TransientError(f"routed publish not confirmed: {type(exc).__name__}: {exc}") from exc

    async def _publish(self, copies: Sequence[OutboundCopy]) -> list[OutboundCopy]:
        """Publish and await every confirm; return the copies the broker returned as unroutable."""
        channel = await self._confirm.get()
        exchange = self._names.routed
        results = await asyncio.gather(
            *(
                channel.basic_publish(
                    c.body,
                    exchange=exchange,
                    routing_key=c.routing_keys[0],
                    properties=spec.Basic.Properties(
                        content_type="application/json",
                        delivery_mode=PERSISTENT,
                        message_id=c.message_id,
                        headers=_with_bcc(c),
                        priority=c.priority,
                    ),
                    mandatory=True,
                    wait=False,
                )
                for c in copies
                if c.routing_keys
            ),
            return_exceptions=True,
        )
        unroutable: list[OutboundCopy] = []
        for copy, result in zip([c for c in copies if c.routing_keys], results, strict=True):
            if isinstance(result, PublishError) and _no_route(result):
                unroutable.append(copy)
            elif isinstance(result, asyncio.CancelledError) and not _cancelling():
                # the channel was closed under it (aiormq cancels what waits on a channel it closes)
                raise ChannelInvalidStateError("routed publish cancelled by its channel's close")
            elif isinstance(result, BaseException):
                await self._renew_if_nacked(channel, result)
                raise result
        return unroutable

    async def _renew_if_nacked(self, channel: aiormq.Channel, exc: BaseException) -> None:
        """A nack (not a return): a queue it routes to did not take it. Once in six runs of
        test_cluster, RabbitMQ went on nacking every publish of a channel opened during a leader
        election for over a minute: the next publish goes on a new channel."""
        if isinstance(exc, DeliveryError) and not isinstance(exc, PublishError) and not channel.is_closed:
            log.warning("confirm_channel_renewed", cause=f"{type(exc).__name__}: {exc}")
            await self._confirm.drop(channel)

    async def _declare_recipients(self, routing_keys: Sequence[str]) -> None:
        channel = await self._confirm.get()
        routed = self._names.routed
        await channel.exchange_declare(routed, exchange_type="topic", durable=True)
        for key in routing_keys:
            queue = self._names.queue_for(key)
            await channel.queue_declare(queue, durable=True, arguments=dict(QUORUM))
            await channel.queue_bind(queue, routed, routing_key=key)

    async def publish_dead(self, body: bytes, reason: str, headers: Mapping[str, str]) -> None:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                channel = await self._confirm.get()
                publishing = channel.basic_publish(
                    body,
                    routing_key=self._names.dead,
                    properties=spec.Basic.Properties(
                        delivery_mode=PERSISTENT,
                        headers={ERROR_HEADER: reason, **headers},
                        # when it arrived: shown, and its retention counts from it
                        timestamp=datetime.now(UTC),
                    ),
                    mandatory=True,
                )
                try:
                    await publishing
                except DeliveryError as exc:
                    await self._renew_if_nacked(channel, exc)
                    raise
        except CHANNEL_GONE as exc:
            raise TransientError(f"dead-letter publish not confirmed: {type(exc).__name__}") from exc

    async def publish_events(self, events: Sequence[AuditEvent]) -> None:
        # One message for the lot (a committed batch): a JSON array of audit records, routing key
        # `batch` (docs/architecture.md). Not confirmed, and wait=False: it only queues its frame.
        if not events:
            return
        first, last = events[0].seq, events[-1].seq
        await self._unconfirmed(
            EVENTS_JSON.dump_json(list(events)),
            exchange=self._names.events,
            routing_key=EVENTS_BATCH,
            properties=spec.Basic.Properties(
                content_type="application/json",
                message_id=f"{first}-{last}" if first is not None and last is not None else None,
                message_type=EVENTS_BATCH,
            ),
        )

    async def publish_reply(self, to: str, body: bytes, correlation_id: str | None) -> None:
        # Not confirmed: a receipt is a courtesy; the sender can always ask the HTTP API.
        await self._unconfirmed(
            body,
            exchange="",
            routing_key=to,
            properties=spec.Basic.Properties(
                content_type="application/json", correlation_id=correlation_id, message_type="receipt"
            ),
        )

    async def _unconfirmed(self, body: bytes, **publish: Any) -> None:
        """Best effort, within UNCONFIRMED_TIMEOUT_S in all: waiting for the channel, and queueing the
        frame (on a connection gone under it, the queue stops draining: a wait there once held the
        group commit, and every input with it, until the test gave up; a timeout drops the channel)."""
        channel = None
        try:
            async with asyncio.timeout(UNCONFIRMED_TIMEOUT_S):
                channel = await self._plain.get()
                await channel.basic_publish(body, mandatory=False, wait=False, **publish)
        except CHANNEL_GONE as exc:
            if channel is not None:
                await self._plain.drop(channel)
            raise TransientError(f"unconfirmed publish not queued: {type(exc).__name__}") from exc


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _with_bcc(copy: OutboundCopy) -> FieldTable:
    """The copy's headers, and `BCC` naming its other recipients' routing keys (stripped by the
    broker before delivery: a recipient sees the recipients in the body, not in a header)."""
    headers: FieldTable = dict(copy.headers)
    if len(copy.routing_keys) > 1:
        headers["BCC"] = list(copy.routing_keys[1:])
    return headers


def _no_route(exc: PublishError) -> bool:
    delivery = getattr(exc.message, "delivery", None)
    return isinstance(delivery, spec.Basic.Return) and delivery.reply_code == NO_ROUTE
