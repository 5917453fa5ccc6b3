"""The case desk: opens cases, applies the lifecycle's transitions, and the deadline scheduler.

Speaks only to ports (Store, Publisher, Clock), like the routing service that uses it for AMQP, and
the HTTP adapter for its actions. Every change of a case is one conditional write (the case's version)
with its audit events in the same transaction; a lost race is retried on the fresh case.

The scheduler asks the store which alerts are due and raises each through a conditional UPDATE on its
flag (`raise_alert`): once per breach, across restarts and across instances. A raised alert is an
audit event, published on `P.events`, and an `alert` copy routed to `centre.triage`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog

from watchcentre.core import parties
from watchcentre.core.envelope import Envelope, Routing
from watchcentre.core.errors import DomainError
from watchcentre.core.handling import HandlingRules
from watchcentre.core.lifecycle import (
    CASE_EVENT_TYPES,
    CASE_OPENED,
    DEADLINE_WARNING,
    EVENT_TYPES,
    OVERDUE,
    Action,
    Case,
    DeadlineRules,
    InvalidTransition,
    Side,
    apply,
    new_case,
)
from watchcentre.core.network import CENTRE, Network
from watchcentre.core.ports import Clock, OutboundCopy, Publisher, ReferenceTaken, Store
from watchcentre.core.records import SYSTEM_ACTOR, AuditEvent, Status
from watchcentre.core.routing import TRIAGE, copy_id, restrict
from watchcentre.core.rules import RulesRef
from watchcentre.tasks import cancel_and_wait

log = structlog.get_logger("watchcentre.cases")


class CaseRefused(DomainError):
    """An action on a case that cannot be applied: the field at fault and why (dead letter, 409, 4xx).
    A conflict when the case's current state refuses it, else an invalid request."""

    def __init__(self, field: str, problem: str, current: str | None = None) -> None:
        super().__init__(field, problem)
        self.current = current
        self.kind = "conflict" if current is not None else "invalid"
        self.reference: str | None = None
        """The case it was about, when there is one (its timeline then shows the refusal)."""


class CaseNotFound(CaseRefused):
    def __init__(self, reference: str) -> None:
        super().__init__("reference", f"no case {reference}")
        self.kind = "not_found"


@dataclass(frozen=True, slots=True)
class Actor:
    side: Side
    name: str
    """Who, for the audit: `post:es`, `unit:ofast`, `operator:Jane` or a sender id."""


