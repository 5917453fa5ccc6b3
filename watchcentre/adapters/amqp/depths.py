"""Operations: queue depths for /metrics (issue 18)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import aiormq
from aio_pika.abc import AbstractRobustConnection

from watchcentre.adapters.amqp.connect import CHANNEL_GONE
from watchcentre.core.ports import TransientError


async def queue_depths(
    connection: AbstractRobustConnection, queues: Mapping[str, str]
) -> dict[str, int | None]:
    """Ready messages per queue (label → queue name), by passive declare on a short-lived channel;
    None for a queue that does not exist (the broker then closes the channel: the next one opens a
    new one). TransientError while the connection is down."""
    transport = connection.transport
    if transport is None or connection.is_closed:
        raise TransientError("broker connection is down")
    out: dict[str, int | None] = {}
    channel: aiormq.abc.AbstractChannel | None = None
    try:
        for label, name in queues.items():
            if channel is None or channel.is_closed:
                channel = await transport.connection.channel()
            try:
                ok = await channel.queue_declare(name, passive=True)
                out[label] = int(ok.message_count or 0)
            except aiormq.exceptions.ChannelNotFoundEntity:
                out[label] = None
    except CHANNEL_GONE as exc:
        raise TransientError(f"queue depths: {type(exc).__name__}: {exc}") from exc
    finally:
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(*CHANNEL_GONE):
                await channel.close()
    return out
