"""The routing service against small fakes (tests/unit/fakes.py): dedupe, poison counting, bad input,
receipts, case actions, manual routing and deadline alerts, each in milliseconds, with the real
config/ and classifier. The same behaviours end to end (real broker, both databases) are in
tests/integration/; these pin the service's own logic so a change to it fails fast."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any, cast

import orjson
import pytest

from tests.unit.fakes import START, FakeDelivery, FakePublisher, FakeStore, Wired, wired_service
from watchcentre.core.audit_chain import GENESIS, verify_links
from watchcentre.core.classify import Classifier
from watchcentre.core.errors import Conflict, Invalid
from watchcentre.core.ports import OutboundCopy, TransientError
from watchcentre.core.routing import copy_id

RECEIPTS = "watchcentre.reply.ofast"  # the reply queue the sender owns, named in AMQP reply_to
_numbers = itertools.count(1)


def envelope(**overrides: Any) -> dict[str, Any]:
    """A request from OFAST about Spain (routed to post.madrid), unless overridden."""
    base: dict[str, Any] = {
        "message_id": f"m-{next(_numbers)}",
        "sender": "ofast",
        "kind": "request",
        "subject": "Trafic de cocaïne",
        "body": "Go-fast vers l'Espagne.",
        "countries": ["ES"],
        "sent_at": START.isoformat(),
    }
    return base | overrides


def raw(env: dict[str, Any]) -> bytes:
    return orjson.dumps(env)


def types_of(w: Wired, message_id: str) -> list[str]:
    return [e.type for e in w.store.audit_log if e.message_id == message_id]


@pytest.fixture
async def w() -> AsyncIterator[Wired]:
    async with wired_service() as wired:
        yield wired


# -- one publish per input ----------------------------------------------------------------------------


async def test_an_input_for_several_recipients_is_one_publish_with_one_id_naming_them_all(w: Wired) -> None:
    env = envelope(countries=["ES", "PT", "MA"])
    assert (await w.deliver(raw(env))).acked
    [published] = w.publisher.routed  # one confirmed publish, whatever the fan-out
    assert set(published.routing_keys) == {"post.madrid", "post.lisbon", "post.rabat"}
    for key in published.routing_keys:
        [copy] = w.publisher.copies_to(key)
        assert copy["_id"] == copy_id("ofast", env["message_id"])  # the same id in every queue
        assert copy["routing"]["recipients"] == list(published.routing_keys)  # the body names them all
    [routed] = [e for e in w.store.audit_log if e.type == "routed"]
    assert routed.details["copies"] == dict.fromkeys(
        published.routing_keys, copy_id("ofast", env["message_id"])
    )


async def test_a_committed_batch_is_announced_in_one_events_message(w: Wired) -> None:
    envs = [envelope(message_id=f"batch-{i}") for i in range(20)]
    await asyncio.gather(*(w.deliver(raw(e)) for e in envs))
    assert len(w.publisher.events) == len(w.store.audit_log)  # every record announced, once
    assert [e.seq for e in w.publisher.events] == [e.seq for e in w.store.audit_log]
    assert w.publisher.event_messages < len(envs)  # per batch, not per record nor per input


# -- dedupe --------------------------------------------------------------------------------------------


async def test_the_same_message_twice_is_routed_and_audited_once(w: Wired) -> None:
    env = envelope()
    first = await w.deliver(raw(env))
    second = await w.deliver(raw(env))
    assert first.acked and second.acked
    assert len(w.publisher.copies_to("post.madrid")) == 1
    assert types_of(w, env["message_id"]) == ["received", "classified", "routed"]
    assert len(w.store.cases) == 1
    assert (w.metrics.counts["routed"], w.metrics.counts["duplicate"]) == (1, 1)
    assert verify_links(w.store.audit_log, GENESIS)[0] is None  # the fake chains like the stores


async def test_concurrent_copies_of_one_message_are_routed_once(w: Wired) -> None:
    env = envelope()
    deliveries = await asyncio.gather(*(w.deliver(raw(env)) for _ in range(5)))
    assert all(d.acked for d in deliveries)
    assert len(w.publisher.copies_to("post.madrid")) == 1
    assert types_of(w, env["message_id"]) == ["received", "classified", "routed"]
    assert w.metrics.counts["duplicate"] == 4


async def test_two_instances_racing_on_one_message_record_it_once(w: Wired) -> None:
    env = envelope()
    async with wired_service(store=w.store, publisher=w.publisher, clock=w.clock) as other:
        await asyncio.gather(w.deliver(raw(env)), other.deliver(raw(env)))
    # both may publish before either commits: the copies carry the same id, which recipients drop
    assert {c["_id"] for c in w.publisher.copies_to("post.madrid")} == {copy_id("ofast", env["message_id"])}
    assert types_of(w, env["message_id"]) == ["received", "classified", "routed"]
    assert len(w.store.cases) == 1
    assert w.metrics.counts["duplicate"] + other.metrics.counts["duplicate"] == 1


# -- poison and outages --------------------------------------------------------------------------------


class Exploding:
    """The real classifier, except on a POISON subject."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def classify(self, subject: str, *args: Any, **kwargs: Any) -> Any:
        if subject == "POISON":
            raise RuntimeError("rule engine exploded")
        return self.real.classify(subject, *args, **kwargs)


