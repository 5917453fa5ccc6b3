"""Small dict-backed fakes of the ports the service layer uses (watchcentre/core/ports.py), and the
routing service wired to them with the real config/, for tests that run in milliseconds.

The fakes keep what a test wants to look at in plain attributes (lists and dicts), and honour the
invariants the port docstrings promise, so a test of the service against them means something:
one accepted message per (sender, message_id), one rejection per input digest, audit records
numbered and hash-chained in commit order, case writes conditional on the case's version, one manual
decision per (message, revision).

Every fake call yields to the event loop once before acting, then acts without awaiting, as one
transaction or one confirmed publish would: concurrent callers interleave between calls, never inside
one. `down = True` makes every call raise TransientError (a dependency outage) until it is cleared.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import orjson

from watchcentre.core.audit_chain import GENESIS, event_hash
from watchcentre.core.labels import Label
from watchcentre.core.lifecycle import AWAITING_ACK, AWAITING_ANSWER, Case, DeadlineRules, new_case
from watchcentre.core.manual import ManualRecord, ManualRouting
from watchcentre.core.ports import OutboundCopy, ReferenceTaken, TransientError
from watchcentre.core.records import (
    SYSTEM_ACTOR,
    Accepted,
    AuditEvent,
    EventType,
    Outcome,
    Status,
    StoredMessage,
    Visibility,
    handling_of,
)
from watchcentre.core.references import new_reference
from watchcentre.core.replay import Decided
from watchcentre.core.routing import Original

if TYPE_CHECKING:
    from watchcentre.adapters.config_files import Config
    from watchcentre.bootstrap import Service
    from watchcentre.core.classify import Classifier
    from watchcentre.core.ports import Store

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def _io(port: FakeStore | FakePublisher) -> None:
    """One hop through the event loop, as real I/O takes; then the outage switch."""
    await asyncio.sleep(0)
    if port.down:
        raise TransientError(f"{type(port).__name__}: unavailable (fake outage)")


# -- the clock ---------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        """`clock.advance(hours=2)`: move time forward; the new time."""
        self.current += timedelta(**delta)
        return self.current


# -- metrics -----------------------------------------------------------------------------------------


class FakeMetrics:
    """`counts[name]` for every counter of the Metrics port; `routed` counts by status."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.rejected_fields: list[str] = []
        self.in_flight_now = 0

    def received(self) -> None:
        self.counts["received"] += 1

    def routed(self, status: str, seconds: float) -> None:
        self.counts[status] += 1

    def rejected(self, field: str) -> None:
        self.counts["rejected"] += 1
        self.rejected_fields.append(field)

    def duplicate(self) -> None:
        self.counts["duplicate"] += 1

    def failed(self) -> None:
        self.counts["failed"] += 1

    def in_flight(self, delta: int) -> None:
        self.in_flight_now += delta

    def committed(self, seconds: float, items: int) -> None:
        self.counts["commits"] += 1


# -- one input delivery ------------------------------------------------------------------------------


@dataclass
class FakeDelivery:
    """One input as the consumer hands it over; settled once, by ack or retry."""

    body: bytes
    attempts: int = 1
    reply_to: str | None = None
    user_id: str | None = None  # the broker user RabbitMQ vouched for
    acked: bool = False
    retried: bool = False

    async def ack(self) -> None:
        assert not self.settled, "settled twice"
        self.acked = True

    async def retry(self) -> None:
        assert not self.settled, "settled twice"
        self.retried = True

    @property
    def settled(self) -> bool:
        return self.acked or self.retried

    def redelivered(self) -> FakeDelivery:
        """What the broker hands over after a retry: the same bytes, one attempt more."""
        assert self.retried, "only a retried delivery comes back"
        return FakeDelivery(self.body, self.attempts + 1, self.reply_to, self.user_id)


# -- the broker's side -------------------------------------------------------------------------------


class DeadLetter(NamedTuple):
    body: bytes
    reason: str
    headers: Mapping[str, str]


class Reply(NamedTuple):
    to: str
    body: dict[str, Any]
    correlation_id: str | None


