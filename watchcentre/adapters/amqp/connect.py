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
from collections.abc import Sequence
from typing import Any, cast

import structlog
from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from yarl import URL

from watchcentre.core.ports import TransientError

log = structlog.get_logger("watchcentre.amqp")

RECONNECT_INTERVAL_S = 1.0
CONNECT_TIMEOUT_S = 5.0
"""Per attempt: a node whose host is gone (no refusal, no answer) must not hold the reconnection
for the operating system's TCP timeout (minutes) while other nodes are up."""

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
