"""Running a real watchcentre instance inside a test, against the real RabbitMQ and database."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiohttp import web

from watchcentre.adapters.amqp import Names, declare_topology
from watchcentre.adapters.config_files import load_config
from watchcentre.bootstrap import RUNTIME, Runtime, build_app, recipient_keys
from watchcentre.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def envelope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "message_id": f"m-{secrets.token_hex(6)}",
        "sender": "ofast",
        "kind": "request",
        "subject": "Trafic de cocaïne",
        "body": "Demande d'identification d'un suspect interpellé avec 3 kg de cocaïne.",
        "sent_at": datetime.now(UTC).isoformat(),
    }
    base.update(overrides)
    return base


class Instance:
    """One `watchcentre serve` in this process, on an ephemeral HTTP port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def runtime(self) -> Runtime:
        assert self.runner is not None
        return self.runner.app[RUNTIME]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Instance:
        app = await build_app(self.settings)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


class Broker:
    """A test's own connection to RabbitMQ: publish inputs, read queues, watch events."""

    def __init__(self, prefix: str, url: str = AMQP_URL) -> None:
        self.prefix = prefix
        self.url = url
        self.connection: aio_pika.abc.AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()

    async def open(self) -> Broker:
        self.connection = await aio_pika.connect(self.url)
        self.channel = await self.connection.channel(publisher_confirms=True)
        return self

    async def declare_topology(self) -> None:
        """Declare the queues as the service does, so inputs can be waiting before it starts."""
        assert self.channel is not None
        keys = recipient_keys(load_config(ROOT / "config"))
        await declare_topology(self.channel, Names(self.prefix), keys)

    async def watch_events(self) -> None:
        """Collect every event on P.events (declared here if the service has not yet)."""
        assert self.channel is not None
        ex = await self.channel.declare_exchange(f"{self.prefix}.events", "topic", durable=True)
        q = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        await q.bind(ex, "#")

        async def on_event(msg: AbstractIncomingMessage) -> None:
            async with self._changed:
                self.events.extend(orjson.loads(msg.body))  # one committed batch: an array of records
                self._changed.notify_all()

        await q.consume(on_event, no_ack=True)

    async def wait_events(
        self, predicate: Callable[[list[dict[str, Any]]], bool], within: float = 20.0
    ) -> None:
        async def waiter() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.events))

        await asyncio.wait_for(waiter(), within)

    def events_of(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] in types]

    async def publish(self, body: dict[str, Any] | bytes, **props: Any) -> None:
        assert self.channel is not None
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        await self.channel.default_exchange.publish(
            aio_pika.Message(raw, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **props),
            routing_key=f"{self.prefix}.inbound",
        )

    async def queue(self, suffix: str) -> AbstractQueue:
        assert self.channel is not None
        return await self.channel.get_queue(f"{self.prefix}.{suffix}", ensure=True)

    async def drain(self, suffix: str) -> list[AbstractIncomingMessage]:
        """Everything currently in a queue (acknowledged, so the queue is left empty)."""
        q = await self.queue(suffix)
        out = []
        while (msg := await q.get(fail=False, no_ack=True)) is not None:
            out.append(msg)
        return out

    async def count(self, suffix: str) -> int:
        assert self.channel is not None
        q = await self.channel.declare_queue(f"{self.prefix}.{suffix}", passive=True)
        return q.declaration_result.message_count or 0

    async def delete_everything(self, queue_suffixes: list[str]) -> None:
        assert self.connection is not None
        channel = await self.connection.channel()
        for name in [f"{self.prefix}.{s}" for s in queue_suffixes]:
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
        for name in (f"{self.prefix}.routed", f"{self.prefix}.events", f"{self.prefix}.intake"):
            with contextlib.suppress(Exception):
                await channel.exchange_delete(name)
        await self.connection.close()


def fresh_prefix() -> str:
    return f"wct-{secrets.token_hex(4)}"


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Instance]:
    inst = await Instance(settings).start()
    try:
        yield inst
    finally:
        await inst.stop()