def explode(w: Wired) -> None:
    """Put in force rules whose classifier explodes on a POISON subject (as a reload would)."""
    rules = w.service.rules
    rules.swap(
        dataclasses.replace(rules.current, classifier=cast(Classifier, Exploding(rules.current.classifier)))
    )


async def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered_with_its_reason(w: Wired) -> None:
    explode(w)
    poison = envelope(subject="POISON")
    deliveries = await w.deliver_until_settled(raw(poison))
    assert [d.retried for d in deliveries] == [True, True, False]  # max_attempts=3
    [dead] = w.publisher.dead
    assert dead.body == raw(poison)
    assert dead.reason == "handler: handler failed 3 times: RuntimeError: rule engine exploded"
    assert types_of(w, poison["message_id"]) == ["rejected"]
    assert w.store.audit_log[-1].details["field"] == "handler"
    assert w.publisher.routed == [] and w.metrics.counts["failed"] == 3
    fine = envelope()
    assert (await w.deliver(raw(fine))).acked  # the stream flows on
    assert len(w.publisher.copies_to("post.madrid")) == 1


async def test_a_delivery_that_hangs_is_cut_off_retried_then_dead_lettered() -> None:
    """A dependency that never answers (here: a publish without a confirm) holds no delivery for
    ever: past `handler_timeout_s` it is a handler failure, retried, then dead-lettered like poison."""
    async with wired_service(handler_timeout_s=0.05) as w:
        hung = envelope(subject="HANG")
        publish = w.publisher.publish_routed

        async def publish_routed(copies: Sequence[OutboundCopy]) -> None:
            if any(b"HANG" in c.body for c in copies):
                await asyncio.Event().wait()  # no confirm, ever
            await publish(copies)

        w.publisher.publish_routed = publish_routed  # type: ignore[method-assign]
        deliveries = await w.deliver_until_settled(raw(hung))
        assert [d.retried for d in deliveries] == [True, True, False]  # max_attempts=3
        [dead] = w.publisher.dead
        assert dead.reason == "handler: handler failed 3 times: HandlerTimeout: not handled within 0.05 s"
        assert types_of(w, hung["message_id"]) == ["rejected"]
        assert (await w.deliver(raw(envelope()))).acked  # the stream flows on
        assert len(w.publisher.copies_to("post.madrid")) == 1


async def test_redeliveries_during_an_outage_are_not_counted_as_failures(w: Wired) -> None:
    explode(w)
    body = raw(envelope(subject="POISON"))
    assert (await w.deliver(body)).retried  # failure 1
    w.store.down = True
    outage = [await w.deliver(body, attempts=n) for n in (2, 3, 4)]
    assert all(d.retried for d in outage) and w.publisher.dead == []
    assert len(w.unavailable) == 3  # intake was told each time, so it can pause
    w.store.down = False
    assert (await w.deliver(body, attempts=5)).retried  # failure 2
    last = await w.deliver(body, attempts=6)  # failure 3: the limit
    assert last.acked
    [dead] = w.publisher.dead
    assert dead.reason.startswith("handler: handler failed 3 times")
    assert dead.headers["x-watchcentre-attempts"] == "3"


