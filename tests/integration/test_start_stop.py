"""aiohttp owns start and stop: each resource is opened in its own cleanup_ctx, so a start that
fails half-way closes exactly what it had opened, and a stop does not wait for ever on a handler."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from aiormq.exceptions import ChannelPreconditionFailed

from tests.integration.harness import Broker, envelope, running
from watchcentre import bootstrap
from watchcentre.core.ports import Store
from watchcentre.core.records import Accepted
from watchcentre.settings import Settings


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the instance opened (the store, the AMQP connection) and whether the store was closed."""
    seen: dict[str, Any] = {"store_closed": False}
    real_open_store, real_connect = bootstrap.open_store, bootstrap.connect_broker

    async def open_store(settings: Settings) -> Store:
        store = seen["store"] = await real_open_store(settings)
        real_close = store.close

        async def close() -> None:
            seen["store_closed"] = True
            await real_close()

        monkeypatch.setattr(store, "close", close)
        return store

    async def connect_broker(settings: Settings, attempts: int = 30) -> AbstractRobustConnection:
        connection = seen["connection"] = await real_connect(settings, attempts)
        return connection

    monkeypatch.setattr(bootstrap, "open_store", open_store)
    monkeypatch.setattr(bootstrap, "connect_broker", connect_broker)
    return seen


async def test_a_start_that_fails_on_the_topology_closes_the_store_and_the_connection(
    service_settings: Settings, broker: Broker, opened: dict[str, Any]
) -> None:
    # Someone declared the routed exchange by hand, of another type: the broker refuses ours.
    # (A queue of another type makes the service wait instead: test_queue_types.py.)
    assert broker.channel is not None
    await broker.channel.declare_exchange(f"{broker.prefix}.routed", "fanout", durable=True)
    runner = web.AppRunner(await bootstrap.build_app(service_settings))
    try:
        with pytest.raises(ChannelPreconditionFailed):  # what `watchcentre serve` exits on, non-zero
            await runner.setup()
    finally:
        await runner.cleanup()  # as web.run_app does after a failed start
    assert opened["store_closed"]
    assert opened["connection"].is_closed


async def test_a_handler_still_running_at_the_shutdown_deadline_is_cancelled_and_redelivered(
    service_settings: Settings, broker: Broker, monkeypatch: pytest.MonkeyPatch, opened: dict[str, Any]
) -> None:
    settings = service_settings.model_copy(update={"shutdown_deadline_s": 0.5})
    stuck = envelope(subject="STUCK", countries=["ES"])
    hanging = asyncio.Event()
    async with running(settings) as inst:
        store = opened["store"]
        real_save = store.save_batch

        async def save_batch(outcomes: Any) -> Any:
            if any(isinstance(o, Accepted) and o.envelope.subject == "STUCK" for o in outcomes):
                hanging.set()
                await asyncio.Event().wait()  # a commit that never returns
            return await real_save(outcomes)

        monkeypatch.setattr(store, "save_batch", save_batch)
        await broker.publish(stuck)
        await asyncio.wait_for(hanging.wait(), 20)
        stopping = asyncio.get_running_loop().time()
    stopped_after_s = asyncio.get_running_loop().time() - stopping
    assert inst.runner is None and stopped_after_s < 5  # the deadline, not the handler, ended the stop
    # unacked, the message went back to the intake queue: the next instance gets it
    queue = await broker.queue("inbound")
    message = await queue.get(timeout=5, fail=False)
    assert message is not None and message.headers.get("x-delivery-count", 0) >= 1
    assert message.body == orjson.dumps(stuck)
    await message.ack()
