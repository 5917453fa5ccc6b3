"""Running a real watchcentre instance inside a test, against the real RabbitMQ and database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import aiohttp
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiohttp import ClientSession, ClientTimeout, web

from watchcentre.adapters.amqp import Names, declare_topology
from watchcentre.adapters.config_files import load_config
from watchcentre.bootstrap import RUNTIME, Runtime, build_app, recipient_keys
from watchcentre.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
ADMIN_URL = "http://127.0.0.1:15672/api"
# A broker that accepts TCP but never answers (see delete_prefix) would otherwise hang the suite:
# each step that waits on it fails within these, naming what it waited for.
CONNECT_LIMIT_S = 30.0
START_LIMIT_S = 90.0


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
        try:
            async with asyncio.timeout(START_LIMIT_S):
                await self.runner.setup()
        except TimeoutError:
            raise AssertionError(f"the instance did not start within {START_LIMIT_S} s") from None
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            try:
                async with asyncio.timeout(START_LIMIT_S):
                    await self.runner.cleanup()
            except TimeoutError:
                raise AssertionError(f"the instance did not stop within {START_LIMIT_S} s") from None
            finally:
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
        self.connection = await connect(self.url)
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

    async def close(self) -> None:
        """Close this connection and delete everything the test declared under its prefix."""
        assert self.connection is not None
        await self.connection.close()
        await delete_prefix(self.prefix)


def fresh_prefix() -> str:
    """`wct-<pid>-<random>`: the pid tells a later run whether these are a killed run's leftovers."""
    return f"wct-{os.getpid()}-{secrets.token_hex(3)}"


async def connect(url: str = AMQP_URL) -> aio_pika.abc.AbstractConnection:
    try:
        async with asyncio.timeout(CONNECT_LIMIT_S):
            return await aio_pika.connect(url)
    except TimeoutError:
        raise AssertionError(
            f"RabbitMQ accepted no AMQP connection within {CONNECT_LIMIT_S} s: see delete_prefix"
        ) from None


async def delete_prefix(prefix: str) -> None:
    """Delete every queue and exchange named `<prefix>.…`, whoever declared them (the service, a
    test, a reload that added a post)."""
    await delete_where(lambda name: name.startswith(f"{prefix}."))


def is_stale(name: str) -> bool:
    """A test's queue or exchange whose run is over: its prefix names a process that is gone (the
    run was killed before its teardown), or none (an older harness)."""
    match = re.match(r"wct-(?:(\d+)-)?[0-9a-f]+\.", name)
    if match is None:
        return False
    if match[1] is None:
        return True
    try:
        os.kill(int(match[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


async def delete_where(doomed: Callable[[str], bool]) -> None:
    """Leftovers are not only clutter: each quorum queue reserves three of the broker's file handles
    (RabbitMQ 3.10's file_handle_cache, about 900 with the default 1,024-descriptor limit), and once
    they are all reserved the broker accepts TCP but never answers. Ninety-five queues a test: three
    killed runs' leftovers and the running test fill it (docs/operations.md)."""
    async with ClientSession(
        headers={"Authorization": aiohttp.encode_basic_auth("guest", "guest")},
        timeout=ClientTimeout(total=CONNECT_LIMIT_S),
    ) as http:
        for kind in ("queues", "exchanges"):
            async with http.get(f"{ADMIN_URL}/{kind}/%2F", params={"columns": "name,exclusive"}) as resp:
                resp.raise_for_status()
                # an exclusive queue goes with its connection, and only that connection may delete it
                rows = [r for r in await resp.json() if doomed(r["name"]) and not r.get("exclusive")]
            for name in (r["name"] for r in rows):
                async with http.delete(f"{ADMIN_URL}/{kind}/%2F/{quote(name, safe='')}") as resp:
                    if resp.status not in (204, 404):
                        resp.raise_for_status()


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Instance]:
    inst = await Instance(settings).start()
    try:
        yield inst
    finally:
        await inst.stop()
