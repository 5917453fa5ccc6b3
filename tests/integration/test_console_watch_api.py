"""The console's watch API against a real instance (RabbitMQ, and SQLite then PostgreSQL): deadline
alerts and watch-list hits listed until an operator acknowledges them (audited, once), the centre's inbox marks (stored,
audited, the same for every operator), writing a message from the centre through the pipeline,
re-injecting a letter as it was refused when it would be dead-lettered again; each refused to a post."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.integration.harness import Broker, Instance, envelope, running
from tests.integration.test_console_api import Client
from watchcentre.core.access import Role
from watchcentre.core.ports import SystemClock
from watchcentre.security import issue_token
from watchcentre.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def desk(
    service_settings: Settings, broker: Broker
) -> AsyncIterator[tuple[Instance, Client, Client, Client]]:
    async with running(service_settings) as inst:
        rt, clock = inst.runtime, SystemClock()
        net = rt.config.network
        alice = await issue_token(
            rt.store, clock, role=Role.OPERATOR, subject=None, name="Alice", network=net
        )
        carol = await issue_token(
            rt.store, clock, role=Role.OPERATOR, subject=None, name="Carol", network=net
        )
        post = await issue_token(rt.store, clock, role=Role.POST, subject="madrid", name="Bob", network=net)
        clients = Client(inst, alice.token), Client(inst, carol.token), Client(inst, post.token)
        try:
            yield inst, *clients
        finally:
            for c in clients:
                await c.session.close()


async def test_a_missed_acknowledgement_is_listed_until_acknowledged_once_audited(
    desk: tuple[Instance, Client, Client, Client], broker: Broker
) -> None:
    inst, alice, carol, madrid = desk
    env = envelope(priority="urgent", countries=["ES"], subject="Go-fast intercepté")
    await broker.publish(env)
    await broker.wait_events(lambda evs: any(e["type"] == "case_opened" for e in evs))
    status, body = await alice.get("/api/console/alerts")
    assert (status, body["items"]) == (200, [])

    later = inst.runtime.service.desk.clock.now() + timedelta(hours=2)  # past the 1 h to acknowledge
    await inst.runtime.scheduler.tick(later)
    status, body = await carol.get("/api/console/alerts")
    [alert] = body["items"]
    assert (alert["alert"], alert["deadline"], alert["subject"]) == (
        "ack_overdue",
        "acknowledgement",
        "Go-fast intercepté",
    )
    reference = alert["reference"]

    assert (await madrid.get("/api/console/alerts"))[0] == 403
    assert (await madrid.post("/api/console/alerts/ack", {"reference": reference, "alert": "ack_overdue"}))[
        0
    ] == 403
    status, body = await alice.post("/api/console/alerts/ack", {"reference": reference, "alert": "overdue"})
    assert (status, body["error"]["field"]) == (404, "alert")  # the answer is not late
    status, body = await alice.post("/api/console/alerts/ack", {"reference": reference, "alert": "late"})
    assert (status, body["error"]["field"]) == (400, "alert")

    status, body = await alice.post(
        "/api/console/alerts/ack", {"reference": reference, "alert": "ack_overdue"}
    )
    assert status == 200, body
    event = body["event"]
    assert (event["type"], event["actor"], event["reference"], event["details"]["deadline"]) == (
        "alert_acknowledged",
        "operator:Alice",
        reference,
        "acknowledgement",
    )
    assert (await carol.get("/api/console/alerts"))[1]["items"] == []  # gone for every operator
    status, body = await carol.post(
        "/api/console/alerts/ack", {"reference": reference, "alert": "ack_overdue"}
    )
    assert status == 409 and "operator:Alice" in body["error"]["message"]
    audit = await inst.runtime.store.audit(reference=reference, event_type="alert_acknowledged")
    assert [e.actor for e in audit] == ["operator:Alice"]


async def test_a_watch_hit_is_an_alert_until_acknowledged_once_audited(
    desk: tuple[Instance, Client, Client, Client], broker: Broker
) -> None:
    inst, alice, carol, madrid = desk
    watch = {
        "kind": "identifier",
        "id_kind": "phone",
        "value": "06 12 34 56 78",
        "label": "Suspect Tanger",
        "reason": "OFAST 2026/114",
        "expires_at": "2090-01-01T00:00:00Z",
    }
    status, made = await alice.post("/api/watches", watch)
    assert status == 201, made
    env = envelope(countries=["ES"], subject="Go-fast", body="Le pilote appelait le +33 6 12 34 56 78.")
    await broker.publish(env)
    await broker.wait_events(lambda evs: any(e["type"] == "watch_hit" for e in evs))

    status, body = await carol.get("/api/console/watch-hits")  # every operator sees it, after a reload too
    assert status == 200
    [hit] = body["items"]
    assert (hit["watch_id"], hit["label"], hit["value"]) == (made["id"], "Suspect Tanger", "+33612345678")
    assert (hit["message"]["message_id"], hit["message"]["subject"]) == (env["message_id"], "Go-fast")
    ack = {"watch_id": made["id"], "id": hit["message"]["id"]}

    assert (await madrid.get("/api/console/watch-hits"))[0] == 403
    assert (await madrid.post("/api/console/watch-hits/ack", ack))[0] == 403
    status, body = await alice.post("/api/console/watch-hits/ack", {**ack, "id": ack["id"] + 1000})
    assert (status, body["error"]["field"]) == (404, "id")
    status, body = await alice.post("/api/console/watch-hits/ack", {**ack, "watch_id": "one"})
    assert (status, body["error"]["field"]) == (400, "watch_id")
    status, body = await alice.post("/api/console/watch-hits/ack", {**ack, "extra": 1})
    assert status == 400

    status, body = await alice.post("/api/console/watch-hits/ack", ack)
    assert status == 200, body
    event = body["event"]
    assert (event["type"], event["actor"], event["message_id"], event["details"]["alert"]) == (
        "alert_acknowledged",
        "operator:Alice",
        env["message_id"],
        "watch_hit",
    )
    await broker.wait_events(  # on the live feed: the other consoles drop it
        lambda evs: any(
            e["type"] == "alert_acknowledged" and e["message_id"] == env["message_id"] for e in evs
        )
    )
    assert (await carol.get("/api/console/watch-hits"))[1]["items"] == []  # gone for every operator
    status, body = await carol.post("/api/console/watch-hits/ack", ack)
    assert status == 409 and "operator:Alice" in body["error"]["message"]
    audit = await inst.runtime.store.audit(message_id=env["message_id"], event_type="alert_acknowledged")
    assert [e.actor for e in audit] == ["operator:Alice"]


async def test_inbox_marks_are_stored_audited_and_shared(
    desk: tuple[Instance, Client, Client, Client], broker: Broker
) -> None:
    inst, alice, carol, madrid = desk
    info = envelope(sender="madrid", kind="information", subject="Saisie au port de Valence")
    await broker.publish(info)
    await broker.wait_events(lambda evs: any(e.get("message_id") == info["message_id"] for e in evs))
    status, body = await alice.get("/api/console/inbox")
    [item] = [i for i in body["items"] if i["message_id"] == info["message_id"]]
    assert (item["read"], item["handled"]) == (None, None)

    ask = {"sender": "madrid", "message_id": info["message_id"], "mark": "read"}
    assert (await madrid.get("/api/console/inbox"))[0] == 403
    assert (await madrid.post("/api/console/inbox/mark", ask))[0] == 403
    status, body = await alice.post("/api/console/inbox/mark", {**ask, "message_id": "nope"})
    assert (status, body["error"]["field"]) == (404, "message_id")
    status, body = await alice.post("/api/console/inbox/mark", ask)
    assert status == 200 and body["read"]["actor"] == "operator:Alice"
    status, body = await alice.post("/api/console/inbox/mark", {**ask, "mark": "handled"})
    assert body["handled"]["actor"] == "operator:Alice"

    _, body = await carol.get("/api/console/inbox")  # another operator sees the same marks
    [item] = [i for i in body["items"] if i["message_id"] == info["message_id"]]
    assert item["read"]["actor"] == item["handled"]["actor"] == "operator:Alice"
    status, body = await carol.post("/api/console/inbox/mark", {**ask, "value": False})
    assert status == 200 and body["read"] is None and body["handled"]["actor"] == "operator:Alice"
    audit = await inst.runtime.store.audit(message_id=info["message_id"], event_type="inbox_marked")
    assert [(e.actor, e.details["mark"], e.details["value"]) for e in audit] == [
        ("operator:Alice", "read", True),
        ("operator:Alice", "handled", True),
        ("operator:Carol", "read", False),
    ]


async def test_composing_goes_through_the_pipeline_as_the_centre(
    desk: tuple[Instance, Client, Client, Client], broker: Broker
) -> None:
    inst, alice, _carol, madrid = desk
    ask = {
        "kind": "information",
        "subject": "Alerte : réseau de cocaïne via Algésiras",
        "body": "Pour information des postes concernés.",
        "countries": ["ES"],
        "crime_types": ["drug_trafficking"],
    }
    assert (await madrid.post("/api/console/compose", ask))[0] == 403
    status, body = await alice.post("/api/console/compose", {**ask, "countries": ["XX"]})
    assert (status, body["error"]["field"]) == (400, "countries")
    status, body = await alice.post("/api/console/compose", {**ask, "subject": " "})
    assert (status, body["error"]["field"]) == (400, "subject")
    status, body = await alice.post("/api/console/compose", {**ask, "sender": "madrid"})
    assert status == 400  # the sender is never the body's

    status, body = await alice.post("/api/console/compose", ask)
    assert status == 200, body
    message = body["message"]
    assert (message["sender"], message["status"], message["recipients"]) == (
        "centre",
        "routed",
        ["post.madrid"],
    )
    copies = [
        m
        for m in await broker.drain("post.madrid")
        if m.headers.get("x-watchcentre-message-id") == message["message_id"]
    ]
    assert len(copies) == 1
    events = await inst.runtime.store.audit(message_id=message["message_id"], sender="centre")
    assert [e.type for e in events][:1] == ["received"]
    assert {(e.type, e.actor) for e in events} >= {("composed", "operator:Alice")}

    # to a unit the rules would not choose: re-routed by hand, audited with its reason
    status, body = await alice.post(
        "/api/console/compose", {**ask, "recipients": ["post.madrid", "unit.ofast"]}
    )
    assert status == 200, body
    assert body["message"]["recipients"] == ["post.madrid", "unit.ofast"]
    events = await inst.runtime.store.audit(message_id=body["message"]["message_id"], sender="centre")
    manual = [e for e in events if e.type == "routed" and e.details.get("manual")]
    assert [e.actor for e in manual] == ["operator:Alice"]


async def test_reinjecting_as_it_was_a_letter_that_would_fail_again_is_refused(
    desk: tuple[Instance, Client, Client, Client], broker: Broker
) -> None:
    _inst, alice, _carol, madrid = desk
    bad = envelope(countries=["XX"], subject="Pays inconnu")
    await broker.publish(bad)
    await broker.wait_events(
        lambda evs: any(e["type"] == "rejected" and e["message_id"] == bad["message_id"] for e in evs)
    )
    status, body = await alice.get("/api/console/dead")
    [letter] = [d for d in body["items"] if d["message_id"] == bad["message_id"]]
    assert letter["arrived_at"] is not None
    path = f"/api/console/dead/{letter['id']}/reinject"
    assert (await madrid.post(path, {"reason": "as it was"}))[0] == 403
    status, body = await alice.post(path, {"reason": "try again"})
    assert (status, body["error"]["field"]) == (400, "envelope.countries")
    assert "dead-lettered again" in body["error"]["message"]
    _, body = await alice.get("/api/console/dead")
    assert letter["id"] in [d["id"] for d in body["items"]]  # still there, not re-published