async def test_the_brokers_last_delivery_is_dead_lettered_with_its_record_not_handed_back() -> None:
    """Publishes nacked again and again (not the input's fault, so never counted as a failure): at
    the broker's last delivery (x-delivery-count = the limit) the service dead-letters it itself, with
    the reason and the `rejected` record, instead of handing it back for the broker to drop unrecorded."""
    async with wired_service(delivery_limit=20) as w:

        async def nacked(copies: Sequence[OutboundCopy]) -> None:
            raise TransientError("routed publish not confirmed: DeliveryError")

        w.publisher.publish_routed = nacked  # type: ignore[method-assign]
        env = envelope()
        deliveries = await w.deliver_until_settled(raw(env), most=25)
        assert [d.retried for d in deliveries] == [True] * 20 + [False]
        assert deliveries[-1].acked
        [dead] = w.publisher.dead
        assert dead.reason.startswith(
            "delivery: delivered 21 times, the broker's limit, without being handled"
        )
        assert "DeliveryError" in dead.reason
        assert types_of(w, env["message_id"]) == ["rejected"]


async def test_the_last_delivery_waits_for_its_record_when_the_store_is_out() -> None:
    async with wired_service(delivery_limit=20) as w:
        told: list[TransientError] = []
        third = asyncio.Event()

        def unavailable(exc: TransientError) -> None:
            told.append(exc)
            if len(told) == 3:  # the handling, then the dead-lettering, twice
                third.set()

        w.service.intake.on_unavailable = unavailable
        w.store.down = True
        env = envelope()
        last = asyncio.create_task(w.deliver(raw(env), attempts=21))
        async with asyncio.timeout(5):
            await third.wait()
        assert not last.done() and w.publisher.dead == []  # neither handed back nor dropped
        w.store.down = False
        delivery = await last
        assert delivery.acked and not delivery.retried
        assert len(w.publisher.dead) == 1
        assert types_of(w, env["message_id"]) == ["rejected"]


async def test_a_message_met_by_a_broker_outage_is_handed_back_then_routed_once(w: Wired) -> None:
    env = envelope()
    w.publisher.down = True
    assert (await w.deliver(raw(env))).retried
    assert w.store.messages == [] and len(w.unavailable) == 1  # nothing recorded before the copies are out
    w.publisher.down = False
    assert (await w.deliver(raw(env), attempts=2)).acked
    assert len(w.publisher.copies_to("post.madrid")) == 1
    assert types_of(w, env["message_id"]) == ["received", "classified", "routed"]


async def test_a_database_outage_between_publish_and_commit_hands_the_message_back_and_records_it_once() -> (
    None
):
    env = envelope()

    class DatabaseFallsAfterPublish(FakePublisher):
        """Confirms the copies; then `breaks` (the store) goes away before the commit, once."""

        breaks: FakeStore | None = None

        async def publish_routed(self, copies: Sequence[OutboundCopy]) -> None:
            await super().publish_routed(copies)
            if self.breaks is not None:
                self.breaks.down, self.breaks = True, None

    publisher = DatabaseFallsAfterPublish()
    async with wired_service(publisher=publisher) as wired:
        publisher.breaks = wired.store
        assert (await wired.deliver(raw(env))).retried
        assert wired.store.messages == [] and len(wired.unavailable) == 1
        wired.store.down = False
        assert (await wired.deliver(raw(env), attempts=2)).acked
    # published before each commit attempt, with one id (recipients drop the second); recorded once
    copies = wired.publisher.copies_to("post.madrid")
    assert len(copies) == 2 and {c["_id"] for c in copies} == {copy_id("ofast", env["message_id"])}
    assert types_of(wired, env["message_id"]) == ["received", "classified", "routed"]


