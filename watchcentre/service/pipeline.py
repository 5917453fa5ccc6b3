"""One input, decoded → checked → linked to what it answers → classified → routed → published →
recorded; or dead-lettered with its reason. Case actions (ack, status, clarification) act on their
case through the CaseDesk and are routed to the other side.

* a (sender, message_id) already accepted is acked without a second routing or audit record;
  copies are published before the record is committed, so a crash in between republishes the
  same copies (same deterministic AMQP message_id, which recipients deduplicate) and records once;
* bad input is dead-lettered with its reason and recorded as `rejected`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from watchcentre.cases import Actor, CaseDesk, CaseRefused
from watchcentre.core import parties
from watchcentre.core.classify import Classifier
from watchcentre.core.envelope import CASE_KINDS, Envelope, Kind, Rejection, Routing, decode_envelope
from watchcentre.core.lifecycle import STATUS_TARGETS, Action, Case
from watchcentre.core.ports import Clock, Metrics, Store
from watchcentre.core.records import Status
from watchcentre.core.routing import (
    TRIAGE,
    Original,
    choose_original,
    decide,
    sender_key,
    unit_key,
    unmatched,
)
from watchcentre.core.rules import Rules, RulesRef
from watchcentre.service.checks import EnvelopeChecks
from watchcentre.service.outbox import Outbox

log = structlog.get_logger("watchcentre.service")

Seen = Callable[[tuple[str, str]], Awaitable[bool]]
"""Whether (sender, message_id) was already accepted (through the batched look-up)."""


class Pipeline:
    def __init__(
        self,
        *,
        rules: RulesRef,
        checks: EnvelopeChecks,
        store: Store,
        desk: CaseDesk,
        outbox: Outbox,
        seen: Seen,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.rules = rules
        """The rules in force: read once per message, which is then decided with them throughout."""
        self.checks = checks
        self.store = store
        self.desk = desk
        self.outbox = outbox
        self.seen = seen
        self.metrics = metrics
        self.clock = clock
        self._in_flight: dict[tuple[str, str], asyncio.Future[None]] = {}

    @property
    def classifier(self) -> Classifier:
        """The classifier of the rules in force."""
        return self.rules.current.classifier

    async def handle(self, raw: bytes, user: str | None = None) -> str | None:
        """Route or reject one input published by broker user `user` (its validated AMQP user_id).
        Returns the status, or None when nothing new was done."""
        self.metrics.received()
        rules = self.rules.current
        decoded = decode_envelope(raw)
        if isinstance(decoded, Envelope):
            rejection = self.checks.refusal(decoded, user, rules)
            if rejection is None:
                try:
                    return await self._route(decoded, rules)
                except CaseRefused as refused:
                    problem = refused.problem
                    if refused.current is not None:
                        problem += f" (current state: {refused.current})"
                    rejection = Rejection(
                        field=refused.field,
                        problem=problem,
                        message_id=decoded.message_id,
                        sender=decoded.sender,
                    )
                    await self.outbox.reject(raw, rejection, attempts=1, reference=refused.reference)
                    return None
            decoded = rejection
        await self.outbox.reject(raw, decoded, attempts=1)
        return None

    async def _route(self, env: Envelope, rules: Rules) -> str | None:
        key = (env.sender, env.message_id)
        while (other := self._in_flight.get(key)) is not None:
            await asyncio.wait([other])  # the same message is being handled: let it finish first
        done = asyncio.get_running_loop().create_future()
        self._in_flight[key] = done
        try:
            return await self._route_once(env, rules)
        finally:
            del self._in_flight[key]
            done.set_result(None)

    async def _route_once(self, env: Envelope, rules: Rules) -> str | None:
        if await self.seen((env.sender, env.message_id)):
            self.metrics.duplicate()
            log.info("duplicate", sender=env.sender, message_id=env.message_id)
            return None
        received_at = self.clock.now()
        original, case = await self._link(env, rules)
        if env.kind in CASE_KINDS:
            return await self._case_action(env, case, received_at, rules)
        reference = case.reference if case is not None else None
        if case is not None:
            env = self._marked(env, case, rules)
        hints = env.countries or (
            list(case.countries) if case is not None and case.sender == env.sender else []
        )
        cls = rules.classifier.classify(env.subject, env.body, hints, env.crime_types)
        routing = decide(env, cls, rules.network, original, rules.handling, rules.competence)
        status = Status.TRIAGE if TRIAGE in routing.recipients else Status.ROUTED
        extra = []
        if env.kind is Kind.REQUEST:
            opened, event = await self.desk.open_for(env, routing, status, received_at)
            reference, extra = opened.reference, [event]  # recorded with the message, in its transaction
        elif case is not None and env.kind is Kind.REPLY:
            await self._answered(case, env, routing)
        if reference is not None and reference != env.reference:
            env = env.model_copy(update={"reference": reference})  # the routed copy carries the case
        return await self.outbox.deliver(env, routing, status, reference, received_at, extra)

    def _marked(self, env: Envelope, case: Case, rules: Rules) -> Envelope:
        """The envelope carrying its case's marking when that is the stricter one."""
        marking = rules.handling.strictest(case.handling, env.handling)
        return env if marking == env.handling else env.model_copy(update={"handling": marking})

    async def _link(self, env: Envelope, rules: Rules) -> tuple[Original | None, Case | None]:
        """What this message answers (by in_reply_to, else the request of the case its reference
        names) and the case it belongs to: only what its sender is a party to (core/parties.py). A
        link to anything else is treated as a link to nothing, so a non-party learns nothing of it."""
        original, network = None, rules.network
        if env.in_reply_to:
            found = await self.store.originals(env.in_reply_to)
            mine = [o for o in found if parties.party_to(o, env.sender, network)]
            original = choose_original(mine, sender_key(network, env.sender))
        if env.kind is Kind.REQUEST:
            return original, None  # its reference names the case it opens
        reference = env.reference or (original.reference if original else None)
        case = await self.store.get_case(reference) if reference is not None else None
        if case is not None and parties.side_of(case, env.sender, network) is None:
            case = None
        if original is None and case is not None:
            original = parties.case_original(case)
        return original, case

    async def _answered(self, case: Case, env: Envelope, routing: Routing) -> None:
        """A reply from a post of the case (or the centre) routed back to the requesting unit answers
        its case, if it still awaits one."""
        if unit_key(case.sender) not in routing.recipients or not case.open:
            return
        side = self.desk.side_of(case, env.sender)
        if side is None or not parties.may(side, Action.ANSWER):
            return
        try:
            await self.desk.act(
                case.reference, Action.ANSWER, Actor(side, env.sender), cause=(env.sender, env.message_id)
            )
        except CaseRefused as exc:  # e.g. answered meanwhile over HTTP: the reply is routed all the same
            log.info("reply_not_an_answer", reference=case.reference, problem=exc.problem)

    async def _case_action(
        self, env: Envelope, case: Case | None, received_at: datetime, rules: Rules
    ) -> str | None:
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
        side = self.desk.side_of(case, env.sender)
        if side is None:  # _link keeps only a case its sender is a party to; never acts for another
            return await self._unmatched(env, received_at)
        try:
            action = _action_of(env)
            case, _ = await self.desk.act(
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
        recipients, why = self.desk.counterparts(case, side)
        routing = Routing(
            crime_types=case.crime_types,
            countries=case.countries,
            recipients=recipients,
            explanation=[f"{action.value} by {env.sender} on case {reference}", *why],
            confidence=1.0,
        )
        env = self._marked(env, case, rules)
        if reference != env.reference:
            env = env.model_copy(update={"reference": reference})
        return await self.outbox.deliver(env, routing, Status.ROUTED, reference, received_at)

    async def _unmatched(self, env: Envelope, received_at: datetime) -> str | None:
        """A case action naming no case its sender is a party to: to the centre's triage, recorded
        under no case, with a reason built from the envelope alone (the same whether it exists)."""
        routing = Routing(
            crime_types=[],
            countries=[],
            recipients=[TRIAGE],
            explanation=[f"to {TRIAGE}: {unmatched(env)}"],
            confidence=0.0,
        )
        log.info("not_a_party", sender=env.sender, message_id=env.message_id, kind=env.kind.value)
        return await self.outbox.deliver(env, routing, Status.TRIAGE, None, received_at)


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
