"""The live feed: this instance's subscription to `P.events` (the console's server-sent events)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection

from watchcentre.adapters.amqp.connect import CHANNEL_GONE, ChannelWatch
from watchcentre.adapters.amqp.publisher import EVENTS_BATCH
from watchcentre.adapters.amqp.topology import Names

EventListener = Callable[[dict[str, Any]], None]


class EventFeed:
    """This instance's subscription to `P.events`: one exclusive, auto-delete queue on a robust
    channel (re-declared and re-consumed after a reconnection, and watched). Each `P.events` message is a JSON
    array of audit records (one committed batch, routing key `batch`); each record whose type is in
    `event_types` is handed to `listener`, one at a time. Every instance has its own queue, so each
    sees every event, whichever instance committed it. While `listening()` is false (no console
    page open on this instance), messages are dropped undecoded: pages back-fill from the store."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        names: Names,
        listener: EventListener,
        event_types: Iterable[str] = ("#",),
        listening: Callable[[], bool] = lambda: True,
    ) -> None:
        self._connection = connection
        self._names = names
        self._listener = listener
        self._listening = listening  # False: nobody to hand events to (no page open), skip decoding
        types = frozenset(event_types)
        self._wanted: Callable[[object], bool] = (lambda _: True) if "#" in types else types.__contains__
        self._channel: AbstractRobustChannel | None = None
        self._watch: ChannelWatch | None = None

    async def start(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=False)
        await self._channel.set_qos(prefetch_count=1000)
        exchange = await self._channel.declare_exchange(
            self._names.events, aio_pika.ExchangeType.TOPIC, durable=True
        )
        # Named under the prefix (not server-named): the service's broker user needs no grant
        # outside its own names (docs/security.md).
        queue = await self._channel.declare_queue(
            f"{self._names.prefix}.feed.{secrets.token_hex(8)}",
            exclusive=True,
            auto_delete=True,
            arguments={"x-max-length": 100_000},
        )
        await queue.bind(exchange, routing_key=EVENTS_BATCH)

        async def on_event(message: AbstractIncomingMessage) -> None:
            if not self._listening():
                return
            try:
                events = orjson.loads(message.body)
            except orjson.JSONDecodeError:
                return
            for event in events if isinstance(events, list) else [events]:
                if isinstance(event, dict) and self._wanted(event.get("type")):
                    self._listener(event)

        await queue.consume(on_event, no_ack=True)
        self._watch = ChannelWatch(self._connection, {"feed": self._channel})  # else a feed gone silent
        self._watch.start()

    async def stop(self) -> None:
        if self._watch is not None:
            await self._watch.stop()
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(*CHANNEL_GONE, RuntimeError):
                await self._channel.close()
        self._channel = None