# -- bad input -----------------------------------------------------------------------------------------

BAD = [
    (b"{not json", "envelope", "envelope: not valid JSON"),
    (raw(envelope(sender="nobody")), "sender", "sender: unknown sender 'nobody'"),
    (raw(envelope(countries=["XX"])), "countries", "countries: not a real ISO 3166-1 country code: XX"),
    (raw(envelope(handling="eyes-only")), "handling", "handling: "),
    (raw(envelope(kind="gossip")), "kind", "kind: Input should be"),
]


@pytest.mark.parametrize(("body", "field", "reason"), BAD, ids=[b[1] for b in BAD])
async def test_bad_input_is_dead_lettered_with_its_field_and_recorded_as_rejected(
    w: Wired, body: bytes, field: str, reason: str
) -> None:
    assert (await w.deliver(body)).acked
    [dead] = w.publisher.dead
    assert dead.body == body and dead.reason.startswith(reason)
    [event] = w.store.audit_log
    assert (event.type, event.details["field"]) == ("rejected", field)
    [stored] = w.store.messages
    assert stored.status == "rejected" and stored.error == dead.reason
    assert w.metrics.rejected_fields == [field]
    assert w.publisher.events == [event]


async def test_the_same_bad_bytes_twice_are_dead_lettered_twice_and_recorded_once(w: Wired) -> None:
    body = raw(envelope(countries=["XX"]))
    await w.deliver(body)
    await w.deliver(body, attempts=2)
    assert len(w.publisher.dead) == 2  # neither routed nor dropped: back in the dead letters
    assert [e.type for e in w.store.audit_log] == ["rejected"]
    assert w.metrics.counts["duplicate"] == 1


# -- receipts ------------------------------------------------------------------------------------------


async def test_the_receipt_of_a_routed_request_names_its_case_and_recipients(w: Wired) -> None:
    env = envelope()
    await w.deliver(raw(env), reply_to=RECEIPTS)
    [reply] = w.publisher.replies
    assert (reply.to, reply.correlation_id) == (RECEIPTS, env["message_id"])
    assert reply.body["status"] == "routed" and reply.body["recipients"] == ["post.madrid"]
    assert reply.body["reference"] == next(iter(w.store.cases))


async def test_the_receipt_of_a_refused_message_says_why(w: Wired) -> None:
    env = envelope(countries=["XX"])
    await w.deliver(raw(env), reply_to=RECEIPTS)
    [reply] = w.publisher.replies
    assert reply.body["status"] == "rejected" and reply.body["message_id"] == env["message_id"]
    assert reply.body["error"] == "countries: not a real ISO 3166-1 country code: XX"


async def test_no_receipt_without_a_reply_queue(w: Wired) -> None:
    await w.deliver(raw(envelope()))
    assert w.publisher.replies == []


# -- case actions (by the parties) ---------------------------------------------------------------------


async def open_case(w: Wired) -> tuple[str, dict[str, Any]]:
    """A request from OFAST routed to post.madrid; its reference and envelope."""
    request = envelope()
    await w.deliver(raw(request))
    [reference] = w.store.cases
    return reference, request


def action(**overrides: Any) -> bytes:
    return raw(envelope(subject="suivi", body="-", countries=[], **overrides))


async def test_a_post_the_request_went_to_acknowledges_it_and_the_requester_hears_of_it(w: Wired) -> None:
    reference, _ = await open_case(w)
    assert (await w.deliver(action(sender="madrid", kind="ack", reference=reference))).acked
    case = w.store.cases[reference]
    assert (case.state, case.version, case.acknowledged_at) == ("acknowledged", 1, START)
    [to_unit] = w.publisher.copies_to("unit.ofast")
    assert (to_unit["kind"], to_unit["reference"]) == ("ack", reference)
    assert len(w.publisher.copies_to("centre.inbox")) == 1
    acked = [e for e in w.store.audit_log if e.type == "case_acknowledged"]
    assert [(e.actor, e.reference) for e in acked] == [("madrid", reference)]


