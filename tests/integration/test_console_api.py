"""The console's HTTP API against a real instance (RabbitMQ, and SQLite then PostgreSQL): manual
routing (audited, reason required, operators only, no duplicate copies), re-injecting dead letters
without duplicates, the shift log, the counts, and the feed's back-fill over a WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.integration.harness import Broker, Instance, envelope, running
from watchcentre.core.access import Role
from watchcentre.core.ports import SystemClock
from watchcentre.core.records import text_digest
from watchcentre.security import issue_token
from watchcentre.settings import Settings

pytestmark = pytest.mark.integration


class Client:
    def __init__(self, instance: Instance, token: str) -> None:
        self.instance, self.token = instance, token
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.instance.url + path) as r:
            return r.status, await r.json()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.session.post(self.instance.url + path, json=body) as r:
            return r.status, await r.json()


@pytest.fixture
async def console(
    service_settings: Settings, broker: Broker
) -> AsyncIterator[tuple[Instance, Client, Client]]:
    async with running(service_settings) as inst:
        rt = inst.runtime
        op = await issue_token(
            rt.store, SystemClock(), role=Role.OPERATOR, subject=None, name="Alice", network=rt.config.network
        )
        post = await issue_token(
            rt.store, SystemClock(), role=Role.POST, subject="lisbon", name="Bob", network=rt.config.network
        )
        operator, lisbon = Client(inst, op.token), Client(inst, post.token)
        try:
            yield inst, operator, lisbon
        finally:
            await operator.session.close()
            await lisbon.session.close()


def copies_of(messages: list[Any], message_id: str) -> list[dict[str, Any]]:
    return [
        orjson.loads(m.body) | {"_amqp_id": m.message_id}
        for m in messages
        if m.headers.get("x-watchcentre-message-id") == message_id
    ]


async def test_manual_routing_is_validated_audited_and_routed_like_an_automatic_decision(
    console: tuple[Instance, Client, Client], broker: Broker
) -> None:
    _inst, operator, lisbon = console
    env = envelope(subject="Note de situation", body="Demande d'assistance sans autre précision.")
    await broker.publish(env)
    await broker.wait_events(
        lambda evs: any(e["type"] == "triaged" and e["message_id"] == env["message_id"] for e in evs)
    )
    status, body = await operator.get("/api/console/triage")
    assert status == 200 and [m["message_id"] for m in body["items"]] == [env["message_id"]]
    assert body["items"][0]["why"] == "no foreign country found"

    ask = {"sender": "ofast", "message_id": env["message_id"], "recipients": ["post.lisbon"]}
    status, body = await operator.post("/api/console/route", ask)
    assert (status, body["error"]["field"]) == (400, "reason")  # missing
    status, body = await operator.post("/api/console/route", {**ask, "reason": "   "})
    assert (status, body["error"]["field"]) == (400, "reason")  # blank
    status, body = await operator.post(
        "/api/console/route", {**ask, "recipients": ["post.nowhere"], "reason": "x"}
    )
    assert (status, body["error"]["field"]) == (400, "recipients")
    status, body = await lisbon.post("/api/console/route", {**ask, "reason": "x"})
    assert status == 403
    status, _ = await lisbon.get(f"/api/messages/{env['message_id']}")
    assert status == 404  # not routed to Lisbon yet

    status, body = await operator.post(
        "/api/console/route", {**ask, "reason": "Known to Lisbon", "revision": 0}
    )
    assert status == 200, body
    assert body["routing"]["recipients"] == ["post.lisbon"]
    assert body["routing"]["explanation"][0] == "manual by operator:Alice: Known to Lisbon"
    [event] = body["events"]
    assert (event["type"], event["actor"], event["details"]["reason_sha256"], event["details"]["manual"]) == (
        "routed",
        "operator:Alice",
        text_digest("Known to Lisbon"),  # the text is in the manual route, erased with the message
        True,
    )

    # the same decision again (a double click, a retry): refused, nothing published twice
    status, body = await operator.post(
        "/api/console/route", {**ask, "reason": "Known to Lisbon", "revision": 0}
    )
    assert (status, body["error"]["field"]) == (409, "revision")
    [copy] = copies_of(await broker.drain("post.lisbon"), env["message_id"])
    assert copy["routing"]["recipients"] == ["post.lisbon"] and copy["subject"] == env["subject"]

    status, stored = await lisbon.get(f"/api/messages/{env['message_id']}")
    assert status == 200 and stored["status"] == "routed"  # now the post sees it
    status, detail = await operator.get(f"/api/console/message?message_id={env['message_id']}&sender=ofast")
    assert (
        detail["manual"][0]["actor"] == "operator:Alice"
        and detail["manual"][0]["reason"] == "Known to Lisbon"
    )
    assert [e["type"] for e in detail["timeline"]] == ["received", "classified", "triaged", "routed"]

    # re-routing: a new revision, a new copy id, to the new recipient; Lisbon keeps its access
    status, body = await operator.post(
        "/api/console/route",
        {**ask, "recipients": ["post.madrid"], "reason": "Spanish case after all", "revision": 1},
    )
    assert status == 200, body
    [moved] = copies_of(await broker.drain("post.madrid"), env["message_id"])
    assert moved["_amqp_id"] != copy["_amqp_id"]
    assert moved["routing"]["explanation"][0] == "manual by operator:Alice: Spanish case after all"
    status, stored = await lisbon.get(f"/api/messages/{env['message_id']}")
    assert status == 200 and stored["recipients"] == ["post.madrid", "post.lisbon"]
    status, body = await operator.get("/api/console/triage")
    assert body["items"] == []


async def test_dead_letter_is_corrected_and_reinjected_once(
    console: tuple[Instance, Client, Client], broker: Broker
) -> None:
    _inst, operator, lisbon = console
    bad = envelope(subject="Saisie d'armes", countries=["XX"])
    await broker.publish(bad)
    await broker.wait_events(
        lambda evs: any(e["type"] == "rejected" and e["message_id"] == bad["message_id"] for e in evs)
    )
    status, body = await lisbon.get("/api/console/dead")
    assert status == 403
    status, body = await operator.get("/api/console/dead")
    [letter] = [d for d in body["items"] if d["message_id"] == bad["message_id"]]
    assert "XX" in letter["reason"] and orjson.loads(letter["text"]) == bad

    path = f"/api/console/dead/{letter['id']}/reinject"
    status, body = await operator.post(path, {"envelope": {**bad, "countries": ["ZZ"]}, "reason": "typo"})
    assert (status, body["error"]["field"]) == (400, "envelope.countries")  # still wrong: refused
    status, body = await operator.post(path, {"envelope": {**bad, "countries": ["ES"]}})
    assert (status, body["error"]["field"]) == (400, "reason")
    status, body = await operator.post(
        path, {"envelope": {**bad, "countries": ["ES"]}, "reason": "XX meant ES"}
    )
    assert status == 200, body
    [event] = body["events"]
    assert event["type"] == "replayed" and event["actor"] == "operator:Alice"
    assert event["details"]["corrected"] is True and event["details"]["note_sha256"] == text_digest(
        "XX meant ES"
    )
    assert event["details"]["original_digest"] != event["details"]["corrected_digest"]
    status, body = await operator.post(path, {"envelope": {**bad, "countries": ["ES"]}, "reason": "again"})
    assert status == 404  # gone from the queue: a second click re-injects nothing
    await broker.wait_events(
        lambda evs: any(e["type"] == "routed" and e["message_id"] == bad["message_id"] for e in evs)
    )
    assert len(copies_of(await broker.drain("post.madrid"), bad["message_id"])) == 1
    status, body = await operator.get("/api/console/dead")
    assert not [d for d in body["items"] if d["message_id"] == bad["message_id"]]
    routed = [e for e in broker.events if e["message_id"] == bad["message_id"] and e["type"] == "routed"]
    assert len(routed) == 1


async def test_shift_log_notes_and_counts(console: tuple[Instance, Client, Client], broker: Broker) -> None:
    inst, operator, lisbon = console
    status, body = await operator.post("/api/console/notes", {"message_ids": ["m-1"]})
    assert (status, body["error"]["field"]) == (400, "text")
    for blank in ("  ", "\u0085", "\ufeff\t"):  # white space to the server and to the OpenAPI's clients
        status, body = await operator.post("/api/console/notes", {"text": blank})
        assert (status, body["error"]) == (
            400,
            {"status": 400, "message": "must not be blank", "field": "text"},
        )
    assert (await lisbon.post("/api/console/notes", {"text": "hello"}))[0] == 403
    status, first = await operator.post("/api/console/notes", {"text": "Quiet night", "references": ["FR-1"]})
    assert status == 201 and first["author"] == "operator:Alice"
    status, second = await operator.post(
        "/api/console/notes", {"text": "Call Rome <b>back</b>", "message_ids": ["m-2", "m-2"]}
    )
    assert status == 201 and second["message_ids"] == ["m-2"]
    status, body = await operator.get("/api/console/notes")
    assert [n["text"] for n in body["items"]] == ["Call Rome <b>back</b>", "Quiet night"]
    assert body["items"][1]["references"] == ["FR-1"]
    audit = await inst.runtime.store.audit(event_type="note_added")
    assert [e.details["note_id"] for e in audit] == [first["id"], second["id"]]

    envs = [
        envelope(subject="Cocaïne", countries=["ES"]),
        envelope(subject="Cocaïne", countries=["ES", "MA"]),
    ]
    for env in envs:
        await broker.publish(env)
    wanted = {e["message_id"] for e in envs}
    await broker.wait_events(lambda evs: wanted <= {e["message_id"] for e in evs if e["type"] == "routed"})
    status, body = await operator.get("/api/console/glance")
    assert status == 200
    assert body["total"] == 2 and body["countries"] == {"ES": 2, "MA": 1}
    assert body["crime_types"] == {"drug_trafficking": 2}


async def test_feed_sends_a_snapshot_then_back_fills_from_a_seq(
    console: tuple[Instance, Client, Client], broker: Broker
) -> None:
    inst, operator, lisbon = console
    first = envelope(countries=["IT"])
    await broker.publish(first)
    await broker.wait_events(
        lambda evs: any(e["type"] == "routed" and e["message_id"] == first["message_id"] for e in evs)
    )
    ws_url = inst.url.replace("http", "ws") + "/api/console/feed"
    async with operator.session.ws_connect(ws_url) as ws:
        snapshot = await ws.receive_json()
        assert snapshot["type"] == "snapshot"
        assert [m["message_id"] for m in snapshot["messages"]] == [first["message_id"]]
        cursor = snapshot["cursor"]
        assert (await ws.receive_json())["type"] == "live"
        second = envelope(countries=["DE"])
        await broker.publish(second)
        carried: list[dict[str, Any]] = []  # the request's case_opened comes too (the board follows it)
        while not any(i.get("message") for i in carried):
            frame = await ws.receive_json()
            assert frame["type"] == "events"
            carried += frame["items"]
        [item] = [i for i in carried if i.get("message")]
        assert item["message"]["message_id"] == second["message_id"] and item["seq"] > cursor
        assert {i["type"] for i in carried} == {"case_opened", "routed"}
    async with operator.session.ws_connect(f"{ws_url}?after={cursor}") as ws:
        frame = await ws.receive_json()
        assert frame["type"] == "backfill"
        assert [i["message"]["message_id"] for i in frame["items"] if i.get("message")] == [
            second["message_id"]
        ]
        assert (await ws.receive_json())["type"] == "backfilled"
    async with lisbon.session.get(ws_url) as r:
        assert r.status == 403
    async with aiohttp.ClientSession() as anonymous, anonymous.get(ws_url) as r:
        assert r.status == 401


async def test_a_console_on_one_instance_sees_what_another_instance_routes(
    service_settings: Settings, broker: Broker
) -> None:
    async with running(service_settings) as a, running(service_settings) as b:
        await b.runtime.consumer.stop(0)  # B takes nothing from intake: A routes everything
        issued = await issue_token(
            b.runtime.store,
            SystemClock(),
            role=Role.OPERATOR,
            subject=None,
            name="Eve",
            network=b.runtime.config.network,
        )
        viewer = Client(b, issued.token)
        try:
            async with viewer.session.ws_connect(b.url.replace("http", "ws") + "/api/console/feed") as ws:
                assert (await ws.receive_json())["type"] == "snapshot"
                assert (await ws.receive_json())["type"] == "live"
                envs = [envelope(countries=["ES"]) for _ in range(5)]
                for env in envs:
                    await broker.publish(env)
                seen: set[str] = set()
                async with asyncio.timeout(20):
                    while len(seen) < len(envs):
                        frame = await ws.receive_json()
                        seen |= {i["message"]["message_id"] for i in frame["items"] if i.get("message")}
                assert seen == {e["message_id"] for e in envs}
        finally:
            await viewer.session.close()
    assert a.runner is None and b.runner is None


async def test_an_operator_corrects_crime_types_and_countries_and_the_console_shows_the_rules_blamed(
    console: tuple[Instance, Client, Client], broker: Broker
) -> None:
    _inst, operator, _ = console
    env = envelope(
        subject="Trafic de cocaïne", body="Go-fast intercepté, filière marocaine.", countries=["MA"]
    )
    await broker.publish(env)
    await broker.wait_events(
        lambda evs: any(e["type"] == "routed" and e["message_id"] == env["message_id"] for e in evs)
    )
    ask = {
        "sender": "ofast",
        "message_id": env["message_id"],
        "recipients": ["post.rabat"],
        "reason": "a gang",
    }
    status, body = await operator.post(
        "/api/console/route", {**ask, "crime_types": ["drug_trafficking", "gangs"]}
    )
    assert (status, body["error"]["field"]) == (400, "crime_types")
    status, body = await operator.post("/api/console/route", {**ask, "countries": ["MA", "QQ"]})
    assert (status, body["error"]["field"]) == (400, "countries")
    status, body = await operator.post(
        "/api/console/route",
        {**ask, "crime_types": ["organised_crime", "drug_trafficking"], "countries": ["MA", "ES"]},
    )
    assert status == 200, body
    assert body["events"][0]["details"]["corrections"]["countries"] == ["MA", "ES"]
    status, body = await operator.get("/api/console/corrections")
    assert status == 200 and body["corrected"] == 1
    assert {"rule": "organised_crime: missed", "count": 1} in body["rules"]
    assert {"rule": "ES: missed", "count": 1} in body["rules"]
