"""The console's watch (operators only): deadline alerts until acknowledged, the centre's inbox with
read / handled marks, and writing a message from the centre. The service layer decides and audits
(watchcentre/service/watch.py); this module speaks HTTP.

Wiring: the route table lists these routes; bootstrap puts the service's `WatchCommands` under
`WATCH`. Without it (a bare `create_app`), these routes answer 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from watchcentre.adapters.http_base import DEPS, ApiError, principal_of, same_origin
from watchcentre.adapters.http_models import SUMMARY_FIELDS, MessageSummary
from watchcentre.core.bounds import NOT_BLANK
from watchcentre.core.records import AuditEvent, StoredMessage
from watchcentre.core.watches import WatchHit
from watchcentre.security import record_consultation, record_list

# -- the models (the route table documents them) -----------------------------------------------------

AlertName = Literal["ack_overdue", "overdue", "warning"]


class AlertItem(BaseModel):
    reference: str
    alert: AlertName = Field(
        description="ack_overdue: not acknowledged in time; overdue: answer late; warning: answer due soon."
    )
    deadline: Literal["acknowledgement", "answer"]
    raised_at: datetime
    due_at: datetime | None
    subject: str
    priority: str
    state: str
    sender: str
    recipients: list[str]


class AlertList(BaseModel):
    items: list[AlertItem] = Field(
        description="Alerts raised on open cases and not acknowledged, oldest first."
    )


class AlertAck(BaseModel):
    """POST /api/console/alerts/ack."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=80)
    alert: AlertName


class AlertAcked(BaseModel):
    event: AuditEvent = Field(description="The committed `alert_acknowledged` event.")


class WatchHitItem(BaseModel):
    watch_id: int
    label: str = Field(description="The watch's label.")
    watch_kind: Literal["identifier", "phrase"]
    id_kind: str | None = Field(description="For an identifier: its kind.")
    value: str = Field(description="What was watched, normalised.")
    at: datetime = Field(description="When the message matched.")
    message: MessageSummary


class WatchHitList(BaseModel):
    items: list[WatchHitItem] = Field(
        description="Hits no operator has acknowledged yet, oldest first (200 at most)."
    )


class WatchHitAck(BaseModel):
    """POST /api/console/watch-hits/ack."""

    model_config = ConfigDict(extra="forbid")

    watch_id: int = Field(ge=1, le=2**62)
    id: int = Field(ge=1, le=2**62, description="The message's id (`message.id` of the hit).")


class Mark(BaseModel):
    at: datetime
    actor: str


class InboxEntry(MessageSummary):
    read: Mark | None = Field(description="Who marked it read, and when; null: unread.")
    handled: Mark | None = Field(description="Who marked it handled, and when; null: not handled.")


class InboxList(BaseModel):
    items: list[InboxEntry] = Field(description="Messages for centre.inbox, newest first.")


class InboxMarkRequest(BaseModel):
    """POST /api/console/inbox/mark: set or clear one mark on one item."""

    model_config = ConfigDict(extra="forbid")

    sender: str = Field(min_length=1, max_length=200)
    message_id: str = Field(min_length=1, max_length=200)
    mark: Literal["read", "handled"]
    value: bool = True


