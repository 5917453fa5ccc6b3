"""The routing service: decode → check → classify → route → publish → record → ack.

It speaks only to ports (Store, Publisher, Metrics, Clock), so the same code runs against SQLite
or PostgreSQL, and any broker adapter. The delivery guarantee lives here:

* the input is acked only after every routed copy is confirmed by the broker AND its audit
  records are committed;
* a (sender, message_id) already accepted is acked without a second routing or audit record;
  copies are published before the record is committed, so a crash in between republishes the
  same copies (same deterministic AMQP message_id, which recipients deduplicate) and records once;
* bad input is dead-lettered with its reason and recorded as `rejected`; a handler failure is
  retried by redelivery and dead-lettered after `max_attempts` such failures (counted here, per
  input bytes: redeliveries after a crash, a lost connection or a dependency outage do not count);
* a dependency outage (TransientError) is retried without being counted as the input's fault, and
  `on_unavailable` is told, so intake can pause until the dependency answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson
import structlog

from watchcentre.batching import Batcher
from watchcentre.cases import Actor, CaseDesk, CaseRefused
from watchcentre.core import parties
from watchcentre.core.classify import Classifier
from watchcentre.core.envelope import (
    CASE_KINDS,
    Envelope,
    Kind,
    Priority,
    Rejection,
    Routing,
    decode_envelope,
)
from watchcentre.core.handling import HandlingRules
from watchcentre.core.lifecycle import STATUS_TARGETS, Action, Case, DeadlineRules, reassign
from watchcentre.core.manual import ManualRouting, decide_manually, holders, marking_override
from watchcentre.core.network import Network
from watchcentre.core.ports import (
    Clock,
    DeadLetters,
    Delivery,
    Metrics,
    OutboundCopy,
    Publisher,
    ReferenceTaken,
    Store,
    TransientError,
)
from watchcentre.core.records import (
    SYSTEM_ACTOR,
    Accepted,
    AuditEvent,
    DeadLetterView,
    EventType,
    Outcome,
    Rejected,
    Status,
    body_digest,
)
from watchcentre.core.routing import (
    TRIAGE,
    Original,
    choose_original,
    copy_id,
    decide,
    sender_key,
    unit_key,
    unmatched,
)
from watchcentre.core.senders import SenderPolicy

log = structlog.get_logger("watchcentre.service")

ERROR_HEADER = "x-watchcentre-error"


class ManualError(Exception):
    """A manual action the service cannot take: `status` is the HTTP-like kind (400, 404, 409)."""

    def __init__(self, status: int, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.status = status
        self.field = field
        self.problem = problem


REINJECTED_HEADER = "x-watchcentre-reinjected"


@dataclass(frozen=True)
class ServiceSettings:
    max_attempts: int = 5
    """A message whose handling fails this many times is dead-lettered with the failure."""
    senders: SenderPolicy = field(default_factory=SenderPolicy)
    """Which broker user may speak for which sender, and where receipts may go."""


class RoutingService:
    def __init__(
        self,
        *,
        network: Network,
        classifier: Classifier,
        known_countries: frozenset[str],
        store: Store,
        publisher: Publisher,
        metrics: Metrics,
        clock: Clock,
        settings: ServiceSettings | None = None,
        max_batch: int = 500,
        on_unavailable: Callable[[TransientError], None] | None = None,
        handling: HandlingRules | None = None,
        deadlines: DeadlineRules | None = None,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.dead_letters = dead_letters
        self._manual_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.network = network
        self.classifier = classifier
        self.known_countries = known_countries
        self.store = store
        self.publisher = publisher
        self.metrics = metrics
        self.clock = clock
        self.settings = settings or ServiceSettings()
        self.handling = handling or HandlingRules()
        self.on_unavailable = on_unavailable
        self.opener: Batcher[Case, tuple[Case, bool] | ReferenceTaken] = Batcher(
            store.open_cases, max_batch=max_batch
        )
        self.cases = CaseDesk(
            store=store,
            publisher=publisher,
            clock=clock,
            network=network,
            rules=deadlines or DeadlineRules.eu_default(),
            opener=self.opener.submit,
            handling=self.handling,
        )
        self._failures: OrderedDict[str, int] = OrderedDict()  # input digest → handler failures
        self._in_flight: dict[tuple[str, str], asyncio.Future[None]] = {}
        self.seen: Batcher[tuple[str, str], bool] = Batcher(store.seen_many, max_batch=max_batch)
        self.committer: Batcher[Outcome, list[AuditEvent] | None] = Batcher(
            store.save_batch, max_batch=max_batch
        )

    async def start(self) -> None:
        self.seen.start()
        self.opener.start()
        self.committer.start()

    async def stop(self) -> None:
        await self.opener.stop()
        await self.committer.stop()
        await self.seen.stop()

    # -- the consumer callback -----------------------------------------------------------------

    async def on_delivery(self, delivery: Delivery) -> None:
        """Handle one input to the end: ack it, or hand it back for another attempt."""
        started = time.perf_counter()
        self.metrics.in_flight(1)
        try:
            status = await self.handle(delivery.body, delivery.user_id)
        except TransientError as exc:
            await self._unavailable(delivery, exc)
            return
        except Exception as exc:
            self.metrics.failed()
            failures = self._count_failure(delivery.body)
            if failures >= self.settings.max_attempts:
                log.error("poison_message", error=repr(exc), failures=failures, attempts=delivery.attempts)
                reason = f"handler failed {failures} times: {type(exc).__name__}: {exc}"
                decoded = decode_envelope(delivery.body)
                ids = (decoded.message_id, decoded.sender) if isinstance(decoded, Envelope) else (None, None)
                rejection = Rejection(field="handler", problem=reason, message_id=ids[0], sender=ids[1])
                try:
                    await self._reject(delivery.body, rejection, failures)
                except TransientError as unavailable:
                    await self._unavailable(delivery, unavailable)
                    return
                self._failures.pop(body_digest(delivery.body), None)
                await delivery.ack()
            else:
                log.warning("handler_failed", error=repr(exc), failures=failures, attempts=delivery.attempts)
                await delivery.retry()
            return
        finally:
            self.metrics.in_flight(-1)
        await delivery.ack()
        if status is not None:
            self.metrics.routed(status, time.perf_counter() - started)
        if delivery.reply_to:
            await self._receipt(delivery.body, delivery.reply_to, delivery.user_id)

    async def _receipt(self, raw: bytes, to: str, user: str | None) -> None:
        """Tell the sender what became of its message, on the queue it named (AMQP `reply_to`): the
        status, the case reference (generated for a request that gave none), the recipients, or the
        reason it was refused. Sent after the ack, best effort: the store is the record. Only to a
        queue the publisher owns (`SenderPolicy.may_receive_receipt`): never into another's queue."""
        decoded = decode_envelope(raw)
        if not self.settings.senders.may_receive_receipt(to, decoded.sender, user):
            log.warning(
                "receipt_refused", to=to, sender=decoded.sender, message_id=decoded.message_id, user=user
            )
            return
        receipt: dict[str, object]
        if isinstance(decoded, Envelope):
            receipt = {"message_id": decoded.message_id, "sender": decoded.sender}
            try:
                stored = await self.store.get_message(decoded.message_id, decoded.sender)
            except TransientError:
                stored = None
            if stored is not None:
                receipt |= {"status": stored.status.value, "reference": stored.reference,
                            "recipients": stored.recipients, "error": stored.error}  # fmt: skip
        else:
            receipt = {"message_id": decoded.message_id, "sender": decoded.sender, "status": "rejected",
                       "error": f"{decoded.field}: {decoded.problem}"}  # fmt: skip
        try:
            await self.publisher.publish_reply(to, orjson.dumps(receipt), decoded.message_id)
        except Exception as exc:  # a receipt never fails the message
            log.warning("receipt_not_sent", to=to, error=repr(exc))

    async def _unavailable(self, delivery: Delivery, exc: TransientError) -> None:
        """A dependency is out: hand the input back (not its fault, not counted) and say so."""
        log.warning("dependency_unavailable", error=str(exc), attempts=delivery.attempts)
        self.metrics.failed()
        if self.on_unavailable is not None:
            self.on_unavailable(exc)
        await delivery.retry()

    def _count_failure(self, raw: bytes, keep: int = 10_000) -> int:
        digest = body_digest(raw)
        failures = self._failures.pop(digest, 0) + 1
        self._failures[digest] = failures
        while len(self._failures) > keep:
            self._failures.popitem(last=False)
        return failures

    # -- the pipeline ----------------------------------------------------------------------------

    async def handle(self, raw: bytes, user: str | None = None) -> str | None:
        """Route or reject one input published by broker user `user` (its validated AMQP user_id).
        Returns the status, or None when nothing new was done."""
        self.metrics.received()
        decoded = decode_envelope(raw)
        if isinstance(decoded, Envelope):
            rejection = self._check(decoded, user)
            if rejection is None:
                try:
                    return await self._route(decoded)
                except CaseRefused as refused:
                    problem = refused.problem
                    if refused.current is not None:
                        problem += f" (current state: {refused.current})"
                    rejection = Rejection(
                        field=refused.field, problem=problem, message_id=decoded.message_id, sender=decoded.sender
                    )
                    await self._reject(raw, rejection, attempts=1, reference=refused.reference)
                    return None
            decoded = rejection
        await self._reject(raw, decoded, attempts=1)
        return None

    def _check(self, env: Envelope, user: str | None) -> Rejection | None:
        """What the envelope model cannot know alone: the network, whether the broker user that
        published it may speak for its sender, and the real country codes."""
        ids = {"message_id": env.message_id, "sender": env.sender}
        if self.network.sender_kind(env.sender) is None:
            return Rejection(field="sender", problem=f"unknown sender '{env.sender}'", **ids)
        if (refused := self.settings.senders.refusal(user, env.sender)) is not None:
            return Rejection(field="sender", problem=refused, **ids)
        unreal = [c for c in env.countries if c not in self.known_countries]
        if unreal:
            return Rejection(
                field="countries", problem=f"not a real ISO 3166-1 country code: {', '.join(unreal)}", **ids
            )
        if (problem := self.handling.check(env.handling)) is not None:
            return Rejection(field="handling", problem=problem, **ids)
        return None

    async def _route(self, env: Envelope) -> str | None:
        key = (env.sender, env.message_id)
        while (other := self._in_flight.get(key)) is not None:
            await asyncio.wait([other])  # the same message is being handled: let it finish first
        done = asyncio.get_running_loop().create_future()
        self._in_flight[key] = done
        try:
            return await self._route_once(env)
        finally:
            del self._in_flight[key]
            done.set_result(None)

    async def _route_once(self, env: Envelope) -> str | None:
        if await self.seen.submit((env.sender, env.message_id)):
            self.metrics.duplicate()
            log.info("duplicate", sender=env.sender, message_id=env.message_id)
            return None
        received_at = self.clock.now()
        original, case = await self._link(env)
        if env.kind in CASE_KINDS:
            return await self._case_action(env, case, received_at)
        reference = case.reference if case is not None else None
        if case is not None:
            env = self._marked(env, case)
        hints = env.countries or (
            list(case.countries) if case is not None and case.sender == env.sender else []
        )
        cls = self.classifier.classify(env.subject, env.body, hints, env.crime_types)
        routing = decide(env, cls, self.network, original, self.handling)
        status = Status.TRIAGE if TRIAGE in routing.recipients else Status.ROUTED
        extra: list[AuditEvent] = []
        if env.kind is Kind.REQUEST:
            opened, event = await self.cases.open_for(env, routing, status, received_at)
            reference, extra = opened.reference, [event]  # recorded with the message, in its transaction
        elif case is not None and env.kind is Kind.REPLY:
            await self._answered(case, env, routing)
        if reference is not None and reference != env.reference:
            env = env.model_copy(update={"reference": reference})  # the routed copy carries the case
        return await self._deliver(env, routing, status, reference, received_at, extra)

    def _marked(self, env: Envelope, case: Case) -> Envelope:
        """The envelope carrying its case's marking when that is the stricter one."""
        marking = self.handling.strictest(case.handling, env.handling)
        return env if marking == env.handling else env.model_copy(update={"handling": marking})

    async def _link(self, env: Envelope) -> tuple[Original | None, Case | None]:
        """What this message answers (by in_reply_to, else the request of the case its reference
        names) and the case it belongs to: only what its sender is a party to (core/parties.py). A
        link to anything else is treated as a link to nothing, so a non-party learns nothing of it."""
        original = None
        if env.in_reply_to:
            found = await self.store.originals(env.in_reply_to)
            mine = [o for o in found if parties.party_to(o, env.sender, self.network)]
            original = choose_original(mine, sender_key(self.network, env.sender))
        if env.kind is Kind.REQUEST:
            return original, None  # its reference names the case it opens
        reference = env.reference or (original.reference if original else None)
        case = await self.store.get_case(reference) if reference is not None else None
        if case is not None and parties.side_of(case, env.sender, self.network) is None:
            case = None
        if original is None and case is not None:
            original = parties.case_original(case)
        return original, case

    async def _answered(self, case: Case, env: Envelope, routing: Routing) -> None:
        """A reply from a post of the case (or the centre) routed back to the requesting unit answers
        its case, if it still awaits one."""
        if unit_key(case.sender) not in routing.recipients or not case.open:
            return
        side = self.cases.side_of(case, env.sender)
        if side is None or not parties.may(side, Action.ANSWER):
            return
        try:
            await self.cases.act(
                case.reference, Action.ANSWER, Actor(side, env.sender), cause=(env.sender, env.message_id)
            )
        except CaseRefused as exc:  # e.g. answered meanwhile over HTTP: the reply is routed all the same
            log.info("reply_not_an_answer", reference=case.reference, problem=exc.problem)

    async def _case_action(self, env: Envelope, case: Case | None, received_at: datetime) -> str | None:
        """ack, status, clarification: act on the case, then tell the other side (a routed copy).
        From a sender that is a party to no case it names: to triage, the case untouched."""
        if case is None:
            if not (env.reference or env.in_reply_to):
                raise CaseRefused(
                    "reference",
                    f"a {env.kind.value} needs the case reference (or in_reply_to one of its messages)",
                )
            return await self._unmatched(env, received_at)
        reference = case.reference
        side = self.cases.side_of(case, env.sender)
        if side is None:  # _link keeps only a case its sender is a party to; never acts for another
            return await self._unmatched(env, received_at)
        try:
            action = _action_of(env)
            case, _ = await self.cases.act(
                reference,
                action,
                Actor(side, env.sender),
                expected_at=env.expected_at,
                reason=env.reason,
                cause=(env.sender, env.message_id),
                at=received_at,
            )
        except CaseRefused as refused:
            refused.reference = reference
            raise
        recipients, why = self.cases.counterparts(case, side)
        routing = Routing(
            crime_types=case.crime_types,
            countries=case.countries,
            recipients=recipients,
            explanation=[f"{action.value} by {env.sender} on case {reference}", *why],
            confidence=1.0,
        )
        env = self._marked(env, case)
        if reference != env.reference:
            env = env.model_copy(update={"reference": reference})
        return await self._deliver(env, routing, Status.ROUTED, reference, received_at)

    async def _unmatched(self, env: Envelope, received_at: datetime) -> str | None:
        """A case action naming no case its sender is a party to: to the centre's triage, recorded
        under no case, with a reason built from the envelope alone (the same whether it exists)."""
        routing = Routing(
            crime_types=[], countries=[], recipients=[TRIAGE],
            explanation=[f"to {TRIAGE}: {unmatched(env)}"], confidence=0.0,
        )  # fmt: skip
        log.info("not_a_party", sender=env.sender, message_id=env.message_id, kind=env.kind.value)
        return await self._deliver(env, routing, Status.TRIAGE, None, received_at)

    async def _deliver(
        self,
        env: Envelope,
        routing: Routing,
        status: Status,
        reference: str | None,
        received_at: datetime,
        extra: Sequence[AuditEvent] = (),
    ) -> str | None:
        copies = self._copies(env, routing)
        await self.publisher.publish_routed(copies)

        events = [*self._accepted_events(env, routing, status, reference, received_at, copies), *extra]
        committed = await self.committer.submit(Accepted(env, routing, status, received_at, events))
        if committed is None:  # a concurrent duplicate was recorded first
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
        await self._announce(committed)
        return status.value

    # -- operator actions (the console) -----------------------------------------------------------

    async def route_manually(
        self,
        *,
        sender: str,
        message_id: str,
        recipients: Sequence[str],
        reason: str,
        actor: str,
        expected_revision: int | None = None,
        override_marking: bool = False,
        override_reason: str | None = None,
    ) -> tuple[Routing, list[AuditEvent]]:
        """Route (or re-route) a stored message to the recipients an operator chose, as an automatic
        decision is: copies published persistent and confirmed, then the decision and its `routed`
        audit event (actor: the operator, with the reason) committed together, then announced.

        `expected_revision` is the number of manual decisions the operator saw: if another was taken
        meanwhile, 409. Copies carry deterministic ids per (recipient, revision): retrying the same
        decision after a failure republishes the same ids (recipients drop them) and records once.

        The stricter of the message's and its case's marking applies: recipients it does not allow
        are refused (409, field `recipients`) unless `override_marking` is set with `override_reason`,
        which the audit event records. Routing a request makes the chosen recipients its case's
        parties (triage → routed), in the same transaction as the decision."""
        key = (sender, message_id)
        lock = self._manual_locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                return await self._route_manually(
                    sender, message_id, recipients, reason, actor, expected_revision,
                    override_reason=(override_reason or "") if override_marking else None,
                )  # fmt: skip
        finally:
            if not lock.locked():
                self._manual_locks.pop(key, None)

    async def _route_manually(
        self,
        sender: str,
        message_id: str,
        recipients: Sequence[str],
        reason: str,
        actor: str,
        expected_revision: int | None,
        override_reason: str | None,
    ) -> tuple[Routing, list[AuditEvent]]:
        from watchcentre.core.manual import ManualRoutingError, MarkingForbids

        stored = await self.store.get_message(message_id, sender)
        if stored is None or stored.status is Status.REJECTED or stored.envelope is None:
            raise ManualError(404, "message_id", "no such routed or triaged message")
        done = await self.store.manual_routings(sender, message_id)
        if expected_revision is not None and expected_revision != len(done):
            last = done[-1] if done else None
            who = f" by {last.actor} at {last.at.isoformat()}" if last else ""
            raise ManualError(409, "revision", f"the message was routed again meanwhile{who}: reload it")
        revision = len(done) + 1
        previous = Routing.model_validate(stored.routing) if stored.routing else None
        case = await self.store.get_case(stored.reference) if stored.reference else None
        marking = self.handling.strictest(case.handling if case else None, stored.handling)
        try:
            routing = decide_manually(
                previous=previous, recipients=recipients, reason=reason, actor=actor, network=self.network,
                marking=marking, rules=self.handling, override_reason=override_reason,
            )  # fmt: skip
            overridden = marking_override(routing.recipients, marking, self.handling, override_reason)
        except MarkingForbids as exc:
            raise ManualError(409, exc.field, exc.problem) from None
        except ManualRoutingError as exc:
            raise ManualError(400, exc.field, exc.problem) from None
        env = Envelope.model_validate(stored.envelope)
        if marking != env.handling:
            env = env.model_copy(update={"handling": marking})  # the copies carry the case's marking
        copies = self._copies(env, routing, revision)
        await self.publisher.publish_routed(copies)
        now = self.clock.now()
        details: dict[str, object] = {
            "recipients": routing.recipients,
            "copies": {c.routing_key: c.message_id for c in copies},
            "confirmed": True,
            "manual": True,
            "reason": reason.strip(),
            "revision": revision,
            "previous_recipients": stored.recipients,
        }
        if overridden is not None:
            details["marking_overridden"] = overridden
        after = None
        if case is not None and (case.sender, case.message_id) == (sender, message_id):
            after, details["case"] = reassign(
                case, routing.recipients, now
            )  # its parties are the chosen ones now
        event = AuditEvent(
            at=now, type=EventType.ROUTED, actor=actor, sender=sender, message_id=message_id,
            reference=stored.reference, details=details,
        )  # fmt: skip
        decision = ManualRouting(
            sender=sender, message_id=message_id, revision=revision, routing=routing,
            recipients=holders(stored.recipients, routing), actor=actor, reason=reason.strip(), at=now,
            events=[event], case=after,
        )  # fmt: skip
        committed = await self.store.apply_manual(decision)
        if committed is None:
            raise ManualError(
                409,
                "revision",
                "another operator routed this message, or its case changed, meanwhile: reload it",
            )
        log.info("routed_manually", sender=sender, message_id=message_id, actor=actor, recipients=routing.recipients,
                 revision=revision)  # fmt: skip
        await self._announce(committed)
        return routing, committed

    async def reinject_dead(
        self, *, letter_id: str, corrected: bytes | None, actor: str, note: str
    ) -> tuple[DeadLetterView, list[AuditEvent]]:
        """Move one dead letter back to intake, as it was or corrected by an operator.

        A correction must pass the checks it failed (400 naming the field otherwise); the original
        bytes stay in the store with their rejection, and the `replayed` audit event names both
        digests. The letter leaves the dead-letter queue only once re-published (confirmed) and
        recorded; a second attempt on the same letter finds it gone (404). Intake deduplicates by
        (sender, message_id), so even a re-injection racing another never routes twice."""
        if self.dead_letters is None:
            raise ManualError(404, "letter_id", "no dead-letter queue here")
        why = note.strip()
        if not why:
            raise ManualError(400, "reason", "a reason is required to re-inject a dead letter")
        if corrected is not None:
            decoded = decode_envelope(corrected)
            if isinstance(decoded, Envelope):
                # re-published by the service, as its own broker user
                problem = self._check(decoded, self.settings.senders.service_user)
                if problem is not None:
                    decoded = problem
            if isinstance(decoded, Rejection):
                raise ManualError(400, f"envelope.{decoded.field}", f"still invalid: {decoded.problem}")
        events: list[AuditEvent] = []

        async def record(letter: DeadLetterView) -> None:
            details: dict[str, object] = {
                "dead_letter": letter.id, "reason": letter.reason, "note": why, "corrected": corrected is not None,
                "original_digest": letter.digest,
            }  # fmt: skip
            if corrected is not None:
                details["corrected_digest"] = body_digest(corrected)
            sender, message_id = letter.sender, letter.message_id
            if corrected is not None:
                decoded = decode_envelope(corrected)
                if isinstance(decoded, Envelope):
                    sender, message_id = decoded.sender, decoded.message_id
            event = AuditEvent(
                at=self.clock.now(), type=EventType.REPLAYED, actor=actor, sender=sender, message_id=message_id,
                details=details,
            )  # fmt: skip
            events.extend(await self.store.append_audit([event]))

        letter = await self.dead_letters.reinject(letter_id, corrected, {REINJECTED_HEADER: letter_id}, record)
        if letter is None:
            raise ManualError(404, "letter_id", "no such dead letter: already re-injected, or never there")
        await self._announce(events)
        return letter, events

    def _copies(self, env: Envelope, routing: Routing, revision: int = 0) -> list[OutboundCopy]:
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
        return [
            OutboundCopy(key, copy_id(env.sender, env.message_id, key, revision), body, headers, prio)
            for key in routing.recipients
        ]

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
                details={"kind": env.kind.value, "priority": env.priority.value, "sent_at": env.sent_at.isoformat()},
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
                    "copies": {c.routing_key: c.message_id for c in copies},
                    "confirmed": True,
                },
                **ids,
            ),
        ]

    async def _reject(self, raw: bytes, rejection: Rejection, attempts: int, reference: str | None = None) -> None:
        if await self.store.seen_rejection(body_digest(raw)):
            # recorded once; dead-lettered again, or this input (a redelivery, a replay of a
            # dead letter that still fails) would end up neither routed nor dead-lettered
            await self.publisher.publish_dead(raw, rejection.reason, {"x-watchcentre-attempts": str(attempts)})
            self.metrics.duplicate()
            log.info("duplicate_rejection", sender=rejection.sender, message_id=rejection.message_id)
            return
        await self.publisher.publish_dead(raw, rejection.reason, {"x-watchcentre-attempts": str(attempts)})
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
        committed = await self.committer.submit(Rejected(raw, rejection, now, [event]))
        self.metrics.rejected(rejection.field)
        log.info(
            "rejected",
            sender=rejection.sender,
            message_id=rejection.message_id,
            field=rejection.field,
            problem=rejection.problem,
        )
        if committed:
            await self._announce(committed)

    async def _announce(self, events: list[AuditEvent]) -> None:
        try:
            await self.publisher.publish_events(events)
        except Exception as exc:  # the audit is committed; the live feed is best effort
            log.warning("event_publish_failed", error=repr(exc))


def _action_of(env: Envelope) -> Action:
    """The lifecycle action an ack, status or clarification envelope asks for."""
    if env.kind is Kind.ACK:
        return Action.ACK
    if env.kind is Kind.CLARIFICATION:
        if env.clarification is None:
            raise CaseRefused("clarification", "required for a clarification: request or answer")
        return Action.CLARIFY_REQUEST if env.clarification == "request" else Action.CLARIFY_ANSWER
    if env.state is not None and env.expected_at is not None:
        raise CaseRefused("expected_at", "give either a new state or a new expected time, not both")
    if env.expected_at is not None:
        return Action.EXTEND
    if env.state is None:
        raise CaseRefused("state", "required for a status: the new state, or expected_at with a reason")
    return STATUS_TARGETS[env.state]

