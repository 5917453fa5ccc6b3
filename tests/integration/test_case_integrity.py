"""Case integrity from the attacker's side (issue 12), real RabbitMQ and HTTP, each database:

* a post that is not a party publishes a reply (or an ack, a status…) naming another post's case by
  its reference or by in_reply_to: the case is untouched, the message goes to centre triage, and what
  the attacker can read back (its receipt, its own message over HTTP) says nothing of the case, the
  same whether the reference exists or not;
* a follow-up on a `centre-only` case, or a `no-onward` one, carries the case's marking;
* manual routing respects the marking unless the operator overrides it explicitly (audited);
* a triaged request routed by hand becomes the chosen post's case: it sees it, acknowledges and
  answers it; statistics no longer count it as triage.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from aio_pika.abc import AbstractQueue

from tests.integration.harness import Broker, envelope, running
from tests.integration.test_cases_http import Api, tokens
from watchcentre.core.records import text_digest
from watchcentre.settings import Settings


@pytest.fixture
def settings(service_settings: Settings) -> Settings:
    return service_settings.model_copy(update={"deadline_tick_s": 3600.0})


def of_type(kind: str, n: int = 1, message_ids: set[str] | None = None) -> Any:
    def check(events: list[dict[str, Any]]) -> bool:
        found = [
            e for e in events if e["type"] == kind and (message_ids is None or e["message_id"] in message_ids)
        ]
        return len(found) >= n

    return check


async def receipts_of(queue: AbstractQueue, n: int) -> dict[str, dict[str, Any]]:
    got: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(30), queue.iterator() as messages:
        async for m in messages:
            await m.ack()
            body = orjson.loads(m.body)
            got[body["message_id"]] = body
            if len(got) == n:
                break
    return got


def blind(text: str, *names: str) -> str:
    """The text with what differs by construction (ids, the reference named) blanked out."""
    for name in names:
        text = text.replace(name, "<X>")
    return text


async def test_a_post_that_is_not_a_party_cannot_answer_or_act_on_another_posts_case(
    settings: Settings, broker: Broker
) -> None:
    assert broker.channel is not None
    # rome asks for its receipts on its own reply queue (the only kind a receipt may go to)
    receipts = await broker.channel.declare_queue(
        f"{broker.prefix}.reply.rome", exclusive=True, auto_delete=True
    )
    request = envelope(sender="ofast", countries=["ES"], subject="Cocaïne", body="Go-fast vers l'Espagne.")
    async with running(settings) as inst, aiohttp.ClientSession() as session:
        store = inst.runtime.store
        api = Api(session, inst.url, await tokens(store))
        await broker.publish(request)
        await broker.wait_events(of_type("routed"))
        [case] = await store.list_cases()
        ref, secret = case.reference, request["message_id"]
        await broker.drain("post.madrid")

        def rome(kind: str, **link: Any) -> dict[str, Any]:
            return envelope(sender="rome", kind=kind, subject="Re", body="Identifié.", **link)

        attacks = {
            "reply_ref": rome("reply", reference=ref),
            "reply_to": rome("reply", in_reply_to=secret),
            "ack": rome("ack", reference=ref),
            "status": rome("status", state="answered", reference=ref),
            "clarify": rome("clarification", clarification="request", in_reply_to=secret),
            # the same, naming what does not exist: the attacker must not tell the two apart
            "reply_ref_none": rome("reply", reference="WC-1999-999999"),
            "reply_to_none": rome("reply", in_reply_to="m-nothing"),
            "ack_none": rome("ack", reference="WC-1999-999999"),
        }
        for env in attacks.values():
            await broker.publish(env, reply_to=receipts.name)
        ids = {e["message_id"] for e in attacks.values()}
        await broker.wait_events(of_type("triaged", n=len(attacks), message_ids=ids))
        got = await receipts_of(receipts, len(attacks))

        after = await store.get_case(ref)
        status, inbox = await api.call("GET", "/api/posts/madrid/inbox", "post:madrid")
        assert status == 200 and [c["reference"] for c in inbox["items"]] == [ref]  # still Madrid's
        assert (await api.call("GET", f"/api/requests/{ref}", "post:rome"))[0] == 404
        seen_by_rome = {
            k: (await api.call("GET", f"/api/messages/{e['message_id']}", "post:rome"))[1]
            for k, e in attacks.items()
        }
        timeline = await store.audit(reference=ref, limit=1000)

    # the case is untouched: not answered, no event by Rome in its timeline, nothing to the unit
    assert after is not None and after.state == "routed" and after.answered_at is None
    assert after.version == case.version
    acts = [e for e in timeline if e.type not in ("accessed", "listed")]  # Rome reading its own messages
    assert all(e.actor != "rome" and e.sender != "rome" for e in acts)
    assert await broker.drain("unit.ofast") == []
    assert await broker.drain("dead") == []
    # each went to the centre's triage
    triaged = {orjson.loads(m.body)["message_id"] for m in await broker.drain("centre.triage")}
    assert ids <= triaged
    for key, env in attacks.items():
        receipt, mine = got[env["message_id"]], seen_by_rome[key]
        assert receipt["status"] == "triage" and "centre.triage" in receipt["recipients"], key
        # neither the requesting unit, nor what the attacker did not name (the request, the case)
        for leak in ("ofast", ref if "in_reply_to" in env else secret):
            assert leak not in orjson.dumps(receipt).decode(), key
            assert leak not in orjson.dumps(mine).decode(), key
    # an existing case and a made-up one give the same answers, word for word
    for real, fake in (("reply_ref", "reply_ref_none"), ("ack", "ack_none")):
        a, b = attacks[real], attacks[fake]
        assert blind(orjson.dumps(got[a["message_id"]]).decode(), a["message_id"], ref) == blind(
            orjson.dumps(got[b["message_id"]]).decode(), b["message_id"], "WC-1999-999999"
        )
        assert seen_by_rome[real]["routing"]["explanation"] == [
            line.replace("WC-1999-999999", ref) for line in seen_by_rome[fake]["routing"]["explanation"]
        ]
    assert seen_by_rome["reply_to"]["routing"]["explanation"] == [
        line.replace("m-nothing", secret) for line in seen_by_rome["reply_to_none"]["routing"]["explanation"]
    ]


async def test_follow_ups_carry_the_case_marking(settings: Settings, broker: Broker) -> None:
    centre_only = envelope(sender="ofast", countries=["ES"], handling="centre-only")
    no_onward = envelope(sender="oclco", countries=["ES"], handling="no-onward")
    async with running(settings) as inst:
        store = inst.runtime.store
        await broker.publish(centre_only)
        await broker.publish(no_onward)
        await broker.wait_events(of_type("case_opened", n=2))
        refs = {c.sender: c for c in await store.list_cases()}
        assert refs["ofast"].handling == "centre-only" and refs["oclco"].handling == "no-onward"
        await broker.drain("post.madrid")
        await broker.drain("centre.triage")
        # follow-ups without a marking of their own, naming their case; the second names two countries
        info = envelope(
            sender="ofast",
            kind="information",
            subject="Complément",
            body="RAS.",
            reference=refs["ofast"].reference,
        )
        wide = envelope(
            sender="oclco",
            kind="information",
            subject="Complément",
            body="RAS.",
            countries=["ES", "IT"],
            reference=refs["oclco"].reference,
        )
        await broker.publish(info)
        await broker.publish(wide)
        await broker.wait_events(of_type("classified", n=4))
        await broker.wait_events(lambda ev: sum(e["type"] in ("routed", "triaged") for e in ev) >= 4)
        stored_info = await store.get_message(info["message_id"], "ofast")
        stored_wide = await store.get_message(wide["message_id"], "oclco")

    assert stored_info is not None and stored_info.recipients == ["centre.triage"]
    assert stored_info.handling == "centre-only"
    assert stored_wide is not None and stored_wide.recipients == ["post.madrid"]  # not Rome as well
    assert stored_wide.handling == "no-onward"
    assert await broker.drain("post.rome") == []
    [copy] = [
        m
        for m in await broker.drain("centre.triage")
        if orjson.loads(m.body)["message_id"] == info["message_id"]
    ]
    assert copy.headers["x-watchcentre-handling"] == "centre-only"  # the recipient reads the marking
    assert [orjson.loads(m.body)["message_id"] for m in await broker.drain("post.madrid")] == [
        wide["message_id"]
    ]


async def test_manual_routing_respects_the_marking_unless_overridden_explicitly(
    settings: Settings, broker: Broker
) -> None:
    request = envelope(sender="ofast", countries=["ES"], handling="centre-only")
    async with running(settings) as inst, aiohttp.ClientSession() as session:
        store = inst.runtime.store
        api = Api(session, inst.url, await tokens(store))
        await broker.publish(request)
        await broker.wait_events(of_type("triaged"))
        ask = {
            "sender": "ofast",
            "message_id": request["message_id"],
            "recipients": ["post.madrid"],
            "reason": "ES",
        }
        status, refused = await api.call("POST", "/api/console/route", "operator", ask)
        assert status == 409 and refused["error"]["field"] == "recipients"
        assert (
            "centre-only" in refused["error"]["message"] and "override_marking" in refused["error"]["message"]
        )
        status, refused = await api.call(
            "POST", "/api/console/route", "operator", {**ask, "override_marking": True}
        )
        assert status == 400 and refused["error"]["field"] == "override_reason"
        assert await store.manual_routings("ofast", request["message_id"]) == []  # nothing happened
        status, done = await api.call(
            "POST",
            "/api/console/route",
            "operator",
            {**ask, "override_marking": True, "override_reason": "Madrid must act tonight"},
        )
        assert status == 200, done
        [event] = done["events"]
    assert event["details"]["marking_overridden"] == {
        "marking": "centre-only",
        "effect": "centre-only",
        "forbidden": ["post.madrid"],
        "reason_sha256": text_digest("Madrid must act tonight"),  # the text: in the routing explanation
    }
    assert any("overrides handling centre-only" in line for line in done["routing"]["explanation"])
    [copy] = await broker.drain("post.madrid")
    assert copy.headers["x-watchcentre-handling"] == "centre-only"  # Madrid sees it is marked


async def test_a_triaged_request_routed_by_hand_is_the_chosen_posts_case(
    settings: Settings, broker: Broker
) -> None:
    request = envelope(sender="ofast", subject="Demande", body="Un suspect, sans autre précision.")
    async with running(settings) as inst, aiohttp.ClientSession() as session:
        store = inst.runtime.store
        api = Api(session, inst.url, await tokens(store))
        await broker.publish(request)
        await broker.wait_events(of_type("triaged"))
        [case] = await store.list_cases()
        assert case.state == "triage"
        assert (await api.call("GET", f"/api/requests/{case.reference}", "post:rome"))[0] == 404
        ask = {
            "sender": "ofast",
            "message_id": request["message_id"],
            "recipients": ["post.rome"],
            "reason": "Italian lead",
            "revision": 0,
        }
        status, done = await api.call("POST", "/api/console/route", "operator", ask)
        assert status == 200, done
        assert done["events"][0]["details"]["case"]["to"] == "routed"
        status, seen = await api.call("GET", f"/api/requests/{case.reference}", "post:rome")
        assert status == 200 and seen["state"] == "routed" and seen["recipients"] == ["post.rome"]
        status, inbox = await api.call("GET", "/api/posts/rome/inbox", "post:rome")
        assert [c["reference"] for c in inbox["items"]] == [case.reference]
        status, stats = await api.call("GET", "/api/stats", "operator")
        assert status == 200 and stats["by_state"] == {"routed": 1}
        # Rome acknowledges over AMQP and answers with a reply: the case is Rome's
        await broker.publish(
            envelope(sender="rome", kind="ack", subject="ack", body="-", reference=case.reference)
        )
        await broker.wait_events(of_type("case_acknowledged"))
        reply = envelope(
            sender="rome", kind="reply", subject="Re", body="Connu.", in_reply_to=request["message_id"]
        )
        await broker.publish(reply)
        await broker.wait_events(of_type("case_answered"))
        after = await store.get_case(case.reference)
    assert after is not None and after.state == "answered" and after.recipients == ["post.rome"]
    to_unit = [orjson.loads(m.body) for m in await broker.drain("unit.ofast")]
    assert [m["kind"] for m in to_unit] == ["ack", "reply"]
    assert await broker.drain("dead") == []


async def test_a_triaged_request_routed_by_hand_can_be_acknowledged_over_http(
    settings: Settings, broker: Broker
) -> None:
    request = envelope(sender="ofast", subject="Demande", body="Un suspect, sans autre précision.")
    async with running(settings) as inst, aiohttp.ClientSession() as session:
        store = inst.runtime.store
        api = Api(session, inst.url, await tokens(store))
        await broker.publish(request)
        await broker.wait_events(of_type("triaged"))
        [case] = await store.list_cases()
        assert (await api.act(case.reference, "ack", "post:rome"))[0] == 404
        ask = {
            "sender": "ofast",
            "message_id": request["message_id"],
            "recipients": ["post.rome"],
            "reason": "IT",
        }
        assert (await api.call("POST", "/api/console/route", "operator", ask))[0] == 200
        status, acked = await api.act(case.reference, "ack", "post:rome")
        assert status == 200 and acked["state"] == "acknowledged"
        status, answered = await api.act(case.reference, "answer", "post:rome", {"reason": "Connu."})
        assert status == 200 and answered["state"] == "answered"
        assert (await api.act(case.reference, "ack", "post:madrid"))[0] == 404  # still not Madrid's