class ComposeRequest(BaseModel):
    """POST /api/console/compose: a message from the centre, written by the signed-in operator."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["information", "alert", "request"] = "information"
    subject: str = Field(max_length=1000, pattern=NOT_BLANK)
    body: str = Field(max_length=100_000, pattern=NOT_BLANK)
    priority: Literal["urgent", "normal"] = "normal"
    countries: list[str] = Field(default_factory=list, max_length=50, description="ISO 3166-1 alpha-2.")
    crime_types: list[str] = Field(default_factory=list, max_length=50)
    recipients: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Routing keys chosen by the operator; empty: as the rules route it. Others than the"
        " rules chose: re-routed by hand, audited.",
    )


class Composed(BaseModel):
    message: MessageSummary


# -- the service, as this module needs it -----------------------------------------------------------


class _Alert(Protocol):
    @property
    def alert(self) -> str: ...
    @property
    def deadline(self) -> str: ...
    @property
    def raised_at(self) -> datetime: ...
    @property
    def due_at(self) -> datetime | None: ...
    @property
    def case(self) -> _Case: ...


class _Case(Protocol):
    @property
    def reference(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def priority(self) -> str: ...
    @property
    def sender(self) -> str: ...
    @property
    def recipients(self) -> list[str]: ...
    @property
    def state(self) -> str: ...


class _Inbox(Protocol):
    @property
    def message(self) -> StoredMessage: ...
    @property
    def marks(self) -> dict[str, AuditEvent]: ...


class WatchActions(Protocol):
    async def alerts(self) -> Sequence[_Alert]: ...
    async def acknowledge_alert(self, *, reference: str, alert: str, actor: str) -> AuditEvent: ...
    async def watch_hits(self) -> Sequence[tuple[WatchHit, StoredMessage]]: ...
    async def acknowledge_watch_hit(self, *, watch_id: int, message_pk: int, actor: str) -> AuditEvent: ...
    async def inbox(self, limit: int = ...) -> Sequence[_Inbox]: ...
    async def mark_inbox(
        self, *, sender: str, message_id: str, mark: str, value: bool, actor: str
    ) -> tuple[_Inbox, AuditEvent]: ...
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
    ) -> StoredMessage: ...


WATCH = web.AppKey("watch", WatchActions)


def _watch(request: web.Request) -> WatchActions:
    watch = request.app.get(WATCH)
    if watch is None:
        raise ApiError(503, "the console is not wired in this instance")
    return watch


def _actor(request: web.Request) -> str:
    who = principal_of(request)
    return f"{who.label}:{who.name}"  # as http_console.actor_of: the audit's name for an operator


# -- the handlers ------------------------------------------------------------------------------------


async def list_alerts(request: web.Request) -> AlertList:
    items = [
        AlertItem(
            reference=a.case.reference,
            alert=a.alert,  # one of ALERTS, checked by the model
            deadline=a.deadline,
            raised_at=a.raised_at,
            due_at=a.due_at,
            subject=a.case.subject,
            priority=a.case.priority,
            state=str(a.case.state),
            sender=a.case.sender,
            recipients=a.case.recipients,
        )
        for a in await _watch(request).alerts()
    ]
    deps = request.app[DEPS]
    await record_consultation(  # each alert shows its case's subject
        deps.store, deps.clock, principal_of(request), request.path, references=[i.reference for i in items]
    )
    return AlertList(items=items)


async def acknowledge_alert(request: web.Request, *, body: AlertAck) -> AlertAcked:
    same_origin(request)
    event = await _watch(request).acknowledge_alert(
        reference=body.reference, alert=body.alert, actor=_actor(request)
    )
    return AlertAcked(event=event)


async def list_watch_hits(request: web.Request) -> WatchHitList:
    items = [
        WatchHitItem(
            watch_id=hit.watch.id,
            label=hit.watch.label,
            watch_kind=hit.watch.kind,
            id_kind=hit.watch.id_kind,
            value=hit.watch.value,
            at=hit.at,
            message=MessageSummary(**message.model_dump(include=set(SUMMARY_FIELDS))),
        )
        for hit, message in await _watch(request).watch_hits()
    ]
    deps = request.app[DEPS]
    await record_list(  # each hit shows its message's subject
        deps.store,
        deps.clock,
        principal_of(request),
        [i.message.id for i in items],
        {"watch_hits": True},
        request.path,
    )
    return WatchHitList(items=items)


async def acknowledge_watch_hit(request: web.Request, *, body: WatchHitAck) -> AlertAcked:
    same_origin(request)
    event = await _watch(request).acknowledge_watch_hit(
        watch_id=body.watch_id, message_pk=body.id, actor=_actor(request)
    )
    return AlertAcked(event=event)


def _entry(message: StoredMessage, marks: dict[str, AuditEvent]) -> InboxEntry:
    def mark(name: str) -> Mark | None:
        e = marks.get(name)
        return Mark(at=e.at, actor=e.actor) if e is not None else None

    return InboxEntry(
        **message.model_dump(include=set(SUMMARY_FIELDS)), read=mark("read"), handled=mark("handled")
    )


async def list_inbox(request: web.Request) -> InboxList:
    deps, who = request.app[DEPS], principal_of(request)
    items = await _watch(request).inbox()
    await record_list(
        deps.store,
        deps.clock,
        who,
        [i.message.id for i in items],
        {"recipient": "centre.inbox"},
        request.path,
    )
    return InboxList(items=[_entry(i.message, i.marks) for i in items])


async def mark_inbox(request: web.Request, *, body: InboxMarkRequest) -> InboxEntry:
    same_origin(request)
    item, _ = await _watch(request).mark_inbox(
        sender=body.sender,
        message_id=body.message_id,
        mark=body.mark,
        value=body.value,
        actor=_actor(request),
    )
    return _entry(item.message, item.marks)


async def compose(request: web.Request, *, body: ComposeRequest) -> Composed:
    same_origin(request)
    stored = await _watch(request).compose(
        kind=body.kind,
        subject=body.subject,
        body=body.body,
        priority=body.priority,
        countries=body.countries,
        crime_types=body.crime_types,
        recipients=body.recipients,
        actor=_actor(request),  # the session's operator, never the body's
    )
    return Composed(message=MessageSummary(**stored.model_dump(include=set(SUMMARY_FIELDS))))


__all__ = ["WATCH", "WatchActions"]
