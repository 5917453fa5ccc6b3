"""The request lifecycle over HTTP: a real instance (real RabbitMQ, each database) driven by posts,
units and operators with bearer tokens; then a seeded store with a fixed clock for ordering,
statistics and CSV against a known set of cases."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.integration.harness import Broker, envelope, running
from tests.integration.test_http import NETWORK
from watchcentre.adapters.http_app import SECURITY_HEADERS, create_app
from watchcentre.adapters.http_base import HttpDeps
from watchcentre.adapters.http_models import CASE_SUMMARY_FIELDS
from watchcentre.adapters.sql import SqlStore
from watchcentre.core.access import Role
from watchcentre.core.lifecycle import Action, Case, DeadlineRules, Side, apply, new_case
from watchcentre.core.ports import Store, SystemClock
from watchcentre.security import issue_token
from watchcentre.settings import Settings

WHO: dict[str, tuple[Role, str | None]] = {
    "operator": (Role.OPERATOR, None),
    "auditor": (Role.AUDITOR, None),
    "post:madrid": (Role.POST, "madrid"),
    "post:rome": (Role.POST, "rome"),
    "unit:ofast": (Role.UNIT, "ofast"),
    "unit:oclco": (Role.UNIT, "oclco"),
}


async def tokens(store: Store) -> dict[str, str]:
    out = {}
    for label, (role, subject) in WHO.items():
        out[label] = (await issue_token(store, SystemClock(), role=role, subject=subject, name=label)).token
    return out


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, tokens: dict[str, str]) -> None:
        self.session, self.base, self.tokens = session, base, tokens

    async def call(self, method: str, path: str, who: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        async with self.session.request(method, self.base + path, json=body, headers=headers) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def act(self, reference: str, action: str, who: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("POST", f"/api/cases/{reference}/{action}", who, body)


@pytest.fixture
def settings(service_settings: Settings) -> Settings:
    return service_settings.model_copy(update={"deadline_tick_s": 3600.0})


async def test_the_full_lifecycle_over_http(settings: Settings, broker: Broker) -> None:
    request = envelope(sender="ofast", subject="Go-fast <b>Espagne</b>", body="Cocaïne.", countries=["ES"])
    async with running(settings) as inst, aiohttp.ClientSession() as session:
        api = Api(session, inst.url, await tokens(inst.runtime.store))
        await broker.publish(request)
        await broker.wait_events(lambda ev: any(e["type"] == "routed" for e in ev))

        status, inbox = await api.call("GET", "/api/posts/madrid/inbox", "post:madrid")
        assert status == 200 and len(inbox["items"]) == 1
        ref = inbox["items"][0]["reference"]
        assert set(inbox["items"][0]) == set(CASE_SUMMARY_FIELDS)
        for who in ("post:rome", "unit:ofast"):
            assert (await api.call("GET", "/api/posts/madrid/inbox", who))[0] == 404
        assert (await api.call("GET", "/api/posts/madrid/inbox", "operator"))[0] == 200

        status, body = await api.act(ref, "ack", "post:madrid")
        assert status == 200 and body["state"] == "acknowledged" and body["acknowledged_at"]
        status, body = await api.act(ref, "ack", "post:madrid")
        assert status == 409 and body["error"]["current_state"] == "acknowledged"
        assert body["error"]["message"] == "cannot ack a case that is acknowledged"
        status, body = await api.act(ref, "withdraw", "post:madrid")
        assert status == 409 and body["error"]["message"] == "a post may not withdraw a case"
        assert (await api.act(ref, "ack", "post:rome"))[0] == 404  # not its case: as if absent
        assert (await api.act(ref, "nonsense", "post:madrid"))[1]["error"]["field"] == "action"
        assert (await api.act(ref, "extend", "post:madrid", {"expected_at": "2030-01-01T00:00:00Z"}))[1][
            "error"
        ]["field"] == "reason"
        assert (await api.act(ref, "extend", "post:madrid", {"expected_at": "soon", "reason": "x"}))[1][
            "error"
        ]["field"] == "expected_at"
        assert (await api.act(ref, "ack", "post:madrid", {"colour": "red"}))[1]["error"]["field"] == "colour"
        assert (await api.act(ref, "clarification", "post:madrid", {}))[1]["error"][
            "field"
        ] == "clarification"

        status, body = await api.act(ref, "clarification", "post:madrid", {"clarification": "request"})
        assert status == 200 and body["clarification_pending"] and body["due_at"] is None
        status, body = await api.act(ref, "clarification", "unit:ofast", {"clarification": "answer"})
        assert status == 200 and not body["clarification_pending"] and body["due_at"]
        assert (await api.act(ref, "progress", "post:madrid"))[0] == 200
        status, body = await api.act(ref, "answer", "post:madrid", {"reason": "identified"})
        assert status == 200 and body["state"] == "answered" and body["answered_on_time"] is True

        status, open_cases = await api.call("GET", "/api/cases?open=true", "operator")
        assert status == 200 and open_cases == {"items": [], "next": None}
        status, body = await api.act(ref, "close", "unit:ofast")
        assert status == 200 and body["state"] == "closed"

        status, tracked = await api.call("GET", f"/api/requests/{ref}", "unit:ofast")
        assert status == 200 and tracked["state"] == "closed" and tracked["recipients"] == ["post.madrid"]
        types = [e["type"] for e in tracked["timeline"]]
        for t in (
            "case_opened",
            "received",
            "routed",
            "case_acknowledged",
            "clarification_requested",
            "clarification_answered",
            "case_in_progress",
            "case_answered",
            "case_closed",
        ):
            assert t in types
        assert types.index("case_acknowledged") < types.index("case_closed")
        assert all(e["actor"] for e in tracked["timeline"])
        assert (await api.call("GET", f"/api/requests/{ref}", "unit:oclco"))[0] == 404
        assert (await api.call("GET", f"/api/requests/{ref}", "post:rome"))[0] == 404
        assert (await api.call("GET", f"/api/requests/{ref}", "auditor"))[0] == 403
        assert (await api.call("GET", "/api/requests/WC-1999-000001", "operator"))[0] == 404
        status, every = await api.call("GET", "/api/cases", "unit:ofast")
        assert [c["reference"] for c in every["items"]] == [ref]
        assert (await api.call("GET", "/api/cases", "unit:oclco"))[1] == {"items": [], "next": None}

        headers = {"Authorization": f"Bearer {api.tokens['unit:ofast']}"}
        async with session.get(f"{inst.url}/track/{ref}", headers=headers) as resp:
            page = await resp.text()
            assert resp.status == 200 and resp.content_type == "text/html"
            for name, value in SECURITY_HEADERS.items():
                assert resp.headers[name] == value
        # a static page holding no data: track.js reads /api/requests and shows it as text
        assert "Go-fast" not in page and ref not in page and 'name="viewport"' in page
        assert '<script type="module" src="/console/track.js"></script>' in page
        assert "<script>" not in page and "style=" not in page
        async with session.get(f"{inst.url}/track/{ref}", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == f"/signin?next=/track/{ref}"
    assert {"case_acknowledged", "case_closed"} <= {e["type"] for e in broker.events}
    # the other side hears of HTTP actions over AMQP, as if they had been sent there
    to_unit = [orjson.loads(m.body) for m in await broker.drain("unit.ofast")]
    assert [(m["kind"], m.get("state") or m.get("clarification")) for m in to_unit] == [
        ("ack", None),
        ("clarification", "request"),
        ("status", "in_progress"),
        ("status", "answered"),
    ]
    assert {m["sender"] for m in to_unit} == {"madrid"} and {m["reference"] for m in to_unit} == {ref}
    assert to_unit[-1]["body"] == "identified" and to_unit[0]["in_reply_to"] == request["message_id"]
    to_post = [orjson.loads(m.body) for m in await broker.drain("post.madrid")]
    assert [(m["kind"], m.get("state") or m.get("clarification")) for m in to_post] == [
        ("request", None),
        ("clarification", "answer"),
        ("status", "closed"),
    ]


# -- a known set of cases, a fixed clock ------------------------------------------------------------

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
RULES = DeadlineRules.eu_default()


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def seed(
    n: int, priority: str, access: str | None, post: str, crime: str, country: str, hours: float
) -> Case:
    return new_case(
        reference=f"K-{n}",
        sender="ofast",
        message_id=f"m-{n}",
        priority=priority,
        access=access,
        subject=f"case {n}",
        crime_types=[crime],
        countries=[country],
        recipients=[f"post.{post}"],
        triage=False,
        opened_at=T0 + timedelta(hours=hours),
        rules=RULES,
    )


async def act(store: Store, case: Case, action: Action, side: Side, after: timedelta) -> Case:
    new, _ = apply(case, action, side, case.opened_at + after)
    assert await store.update_case(new, case.version, []) is not None
    return new.model_copy(update={"version": case.version + 1})


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, str]]]:
    store = await SqlStore.sqlite(str(tmp_path / "wc.db"))
    h = timedelta(hours=1)
    cases = [
        seed(1, "normal", None, "es", "drug_trafficking", "ES", 0),  # due T0+7d
        seed(2, "urgent", "direct", "es", "cybercrime", "PT", 1),  # due T0+9h: overdue at the clock below
        seed(3, "urgent", "indirect", "de", "drug_trafficking", "DE", 2),  # due T0+3d+2h
        seed(4, "normal", None, "de", "terrorism", "DE", 3),  # answered in 10 h, on time
        seed(5, "urgent", "direct", "es", "drug_trafficking", "ES", 4),  # answered in 12 h: late
    ]
    stored = []
    for c in cases:
        stored.append((await store.open_case(c, []))[0])
    c4 = await act(store, stored[3], Action.ACK, Side.POST, 2 * h)
    await act(store, c4, Action.ANSWER, Side.POST, 10 * h)
    c5 = await act(store, stored[4], Action.ACK, Side.POST, 4 * h)
    await act(store, c5, Action.ANSWER, Side.POST, 12 * h)
    await act(store, stored[0], Action.ACK, Side.POST, 1 * h)

    async def ready() -> dict[str, bool]:
        return {}

    deps = HttpDeps(
        store=store,
        network=NETWORK,
        readiness=ready,
        render_metrics=lambda: (b"", "text/plain"),
        version="t",
        clock=FixedClock(T0 + 20 * h),
    )
    toks = {}
    for label, role, subject in (
        ("operator", Role.OPERATOR, None),
        ("post:es", Role.POST, "es"),
        ("unit:c3n", Role.UNIT, "c3n"),
    ):
        toks[label] = (await issue_token(store, SystemClock(), role=role, subject=subject, name=label)).token
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        yield client, toks
    finally:
        await client.close()
        await store.close()


def auth(toks: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {toks[who]}"}


async def test_open_cases_come_overdue_first_then_soonest_due(seeded: Any) -> None:
    client, toks = seeded
    resp = await client.get("/api/cases?open=true", headers=auth(toks, "operator"))
    items = (await resp.json())["items"]
    assert [i["reference"] for i in items] == ["K-2", "K-3", "K-1"]
    assert [i["overdue"] for i in items] == [True, False, False]
    assert items[0]["time_left_seconds"] == -11 * 3600 and list(items[0]) == list(CASE_SUMMARY_FIELDS)
    resp = await client.get("/api/posts/es/inbox", headers=auth(toks, "post:es"))
    assert [i["reference"] for i in (await resp.json())["items"]] == ["K-2", "K-1"]
    resp = await client.get("/api/cases?open=maybe", headers=auth(toks, "operator"))
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "open"


async def test_statistics_over_a_known_set_of_cases(seeded: Any) -> None:
    client, toks = seeded
    resp = await client.get("/api/stats", headers=auth(toks, "operator"))
    stats = await resp.json()
    assert stats["total"] == 5
    assert stats["by_crime_type"] == {"cybercrime": 1, "drug_trafficking": 3, "terrorism": 1}
    assert stats["by_country"] == {"DE": 2, "ES": 2, "PT": 1}
    assert stats["by_post"] == {"de": 2, "es": 3}
    assert stats["by_state"] == {"acknowledged": 1, "answered": 2, "routed": 2}
    assert stats["time_to_ack_seconds"] == {"count": 3, "median": 7200, "p90": 14400}
    assert stats["time_to_answer_seconds"] == {"count": 2, "median": 39600, "p90": 43200}
    assert (
        stats["answered"] == 2 and stats["answered_on_time"] == 1 and stats["share_answered_on_time"] == 0.5
    )

    resp = await client.get(
        "/api/stats",
        params={"since": "2026-05-04T10:00:00Z", "until": "2026-05-04T12:00:00Z"},
        headers=auth(toks, "operator"),
    )
    assert (await resp.json())["total"] == 2  # K-3 and K-4
    resp = await client.get("/api/stats", params={"since": "yesterday"}, headers=auth(toks, "operator"))
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "since"
    for who in ("post:es", "unit:c3n"):
        assert (await client.get("/api/stats", headers=auth(toks, who))).status == 403

    resp = await client.get("/api/stats.csv", headers=auth(toks, "operator"))
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == ["section", "key", "value"]
    assert ["by_post", "es", "3"] in rows and ["answers", "share_answered_on_time", "0.5"] in rows
    assert ["time_to_answer_seconds", "p90", "43200.0"] in rows