class FakePublisher:
    """Records what the service publishes, in order: routed copies, dead letters, events, receipts."""

    def __init__(self) -> None:
        self.routed: list[OutboundCopy] = []
        self.dead: list[DeadLetter] = []
        self.events: list[AuditEvent] = []
        self.event_messages = 0  # P.events messages: one per call
        self.replies: list[Reply] = []
        self.down = False

    async def publish_routed(self, copies: Sequence[OutboundCopy]) -> None:
        await _io(self)
        self.routed.extend(copies)

    async def publish_dead(self, body: bytes, reason: str, headers: Mapping[str, str]) -> None:
        await _io(self)
        self.dead.append(DeadLetter(body, reason, dict(headers)))

    async def publish_events(self, events: Sequence[AuditEvent]) -> None:
        await _io(self)
        self.events.extend(events)
        self.event_messages += 1

    async def publish_reply(self, to: str, body: bytes, correlation_id: str | None) -> None:
        await _io(self)
        self.replies.append(Reply(to, orjson.loads(body), correlation_id))

    def copies_to(self, recipient: str) -> list[dict[str, Any]]:
        """The routed copies in one recipient's queue, decoded (with `_id`, the AMQP message_id)."""
        return [
            {**orjson.loads(c.body), "_id": c.message_id} for c in self.routed if recipient in c.routing_keys
        ]


# -- the store ---------------------------------------------------------------------------------------

_ALERT_FLAGS = {
    "ack_overdue": "ack_overdue_raised_at",
    "warning": "warning_raised_at",
    "overdue": "overdue_raised_at",
}


