"""Senders authenticated by the broker, from the attacker's side, against the real RabbitMQ.

`watchcentre broker provision` creates the users of a test network (user names carry the test's
random prefix; every one is deleted afterwards; the guest user is never touched). A provisioned post
can write only to `P.intake` and read only its own queues; the service (running as its own
provisioned user, in strict trust) dead-letters a message whose broker user may not speak for its
`sender`; receipts go only to a queue the publisher owns."""

from __future__ import annotations

import argparse
import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq.exceptions import ChannelAccessRefused
from pydantic import SecretStr

from tests.integration.harness import Broker, envelope, running
from tests.integration.service_fixtures import CONFIG_DIR
from watchcentre.adapters.config_files import load_config
from watchcentre.adapters.rabbitmq_admin import RabbitAdmin
from watchcentre.cli_broker import _provision
from watchcentre.core.senders import grants
from watchcentre.settings import Settings

ADMIN_URL = "http://guest:guest@127.0.0.1:15672/"


def accounts(out: str) -> dict[str, str]:
    return {row["user"]: row["password"] for row in map(orjson.loads, out.splitlines()) if row}


class Network:
    """The provisioned users of one test: `url(sender)` connects as that sender's own user."""

    def __init__(self, prefix: str, config_dir: Path, passwords: dict[str, str]) -> None:
        self.prefix = prefix
        self.config_dir = config_dir
        self.passwords = passwords

    def user(self, who: str) -> str:
        return f"{self.prefix}-{who}"

    def url(self, who: str) -> str:
        return f"amqp://{self.user(who)}:{self.passwords[self.user(who)]}@127.0.0.1:5672/"


def provision_settings(prefix: str, config_dir: Path) -> Settings:
    return Settings(amqp_prefix=prefix, config_dir=str(config_dir), broker_admin_url=ADMIN_URL)  # type: ignore[arg-type]


