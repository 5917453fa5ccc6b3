"""Dead letters in `P.dead`: what one carries, browsing, and the one way back to `P.inbound`; the
`watchcentre dead` command's list, replay and announce."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from watchcentre.adapters.amqp.connect import user_of
from watchcentre.adapters.amqp.publisher import ERROR_HEADER, PUBLISH_TIMEOUT_S, AmqpPublisher
from watchcentre.adapters.amqp.topology import Names
from watchcentre.core.records import AuditEvent

_T = TypeVar("_T")


def dead_letter_info(headers: Mapping[str, Any] | None) -> str | None:
    """The reason a dead letter carries: ours, or the broker's delivery-limit mark."""
    if not headers:
        return None
    reason = headers.get(ERROR_HEADER)
    if isinstance(reason, bytes):
        return reason.decode("utf-8", "replace")
    if isinstance(reason, str):
        return reason
    if headers.get("x-death") or headers.get("x-first-death-reason"):
        return f"broker dead-lettered: {headers.get('x-first-death-reason', 'delivery limit')}"
    return None


REPLAYED_HEADER = "x-watchcentre-replayed"


@dataclass(frozen=True)
class DeadLetter:
    """One message in `P.dead`. `id` is derived from its bytes: stable from one listing to the next."""

    id: str
    reason: str | None
    sender: str | None
    message_id: str | None
    size: int

    @classmethod
    def of(cls, message: AbstractIncomingMessage) -> DeadLetter:
        sender = message_id = None
        with contextlib.suppress(ValueError):
            decoded = orjson.loads(message.body)
            if isinstance(decoded, dict):
                sender = decoded.get("sender") if isinstance(decoded.get("sender"), str) else None
                message_id = decoded.get("message_id") if isinstance(decoded.get("message_id"), str) else None
        return cls(
            id=dead_letter_id(message.body),
            reason=dead_letter_info(message.headers),
            sender=sender,
            message_id=message_id,
            size=len(message.body),
        )


def dead_letter_id(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


async def list_dead(
    connection: AbstractRobustConnection, names: Names, limit: int = 1000
) -> list[DeadLetter]:
    """Browse `P.dead` without removing anything (see `browse`)."""
    return await browse(connection, names, limit, DeadLetter.of)


async def browse(
    connection: AbstractRobustConnection,
    names: Names,
    limit: int,
    read: Callable[[AbstractIncomingMessage], _T],
) -> list[_T]:
    """Up to `limit` messages of `P.dead`, each through `read`, without removing anything: every
    message taken is handed back, in order, when the browsing channel closes."""
    channel = await connection.channel(publisher_confirms=False)
    try:
        queue = await channel.declare_queue(names.dead, passive=True, robust=False)
        total = queue.declaration_result.message_count or 0
        out: list[_T] = []
        while len(out) < min(total, limit):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            out.append(read(message))
        return out
    finally:
        await channel.close()


async def replay_dead(
    connection: AbstractRobustConnection,
    names: Names,
    ids: set[str] | None,
    on_replayed: Callable[[DeadLetter], Awaitable[None]] | None = None,
) -> list[DeadLetter]:
    """Move dead letters (those whose id is in `ids`, or all when None) back to `P.inbound`.

    Each is re-published (persistent, confirmed), then `on_replayed` records it (the audit), and
    only then is it acked on `P.dead`: a dead letter never leaves `P.dead` without its record. A
    crash (or a failed record) in between leaves it in both places; the service routes a
    (sender, message_id) once, so a second replay only produces an ack. An input that fails again
    is dead-lettered again."""
    return await requeue_dead(
        connection, names, lambda letter_id: ids is None or letter_id in ids, DeadLetter.of, on_replayed
    )


async def requeue_dead(
    connection: AbstractRobustConnection,
    names: Names,
    wanted: Callable[[str], bool],
    read: Callable[[AbstractIncomingMessage], _T],
    on_moved: Callable[[_T], Awaitable[None]] | None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    first_only: bool = False,
) -> list[_T]:
    """The one way a dead letter goes back to `P.inbound`: each letter whose id is `wanted` is
    re-published (persistent, confirmed; `body` instead of its own bytes when given), `on_moved`
    records it, and only then is it acked on `P.dead`. The others are left unacked: back in
    `P.dead`, in order, when the channel closes.

    It goes back under the service's own broker user (`user_id`), which is trusted for every sender:
    an operator's replay vouches for the letter, and is audited."""
    channel = await connection.channel(publisher_confirms=True)
    user = user_of(connection)
    moved: list[_T] = []
    try:
        queue = await channel.declare_queue(names.dead, passive=True, robust=False)
        total = queue.declaration_result.message_count or 0
        for _ in range(total):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            letter_id = dead_letter_id(message.body)
            if not wanted(letter_id):
                continue
            item = read(message)
            await channel.default_exchange.publish(
                aio_pika.Message(
                    message.body if body is None else body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    headers={REPLAYED_HEADER: letter_id, **(headers or {})},
                    user_id=user,
                ),
                routing_key=names.inbound,
                mandatory=True,
                timeout=PUBLISH_TIMEOUT_S,
            )
            if on_moved is not None:
                await on_moved(item)
            await message.ack()
            moved.append(item)
            if first_only:
                break
        return moved
    finally:
        await channel.close()


def dead_lettered_at(message: AbstractIncomingMessage) -> datetime | None:
    """When it was dead-lettered: our publish's timestamp, else the broker's `x-death` time."""
    if message.timestamp is not None:
        return message.timestamp if message.timestamp.tzinfo else message.timestamp.replace(tzinfo=UTC)
    deaths = (message.headers or {}).get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        at = deaths[0].get("time")
        if isinstance(at, datetime):
            return at if at.tzinfo else at.replace(tzinfo=UTC)
    return None


async def drop_dead_before(
    connection: AbstractRobustConnection,
    names: Names,
    cutoff: datetime,
    record: Callable[[list[DeadLetter]], Awaitable[None]] | None,
) -> tuple[list[DeadLetter], int]:
    """Take out of `P.dead` (ack, not re-published) every dead letter dead-lettered before `cutoff`
    (retention; the store keeps its rejection and digest, the raw bytes by their own limit): `record`
    (the audit) first, then the acks; without `record` (a dry run) nothing is taken. The others go
    back, in order, when the channel closes. Returns the letters dropped (or that would be), and how
    many carry no date (kept: a person must look at them)."""
    channel = await connection.channel(publisher_confirms=False)
    dropped: list[tuple[DeadLetter, AbstractIncomingMessage]] = []
    undated = 0
    try:
        try:
            queue = await channel.declare_queue(names.dead, passive=True, robust=False)
        except aio_pika.exceptions.ChannelClosed:  # no P.dead yet: the service never ran here
            return [], 0
        total = queue.declaration_result.message_count or 0
        for _ in range(total):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            at = dead_lettered_at(message)
            if at is None:
                undated += 1
            elif at < cutoff:
                dropped.append((DeadLetter.of(message), message))
        if record is not None and dropped:
            await record([letter for letter, _ in dropped])
            for _, message in dropped:
                await message.ack()
        return [letter for letter, _ in dropped], undated
    finally:
        await channel.close()


async def announce(connection: AbstractRobustConnection, names: Names, events: Sequence[AuditEvent]) -> None:
    """Publish operator events (e.g. `replayed`) on `P.events`, as the service does its own."""
    publisher = AmqpPublisher(connection, names)
    try:
        await publisher.publish_events(events)
    finally:
        await publisher.close()
