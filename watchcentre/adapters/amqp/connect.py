"""The broker connection, and what every part of this adapter treats as "the channel is gone".

The connection is robust: after a broker restart or a dropped connection aio-pika reconnects,
re-declares what was declared on it (the intake queue is declared on the consuming channel too, so
its consumer is restored) and restarts the consumer by itself. A publish that cannot be confirmed
(channel gone, connection lost, timeout) raises TransientError; an ack or nack on a channel that is
gone is dropped, since the broker has already returned that message to the queue.

A cluster is given as several addresses (`WATCHCENTRE_AMQP_URL`, comma-separated). aio-pika's
robust connection takes one URL; `ClusterConnection` moves it to the next address each time a
connection is lost or an attempt fails, so the reconnection goes round the nodes until one answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

import aiormq
import structlog
from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from yarl import URL

from watchcentre.core.ports import TransientError

log = structlog.get_logger("watchcentre.amqp")

RECONNECT_INTERVAL_S = 1.0
CONNECT_TIMEOUT_S = 5.0
"""Per attempt: a node whose host is gone (no refusal, no answer) must not hold the reconnection
for the operating system's TCP timeout (minutes) while other nodes are up."""
REOPEN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0

# What a publish, ack or nack raises when the channel or the connection is gone (or going).
CHANNEL_GONE: tuple[type[BaseException], ...] = (
    TimeoutError,
    OSError,
    AMQPError,
    ChannelInvalidStateError,
)


class ClusterConnection(RobustConnection):
    """A robust connection over the nodes of one cluster, tried in turn (round robin): the address
    moves on whenever a connection closes or an attempt fails (aio-pika calls
    `_on_connection_close` for both), and the robust reconnection then dials the next node."""

    def __init__(self, addresses: Sequence[URL], **kwargs: Any) -> None:
        super().__init__(addresses[0], **kwargs)
        self.addresses = list(addresses)
        self._at = 0

    @property
    def node(self) -> str:
        """host:port of the address in use (or next tried), never the credentials."""
        return f"{self.url.host}:{self.url.port}"

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        await super()._on_connection_close(closing)  # its log line names the address lost
        if len(self.addresses) > 1 and not self.close_called:
            lost = self.node
            self._at = (self._at + 1) % len(self.addresses)
            self.url = self.addresses[self._at]  # read by the next attempt, reconnect_interval later
            log.warning("broker_address_next", lost=lost, next=self.node)

    async def _on_connected(self) -> None:
        await super()._on_connected()
        log.info("broker_connected", node=self.node)


async def connect(urls: str | Sequence[str], name: str = "watchcentre") -> AbstractRobustConnection:
    """A robust connection; `name` is its connection_name, as `rabbitmqctl list_connections` shows it.
    With several addresses, the first that answers is used (in the order given)."""
    addresses = [URL(u) for u in ([urls] if isinstance(urls, str) else urls)]
    failures: list[str] = []
    for start in range(len(addresses)):
        connection = ClusterConnection(
            addresses[start:] + addresses[:start],
            client_properties={"connection_name": name},
            reconnect_interval=RECONNECT_INTERVAL_S,
        )
        try:
            await connection.connect(timeout=CONNECT_TIMEOUT_S)
            return connection
        except (OSError, AMQPError) as exc:
            failures.append(f"{addresses[start].host}:{addresses[start].port}: {type(exc).__name__}")
            await connection.close()
    raise TransientError(f"cannot reach RabbitMQ: {'; '.join(failures)}")


def user_of(connection: AbstractRobustConnection) -> str | None:
    """The connection's broker user (aio-pika keeps its URL on the concrete class only)."""
    url = getattr(connection, "url", None)
    return cast(str | None, url.user) if url is not None else None


class OwnChannel:
    """A channel this adapter opens on the connection when it needs one, and drops when it closes.

    The publisher's channels are not aio-pika robust channels: a robust channel reopened after the
    broker closed it re-declares everything ever declared on it first, and when one of those declares
    fails (in a leader election) it stays closed, with the connection up, until the connection is
    lost. Here a closed channel is simply replaced by a new one on the next publish; the queues it
    published to are durable and need no re-declaring."""

    def __init__(self, connection: AbstractRobustConnection, *, confirms: bool) -> None:
        self._connection = connection
        self._confirms = confirms
        self._channel: aiormq.Channel | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> aiormq.Channel:
        """The open channel, or a new one (waiting for a reconnection: the caller bounds the wait)."""
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                await self._connection.ready()
                transport = self._connection.transport
                if transport is None or transport.connection.is_closed:
                    raise ChannelInvalidStateError("no connection to the broker")
                try:
                    opened = await transport.connection.channel(
                        publisher_confirms=self._confirms, on_return_raises=self._confirms
                    )
                except RuntimeError as exc:  # the connection closed under us: transient, as above
                    raise ChannelInvalidStateError(f"no connection to the broker: {exc}") from exc
                self._channel = cast(aiormq.Channel, opened)
            return self._channel

    async def drop(self, channel: aiormq.Channel) -> None:
        """Close `channel`; if it is the current one, the next `get` opens a new one. (A nack that
        arrives late from a channel already replaced must not close its successor.)"""
        if self._channel is channel:
            self._channel = None
        if not channel.is_closed:
            with contextlib.suppress(*CHANNEL_GONE):  # TimeoutError included
                async with asyncio.timeout(CLOSE_TIMEOUT_S):  # on a connection gone, no answer
                    # with an error, not aiormq's default CancelledError, which it would throw into
                    # every publish still waiting on the channel and end their handlers silently
                    await channel.close(ChannelInvalidStateError("channel replaced"))

    async def close(self) -> None:
        if self._channel is not None:
            await self.drop(self._channel)


class ChannelWatch:
    """Reopens a robust channel left closed while its connection is up.

    aio-pika reopens a channel the broker closed, but if that reopen fails (a declare it repeats fails
    during a leader election) it does not try again until the connection itself is lost: the consumer
    would stay silent. A channel seen closed at two checks in a row (aio-pika's own reopen had its
    chance) is reopened here, and the attempt logged; it is tried again at each check until it works."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        channels: Mapping[str, AbstractRobustChannel],
        interval_s: float = 2.0,
    ) -> None:
        self._connection = connection
        self._channels = channels
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="channel-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        closed_at: dict[str, float] = {}
        while True:
            await asyncio.sleep(self._interval_s)
            if self._connection.is_closed or not self._connection.connected.is_set():
                closed_at.clear()  # the connection's own recovery reopens every channel
                continue
            for name, channel in self._channels.items():
                if not channel.is_closed:
                    closed_at.pop(name, None)
                    continue
                since = closed_at.setdefault(name, time.monotonic())
                if time.monotonic() - since < self._interval_s:
                    continue
                error = await self._restore(channel)
                if error is not None:
                    log.warning("channel_reopen_failed", channel=name, error=error)
                    continue
                log.warning("channel_reopened", channel=name, closed_s=round(time.monotonic() - since, 1))
                closed_at.pop(name, None)

    @staticmethod
    async def _restore(channel: AbstractRobustChannel) -> str | None:
        """Reopen `channel` through aio-pika's own restore (under its lock: never beside its own
        reopen in progress); None when it is open again, else why not. Nothing ends the watch but
        its stop."""
        try:
            async with asyncio.timeout(REOPEN_TIMEOUT_S):
                await channel.restore()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return "CancelledError (the channel was closed during the reopen)"
        except Exception as exc:  # whatever it was, the next check tries again
            return f"{type(exc).__name__}: {exc}"
        return "still closed after the restore" if channel.is_closed else None