async def test_an_action_naming_only_in_reply_to_finds_its_case(w: Wired) -> None:
    reference, request = await open_case(w)
    await w.deliver(action(sender="madrid", kind="ack", in_reply_to=request["message_id"]))
    assert w.store.cases[reference].state == "acknowledged"


async def test_the_requester_withdraws_its_request_and_the_post_hears_of_it(w: Wired) -> None:
    reference, _ = await open_case(w)
    await w.deliver(action(kind="status", state="withdrawn", reason="suspect arrested", reference=reference))
    case = w.store.cases[reference]
    assert case.state == "withdrawn" and case.closed_at == START
    [copy] = [c for c in w.publisher.copies_to("post.madrid") if c["kind"] == "status"]
    assert (copy["state"], copy["reference"]) == ("withdrawn", reference)


async def test_an_action_the_state_does_not_allow_is_refused_with_the_current_state(w: Wired) -> None:
    reference, _ = await open_case(w)
    await w.deliver(action(kind="status", state="withdrawn", reference=reference))
    late_ack = action(sender="madrid", kind="ack", reference=reference)
    assert (await w.deliver(late_ack)).acked
    [dead] = w.publisher.dead
    assert dead.reason == "state: cannot ack a case that is withdrawn (current state: withdrawn)"
    assert w.store.cases[reference].version == 1  # unchanged
    assert w.store.audit_log[-1].type == "rejected" and w.store.audit_log[-1].reference == reference


async def test_a_redelivered_action_is_applied_once(w: Wired) -> None:
    reference, _ = await open_case(w)
    ack = action(sender="madrid", kind="ack", reference=reference)
    await w.deliver(ack)
    await w.deliver(ack, attempts=2)
    assert w.store.cases[reference].version == 1 and w.publisher.dead == []
    assert len(w.publisher.copies_to("unit.ofast")) == 1


async def test_concurrent_actions_on_one_case_both_apply_without_a_lost_update(w: Wired) -> None:
    reference, _ = await open_case(w)
    later = (w.clock.now() + timedelta(days=10)).isoformat()  # within the extension bound
    progress = action(sender="madrid", kind="status", state="in_progress", reference=reference)
    extend = action(
        sender="madrid", kind="status", expected_at=later, reason="rogatory letter", reference=reference
    )
    async with wired_service(store=w.store, publisher=w.publisher, clock=w.clock) as other:
        await asyncio.gather(w.deliver(progress), other.deliver(extend))
    case = w.store.cases[reference]
    assert w.store.version_conflicts >= 1  # the two writes did race
    assert (case.state, case.version, case.extension_reason) == ("in_progress", 2, "rogatory letter")


# -- manual routing (of a triaged message that is not a request) ---------------------------------------


async def triaged(w: Wired) -> dict[str, Any]:
    env = envelope(
        kind="information", subject="Note de situation", body="Sans autre précision.", countries=[]
    )
    await w.deliver(raw(env))
    assert w.store.messages[-1].status == "triage"
    return env


async def route(w: Wired, env: dict[str, Any], recipients: list[str], revision: int | None) -> Any:
    return await w.service.operator.route_manually(
        sender=env["sender"],
        message_id=env["message_id"],
        recipients=recipients,
        reason="Known to them",
        actor="operator:Alice",
        expected_revision=revision,
    )


async def test_each_manual_revision_publishes_copies_with_ids_of_its_own(w: Wired) -> None:
    env = await triaged(w)
    routing, [event] = await route(w, env, ["post.lisbon"], 0)
    assert routing.recipients == ["post.lisbon"] and event.details["revision"] == 1
    assert event.actor == "operator:Alice" and event.details["manual"] is True
    await route(w, env, ["post.madrid"], 1)
    [to_lisbon] = w.publisher.copies_to("post.lisbon")
    [to_madrid] = w.publisher.copies_to("post.madrid")
    assert to_lisbon["_id"] == copy_id("ofast", env["message_id"], 1)
    assert to_madrid["_id"] == copy_id("ofast", env["message_id"], 2)
    stored = w.store.messages[-1]
    assert stored.status == "routed" and stored.recipients == [
        "post.madrid",
        "post.lisbon",
    ]  # Lisbon keeps it
    assert types_of(w, env["message_id"]) == ["received", "classified", "triaged", "routed", "routed"]