class FakeStore:
    """The Store port as far as the service layer and CaseDesk use it, grouped by aggregate (messages,
    audit, cases, manual decisions) so that it can satisfy the smaller per-aggregate ports as well.
    Lists, paging, tokens, notes and need-to-know filters are not faked."""

    def __init__(self) -> None:
        self.down = False
        # messages: every outcome, oldest first; the keys that make a second one a duplicate
        self.messages: list[StoredMessage] = []
        self._accepted: dict[tuple[str, str], int] = {}  # (sender, message_id) → index in messages
        self._rejected: set[str] = set()  # digests of the bytes dead-lettered and recorded
        # audit: the chained trail, seq = position + 1
        self.audit_log: list[AuditEvent] = []
        # cases: by reference; the request that opened each; the last generated number per year
        self.cases: dict[str, Case] = {}
        self._case_of: dict[tuple[str, str], str] = {}
        self._numbers: Counter[int] = Counter()
        self.version_conflicts = 0  # update_case calls refused: a lost race, retried by the caller
        # manual decisions per (sender, message_id), oldest first
        self.manual: dict[tuple[str, str], list[ManualRecord]] = {}
        self.label_rows: list[Label] = []
        self.claims: dict[tuple[str, str, int], tuple[str, datetime]] = {}

    # -- messages ------------------------------------------------------------------------------------

    async def seen_many(self, keys: Sequence[tuple[str, str]]) -> list[bool]:
        await _io(self)
        return [key in self._accepted for key in keys]

    async def seen_rejection(self, digest: str) -> bool:
        await _io(self)
        return digest in self._rejected

    async def originals(self, message_id: str) -> list[Original]:
        await _io(self)
        return [
            Original(m.sender or "", message_id, tuple(m.recipients), m.reference)
            for m in reversed(self.messages)
            if m.message_id == message_id and m.status is not Status.REJECTED
        ]

    async def get_message(
        self, message_id: str, sender: str | None = None, visibility: Visibility | None = None
    ) -> StoredMessage | None:
        assert visibility is None, "need-to-know filters are not faked"
        await _io(self)
        return next(
            (m for m in reversed(self.messages) if m.message_id == message_id and sender in (None, m.sender)),
            None,
        )

    async def save_batch(self, outcomes: Sequence[Outcome]) -> list[list[AuditEvent] | None]:
        await _io(self)
        return [self._save(o) for o in outcomes]  # one transaction: no await in between

    def _save(self, outcome: Outcome) -> list[AuditEvent] | None:
        if isinstance(outcome, Accepted):
            env, routing = outcome.envelope, outcome.routing
            key = (env.sender, env.message_id)
            if key in self._accepted:
                return None
            self._accepted[key] = len(self.messages)
            row = StoredMessage(
                id=len(self.messages) + 1,
                sender=env.sender,
                message_id=env.message_id,
                kind=env.kind.value,
                priority=env.priority.value,
                reference=env.reference,
                subject=env.subject,
                status=outcome.status,
                received_at=outcome.received_at,
                crime_types=routing.crime_types,
                countries=routing.countries,
                recipients=routing.recipients,
                envelope=env.model_dump(mode="json"),
                routing=routing.model_dump(mode="json"),
                handling=env.handling,
            )
        else:
            if outcome.digest in self._rejected:
                return None
            self._rejected.add(outcome.digest)
            envelope = _json_object(outcome.raw)
            row = StoredMessage(
                id=len(self.messages) + 1,
                sender=outcome.rejection.sender,
                message_id=outcome.rejection.message_id,
                kind=None,
                priority=None,
                reference=None,
                subject=None,
                status=Status.REJECTED,
                received_at=outcome.received_at,
                envelope=envelope,
                error=outcome.rejection.reason,
                handling=handling_of(envelope),
            )
        self.messages.append(row)
        return self._append(outcome.events)

    # -- audit ---------------------------------------------------------------------------------------

    async def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        await _io(self)
        return self._append(events)

    async def audit(
        self,
        *,
        after_seq: int = 0,
        limit: int = 100,
        sender: str | None = None,
        message_id: str | None = None,
        event_type: str | None = None,
        reference: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AuditEvent]:
        await _io(self)
        wanted = {
            "sender": sender,
            "message_id": message_id,
            "type": event_type,
            "reference": reference,
            "actor": actor,
        }
        found = [
            e
            for e in self.audit_log[after_seq:]
            if all(value is None or getattr(e, name) == value for name, value in wanted.items())
            and (since is None or e.at >= since)
            and (until is None or e.at < until)
        ]
        return found[:limit]

    def _append(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """Number and chain events after the last one, as the stores do in the same transaction."""
        stored = []
        for e in events:
            prev = self.audit_log[-1].hash if self.audit_log else GENESIS
            numbered = e.model_copy(update={"seq": len(self.audit_log) + 1, "prev_hash": prev})
            chained = numbered.model_copy(update={"hash": event_hash(prev or GENESIS, numbered)})
            self.audit_log.append(chained)
            stored.append(chained)
        return stored

    # -- cases ---------------------------------------------------------------------------------------

    async def open_case(self, case: Case, events: Sequence[AuditEvent]) -> tuple[Case, bool]:
        await _io(self)
        return self._open(case, events)

    async def open_cases(self, cases: Sequence[Case]) -> list[tuple[Case, bool] | ReferenceTaken]:
        await _io(self)
        out: list[tuple[Case, bool] | ReferenceTaken] = []
        for case in cases:  # a later one sees the earlier ones
            try:
                out.append(self._open(case, []))
            except ReferenceTaken as taken:
                out.append(taken)
        return out

    def _open(self, case: Case, events: Sequence[AuditEvent]) -> tuple[Case, bool]:
        if (mine := self._case_of.get((case.sender, case.message_id))) is not None:
            return self.cases[mine], False  # the request opened it already (a redelivery)
        if case.reference in self.cases:
            raise ReferenceTaken(self.cases[case.reference])
        if not case.reference:
            reference = new_reference(case.opened_at.astimezone(UTC).year)
            case = case.model_copy(update={"reference": reference})
        self.cases[case.reference] = case
        self._case_of[(case.sender, case.message_id)] = case.reference
        self._append([e.model_copy(update={"reference": case.reference}) for e in events])
        return case, True

    async def get_case(self, reference: str) -> Case | None:
        await _io(self)
        return self.cases.get(reference)

    async def update_case(
        self, case: Case, expected_version: int, events: Sequence[AuditEvent], reset_alerts: bool = False
    ) -> list[AuditEvent] | None:
        await _io(self)
        stored = self.cases.get(case.reference)
        if stored is None or stored.version != expected_version:
            self.version_conflicts += 1
            return None  # another writer changed it first
        # the alert flags are the store's (as columns are): kept, or the answer's re-armed
        flags = {f: getattr(stored, f) for f in _ALERT_FLAGS.values()}
        if reset_alerts:
            flags |= {"warning_raised_at": None, "overdue_raised_at": None}
        self.cases[case.reference] = case.model_copy(update={"version": expected_version + 1, **flags})
        return self._append(events)

    async def list_cases(
        self,
        *,
        visibility: Any = None,
        open_only: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        before: Any = None,
        limit: int = 1000,
    ) -> list[Case]:
        """Every case (the fake knows no need-to-know: visibility must be None), newest first."""
        await _io(self)
        assert visibility is None, "the fake lists cases for operators only"
        order = sorted(self.cases.values(), key=lambda c: (c.opened_at, c.reference), reverse=True)
        return [
            c
            for c in order
            if (not open_only or c.state in AWAITING_ANSWER)
            and (since is None or c.opened_at >= since)
            and (until is None or c.opened_at < until)
            and (before is None or (c.opened_at, c.reference) < (before.opened_at, before.reference))
        ][:limit]

    async def due_alerts(self, now: datetime) -> list[tuple[str, str]]:
        await _io(self)
        return [
            (ref, alert) for alert in _ALERT_FLAGS for ref in sorted(self.cases) if self._due(ref, alert, now)
        ]

    async def raise_alert(
        self, reference: str, alert: str, now: datetime, event: AuditEvent
    ) -> AuditEvent | None:
        await _io(self)
        if not self._due(reference, alert, now):
            return None  # raised meanwhile, or no longer due
        case = self.cases[reference]
        raised = {_ALERT_FLAGS[alert]: now}
        if alert == "overdue":  # an overdue case is past its warning too
            raised["warning_raised_at"] = case.warning_raised_at or now
        self.cases[reference] = case.model_copy(update=raised)
        return self._append([event])[0]

    def _due(self, reference: str, alert: str, now: datetime) -> bool:
        c = self.cases[reference]
        if getattr(c, _ALERT_FLAGS[alert]) is not None:
            return False
        if alert == "ack_overdue":
            return c.state in AWAITING_ACK and c.ack_due_at <= now
        if c.state not in AWAITING_ANSWER or c.due_at is None:
            return False  # suspended (clarification pending) or no longer awaiting an answer
        if alert == "warning":
            return c.warn_at is not None and c.warn_at <= now < c.due_at
        return c.due_at <= now

    # -- labels (operators' corrections) and what-if's reads ------------------------------------------

    async def add_label(self, label: Label) -> None:
        await _io(self)
        self.label_rows.append(label)

    async def labels(self, limit: int = 10_000) -> list[tuple[Label, dict[str, Any] | None]]:
        await _io(self)
        newest: dict[tuple[str, str], Label] = {}
        for label in self.label_rows:
            newest[(label.sender, label.message_id)] = label  # the later supersedes
        out = []
        for label in reversed(list(newest.values())):
            index = self._accepted.get((label.sender, label.message_id))
            out.append((label, self.messages[index].envelope if index is not None else None))
        return out[:limit]

    def _decided(self, since: datetime | None, until: datetime | None) -> list[StoredMessage]:
        return [
            m
            for m in self.messages
            if m.status is not Status.REJECTED
            and (since is None or m.received_at >= since)
            and (until is None or m.received_at < until)
        ]

    async def count_decided(self, since: datetime | None, until: datetime | None) -> int:
        await _io(self)
        return len(self._decided(since, until))

    async def decided_page(
        self, since: datetime | None, until: datetime | None, after_id: int, limit: int
    ) -> list[Decided]:
        await _io(self)
        out = []
        for m in self._decided(since, until):
            if m.id <= after_id or m.sender is None or m.message_id is None:
                continue
            recipients = m.recipients
            if self.manual.get((m.sender, m.message_id)):  # the rules' own decision, from the audit
                first = next(
                    e
                    for e in self.audit_log
                    if (e.sender, e.message_id) == (m.sender, m.message_id)
                    and e.type in (EventType.ROUTED, EventType.TRIAGED)
                    and e.actor == SYSTEM_ACTOR
                )
                recipients = list(first.details["recipients"])
            explanation = list((m.routing or {}).get("explanation", []))
            out.append(Decided(m.id, m.sender, m.message_id, m.envelope, list(recipients), explanation))
            if len(out) == limit:
                break
        return out

    # -- manual decisions ----------------------------------------------------------------------------

    async def manual_routings(self, sender: str, message_id: str) -> list[ManualRecord]:
        await _io(self)
        return list(self.manual.get((sender, message_id), []))

    async def apply_manual(self, decision: ManualRouting) -> list[AuditEvent] | None:
        await _io(self)
        d = decision
        done = self.manual.setdefault((d.sender, d.message_id), [])
        if any(r.revision == d.revision for r in done):
            return None  # that revision was recorded already: unique per message and revision
        index = self._accepted.get((d.sender, d.message_id))
        if index is None:
            raise LookupError(f"no accepted message {d.sender}/{d.message_id}")
        done.append(
            ManualRecord(
                revision=d.revision, at=d.at, actor=d.actor, reason=d.reason, recipients=d.routing.recipients
            )
        )
        self.messages[index] = self.messages[index].model_copy(
            update={
                "status": Status.ROUTED,
                "recipients": d.recipients,
                "routing": d.routing.model_dump(mode="json"),
            }
        )
        for key in [k for k in self.claims if k[:2] == (d.sender, d.message_id)]:
            del self.claims[key]
        return self._append(d.events)

    async def claim_manual(
        self, sender: str, message_id: str, revision: int, claim: str, now: datetime, stale_s: float
    ) -> bool:
        await _io(self)
        held = self.claims.get((sender, message_id, revision))
        if held is not None and held[1] >= now - timedelta(seconds=stale_s):
            return False
        self.claims[(sender, message_id, revision)] = (claim, now)
        return True

    async def release_manual(self, sender: str, message_id: str, revision: int, claim: str) -> None:
        await _io(self)
        if self.claims.get((sender, message_id, revision), ("",))[0] == claim:
            del self.claims[(sender, message_id, revision)]


def a_case(message_id: str = "m-1", reference: str = "", opened_at: datetime = START) -> Case:
    """A routed request case from ofast to Madrid about Spain, under the EU default deadlines."""
    return new_case(
        reference=reference,
        sender="ofast",
        message_id=message_id,
        priority="normal",
        access=None,
        subject="s",
        crime_types=[],
        countries=["ES"],
        recipients=["post.madrid"],
        triage=False,
        opened_at=opened_at,
        rules=DeadlineRules.eu_default(),
    )


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """The rejected input as a JSON object, when it is one (what the stores keep for display)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


# -- the service wired to the fakes ------------------------------------------------------------------


@functools.cache
def real_config() -> tuple[Config, Classifier]:
    """config/ and the classifier built from it, as bootstrap builds them: once per test session
    (the gazetteer takes about a second to build)."""
    from watchcentre.adapters.config_files import load_config
    from watchcentre.bootstrap import build_classifier

    config = load_config(ROOT / "config")
    return config, build_classifier(config)


@dataclass
class Wired:
    """The service layer and the fakes behind it; `unavailable` collects what intake was told."""

    service: Service
    store: FakeStore
    publisher: FakePublisher
    metrics: FakeMetrics
    clock: FakeClock
    unavailable: list[TransientError] = field(default_factory=list)

    async def deliver(
        self, body: bytes, *, attempts: int = 1, reply_to: str | None = None, user_id: str | None = None
    ) -> FakeDelivery:
        """Hand one input to the service, as the consumer does; the delivery, settled. It comes from
        the claimed sender's own broker user unless `user_id` says otherwise (strict mode)."""
        if user_id is None:
            user_id = _user_of(body)
        delivery = FakeDelivery(body, attempts, reply_to, user_id)
        await self.service.intake.on_delivery(delivery)
        assert delivery.settled, "the service neither acked nor retried"
        return delivery

    async def deliver_until_settled(self, body: bytes, *, most: int = 20) -> list[FakeDelivery]:
        """Deliver, and redeliver while the service hands the input back, as the broker does."""
        deliveries = [await self.deliver(body)]
        while deliveries[-1].retried:
            assert len(deliveries) < most, "never settled"
            again = deliveries[-1].redelivered()
            await self.service.intake.on_delivery(again)
            deliveries.append(again)
        return deliveries


@asynccontextmanager
async def wired_service(
    *,
    store: FakeStore | None = None,
    publisher: FakePublisher | None = None,
    clock: FakeClock | None = None,
    max_attempts: int = 3,
    handler_timeout_s: float = 60.0,
    delivery_limit: int | None = None,
) -> AsyncIterator[Wired]:
    """The service layer on fakes, built as bootstrap builds it (pass `store`/`publisher`/`clock` to
    share them between instances, as several processes share one database and broker); stopped on exit."""
    from watchcentre.bootstrap import build_service
    from watchcentre.core.senders import SenderPolicy
    from watchcentre.service import ServiceSettings

    config, classifier = real_config()
    store, publisher, clock = store or FakeStore(), publisher or FakePublisher(), clock or FakeClock()
    metrics = FakeMetrics()
    unavailable: list[TransientError] = []
    service = build_service(
        config=config,
        classifier=classifier,
        store=cast("Store", store),  # the part of the port the service calls
        publisher=publisher,
        metrics=metrics,
        clock=clock,
        settings=ServiceSettings(
            max_attempts=max_attempts,
            handler_timeout_s=handler_timeout_s,
            delivery_limit=delivery_limit,
            senders=SenderPolicy(users=config.broker, service_user="watchcentre"),
        ),
        on_unavailable=unavailable.append,
        labels=store,
    )
    await service.start()
    try:
        yield Wired(service, store, publisher, metrics, clock, unavailable)
    finally:
        await service.stop()


def _user_of(body: bytes) -> str | None:
    """The broker user of the sender a body claims (config/broker.yaml: `wc-<id>`, `wc-centre`)."""
    try:
        sender = orjson.loads(body).get("sender")
    except (orjson.JSONDecodeError, AttributeError):
        return "wc-unknown"
    return f"wc-{sender}" if isinstance(sender, str) else "wc-unknown"
