"""Every consultation is logged (Directive (EU) 2016/680, art. 25), whatever the channel: one table
over the read routes, each answered 200 and leaving its audit record (who, the route, what was
shown), and the live feed (snapshot, back-fill, live frames). A read route missing from the table,
and not in the short list of routes that show no personal data, fails the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.integration.harness import Broker, Instance, envelope, running
from watchcentre.adapters.http_routes import ROUTES
from watchcentre.core.access import Role
from watchcentre.core.manual import Note
from watchcentre.core.ports import SystemClock
from watchcentre.core.records import AuditEvent
from watchcentre.security import issue_token
from watchcentre.settings import Settings

pytestmark = pytest.mark.integration

# GET routes that show no personal data: the network, the documents, the console's own files.
NOTHING_PERSONAL = {
    "/health",
    "/signin",
    "/metrics",
    "/api/posts",
    "/api/units",
    "/api/openapi.json",
    "/api/schema/envelope",
    "/",
    "/console/{name}",
    "/api/console/recipients",
    "/api/labels",  # the words for codes
    "/api/me",  # the reader's own name and role
    "/console/locales/{lang}/{bundle}",
    "/api/console/corrections",  # counts per rule, no message
}

# (route in the table, who reads, the URL, what its record must name): {mid} {ref} filled in.
READS: list[tuple[str, str, str, str]] = [
    ("/api/messages", "operator", "/api/messages?limit=5", "ids"),
    ("/api/messages/{message_id}", "operator", "/api/messages/{mid}?sender=ofast", "id"),
    ("/api/cases", "operator", "/api/cases", "references"),
    ("/api/posts/{post_id}/inbox", "post:madrid", "/api/posts/madrid/inbox", "references"),
    ("/api/requests/{reference}", "operator", "/api/requests/{ref}", "route"),
    ("/track/{reference}", "operator", "/track/{ref}", "page"),
    ("/api/stats", "operator", "/api/stats", "cases"),
    ("/api/stats.csv", "operator", "/api/stats.csv", "cases"),
    ("/api/console/triage", "operator", "/api/console/triage", "ids"),
    ("/api/console/message", "operator", "/api/console/message?message_id={mid}&sender=ofast", "id"),
    ("/api/console/dead", "operator", "/api/console/dead", "dead_letters"),
    ("/api/console/notes", "operator", "/api/console/notes", "notes"),
    ("/api/console/glance", "operator", "/api/console/glance", "hours"),
    ("/api/audit", "auditor", "/api/audit?type=routed&since=2020-01-01T00:00:00Z", "seqs"),
    ("/api/audit/verify", "auditor", "/api/audit/verify", "query"),
    ("/api/audit/export", "auditor", "/api/audit/export", "seqs"),
    ("/api/dpo/search", "auditor", "/api/dpo/search?q=coca", "query_sha256"),
    ("/api/dpo/export", "auditor", "/api/dpo/export?q=coca", "query_sha256"),
    ("/api/console/feed", "operator", "(the feed: test_the_feed_records_what_each_frame_shows)", ""),
    ("/api/feed", "post:madrid", "(the same feed code as /api/console/feed, per party)", ""),
    ("/api/search", "operator", "/api/search?q=cocaine", "ids"),
    ("/api/console/inbox", "operator", "/api/console/inbox", "ids"),
    ("/api/console/alerts", "operator", "/api/console/alerts", "references"),
    ("/api/watches", "operator", "/api/watches", "watches"),
    ("/api/console/watch-hits", "operator", "/api/console/watch-hits", "ids"),
]


READ_TYPES = ("accessed", "listed", "searched", "exported")


def test_every_read_route_is_in_the_table_or_shows_nothing_personal() -> None:
    gets = {r.path for r in ROUTES if r.method == "GET"}
    covered = {row[0] for row in READS}
    assert gets - NOTHING_PERSONAL - covered == set()
    assert covered - gets == set()


@dataclass
class World:
    inst: Instance
    sessions: dict[str, aiohttp.ClientSession]
    mid: str
    ref: str

    async def reads(self, after: int, who: str) -> list[AuditEvent]:
        events = await self.inst.runtime.store.audit(after_seq=after, limit=1000)
        return [e for e in events if e.type in READ_TYPES and e.actor == who]


@pytest.fixture
async def world(service_settings: Settings, broker: Broker) -> AsyncIterator[World]:
    async with running(service_settings) as inst:
        store, net = inst.runtime.store, inst.runtime.config.network
        sessions = {}
        for role, subject in ((Role.OPERATOR, None), (Role.AUDITOR, None), (Role.POST, "madrid")):
            issued = await issue_token(
                store, SystemClock(), role=role, subject=subject, name=f"{role.value} one", network=net
            )
            label = issued.record.principal().label
            sessions[label] = aiohttp.ClientSession(headers={"Authorization": f"Bearer {issued.token}"})
        request = envelope(
            sender="ofast", subject="Cocaïne", body="Go-fast vers l'Espagne.", countries=["ES"]
        )
        await broker.publish(request)
        await broker.publish(b"not json")  # a dead letter to list
        await broker.wait_events(lambda evs: {"routed", "rejected"} <= {e["type"] for e in evs})
        stored = await store.get_message(request["message_id"], "ofast")
        assert stored is not None and stored.reference is not None
        note = Note(at=SystemClock().now(), author="operator:op", text="nuit calme")
        await store.add_note(note, AuditEvent(at=note.at, type="note_added", actor="operator:op"))
        try:
            yield World(inst, sessions, request["message_id"], stored.reference)
        finally:
            for s in sessions.values():
                await s.close()


@pytest.mark.parametrize(
    ("route", "who", "url", "names"), [r for r in READS if r[3]], ids=[r[0] for r in READS if r[3]]
)
async def test_each_read_writes_its_audit_record(
    world: World, route: str, who: str, url: str, names: str
) -> None:
    before = await world.inst.runtime.store.last_seq()
    path = url.format(mid=world.mid, ref=world.ref)
    async with world.sessions[who].get(world.inst.url + path) as r:
        assert r.status == 200, (path, r.status, await r.text())
    [record] = await world.reads(before, who)
    assert record.details["route"] == path.split("?")[0]
    assert names in record.details and record.details["name"] == f"{who.split(':')[0]} one"
    assert record.details["token_id"]


async def test_the_feed_records_what_each_frame_shows(world: World, broker: Broker) -> None:
    store, url = world.inst.runtime.store, world.inst.url.replace("http", "ws") + "/api/console/feed"
    session = world.sessions["operator"]
    before = await store.last_seq()
    async with session.ws_connect(url) as ws:
        snapshot = await ws.receive_json()
        assert snapshot["type"] == "snapshot"
        assert (await ws.receive_json())["type"] == "live"
        [shown] = await world.reads(before, "operator")
        assert shown.details["route"] == "/api/console/feed"
        assert sorted(shown.details["ids"]) == sorted(m["id"] for m in snapshot["messages"])
        live = envelope(countries=["DE"])
        at_live = await store.last_seq()
        await broker.publish(live)
        frame = await ws.receive_json()
        assert frame["type"] == "events"
        records = await world.reads(at_live, "operator")
        assert [r.details["feed"] for r in records] == ["live"]
        assert records[0].details["ids"] == [i["message"]["id"] for i in frame["items"] if i.get("message")]
    at_backfill = await store.last_seq()
    async with session.ws_connect(f"{url}?after=0") as ws:
        frame = await ws.receive_json()
        assert frame["type"] == "backfill"
        shown_ids = {i["message"]["id"] for i in frame["items"] if i.get("message")}
    backfills = [r for r in await world.reads(at_backfill, "operator") if r.details.get("feed") == "backfill"]
    assert backfills and set(backfills[0].details["ids"]) == shown_ids


async def test_the_audit_trail_filters_by_actor_type_and_time(world: World) -> None:
    auditor = world.sessions["auditor"]

    async def items(query: str) -> list[dict[str, Any]]:
        async with auditor.get(f"{world.inst.url}/api/audit?{query}") as r:
            assert r.status == 200, await r.text()
            return (await r.json())["items"]  # type: ignore[no-any-return]

    everything = await items("limit=500")
    cut = quote(everything[len(everything) // 2]["at"])
    assert {e["actor"] for e in await items("actor=operator:op")} == {"operator:op"}
    assert {e["type"] for e in await items("type=note_added")} == {"note_added"}
    later, earlier = await items(f"since={cut}&limit=500"), await items(f"until={cut}&limit=500")
    assert later and earlier and len(later) + len(earlier) >= len(everything)
    # the window is on `at` (records written concurrently may commit, and take seqs, out of time order)
    at = datetime.fromisoformat
    assert max(at(e["at"]) for e in earlier) < min(at(e["at"]) for e in later)
    async with auditor.get(f"{world.inst.url}/api/audit?since=yesterday") as r:
        assert r.status == 400 and (await r.json())["error"]["field"] == "since"
