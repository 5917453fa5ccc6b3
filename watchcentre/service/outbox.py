"""What every path out of the service shares: the routed copies and their audit events, the group
commit (which announces each committed batch on the live feed in one message), dead-lettering with
its `rejected` record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import orjson
import structlog

from watchcentre.core.envelope import Envelope, Priority, Rejection, Routing
from watchcentre.core.ports import Clock, Metrics, OutboundCopy, Publisher, Store
from watchcentre.core.records import (
    SYSTEM_ACTOR,
    Accepted,
    AuditEvent,
    EventType,
    Outcome,
    Rejected,
    Status,
    body_digest,
)
from watchcentre.core.routing import copy_id

log = structlog.get_logger("watchcentre.service")

Commit = Callable[[Outcome], Awaitable[list[AuditEvent] | None]]
"""Records one outcome with its audit events (through the group commit); None: a duplicate."""

SaveBatch = Callable[[Sequence[Outcome]], Awaitable[Sequence[list[AuditEvent] | None]]]


def announcing(save: SaveBatch, publisher: Publisher) -> SaveBatch:
    """The group commit's flush: `save` a batch of outcomes, then announce every event it committed
    in one `P.events` message (not one per record, nor one per input)."""

    async def flush(outcomes: Sequence[Outcome]) -> Sequence[list[AuditEvent] | None]:
        committed = await save(outcomes)
        await announce(publisher, [e for events in committed if events for e in events])
        return committed

    return flush


async def announce(publisher: Publisher, events: Sequence[AuditEvent]) -> None:
    """Committed events on the live feed, best effort: the audit store is the record."""
    if not events:
        return
    try:
        await publisher.publish_events(events)
    except Exception as exc:
        log.warning("event_publish_failed", error=repr(exc))


class Outbox:
    def __init__(
        self, *, store: Store, publisher: Publisher, commit: Commit, metrics: Metrics, clock: Clock
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.commit = commit
        self.metrics = metrics
        self.clock = clock

    def copies(self, env: Envelope, routing: Routing, revision: int = 0) -> list[OutboundCopy]:
        """One published message for every recipient: the body (which names them all in `routing`)
        and the headers are the same for each, so one publish puts a copy in each recipient's queue.
        Its AMQP message_id is deterministic per (input, revision): a retry republishes the same id
        and each recipient drops the second copy in its own queue."""
        body = orjson.dumps({**env.model_dump(mode="json"), "routing": routing.model_dump(mode="json")})
        headers = {
            "x-watchcentre-sender": env.sender,
            "x-watchcentre-message-id": env.message_id,
            "x-watchcentre-priority": env.priority.value,
        }
        if revision:
            headers["x-watchcentre-revision"] = str(revision)  # a manual (re-)routing, not a duplicate
        if env.handling:
            headers["x-watchcentre-handling"] = env.handling  # the marking, readable without parsing the body
        prio = 5 if env.priority is Priority.URGENT else 0
        if not routing.recipients:
            return []
        keys = tuple(routing.recipients)
        return [OutboundCopy(keys, copy_id(env.sender, env.message_id, revision), body, headers, prio)]

    async def deliver(
        self,
        env: Envelope,
        routing: Routing,
        status: Status,
        reference: str | None,
        received_at: datetime,
        extra: Sequence[AuditEvent] = (),
    ) -> str | None:
        """Publish the copies (confirmed), then commit the message with its events and `extra` (the
        group commit announces them); the status, or None when a concurrent duplicate was recorded
        first."""
        copies = self.copies(env, routing)
        await self.publisher.publish_routed(copies)
        events = [*self._accepted_events(env, routing, status, reference, received_at, copies), *extra]
        committed = await self.commit(Accepted(env, routing, status, received_at, events))
        if committed is None:
            self.metrics.duplicate()
            log.info("duplicate", sender=env.sender, message_id=env.message_id)
            return None
        log.info(
            "routed" if status is Status.ROUTED else "triaged",
            sender=env.sender,
            message_id=env.message_id,
            reference=reference,
            crime_types=routing.crime_types,
            countries=routing.countries,
            recipients=routing.recipients,
            confidence=routing.confidence,
        )
        return status.value

    def _accepted_events(
        self,
        env: Envelope,
        routing: Routing,
        status: Status,
        reference: str | None,
        received_at: datetime,
        copies: Sequence[OutboundCopy],
    ) -> list[AuditEvent]:
        now = self.clock.now()
        ids = {"sender": env.sender, "message_id": env.message_id, "reference": reference}
        return [
            AuditEvent(
                at=received_at,
                type=EventType.RECEIVED,
                actor=env.sender,
                details={
                    "kind": env.kind.value,
                    "priority": env.priority.value,
                    "sent_at": env.sent_at.isoformat(),
                },
                **ids,
            ),
            AuditEvent(
                at=now,
                type=EventType.CLASSIFIED,
                actor=SYSTEM_ACTOR,
                details={
                    "crime_types": routing.crime_types,
                    "countries": routing.countries,
                    "confidence": routing.confidence,
                },
                **ids,
            ),
            AuditEvent(
                at=now,
                type=EventType.TRIAGED if status is Status.TRIAGE else EventType.ROUTED,
                actor=SYSTEM_ACTOR,
                details={
                    "recipients": routing.recipients,
                    "copies": {key: c.message_id for c in copies for key in c.routing_keys},
                    "confirmed": True,
                },
                **ids,
            ),
        ]

    async def reject(
        self, raw: bytes, rejection: Rejection, attempts: int, reference: str | None = None
    ) -> None:
        """Dead-letter `raw` with its reason, and record it `rejected` once."""
        headers = {"x-watchcentre-attempts": str(attempts)}
        if await self.store.seen_rejection(body_digest(raw)):
            # recorded once; dead-lettered again, or this input (a redelivery, a replay of a
            # dead letter that still fails) would end up neither routed nor dead-lettered
            await self.publisher.publish_dead(raw, rejection.reason, headers)
            self.metrics.duplicate()
            log.info("duplicate_rejection", sender=rejection.sender, message_id=rejection.message_id)
            return
        await self.publisher.publish_dead(raw, rejection.reason, headers)
        now = self.clock.now()
        event = AuditEvent(
            at=now,
            type=EventType.REJECTED,
            actor=SYSTEM_ACTOR,
            sender=rejection.sender,
            message_id=rejection.message_id,
            reference=reference,
            details={"field": rejection.field, "problem": rejection.problem, "size": len(raw)},
        )
        await self.commit(Rejected(raw, rejection, now, [event]))  # announced by the group commit
        self.metrics.rejected(rejection.field)
        log.info(
            "rejected",
            sender=rejection.sender,
            message_id=rejection.message_id,
            field=rejection.field,
            problem=rejection.problem,
        )

    async def announce(self, events: Sequence[AuditEvent]) -> None:
        """Events committed outside the group commit (an operator's), in one message."""
        await announce(self.publisher, events)