class CaseDesk:
    def __init__(
        self,
        *,
        store: Store,
        publisher: Publisher,
        clock: Clock,
        network: Network,
        rules: DeadlineRules,
        opener: Callable[[Case], Awaitable[tuple[Case, bool] | ReferenceTaken]] | None = None,
        handling: HandlingRules | None = None,
        current: RulesRef | None = None,
    ) -> None:
        self.store = store
        self.opener = opener
        """Opens one case through a batch (`Store.open_cases`); `Store.open_case` when None."""
        self.publisher = publisher
        self.clock = clock
        self._fixed = (network, rules, handling or HandlingRules())
        self._current = current
        """The rules in force (a reload swaps them): network, deadlines and markings are read there."""

    @property
    def network(self) -> Network:
        return self._current.current.network if self._current else self._fixed[0]

    @property
    def rules(self) -> DeadlineRules:
        return self._current.current.deadlines if self._current else self._fixed[1]

    @property
    def handling(self) -> HandlingRules:
        return self._current.current.handling if self._current else self._fixed[2]

    # -- who is who --------------------------------------------------------------------------------

    def side_of(self, case: Case, sender: str) -> Side | None:
        return parties.side_of(case, sender, self.network)

    def counterparts(self, case: Case, side: Side) -> tuple[list[str], list[str]]:
        """Who hears of an action by `side` (the other side), the case's marking applied; and why."""
        recipients = parties.counterparts(case, side, self.network)
        why = [f"to {r}: party to case {case.reference}" for r in recipients]
        return restrict(recipients, why, case.handling, self.handling)

    # -- opening -----------------------------------------------------------------------------------

    async def open_for(
        self, env: Envelope, routing: Routing, status: Status, at: datetime
    ) -> tuple[Case, AuditEvent]:
        """The case of a request (opened now, or earlier by the same request), and its `case_opened`
        event, for the caller to record with the request itself (one transaction: the case row alone
        is written here, without the audit writer lock). CaseRefused when the request names a
        reference another request already uses."""
        case = new_case(
            reference=env.reference or "",
            sender=env.sender,
            message_id=env.message_id,
            priority=env.priority.value,
            access=env.access,
            subject=env.subject,
            crime_types=routing.crime_types,
            countries=routing.countries,
            recipients=routing.recipients,
            handling=env.handling,
            triage=status is Status.TRIAGE,
            opened_at=at,
            rules=self.rules,
        )
        try:
            if self.opener is None:
                opened, new = await self.store.open_case(case, [])
            else:
                result = await self.opener(case)
                if isinstance(result, ReferenceTaken):
                    raise result
                opened, new = result
        except ReferenceTaken as taken:
            raise CaseRefused(
                "reference", f"{taken.existing.reference} is already the reference of another request"
            ) from None
        if new:
            log.info(
                "case_opened", reference=opened.reference, state=opened.state.value, due_at=str(opened.due_at)
            )
        event = AuditEvent(
            at=opened.opened_at,
            type=CASE_OPENED,
            actor=SYSTEM_ACTOR,
            reference=opened.reference,
            details={
                "request": {"sender": env.sender, "message_id": env.message_id},
                "state": opened.state.value,
                "access": opened.access,
                "ack_due_at": opened.ack_due_at.isoformat(),
                "due_at": opened.due_at.isoformat() if opened.due_at else None,
            },
        )
        return opened, event

    # -- acting ------------------------------------------------------------------------------------

    async def act(
        self,
        reference: str,
        action: Action,
        actor: Actor,
        *,
        expected_at: datetime | None = None,
        reason: str | None = None,
        cause: tuple[str, str] | None = None,
        at: datetime | None = None,
    ) -> tuple[Case, list[AuditEvent]]:
        """Apply one action; the case after it and the committed events (none when `cause`, the
        (sender, message_id) of the message asking for it, was already applied: a redelivery).
        CaseNotFound, or CaseRefused carrying the current state."""
        for _ in range(5):
            case = await self.store.get_case(reference)
            if case is None:
                raise CaseNotFound(reference)
            if cause is not None and await self._already_applied(cause):
                return case, []
            when = at or self.clock.now()
            try:
                after, details = apply(
                    case,
                    action,
                    actor.side,
                    when,
                    expected_at=expected_at,
                    reason=reason,
                    extend_at_most=self.rules.extend_at_most.delta,
                )
            except InvalidTransition as exc:
                state = exc.current.value if exc.field == "state" else None  # a value at fault: 4xx
                raise CaseRefused(exc.field, exc.problem, state) from None
            event = AuditEvent(
                at=when,
                type=EVENT_TYPES[action],
                actor=actor.name,
                sender=cause[0] if cause else None,
                message_id=cause[1] if cause else None,
                reference=reference,
                details=details,
            )
            committed = await self.store.update_case(
                after, case.version, [event], reset_alerts=action is Action.EXTEND
            )
            if committed is None:
                continue  # another writer changed the case first: look again
            log.info("case_changed", reference=reference, action=action.value, state=after.state.value)
            await self.announce(committed)
            return after.model_copy(update={"version": case.version + 1}), committed
        raise CaseRefused("state", "the case changed repeatedly while being updated: try again")

    async def notify(
        self,
        case: Case,
        side: Side,
        action: Action,
        sender: str,
        event: AuditEvent,
        reason: str | None = None,
    ) -> None:
        """Tell the other side over AMQP of an action taken over HTTP: the copy an ack, status or
        clarification envelope from `sender` would have produced (AMQP message_id from the event's seq,
        so a recipient drops a duplicate). Best effort after the commit: the audit is the record."""
        recipients, why = self.counterparts(case, side)
        message_id = f"{case.reference}/{event.seq}"
        kind, extra = _as_envelope(action, case, event, reason)
        body: dict[str, Any] = {
            "message_id": message_id,
            "sender": sender,
            "kind": kind,
            "subject": f"{case.reference}: {event.type.replace('_', ' ')}",
            "body": reason or "",  # the audit holds only its digest
            "sent_at": event.at.isoformat(),
            "reference": case.reference,
            "priority": case.priority,
            "in_reply_to": case.message_id,
            **({"handling": case.handling} if case.handling else {}),
            **extra,
            "routing": {
                "crime_types": case.crime_types,
                "countries": case.countries,
                "recipients": recipients,
                "explanation": [f"{action.value} by {event.actor}", *why],
                "confidence": 1.0,
            },
        }
        raw = orjson.dumps(body)
        headers = {"x-watchcentre-sender": sender, "x-watchcentre-message-id": message_id}
        if case.handling:
            headers["x-watchcentre-handling"] = case.handling
        copies = (
            [OutboundCopy(tuple(recipients), copy_id(sender, message_id), raw, headers)] if recipients else []
        )
        try:
            await self.publisher.publish_routed(copies)
        except Exception as exc:
            log.warning("notify_failed", reference=case.reference, error=repr(exc))

    async def _already_applied(self, cause: tuple[str, str]) -> bool:
        events = await self.store.audit(sender=cause[0], message_id=cause[1], limit=100)
        return any(e.type in CASE_EVENT_TYPES and e.type != CASE_OPENED for e in events)

    async def announce(self, events: Sequence[AuditEvent]) -> None:
        try:
            await self.publisher.publish_events(events)
        except Exception as exc:  # the audit is committed; the live feed is best effort
            log.warning("event_publish_failed", error=repr(exc))

    # -- deadlines ---------------------------------------------------------------------------------

    async def raise_due(self, now: datetime) -> list[AuditEvent]:
        """Raise every alert due by `now` and not yet raised (by this instance or another)."""
        raised: list[AuditEvent] = []
        for reference, alert in await self.store.due_alerts(now):
            case = await self.store.get_case(reference)
            if case is None:
                continue
            deadline = "acknowledgement" if alert == "ack_overdue" else "answer"
            due = case.ack_due_at if alert == "ack_overdue" else case.due_at
            event = AuditEvent(
                at=now,
                type=DEADLINE_WARNING if alert == "warning" else OVERDUE,
                actor=SYSTEM_ACTOR,
                sender=case.sender,
                message_id=case.message_id,
                reference=reference,
                details={
                    "deadline": deadline,
                    "due_at": due.isoformat() if due else None,
                    "state": case.state.value,
                    "recipients": case.recipients,
                },
            )
            committed = await self.store.raise_alert(reference, alert, now, event)
            if committed is None:
                continue  # raised meanwhile by another instance, or no longer due
            raised.append(committed)
            log.warning(committed.type, reference=reference, deadline=deadline, due_at=str(due))
            await self.announce([committed])
            try:
                await self.publisher.publish_routed([self._alert_copy(case, alert, committed)])
            except Exception as exc:  # recorded and on P.events; the triage copy is best effort
                log.warning("alert_publish_failed", reference=reference, error=repr(exc))
        return raised

    def _alert_copy(self, case: Case, alert: str, event: AuditEvent) -> OutboundCopy:
        what = {
            "ack_overdue": "not acknowledged in time",
            "warning": "answer deadline approaching",
            "overdue": "answer overdue",
        }[alert]
        message_id = f"{case.reference}/{alert}/{event.seq}"  # a re-armed alert is a new message
        due = event.details.get("due_at")
        body: dict[str, Any] = {
            "message_id": message_id,
            "sender": CENTRE,
            "kind": "alert",
            "subject": f"{case.reference}: {what}",
            "body": f"Case {case.reference} ({case.subject}) is {case.state.value}; due {due}; "
            f"recipients {', '.join(case.recipients)}.",
            "sent_at": event.at.isoformat(),
            "reference": case.reference,
            "priority": case.priority,
            "routing": {
                "crime_types": case.crime_types,
                "countries": case.countries,
                "recipients": [TRIAGE],
                "explanation": [f"to {TRIAGE}: {event.type} ({what})"],
                "confidence": 1.0,
            },
        }
        headers = {
            "x-watchcentre-sender": CENTRE,
            "x-watchcentre-message-id": message_id,
            "x-watchcentre-event": event.type,
        }
        return OutboundCopy((TRIAGE,), copy_id(CENTRE, message_id), orjson.dumps(body), headers, 5)


class DeadlineScheduler:
    """Ticks every `interval` seconds; `tick(now)` is what tests call with their own time."""

    def __init__(self, desk: CaseDesk, clock: Clock, interval: float) -> None:
        self.desk = desk
        self.clock = clock
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def tick(self, now: datetime | None = None) -> list[AuditEvent]:
        return await self.desk.raise_due(now or self.clock.now())

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # a database outage must not end the scheduler
                log.warning("deadline_tick_failed", error=repr(exc))
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deadline-scheduler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)


def _as_envelope(
    action: Action, case: Case, event: AuditEvent, reason: str | None
) -> tuple[str, dict[str, Any]]:
    """The kind and fields of the envelope that asks for `action` (docs/lifecycle.md)."""
    if action is Action.ACK:
        return "ack", {}
    if action is Action.CLARIFY_REQUEST:
        return "clarification", {"clarification": "request"}
    if action is Action.CLARIFY_ANSWER:
        return "clarification", {"clarification": "answer"}
    if action is Action.EXTEND:
        return "status", {
            "expected_at": event.details.get("expected_at"),
            "reason": reason.strip() if reason else None,
        }
    return "status", {
        "state": case.state.value,
        **({"reason": reason} if reason else {}),
    }