@pytest.fixture
async def network(
    amqp_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[Network]:
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    (config_dir / "broker.yaml").write_text(
        f"user_prefix: {amqp_prefix}-\nservice_user: {amqp_prefix}-svc\ncentre: [{amqp_prefix}-centre]\n"
        f"gateways: {{{amqp_prefix}-gw: [madrid, rabat]}}\n",
        encoding="utf-8",
    )
    settings = provision_settings(amqp_prefix, config_dir)
    capsys.readouterr()
    try:
        assert await _provision(settings, argparse.Namespace(rotate=[], rotate_all=False)) == 0
        yield Network(amqp_prefix, config_dir, accounts(capsys.readouterr().out))
    finally:
        config = load_config(config_dir)
        async with RabbitAdmin(ADMIN_URL) as admin:
            for grant in grants(config.broker, config.network, amqp_prefix):
                await admin.delete_user(grant.user)


async def connect(url: str) -> aio_pika.abc.AbstractConnection:
    return await aio_pika.connect(url)


async def refused(
    connection: aio_pika.abc.AbstractConnection, attempt: Callable[[AbstractChannel], Awaitable[Any]]
) -> bool:
    """Whether the broker refuses `attempt` (ACCESS_REFUSED closes the channel it was tried on)."""
    channel = await connection.channel(publisher_confirms=True)
    try:
        await attempt(channel)
    except ChannelAccessRefused:
        return True
    await channel.close()
    return False


def message(body: dict[str, Any], **props: Any) -> aio_pika.Message:
    return aio_pika.Message(orjson.dumps(body), delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **props)


async def test_a_provisioned_post_reads_only_its_own_queues_and_writes_only_to_intake(
    network: Network, broker: Broker
) -> None:
    await broker.declare_topology()
    p = network.prefix
    rome = await connect(network.url("rome"))
    try:
        # what it may do: publish to the intake exchange (lands in P.inbound), read its own queue,
        # declare and read its own reply queue
        async def to_intake(ch: AbstractChannel) -> None:
            intake = await ch.get_exchange(f"{p}.intake", ensure=False)
            await intake.publish(
                message(envelope(sender="rome"), user_id=network.user("rome")), routing_key=""
            )

        assert not await refused(rome, to_intake)
        assert await broker.count("inbound") == 1

        async def own_queue(ch: AbstractChannel) -> None:
            await (await ch.get_queue(f"{p}.post.rome", ensure=False)).get(fail=False)

        async def own_reply_queue(ch: AbstractChannel) -> None:
            queue = await ch.declare_queue(f"{p}.reply.rome", durable=True)
            await queue.get(fail=False)

        assert not await refused(rome, own_queue)

        async def direct_reply_to(ch: AbstractChannel) -> None:  # its receipts, by construction its own
            async def ignore(_: AbstractIncomingMessage) -> None:
                return None

            await (await ch.get_queue("amq.rabbitmq.reply-to", ensure=False)).consume(ignore, no_ack=True)

        assert not await refused(rome, direct_reply_to)
        assert not await refused(rome, own_reply_queue)

        # what it may not do
        def read(queue: str) -> Callable[[AbstractChannel], Awaitable[Any]]:
            async def attempt(ch: AbstractChannel) -> None:
                await (await ch.get_queue(queue, ensure=False)).get(fail=False)

            return attempt

        def publish(exchange: str, key: str) -> Callable[[AbstractChannel], Awaitable[Any]]:
            async def attempt(ch: AbstractChannel) -> None:
                ex = ch.default_exchange if exchange == "" else await ch.get_exchange(exchange, ensure=False)
                await ex.publish(
                    message(envelope(sender="rome"), user_id=network.user("rome")), routing_key=key
                )

            return attempt

        async def watch_events(ch: AbstractChannel) -> None:  # bind its own queue to the audit feed
            queue = await ch.declare_queue(f"{p}.reply.rome", durable=True)
            await queue.bind(f"{p}.events", routing_key="#")

        async def server_named_queue(ch: AbstractChannel) -> None:
            await ch.declare_queue(exclusive=True)

        assert await refused(rome, read(f"{p}.post.madrid"))
        assert await refused(rome, read(f"{p}.reply.madrid"))
        assert await refused(rome, read(f"{p}.centre.triage"))
        assert await refused(rome, read(f"{p}.inbound"))
        assert await refused(rome, read(f"{p}.dead"))
        assert await refused(rome, publish(f"{p}.routed", "post.madrid"))
        assert await refused(rome, publish(f"{p}.events", "routed"))
        assert await refused(rome, publish("", f"{p}.post.madrid"))  # the default exchange: any queue
        assert await refused(rome, publish("", f"{p}.inbound"))
        assert await refused(rome, watch_events)
        assert await refused(rome, server_named_queue)
    finally:
        await rome.close()
        await broker.queue("reply.rome")
        assert broker.channel is not None
        await broker.channel.queue_delete(f"{p}.reply.rome")
    assert await broker.count("post.madrid") == 0 and await broker.count("post.rome") == 0


def rejected(events: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "rejected" and e["message_id"] == message_id]


async def test_a_sender_is_the_broker_user_that_published_it(
    network: Network, broker: Broker, service_settings: Settings
) -> None:
    """The service runs as its own provisioned user, in strict trust. Rome's user writing as madrid
    or as the centre, guest without user_id, a gateway beyond its senders: each dead-lettered with
    reason `sender` and audited `rejected`; the rightful users are routed."""
    settings = service_settings.model_copy(
        update={
            "broker_trust": "strict",
            "config_dir": str(network.config_dir),
            "amqp_url": SecretStr(network.url("svc")),
        }
    )
    users = {who: await connect(network.url(who)) for who in ("rome", "gw", "centre")}
    p = network.prefix

    async def send(who: str, body: dict[str, Any], **props: Any) -> None:
        channel = await users[who].channel(publisher_confirms=True)
        intake = await channel.get_exchange(f"{p}.intake", ensure=False)
        await intake.publish(message(body, user_id=network.user(who), **props), routing_key="")
        await channel.close()

    spoofs = {
        "rome as madrid": ("rome", envelope(sender="madrid", kind="information", subject="x", body="y")),
        "rome as the centre": ("rome", envelope(sender="centre", countries=["ES"])),
        "the gateway beyond its senders": ("gw", envelope(sender="rome", kind="information")),
    }
    rightful = {
        "rome as rome": ("rome", envelope(sender="rome", kind="information", subject="x", body="y")),
        "the gateway as madrid": ("gw", envelope(sender="madrid", kind="information", subject="x", body="y")),
        "the centre's user as the centre": ("centre", envelope(sender="centre", countries=["ES"])),
    }
    unsigned = envelope(sender="ofast", countries=["ES"])
    try:
        async with running(settings) as inst:
            for who, body in [*spoofs.values(), *rightful.values()]:
                await send(who, body)
            await broker.publish(unsigned)  # as guest, through the default exchange, no user_id
            ids = [b["message_id"] for _, b in [*spoofs.values(), *rightful.values()]] + [
                unsigned["message_id"]
            ]
            await broker.wait_events(lambda ev: all(any(e["message_id"] == i for e in ev) for i in ids))
            for case, (who, body) in spoofs.items():
                [event] = rejected(broker.events, body["message_id"])
                assert event["details"]["field"] == "sender", case
                assert network.user(who) in event["details"]["problem"], case
                stored = await inst.runtime.store.get_message(body["message_id"], body["sender"])
                assert stored is not None and stored.status.value == "rejected", case
            [event] = rejected(broker.events, unsigned["message_id"])
            assert event["details"]["field"] == "sender" and "no user_id" in event["details"]["problem"]
            for case, (_, body) in rightful.items():
                assert not rejected(broker.events, body["message_id"]), case
            dead = {orjson.loads(m.body)["message_id"]: m for m in await broker.drain("dead")}
            assert set(dead) == {b["message_id"] for _, b in spoofs.values()} | {unsigned["message_id"]}
            assert all((m.headers or {})["x-watchcentre-error"].startswith("sender: ") for m in dead.values())
            assert await broker.count("post.madrid") == 1  # the centre's own request; not rome's
    finally:
        for connection in users.values():
            await connection.close()


async def test_provision_is_idempotent_and_rotates_only_when_asked(
    network: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = provision_settings(network.prefix, network.config_dir)
    assert len(network.passwords) == 91 + 3  # every post and unit, the centre's, the gateway, the service
    assert await _provision(settings, argparse.Namespace(rotate=[], rotate_all=False)) == 0
    again = capsys.readouterr()
    assert again.out == "" and "0 created, 0 rotated, 94 kept" in again.err
    rome = await connect(network.url("rome"))  # the first password still works
    await rome.close()
    assert (
        await _provision(settings, argparse.Namespace(rotate=[network.user("rome")], rotate_all=False)) == 0
    )
    rotated = accounts(capsys.readouterr().out)
    assert (
        list(rotated) == [network.user("rome")]
        and rotated[network.user("rome")] != network.passwords[network.user("rome")]
    )
    with pytest.raises(Exception):  # noqa: B017 - the broker refuses the old password
        await connect(network.url("rome"))
    network.passwords.update(rotated)
    rome = await connect(network.url("rome"))
    await rome.close()


async def direct_receipts(
    channel: AbstractChannel, into: list[AbstractIncomingMessage], arrived: asyncio.Event
) -> None:
    """Consume the channel's direct reply-to pseudo-queue (before publishing with it)."""
    queue = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)

    async def on_receipt(m: AbstractIncomingMessage) -> None:
        into.append(m)
        arrived.set()

    await queue.consume(on_receipt, no_ack=True)


async def test_a_receipt_goes_only_to_a_queue_the_sender_owns(
    service_settings: Settings, broker: Broker
) -> None:
    """Development trust (guest speaks for every sender): still, a receipt never goes into another
    post's queue or another sender's reply queue; it goes to the direct reply-to of the publishing
    channel, or to the sender's own reply queue."""
    assert broker.channel is not None
    p = broker.prefix
    await broker.declare_topology()
    await broker.channel.declare_queue(f"{p}.reply.ofast", durable=True)
    await broker.channel.declare_queue(f"{p}.reply.madrid", durable=True)
    got: list[AbstractIncomingMessage] = []
    arrived = asyncio.Event()
    await direct_receipts(broker.channel, got, arrived)
    to_others = [envelope(sender="ofast", countries=["ES"]) for _ in range(2)]
    to_own = envelope(sender="ofast", countries=["ES"])
    direct = envelope(sender="ofast", countries=["ES"])
    try:
        async with running(service_settings):
            await broker.publish(to_others[0], reply_to=f"{p}.post.rabat")  # another post's queue
            await broker.publish(to_others[1], reply_to=f"{p}.reply.madrid")  # another sender's
            await broker.publish(to_own, reply_to=f"{p}.reply.ofast")
            await broker.wait_events(lambda ev: len([e for e in ev if e["type"] == "routed"]) >= 3)
            # the last, after the others were handled: once its receipt is in, theirs would be too
            await broker.publish(direct, reply_to="amq.rabbitmq.reply-to")
            await broker.wait_events(lambda ev: len([e for e in ev if e["type"] == "routed"]) >= 4)
            await asyncio.wait_for(arrived.wait(), 20)
        [receipt] = got
        assert orjson.loads(receipt.body)["message_id"] == direct["message_id"]
        assert (
            receipt.correlation_id == direct["message_id"]
            and orjson.loads(receipt.body)["status"] == "routed"
        )
        [own] = await broker.drain("reply.ofast")
        assert orjson.loads(own.body)["message_id"] == to_own["message_id"]
        assert await broker.count("post.rabat") == 0 and await broker.count("reply.madrid") == 0
    finally:
        await broker.channel.queue_delete(f"{p}.reply.ofast")
        await broker.channel.queue_delete(f"{p}.reply.madrid")
