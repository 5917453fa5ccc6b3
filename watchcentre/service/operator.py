"""What an operator commands from the console: route a stored message by hand, re-inject a dead
letter. Refusals are domain errors (core/errors.py: NotFound, Conflict, Invalid naming the field);
each adapter says them its own way."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog

from watchcentre.core.envelope import Envelope, Rejection, Routing, decode_envelope
from watchcentre.core.errors import Conflict, Invalid, NotFound
from watchcentre.core.labels import Label, blame, checked, most_blamed
from watchcentre.core.lifecycle import Case, reassign
from watchcentre.core.manual import (
    ManualRouting,
    ManualRoutingError,
    MarkingForbids,
    decide_manually,
    holders,
    marking_override,
)
from watchcentre.core.ports import DeadLetters, Labels, OutboundCopy, Store
from watchcentre.core.records import (
    AuditEvent,
    DeadLetterView,
    EventType,
    Status,
    StoredMessage,
    body_digest,
    text_digest,
)
from watchcentre.core.rules import RulesRef
from watchcentre.service.checks import EnvelopeChecks
from watchcentre.service.outbox import Outbox

log = structlog.get_logger("watchcentre.service")

REINJECTED_HEADER = "x-watchcentre-reinjected"
# A manual routing's claim outlives its holder's publish time limit (30 s) before another may take it.
CLAIM_STALE_S = 120.0


class OperatorCommands:
    def __init__(
        self,
        *,
        rules: RulesRef,
        checks: EnvelopeChecks,
        store: Store,
        outbox: Outbox,
        dead_letters: DeadLetters | None = None,
        labels: Labels | None = None,
    ) -> None:
        self.labels = labels
        """Where operators' corrections are kept (None: they are refused, nowhere to keep them)."""
        self.rules = rules
        self.checks = checks
        self.store = store
        self.outbox = outbox
        self.dead_letters = dead_letters
        self._manual_locks: dict[tuple[str, str], asyncio.Lock] = {}

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
        crime_types: Sequence[str] | None = None,
        countries: Sequence[str] | None = None,
    ) -> tuple[Routing, list[AuditEvent]]:
        """Route (or re-route) a stored message to the recipients an operator chose, as an automatic
        decision is: copies published persistent and confirmed, then the decision and its `routed`
        audit event (actor: the operator, with the reason) committed together, then announced.

        `expected_revision` is the number of manual decisions the operator saw: if another was taken
        meanwhile, Conflict. Copies carry deterministic ids per (recipient, revision): retrying the
        same decision after a failure republishes the same ids (recipients drop them) and records once.

        The stricter of the message's and its case's marking applies: recipients it does not allow
        are refused (Conflict, field `recipients`) unless `override_marking` is set with
        `override_reason`, which the audit event records. Routing a request makes the chosen
        recipients its case's parties (triage → routed), in the same transaction as the decision."""
        key = (sender, message_id)
        lock = self._manual_locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                return await self._route_manually(
                    sender,
                    message_id,
                    recipients,
                    reason,
                    actor,
                    expected_revision,
                    override_reason=(override_reason or "") if override_marking else None,
                    corrections=(crime_types, countries),
                )
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
        corrections: tuple[Sequence[str] | None, Sequence[str] | None] = (None, None),
    ) -> tuple[Routing, list[AuditEvent]]:
        stored = await self.store.get_message(message_id, sender)
        if stored is None or stored.status is Status.REJECTED or stored.envelope is None:
            raise NotFound("message_id", "no such routed or triaged message")
        corrected = checked(*corrections, self.checks.known_countries)
        if corrected != (None, None) and self.labels is None:
            raise Invalid(
                "crime_types" if corrected[0] is not None else "countries", "corrections are not kept here"
            )
        done = await self.store.manual_routings(sender, message_id)
        if expected_revision is not None and expected_revision != len(done):
            last = done[-1] if done else None
            who = f" by {last.actor} at {last.at.isoformat()}" if last else ""
            raise Conflict("revision", f"the message was routed again meanwhile{who}: reload it")
        revision = len(done) + 1
        rules = self.rules.current
        previous = Routing.model_validate(stored.routing) if stored.routing else None
        case = await self.store.get_case(stored.reference) if stored.reference else None
        marking = rules.handling.strictest(case.handling if case else None, stored.handling)
        try:
            routing = decide_manually(
                previous=previous,
                recipients=recipients,
                reason=reason,
                actor=actor,
                network=rules.network,
                marking=marking,
                rules=rules.handling,
                override_reason=override_reason,
            )
            overridden = marking_override(routing.recipients, marking, rules.handling, override_reason)
        except MarkingForbids as exc:
            raise Conflict(exc.field, exc.problem) from None
        except ManualRoutingError as exc:
            raise Invalid(exc.field, exc.problem) from None
        env = Envelope.model_validate(stored.envelope)
        if marking != env.handling:
            env = env.model_copy(update={"handling": marking})  # the copies carry the case's marking
        copies = self.outbox.copies(env, routing, revision)
        label = None
        if corrected != (None, None):
            label = self._label(env, previous, corrected, actor, reason, self.outbox.clock.now())
        claim = uuid.uuid4().hex
        if not await self.store.claim_manual(
            sender, message_id, revision, claim, self.outbox.clock.now(), CLAIM_STALE_S
        ):
            raise Conflict("revision", "another operator is routing this message right now: reload it")
        try:
            await self.outbox.publisher.publish_routed(copies)
            return await self._record_manual(
                (sender, message_id),
                stored,
                routing,
                copies,
                case,
                revision,
                reason,
                actor,
                overridden,
                label,
            )
        finally:  # recorded: apply_manual cleared the claim; otherwise the revision is free again
            with contextlib.suppress(Exception):
                await self.store.release_manual(sender, message_id, revision, claim)

    async def _record_manual(
        self,
        key: tuple[str, str],
        stored: StoredMessage,
        routing: Routing,
        copies: Sequence[OutboundCopy],
        case: Case | None,
        revision: int,
        reason: str,
        actor: str,
        overridden: dict[str, Any] | None,
        label: Label | None = None,
    ) -> tuple[Routing, list[AuditEvent]]:
        (sender, message_id), now = key, self.outbox.clock.now()
        details: dict[str, object] = {
            "recipients": routing.recipients,
            "copies": {key: c.message_id for c in copies for key in c.routing_keys},
            "confirmed": True,
            "manual": True,
            "reason_sha256": text_digest(reason.strip()),
            "revision": revision,
            "previous_recipients": stored.recipients,
        }
        if overridden is not None:  # its reason's text is in the routing's explanation
            why = str(overridden.pop("reason"))
            details["marking_overridden"] = {**overridden, "reason_sha256": text_digest(why)}
        if label is not None:
            details["corrections"] = {
                k: v
                for k, v in (("crime_types", label.crime_types), ("countries", label.countries))
                if v is not None
            }
        after = None
        if case is not None and (case.sender, case.message_id) == (sender, message_id):
            after, details["case"] = reassign(
                case, routing.recipients, now
            )  # its parties are the chosen ones now
        event = AuditEvent(
            at=now,
            type=EventType.ROUTED,
            actor=actor,
            sender=sender,
            message_id=message_id,
            reference=stored.reference,
            details=details,
        )
        decision = ManualRouting(
            sender=sender,
            message_id=message_id,
            revision=revision,
            routing=routing,
            recipients=holders(stored.recipients, routing),
            actor=actor,
            reason=reason.strip(),
            at=now,
            events=[event],
            case=after,
        )
        committed = await self.store.apply_manual(decision)
        if committed is None:
            raise Conflict(
                "revision", "another operator routed this message, or its case changed, meanwhile: reload it"
            )
        log.info(
            "routed_manually",
            sender=sender,
            message_id=message_id,
            actor=actor,
            recipients=routing.recipients,
            revision=revision,
        )
        if label is not None and self.labels is not None:
            # the correction is in the audit event above (committed); the label is its working copy
            await self.labels.add_label(label)
            log.info("corrected", sender=sender, message_id=message_id, actor=actor, blamed=len(label.blamed))
        await self.outbox.announce(committed)
        return routing, committed

    def _label(
        self,
        env: Envelope,
        previous: Routing | None,
        corrected: tuple[list[str] | None, list[str] | None],
        actor: str,
        reason: str,
        at: datetime,
    ) -> Label:
        """The operator's correction, with what the rules had said and the rules behind each mistake."""
        crime_types, countries = corrected
        cls = self.rules.current.classifier.classify(env.subject, env.body, env.countries, env.crime_types)
        return Label(
            sender=env.sender,
            message_id=env.message_id,
            at=at,
            actor=actor,
            reason=reason.strip(),
            crime_types=crime_types,
            countries=countries,
            predicted_crime_types=list(previous.crime_types) if previous else cls.crime_types,
            predicted_countries=list(previous.countries) if previous else cls.countries,
            blamed=blame(cls, crime_types, countries),
        )

    async def most_corrected(self, limit: int = 10) -> tuple[int, list[tuple[str, int]]]:
        """How many messages operators corrected, and the rules most often behind a correction."""
        if self.labels is None:
            return 0, []
        labels = [label for label, _ in await self.labels.labels()]
        return len(labels), most_blamed(labels, limit)

    def _refusal(self, raw: bytes) -> Envelope | Rejection:
        """What intake would make of `raw` re-published by the service, as its own broker user."""
        decoded: Envelope | Rejection = decode_envelope(raw)
        if isinstance(decoded, Envelope):
            return self.checks.refusal(decoded, self.checks.senders.service_user) or decoded
        return decoded

    async def reinject_dead(
        self, *, letter_id: str, corrected: bytes | None, actor: str, note: str
    ) -> tuple[DeadLetterView, list[AuditEvent]]:
        """Move one dead letter back to intake, as it was or corrected by an operator.

        A correction must pass the checks it failed (Invalid naming the field otherwise); the
        original bytes stay in the store with their rejection, and the `replayed` audit event names
        both digests. The letter leaves the dead-letter queue only once re-published (confirmed) and
        recorded; a second attempt on the same letter finds it gone (NotFound). Intake deduplicates
        by (sender, message_id), so even a re-injection racing another never routes twice."""
        if self.dead_letters is None:
            raise NotFound("letter_id", "no dead-letter queue here")
        why = note.strip()
        if not why:
            raise Invalid("reason", "a reason is required to re-inject a dead letter")
        corrected_ids: tuple[str, str] | None = None
        if corrected is not None:
            decoded = self._refusal(corrected)
            if isinstance(decoded, Envelope):
                corrected_ids = (decoded.sender, decoded.message_id)
            else:
                raise Invalid(f"envelope.{decoded.field}", f"still invalid: {decoded.problem}")
        else:
            # as it was: refused when it would go straight back to the dead letters
            listed = [d for d in await self.dead_letters.list(1000) if d.id == letter_id]
            if listed and isinstance(found := self._refusal(listed[0].text.encode()), Rejection):
                raise Invalid(
                    f"envelope.{found.field}",
                    f"would be dead-lettered again: {found.problem}; correct it first",
                )
        events: list[AuditEvent] = []

        async def record(letter: DeadLetterView) -> None:
            details: dict[str, object] = {
                "dead_letter": letter.id,
                "reason": letter.reason,
                "note_sha256": text_digest(why),
                "corrected": corrected is not None,
                "original_digest": letter.digest,
            }
            if corrected is not None:
                details["corrected_digest"] = body_digest(corrected)
            sender, message_id = corrected_ids or (letter.sender, letter.message_id)
            event = AuditEvent(
                at=self.outbox.clock.now(),
                type=EventType.REPLAYED,
                actor=actor,
                sender=sender,
                message_id=message_id,
                details=details,
            )
            events.extend(await self.store.append_audit([event]))

        letter = await self.dead_letters.reinject(
            letter_id, corrected, {REINJECTED_HEADER: letter_id}, record
        )
        if letter is None:
            raise NotFound("letter_id", "no such dead letter: already re-injected, or never there")
        await self.outbox.announce(events)
        return letter, events
