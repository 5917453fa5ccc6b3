"""The broker connection, and what every part of this adapter treats as "the channel is gone".

The connection is robust: after a broker restart or a dropped connection aio-pika reconnects,
re-declares what was declared on it (the intake queue is declared on the consuming channel too, so
its consumer is restored) and restarts the consumer by itself. A publish that cannot be confirmed
(channel gone, connection lost, timeout) raises TransientError; an ack or nack on a channel that is
gone is dropped, since the broker has already returned that message to the queue.
"""

from __future__ import annotations

from typing import cast

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPError, ChannelInvalidStateError

from watchcentre.core.ports import TransientError

RECONNECT_INTERVAL_S = 1.0

# What a publish, ack or nack raises when the channel or the connection is gone (or going).
CHANNEL_GONE: tuple[type[BaseException], ...] = (
    TimeoutError,
    OSError,
    AMQPError,
    ChannelInvalidStateError,
)


async def connect(url: str, name: str = "watchcentre") -> AbstractRobustConnection:
    """A robust connection; `name` is its connection_name, as `rabbitmqctl list_connections` shows it."""
    try:
        return await aio_pika.connect_robust(
            url, client_properties={"connection_name": name}, reconnect_interval=RECONNECT_INTERVAL_S
        )
    except (OSError, AMQPError) as exc:
        raise TransientError(f"cannot reach RabbitMQ: {type(exc).__name__}") from exc


def user_of(connection: AbstractRobustConnection) -> str | None:
    """The connection's broker user (aio-pika keeps its URL on the concrete class only)."""
    url = getattr(connection, "url", None)
    return cast(str | None, url.user) if url is not None else None
