"""What the console's operator watches and marks: deadline alerts until acknowledged, the centre's
inbox with its read / handled marks, and messages the operator writes. Every mark is an audit
event (the record, visible to every operator); nothing here keeps state of its own. Refusals are
domain errors (core/errors.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from watchcentre.core.errors import Conflict, Invalid, NotFound
from watchcentre.core.lifecycle import Case
from watchcentre.core.network import CENTRE
from watchcentre.core.ports import Clock, Store
from watchcentre.core.records import AuditEvent, CaseCursor, EventType, MessageQuery, StoredMessage
from watchcentre.core.routing import CENTRE_INBOX
from watchcentre.core.watches import WatchHit
from watchcentre.service.operator import OperatorCommands
from watchcentre.service.outbox import Outbox
from watchcentre.service.submit import Submissions

log = structlog.get_logger("watchcentre.service")

ALERTS: dict[str, str] = {"ack_overdue": "acknowledgement", "overdue": "answer", "warning": "answer"}
"""A case's alerts (the store's names) → which deadline each is about."""
WATCH_HIT_ALERT = "watch_hit"
"""The `alert` an acknowledged watch hit's `alert_acknowledged` event names."""
WATCH_HITS_LIMIT = 200
INBOX_MARKS = ("read", "handled")
INBOX_LIMIT = 200
COMPOSE_KINDS = ("information", "alert", "request")


def _raised_at(case: Case, alert: str) -> datetime | None:
    return {
        "ack_overdue": case.ack_overdue_raised_at,
        "overdue": case.overdue_raised_at,
        "warning": case.warning_raised_at,
    }[alert]


def _due_at(case: Case, alert: str) -> datetime | None:
    return case.ack_due_at if alert == "ack_overdue" else case.due_at


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """A raised alert no operator has acknowledged yet."""

    case: Case
    alert: str
    deadline: str
    raised_at: datetime
    due_at: datetime | None


@dataclass(frozen=True, slots=True)
class InboxItem:
    message: StoredMessage
    marks: dict[str, AuditEvent]
    """mark → the event that set it (the latest for that mark, when it is set)."""


