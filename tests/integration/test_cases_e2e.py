"""The request lifecycle end to end over AMQP, against the real RabbitMQ and each database: a case
opened by a request, acted on by the post and the unit with ack/status/clarification envelopes,
answered by a reply routed back to the unit; refused actions dead-lettered; deadline alerts raised
once with an injected time, and after a restart only those still unraised."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.integration.harness import Broker, envelope, running
from watchcentre import bootstrap
from watchcentre.core.lifecycle import Case
from watchcentre.core.ports import ReferenceTaken, Store
from watchcentre.core.references import well_formed
from watchcentre.security import verify_audit
from watchcentre.settings import Settings


@pytest.fixture
def settings(service_settings: Settings) -> Settings:
    # the background tick must not race the test's own ticks with an injected time
    return service_settings.model_copy(update={"deadline_tick_s": 3600.0})


def has(*types: str, reference: str | None = None, n: int = 1) -> Any:
    def check(events: list[dict[str, Any]]) -> bool:
        found = [
            e for e in events if e["type"] in types and (reference is None or e["reference"] == reference)
        ]
        return len(found) >= n

    return check


async def test_the_full_lifecycle_over_amqp(settings: Settings, broker: Broker) -> None:
    request = envelope(
        sender="ofast", subject="Trafic de cocaïne", body="Go-fast vers l'Espagne.", countries=["ES"]
    )
    async with running(settings) as inst:
        store = inst.runtime.store
        await broker.publish(request)
        await broker.wait_events(has("routed"))
        [copy] = await broker.drain("post.madrid")
        reference = orjson.loads(copy.body)["reference"]
        assert well_formed(reference)
        case = await store.get_case(reference)
        assert case is not None and case.state == "routed" and case.recipients == ["post.madrid"]

        async def act(n: int, event_type: str, **env: Any) -> None:
            await broker.publish(envelope(subject="suivi", body="-", **env))
            await broker.wait_events(has(event_type, reference=reference, n=n))

        await act(1, "case_acknowledged", sender="madrid", kind="ack", reference=reference)
        # in_reply_to is enough to find the case
        await act(
            1,
            "clarification_requested",
            sender="madrid",
            kind="clarification",
            clarification="request",
            in_reply_to=request["message_id"],
        )
        paused = await store.get_case(reference)
        assert paused is not None and paused.clarification_since is not None and paused.due_at is None
        await act(
            1,
            "clarification_answered",
            sender="ofast",
            kind="clarification",
            clarification="answer",
            reference=reference,
        )
        await act(
            1, "case_in_progress", sender="madrid", kind="status", state="in_progress", reference=reference
        )
        later = (datetime.fromisoformat(request["sent_at"]) + timedelta(days=9)).isoformat()
        await act(
            1,
            "deadline_extended",
            sender="madrid",
            kind="status",
            expected_at=later,
            reason="commission rogatoire",
            reference=reference,
        )
        reply = envelope(
            sender="madrid", kind="reply", subject="Re", body="Identifié.", in_reply_to=request["message_id"]
        )
        await broker.publish(reply)
        await broker.wait_events(has("case_answered", reference=reference))
        await act(1, "case_closed", sender="ofast", kind="status", state="closed", reference=reference)

        # refused: an ack on a closed case, a status without its state; an action by a post that is
        # not a party, and one naming an unknown case, go to triage alike (the case untouched)
        bad = [
            envelope(sender="madrid", kind="ack", subject="ack", body="-", reference=reference),
            envelope(sender="rome", kind="ack", subject="ack", body="-", reference=reference),
            envelope(sender="madrid", kind="ack", subject="ack", body="-", reference="WC-1999-000001"),
            envelope(sender="madrid", kind="status", subject="s", body="-", reference=reference),
        ]
        for env in bad:
            await broker.publish(env)
        await broker.wait_events(has("rejected", n=2))
        await broker.wait_events(has("triaged", n=2))
        final = await store.get_case(reference)
        timeline = [e.type for e in await store.audit(reference=reference, limit=1000)]
        assert (await verify_audit(store)).ok  # case records are chained like every other

    assert timeline.count("rejected") == 2  # the parties' refusals about this case are in its timeline
    assert final is not None and final.state == "closed" and final.answered_at is not None
    assert final.acknowledged_at is not None and final.paused_seconds >= 0
    for expected in (
        "case_opened",
        "case_acknowledged",
        "clarification_requested",
        "clarification_answered",
        "case_in_progress",
        "deadline_extended",
        "case_answered",
        "case_closed",
    ):
        assert expected in timeline
    # the unit hears of the post's actions and gets the reply; the post hears of the unit's
    to_unit = [orjson.loads(m.body) for m in await broker.drain("unit.ofast")]
    assert [m["kind"] for m in to_unit] == ["ack", "clarification", "status", "status", "reply"]
    # the reply named only in_reply_to: it is attached to the case and its copy carries the reference
    assert to_unit[-1]["message_id"] == reply["message_id"] and to_unit[-1]["reference"] == reference
    assert timeline.count("received") >= 2  # the request's and the reply's records are in the timeline
    to_post = [orjson.loads(m.body) for m in await broker.drain("post.madrid")]
    assert [m["kind"] for m in to_post] == ["clarification", "status"]
    assert all(m["reference"] == reference for m in to_post)
    reasons = {
        orjson.loads(m.body)["message_id"]: m.headers["x-watchcentre-error"]
        for m in await broker.drain("dead")
    }
    assert reasons[bad[0]["message_id"]] == "state: cannot ack a case that is closed (current state: closed)"
    assert reasons[bad[3]["message_id"]].startswith("state: required for a status")
    assert set(reasons) == {bad[0]["message_id"], bad[3]["message_id"]}
    triaged = {
        m["message_id"]: m["routing"]["explanation"]
        for m in (orjson.loads(t.body) for t in await broker.drain("centre.triage"))
    }
    assert triaged[bad[1]["message_id"]] == [
        f"to centre.triage: ack from rome: no case or message it is a party to matches reference {reference};"
        " an operator must match it"
    ]
    assert triaged[bad[2]["message_id"]] == [
        "to centre.triage: ack from madrid: no case or message it is a party to matches reference WC-1999-000001;"
        " an operator must match it"
    ]


async def test_a_given_reference_is_kept_and_a_taken_one_refused(settings: Settings, broker: Broker) -> None:
    first = envelope(sender="ofast", countries=["ES"], reference="OFAST-2026-42")
    second = envelope(sender="oclco", countries=["ES"], reference="OFAST-2026-42")
    async with running(settings) as inst:
        await broker.publish(first)
        await broker.wait_events(has("routed"))
        await broker.publish(second)
        await broker.wait_events(has("rejected"))
        case = await inst.runtime.store.get_case("OFAST-2026-42")
    assert case is not None and case.sender == "ofast"
    [dead] = await broker.drain("dead")
    assert (
        dead.headers["x-watchcentre-error"]
        == "reference: OFAST-2026-42 is already the reference of another request"
    )


async def test_deadline_alerts_are_raised_once_and_survive_a_restart(
    settings: Settings, broker: Broker
) -> None:
    request = envelope(sender="ofast", countries=["ES"], priority="urgent", access="direct")
    async with running(settings) as inst:
        await broker.publish(request)
        await broker.wait_events(has("routed"))
        [case] = await inst.runtime.store.list_cases()
        opened, tick = case.opened_at, inst.runtime.scheduler.tick
        assert case.due_at == opened + timedelta(hours=8) and case.ack_due_at == opened + timedelta(hours=1)
        assert await tick(opened + timedelta(minutes=59)) == []
        [ack_late] = await tick(opened + timedelta(hours=2))
        assert ack_late.type == "overdue" and ack_late.details["deadline"] == "acknowledgement"
        assert await tick(opened + timedelta(hours=2)) == []  # once
        [warning] = await tick(opened + timedelta(hours=6, minutes=30))
        assert warning.type == "deadline_warning"
        await broker.wait_events(has("deadline_warning"))

    # a restart, as two instances sharing the database: what was raised stays raised, and a new
    # breach is raised by one of them only
    async with running(settings) as again, running(settings) as twin:
        tick = again.runtime.scheduler.tick
        twin_tick = twin.runtime.scheduler.tick
        assert await tick(opened + timedelta(hours=6, minutes=30)) == []
        both = await asyncio.gather(tick(opened + timedelta(hours=9)), twin_tick(opened + timedelta(hours=9)))
        [overdue] = [e for raised in both for e in raised]
        assert overdue.type == "overdue" and overdue.details["deadline"] == "answer"
        assert await tick(opened + timedelta(days=3)) == []
        await broker.wait_events(has("overdue", n=2))

    alerts = [orjson.loads(m.body) for m in await broker.drain("centre.triage")]
    assert [a["subject"].split(": ", 1)[1] for a in alerts] == [
        "not acknowledged in time",
        "answer deadline approaching",
        "answer overdue",
    ]
    assert {a["kind"] for a in alerts} == {"alert"} and {a["reference"] for a in alerts} == {case.reference}
    assert len(broker.events_of("overdue")) == 2 and len(broker.events_of("deadline_warning")) == 1


async def test_a_reply_naming_only_the_reference_answers_the_right_units_case(
    settings: Settings, broker: Broker
) -> None:
    mine = envelope(sender="ofast", countries=["ES"], subject="Cocaïne", body="Go-fast.")
    other = envelope(sender="oclco", countries=["ES"], subject="Blanchiment", body="Sociétés écrans.")
    async with running(settings) as inst:
        store = inst.runtime.store
        for env in (mine, other):
            await broker.publish(env)
        await broker.wait_events(has("routed", n=2))
        refs = {c.sender: c.reference for c in await store.list_cases()}
        await broker.drain("post.madrid")
        info = envelope(
            sender="oclco", kind="information", subject="Complément", body="RAS.", reference=refs["oclco"]
        )
        reply = envelope(
            sender="madrid", kind="reply", subject="Réponse", body="Identifié.", reference=refs["ofast"]
        )
        await broker.publish(info)
        await broker.publish(reply)
        await broker.wait_events(has("case_answered"))
        await broker.wait_events(has("routed", n=4))
        answered, untouched = await store.get_case(refs["ofast"]), await store.get_case(refs["oclco"])
        info_events = [e.type for e in await store.audit(reference=refs["oclco"])]
    assert answered is not None and answered.state == "answered"
    assert untouched is not None and untouched.state == "routed"
    assert [orjson.loads(m.body)["message_id"] for m in await broker.drain("unit.ofast")] == [
        reply["message_id"]
    ]
    assert await broker.drain("unit.oclco") == []
    assert info_events.count("received") == 2  # the request's and the information's
    # the unit's follow-up went where its case went, though it named no country
    assert [orjson.loads(m.body)["message_id"] for m in await broker.drain("post.madrid")] == [
        info["message_id"]
    ]


async def test_a_sender_that_names_a_reply_queue_gets_its_receipt_with_the_new_reference(
    settings: Settings, broker: Broker
) -> None:
    assert broker.channel is not None
    # RabbitMQ's direct reply-to: the receipts come back on the publishing channel, and only there
    # (a receipt never goes to a queue the sender does not own: test_broker_trust.py)
    receipts = await broker.channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
    got: list[Any] = []
    both = asyncio.Event()

    async def on_receipt(m: Any) -> None:
        got.append(m)
        if len(got) == 2:
            both.set()

    await receipts.consume(on_receipt, no_ack=True)
    request = envelope(sender="ofast", subject="Cocaïne", body="Go-fast vers l'Espagne.", countries=["ES"])
    bad = envelope(sender="nobody")
    async with running(settings):
        await broker.publish(request, reply_to="amq.rabbitmq.reply-to")
        await broker.publish(bad, reply_to="amq.rabbitmq.reply-to")
        await asyncio.wait_for(both.wait(), 30)
    by_id = {orjson.loads(m.body)["message_id"]: (m, orjson.loads(m.body)) for m in got}
    message, receipt = by_id[request["message_id"]]
    assert receipt["status"] == "routed" and receipt["recipients"] == ["post.madrid"]
    assert well_formed(receipt["reference"])
    assert message.correlation_id == request["message_id"]
    refused = by_id[bad["message_id"]][1]
    assert refused["status"] == "rejected" and "unknown sender" in refused["error"]


async def test_a_backlog_of_requests_opens_its_cases_in_batches_each_once(
    settings: Settings, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests handled together open their cases through one batch (`Store.open_cases`); each
    request opens one case, once, with its own reference, and a taken reference is still refused."""
    batches: list[int] = []  # how many cases the store was asked to open, call by call
    real_open_store = bootstrap.open_store

    async def spied_store(settings: Settings) -> Store:
        store = await real_open_store(settings)
        real_open_cases = store.open_cases

        async def open_cases(cases: Sequence[Case]) -> list[tuple[Case, bool] | ReferenceTaken]:
            batches.append(len(cases))
            return await real_open_cases(cases)

        monkeypatch.setattr(store, "open_cases", open_cases)
        return store

    monkeypatch.setattr(bootstrap, "open_store", spied_store)
    requests = [envelope(sender="ofast", countries=["ES"]) for _ in range(40)]
    named = envelope(sender="ofast", countries=["ES"], reference="OFAST-2026-7")
    taken = envelope(sender="oclco", countries=["ES"], reference="OFAST-2026-7")
    await broker.declare_topology()
    for body in [*requests, named, requests[0], taken]:  # requests[0] twice: one case, routed once
        await broker.publish(body)
    async with running(settings) as inst:
        await broker.wait_events(has("case_opened", n=41))
        await broker.wait_events(has("rejected"))
        store = inst.runtime.store
        assert sum(batches) == 42 and len(batches) < 42  # not the duplicate; several cases per call
        cases = await store.list_cases()
    assert sorted(c.message_id for c in cases) == sorted(r["message_id"] for r in [*requests, named])
    assert len({c.reference for c in cases}) == 41
    assert all(well_formed(c.reference) for c in cases if c.message_id != named["message_id"])
    assert sum(e["type"] == "case_opened" for e in broker.events) == 41
    assert sum(e["type"] == "routed" for e in broker.events) == 41
    [dead] = await broker.drain("dead")
    assert (
        dead.headers["x-watchcentre-error"]
        == "reference: OFAST-2026-7 is already the reference of another request"
    )