async def test_a_decision_taken_on_a_stale_revision_is_refused(w: Wired) -> None:
    env = await triaged(w)
    await route(w, env, ["post.lisbon"], 0)
    with pytest.raises(Conflict) as refused:
        await route(w, env, ["post.madrid"], 0)  # a second operator who had not reloaded
    assert refused.value.field == "revision"
    assert "operator:Alice" in refused.value.problem
    assert w.publisher.copies_to("post.madrid") == []


async def test_an_unknown_recipient_is_refused_naming_the_field(w: Wired) -> None:
    env = await triaged(w)
    with pytest.raises(Invalid) as refused:
        await route(w, env, ["post.nowhere"], 0)
    assert refused.value.field == "recipients"
    assert w.store.manual == {} and w.publisher.copies_to("post.nowhere") == []


async def test_two_operators_on_two_instances_record_one_decision(w: Wired) -> None:
    env = await triaged(w)
    async with wired_service(store=w.store, publisher=w.publisher, clock=w.clock) as other:
        results = await asyncio.gather(
            route(w, env, ["post.lisbon"], 0), route(other, env, ["post.lisbon"], 0), return_exceptions=True
        )
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], Conflict)
    assert [r.revision for r in w.store.manual[("ofast", env["message_id"])]] == [1]
    assert {c["_id"] for c in w.publisher.copies_to("post.lisbon")} == {
        copy_id("ofast", env["message_id"], 1)
    }


async def test_two_operators_choosing_different_recipients_leave_no_unrecorded_copy(w: Wired) -> None:
    env = await triaged(w)
    async with wired_service(store=w.store, publisher=w.publisher, clock=w.clock) as other:
        await asyncio.gather(
            route(w, env, ["post.lisbon"], 0), route(other, env, ["post.madrid"], 0), return_exceptions=True
        )
    [decision] = w.store.manual[("ofast", env["message_id"])]
    holders = {
        k for c in w.publisher.routed if c.headers.get("x-watchcentre-revision") for k in c.routing_keys
    }
    assert holders == set(decision.recipients)


# -- deadline alerts -----------------------------------------------------------------------------------


async def test_a_missed_acknowledgement_is_raised_once_and_goes_to_triage(w: Wired) -> None:
    reference, _ = await open_case(w)
    later = w.clock.advance(hours=25)  # normal priority: acknowledge within 24 h
    raised = await w.service.desk.raise_due(later)
    assert [(e.type, e.details["deadline"]) for e in raised] == [("overdue", "acknowledgement")]
    assert await w.service.desk.raise_due(later) == []  # once per breach
    [alert] = w.publisher.copies_to("centre.triage")
    assert (alert["kind"], alert["reference"]) == ("alert", reference)


# -- broker identity (strict mode, config/broker.yaml) ------------------------------------------------


async def test_a_post_speaking_as_another_sender_is_refused_whatever_it_claims(w: Wired) -> None:
    for claimed in ("madrid", "centre", "ofast"):
        forged = envelope(sender=claimed)
        assert (await w.deliver(raw(forged), user_id="wc-rome")).acked
    assert w.publisher.routed == []
    assert [d.reason.split(":")[0] for d in w.publisher.dead] == ["sender"] * 3
    assert [e.type for e in w.store.audit_log] == ["rejected"] * 3


async def test_a_message_without_a_broker_identity_is_refused_in_strict_mode(w: Wired) -> None:
    env = envelope()
    delivery = FakeDelivery(raw(env), user_id=None)
    await w.service.intake.on_delivery(delivery)
    assert delivery.acked and w.publisher.routed == []
    [dead] = w.publisher.dead
    assert dead.reason.startswith("sender: no user_id")