class WatchCommands:
    def __init__(
        self,
        *,
        store: Store,
        outbox: Outbox,
        clock: Clock,
        submissions: Submissions,
        operator: OperatorCommands,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.clock = clock
        self.submissions = submissions
        self.operator = operator

    # -- deadline alerts -----------------------------------------------------------------------------

    async def _open_cases(self) -> list[Case]:
        out: list[Case] = []
        before: CaseCursor | None = None
        while True:
            page = await self.store.list_cases(open_only=True, before=before, limit=1000)
            out.extend(page)
            if len(page) < 1000:
                return out
            before = CaseCursor(page[-1].opened_at, page[-1].reference)

    async def _acknowledged(self, reference: str) -> dict[tuple[str, str], AuditEvent]:
        """(alert, raised_at) → the acknowledgement, for one case."""
        events = await self.store.audit(
            reference=reference, event_type=EventType.ALERT_ACKNOWLEDGED, limit=500
        )
        return {(str(e.details.get("alert")), str(e.details.get("raised_at"))): e for e in events}

    async def alerts(self) -> list[PendingAlert]:
        """Every alert raised on an open case and not acknowledged, oldest raised first. Derived from
        the cases' alert flags and the `alert_acknowledged` events: it survives a restart or reload."""
        pending: list[PendingAlert] = []
        for case in await self._open_cases():
            raised = [(a, at) for a in ALERTS if (at := _raised_at(case, a)) is not None]
            if not raised:
                continue
            done = await self._acknowledged(case.reference)
            for alert, at in raised:
                if (alert, at.isoformat()) not in done:
                    pending.append(PendingAlert(case, alert, ALERTS[alert], at, _due_at(case, alert)))
        return sorted(pending, key=lambda p: (p.raised_at, p.case.reference))

    async def acknowledge_alert(self, *, reference: str, alert: str, actor: str) -> AuditEvent:
        """Record that `actor` saw the alert (audited, announced on the live feed). NotFound when the
        case has no such alert raised; Conflict when an operator acknowledged it already."""
        if alert not in ALERTS:
            raise Invalid("alert", f"one of {', '.join(ALERTS)}")
        case = await self.store.get_case(reference)
        if case is None:
            raise NotFound("reference", "no such case")
        raised = _raised_at(case, alert)
        if raised is None:
            raise NotFound("alert", "this alert is not raised on the case (or was re-armed by an extension)")
        done = (await self._acknowledged(reference)).get((alert, raised.isoformat()))
        if done is not None:
            raise Conflict("alert", f"already acknowledged by {done.actor} at {done.at.isoformat()}")
        due = _due_at(case, alert)
        event = AuditEvent(
            at=self.clock.now(),
            type=EventType.ALERT_ACKNOWLEDGED,
            actor=actor,
            sender=case.sender,
            message_id=case.message_id,
            reference=reference,
            details={
                "alert": alert,
                "deadline": ALERTS[alert],
                "raised_at": raised.isoformat(),
                "due_at": due.isoformat() if due else None,
            },
        )
        committed = await self.store.append_audit([event])
        log.info("alert_acknowledged", reference=reference, alert=alert, actor=actor)
        await self.outbox.announce(committed)
        return committed[0]

    # -- watch-list hits: alerts too, until an operator acknowledges them (docs/search.md) -------------

    async def watch_hits(self) -> list[tuple[WatchHit, StoredMessage]]:
        """The watch hits not yet acknowledged, oldest first, each with its message."""
        return await self.store.pending_watch_hits(WATCH_HITS_LIMIT)

    async def acknowledge_watch_hit(self, *, watch_id: int, message_pk: int, actor: str) -> AuditEvent:
        """Record that `actor` saw the hit (audited as `alert_acknowledged`, announced on the live
        feed). NotFound when there is no such hit; Conflict when an operator acknowledged it already."""
        at = self.clock.now()
        event = AuditEvent(
            at=at,
            type=EventType.ALERT_ACKNOWLEDGED,
            actor=actor,
            details={"alert": WATCH_HIT_ALERT, "watch_id": watch_id, "id": message_pk},
        )
        hit, recorded = await self.store.acknowledge_watch_hit(watch_id, message_pk, actor, at, event)
        if hit is None:
            raise NotFound("id", "no such watch hit")
        if recorded is None:
            raise Conflict("id", f"already acknowledged by {hit.acknowledged_by} at {hit.acknowledged_at}")
        log.info("watch_hit_acknowledged", watch_id=watch_id, id=message_pk, actor=actor)
        await self.outbox.announce([recorded])
        return recorded

    # -- the centre's inbox --------------------------------------------------------------------------

    async def _marks(self, message: StoredMessage) -> dict[str, AuditEvent]:
        events = await self.store.audit(
            sender=message.sender, message_id=message.message_id, event_type=EventType.INBOX_MARKED, limit=500
        )
        latest: dict[str, AuditEvent] = {}
        for e in events:  # oldest first: the last word on each mark wins
            latest[str(e.details.get("mark"))] = e
        return {m: e for m, e in latest.items() if e.details.get("value") is True}

    async def inbox(self, limit: int = INBOX_LIMIT) -> list[InboxItem]:
        """Messages for the centre's inbox (`centre.inbox`), newest first, with their marks."""
        found = await self.store.list_messages(MessageQuery(recipient=CENTRE_INBOX, limit=limit))
        return [InboxItem(m, await self._marks(m)) for m in found]

    async def mark_inbox(
        self, *, sender: str, message_id: str, mark: str, value: bool, actor: str
    ) -> tuple[InboxItem, AuditEvent]:
        if mark not in INBOX_MARKS:
            raise Invalid("mark", f"one of {', '.join(INBOX_MARKS)}")
        message = await self.store.get_message(message_id, sender)
        if message is None or CENTRE_INBOX not in message.recipients:
            raise NotFound("message_id", "no such message in the centre's inbox")
        event = AuditEvent(
            at=self.clock.now(),
            type=EventType.INBOX_MARKED,
            actor=actor,
            sender=sender,
            message_id=message_id,
            reference=message.reference,
            details={"mark": mark, "value": value},
        )
        committed = await self.store.append_audit([event])
        log.info("inbox_marked", sender=sender, message_id=message_id, mark=mark, value=value, actor=actor)
        await self.outbox.announce(committed)
        return InboxItem(message, await self._marks(message)), committed[0]

    # -- writing from the console -------------------------------------------------------------------

    async def compose(
        self,
        *,
        kind: str,
        subject: str,
        body: str,
        priority: str,
        countries: Sequence[str],
        crime_types: Sequence[str],
        recipients: Sequence[str],
        actor: str,
    ) -> StoredMessage:
        """A message from the centre, written by `actor`, through the same intake path as one
        published over AMQP (`Submissions.submit`: checked, classified, routed, recorded), then a
        `composed` audit event naming the operator. When the operator chose recipients the rules
        did not, it is re-routed to them by hand (audited, with the reason). A message the checks
        refuse is an Invalid naming the field: nothing is dead-lettered for an operator's typing."""
        if kind not in COMPOSE_KINDS:
            raise Invalid("kind", f"one of {', '.join(COMPOSE_KINDS)}")
        fields = {
            "kind": kind,
            "subject": subject,
            "body": body,
            "priority": priority,
            "countries": list(countries),
            "crime_types": list(crime_types),
        }
        stored = await self.submissions.submit(fields, CENTRE)  # the parties' path, as the centre
        message_id = stored.message_id or ""
        composed = await self.store.append_audit(
            [
                AuditEvent(
                    at=self.clock.now(),
                    type=EventType.COMPOSED,
                    actor=actor,
                    sender=CENTRE,
                    message_id=message_id,
                    reference=stored.reference,
                    details={"kind": kind, "recipients_chosen": list(recipients)},
                )
            ]
        )
        log.info("composed", message_id=message_id, actor=actor, status=stored.status.value)
        await self.outbox.announce(composed)
        chosen = list(dict.fromkeys(recipients))
        if chosen and set(chosen) != set(stored.recipients):
            await self.operator.route_manually(
                sender=CENTRE,
                message_id=message_id,
                recipients=chosen,
                reason="addressed by the operator who wrote it",
                actor=actor,
                expected_revision=0,
            )
            stored = await self.store.get_message(message_id, CENTRE) or stored
        return stored
