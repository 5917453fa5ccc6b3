"""The console's `DeadLetters` port on `P.dead`: dead letters as a work queue."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from watchcentre.adapters.amqp.dead_letters import DeadLetter, browse, requeue_dead
from watchcentre.adapters.amqp.topology import Names
from watchcentre.core.records import DeadLetterView


class AmqpDeadLetters:
    """The `DeadLetters` port on `P.dead`: browse it, and re-inject one letter (original or corrected)."""

    def __init__(self, connection: AbstractRobustConnection, names: Names) -> None:
        self._connection = connection
        self._names = names
        self._lock = asyncio.Lock()  # one re-injection at a time per instance: no double take

    async def list(self, limit: int = 200) -> list[DeadLetterView]:
        # Browsing holds the letters (unacked) until the channel closes: not while re-injecting here.
        async with self._lock:
            return await browse(self._connection, self._names, limit, _view)

    async def reinject(
        self,
        letter_id: str,
        body: bytes | None,
        headers: Mapping[str, str],
        on_reinjected: Callable[[DeadLetterView], Awaitable[None]],
    ) -> DeadLetterView | None:
        # A letter another console (on another instance) is browsing is briefly out of sight (held
        # unacked by its channel): look again a few times before saying it is not there.
        for delay in (0.0, 0.2, 0.5, 1.0):
            if delay:
                await asyncio.sleep(delay)
            found = await self._reinject_once(letter_id, body, headers, on_reinjected)
            if found is not None:
                return found
        return None

    async def _reinject_once(
        self,
        letter_id: str,
        body: bytes | None,
        headers: Mapping[str, str],
        on_reinjected: Callable[[DeadLetterView], Awaitable[None]],
    ) -> DeadLetterView | None:
        async with self._lock:
            found = await requeue_dead(
                self._connection,
                self._names,
                lambda found_id: found_id == letter_id,
                _view,
                on_reinjected,
                body=body,
                headers=headers,
                first_only=True,
            )
        return found[0] if found else None


def _view(message: AbstractIncomingMessage) -> DeadLetterView:
    d = DeadLetter.of(message)
    return DeadLetterView(
        id=d.id,
        reason=d.reason,
        sender=d.sender,
        message_id=d.message_id,
        size=d.size,
        digest=hashlib.sha256(message.body).hexdigest(),
        text=message.body.decode("utf-8", "replace"),
        arrived_at=message.timestamp,
    )
