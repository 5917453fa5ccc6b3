"""The HTTP API end to end: a real aiohttp server over a real SqlStore, seeded with outcomes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from watchcentre.adapters.http_app import SECURITY_HEADERS, create_app
from watchcentre.adapters.http_base import HttpDeps
from watchcentre.adapters.http_models import SUMMARY_FIELDS
from watchcentre.adapters.metrics import PrometheusMetrics
from watchcentre.adapters.openapi import openapi_document
from watchcentre.adapters.sql import SqlStore
from watchcentre.core.access import Role
from watchcentre.core.envelope import Envelope, Kind, Rejection, Routing, envelope_schema
from watchcentre.core.network import LiaisonOfficer, Network, Post, Unit
from watchcentre.core.ports import SystemClock, TransientError
from watchcentre.core.records import (
    SYSTEM_ACTOR,
    Accepted,
    AuditEvent,
    EventType,
    Outcome,
    Rejected,
    Status,
)
from watchcentre.security import issue_token

ROOT = Path(__file__).resolve().parents[2]

NETWORK = Network(
    home=["FR"],
    posts=[
        Post(
            id="es",
            city="Madrid",
            country="ES",
            countries=["ES", "PT"],
            liaison_officers=[LiaisonOfficer(city="Lisbon", country="PT", countries=["PT"])],
        ),
        Post(id="ma", city="Rabat", country="MA", countries=["MA"]),
        Post(id="de", city="Berlin", country="DE", countries=["DE", "AT"]),
    ],
    units=[
        Unit(id="ocrtis", name="Office anti-stupéfiants", crime_areas=["drug_trafficking"]),
        Unit(id="c3n", name="Centre de lutte contre les criminalités numériques", crime_areas=["cybercrime"]),
    ],
)


def at(hour: int) -> datetime:
    return datetime(2024, 5, 1, hour, 0, tzinfo=UTC)


def event(
    kind: EventType, hour: int, sender: str | None, message_id: str | None, **details: Any
) -> AuditEvent:
    return AuditEvent(
        at=at(hour), type=kind, actor=SYSTEM_ACTOR, sender=sender, message_id=message_id, details=details
    )


def accepted(
    *,
    message_id: str,
    sender: str,
    hour: int,
    status: Status,
    crime_types: list[str],
    countries: list[str],
    recipients: list[str],
) -> Accepted:
    envelope = Envelope(
        message_id=message_id,
        sender=sender,
        kind=Kind.REQUEST,
        subject=f"subject of {message_id}",
        body=f"secret body of {message_id} from {sender}",
        sent_at=at(hour),
        countries=countries,
        crime_types=crime_types,
    )
    explanation = [f"{code} → {key}" for code in crime_types for key in recipients] or ["no rule matched"]
    routing = Routing(
        crime_types=crime_types,
        countries=countries,
        recipients=recipients,
        explanation=explanation,
        confidence=0.9 if status is Status.ROUTED else 0.0,
    )
    final = EventType.ROUTED if status is Status.ROUTED else EventType.TRIAGED
    return Accepted(
        envelope=envelope,
        routing=routing,
        status=status,
        received_at=at(hour),
        events=[
            event(EventType.RECEIVED, hour, sender, message_id),
            event(final, hour, sender, message_id, recipients=recipients),
        ],
    )


# Stored in this order, so their ids are 1..5.
OUTCOMES: list[Outcome] = [
    accepted(  # 1
        message_id="m-1",
        sender="ocrtis",
        hour=8,
        status=Status.ROUTED,
        crime_types=["drug_trafficking"],
        countries=["ES"],
        recipients=["post.es"],
    ),
    accepted(  # 2
        message_id="m-2",
        sender="es",
        hour=9,
        status=Status.ROUTED,
        crime_types=["cybercrime"],
        countries=[],
        recipients=["unit.c3n"],
    ),
    accepted(  # 3
        message_id="m-3",
        sender="c3n",
        hour=10,
        status=Status.TRIAGE,
        crime_types=[],
        countries=[],
        recipients=["centre.triage"],
    ),
    Rejected(  # 4
        raw=b'{"message_id": "m-4", "sender": "ocrtis"}',
        rejection=Rejection(field="kind", problem="Field required", message_id="m-4", sender="ocrtis"),
        received_at=at(11),
        events=[
            event(EventType.RECEIVED, 11, "ocrtis", "m-4"),
            event(EventType.REJECTED, 11, "ocrtis", "m-4", reason="kind: Field required"),
        ],
    ),
    accepted(  # 5: the same message_id as 1, from another sender
        message_id="m-1",
        sender="ma",
        hour=12,
        status=Status.ROUTED,
        crime_types=["drug_trafficking"],
        countries=["MA", "ES"],
        recipients=["post.ma", "post.es"],
    ),
]


# Who the tests act as: (role, post or unit id).
PRINCIPALS: dict[str, tuple[Role, str | None]] = {
    "operator": (Role.OPERATOR, None),
    "auditor": (Role.AUDITOR, None),
    "post:es": (Role.POST, "es"),
    "unit:c3n": (Role.UNIT, "c3n"),
}


async def issue_all(store: SqlStore) -> dict[str, str]:
    tokens = {}
    for label, (role, subject) in PRINCIPALS.items():
        issued = await issue_token(store, SystemClock(), role=role, subject=subject, name=f"tester {label}")
        tokens[label] = issued.token
    return tokens


class Harness:
    def __init__(
        self,
        client: TestClient[Any, Any],
        store: SqlStore,
        metrics: PrometheusMetrics,
        tokens: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.metrics = metrics
        self.broker_up = True
        self.tokens = tokens or {}
        self.as_ = "operator"

    def auth(self, who: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who or self.as_]}"}

    async def readiness(self) -> dict[str, bool]:
        try:
            await self.store.ping()
            database = True
        except TransientError:
            database = False
        return {"broker": self.broker_up, "database": database}

    async def get(self, path: str, **params: str | int) -> tuple[int, Any]:
        resp = await self.client.get(path, params=params, headers=self.auth())
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()

    async def ids(self, **params: str | int) -> list[int]:
        status, body = await self.get("/api/messages", **params)
        assert status == 200, body
        return [item["id"] for item in body["items"]]

    async def bad(self, path: str, **params: str | int) -> dict[str, Any]:
        status, body = await self.get(path, **params)
        assert status == 400, body
        assert body["error"]["status"] == 400
        error: dict[str, Any] = body["error"]
        return error


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Harness]:
    store = await SqlStore.sqlite(str(tmp_path / "watchcentre.db"))
    saved = await store.save_batch(OUTCOMES)
    assert all(s is not None for s in saved)
    tokens = await issue_all(store)  # audit seq 11..14: one token_issued event each
    metrics = PrometheusMetrics()
    harness: Harness
    deps = HttpDeps(
        store=store,
        network=NETWORK,
        readiness=lambda: harness.readiness(),
        render_metrics=metrics.render,
        version="9.9.9-test",
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    harness = Harness(client, store, metrics, tokens)
    try:
        yield harness
    finally:
        await client.close()
        await store.close()


# -- health and metrics ----------------------------------------------------------------------------


async def test_health_ok_when_every_check_passes(api: Harness) -> None:
    status, body = await api.get("/health")
    assert status == 200
    assert body == {
        "status": "ok",
        "checks": {"broker": True, "database": True},
        "version": "9.9.9-test",
        "config": None,
    }


async def test_health_unavailable_when_a_check_fails(api: Harness) -> None:
    api.broker_up = False
    status, body = await api.get("/health")
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"] == {"broker": False, "database": True}


async def test_health_unavailable_when_the_database_is_closed(api: Harness) -> None:
    await api.store.close()
    status, body = await api.get("/health")
    assert status == 503
    assert body["checks"]["database"] is False


async def test_metrics_exposes_every_metric(api: Harness) -> None:
    api.metrics.received()
    api.metrics.routed("routed", 0.012)
    api.metrics.rejected("kind")
    api.metrics.duplicate()
    api.metrics.failed()
    api.metrics.in_flight(1)
    resp = await api.client.get("/metrics", headers=api.auth())
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    for line in (
        "watchcentre_messages_received_total 1.0",
        'watchcentre_messages_routed_total{status="routed"} 1.0',
        'watchcentre_messages_routed_total{status="triage"} 0.0',
        'watchcentre_messages_rejected_total{field="kind"} 1.0',
        "watchcentre_messages_duplicate_total 1.0",
        "watchcentre_handler_failures_total 1.0",
        'watchcentre_routing_latency_seconds_bucket{le="0.025"} 1.0',
        "watchcentre_in_flight 1.0",
    ):
        assert line in text


def test_each_metrics_instance_has_its_own_registry() -> None:
    a, b = PrometheusMetrics(), PrometheusMetrics()
    a.received()
    assert b"watchcentre_messages_received_total 0.0" in b.render()[0]


# -- the network -----------------------------------------------------------------------------------


async def test_posts(api: Harness) -> None:
    status, body = await api.get("/api/posts")
    assert status == 200
    by_id = {p["id"]: p for p in body["items"]}
    assert list(by_id) == ["es", "ma", "de"]
    assert by_id["es"] == {
        "id": "es",
        "city": "Madrid",
        "country": "ES",
        "countries": ["ES", "PT"],
        "liaison_officers": [{"city": "Lisbon", "country": "PT", "countries": ["PT"]}],
        "routing_key": "post.es",
        "queue_suffix": "post.es",
    }
    assert by_id["de"]["countries"] == ["DE", "AT"]
    assert by_id["ma"]["routing_key"] == "post.ma"


async def test_units(api: Harness) -> None:
    status, body = await api.get("/api/units")
    assert status == 200
    assert [(u["id"], u["crime_areas"], u["routing_key"]) for u in body["items"]] == [
        ("ocrtis", ["drug_trafficking"], "unit.ocrtis"),
        ("c3n", ["cybercrime"], "unit.c3n"),
    ]


# -- messages --------------------------------------------------------------------------------------


async def test_messages_newest_first_as_summaries(api: Harness) -> None:
    status, body = await api.get("/api/messages")
    assert status == 200
    assert [i["id"] for i in body["items"]] == [5, 4, 3, 2, 1]
    assert body["next_before_id"] is None
    for item in body["items"]:
        assert set(item) == SUMMARY_FIELDS
        assert "secret body" not in json.dumps(item)
    first = body["items"][-1]
    assert first["message_id"] == "m-1"
    assert first["sender"] == "ocrtis"
    assert first["status"] == "routed"
    assert first["recipients"] == ["post.es"]
    assert first["received_at"].startswith("2024-05-01T08:00:00")
    assert body["items"][1]["error"] == "kind: Field required"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"crime_type": "drug_trafficking"}, [5, 1]),
        ({"crime_type": "cybercrime"}, [2]),
        ({"crime_type": "terrorism"}, []),
        ({"country": "ES"}, [5, 1]),
        ({"country": "es"}, [5, 1]),
        ({"country": "MA"}, [5]),
        ({"recipient": "post.es"}, [5, 1]),
        ({"recipient": "unit.c3n"}, [2]),
        ({"recipient": "centre.triage"}, [3]),
        ({"status": "routed"}, [5, 2, 1]),
        ({"status": "triage"}, [3]),
        ({"status": "rejected"}, [4]),
        ({"sender": "ocrtis"}, [4, 1]),
        ({"sender": "ma"}, [5]),
        ({"since": "2024-05-01T10:00:00Z"}, [5, 4, 3]),
        ({"since": "2024-05-01T12:00:00+02:00"}, [5, 4, 3]),
        ({"until": "2024-05-01T10:00:00Z"}, [2, 1]),
        ({"since": "2024-05-01T09:00:00Z", "until": "2024-05-01T11:00:00Z"}, [3, 2]),
        ({"before_id": 3}, [2, 1]),
        ({"limit": 2}, [5, 4]),
        ({"crime_type": "drug_trafficking", "sender": "ma"}, [5]),
        ({"status": "", "sender": ""}, [5, 4, 3, 2, 1]),
    ],
)
async def test_message_filters(api: Harness, params: dict[str, str | int], expected: list[int]) -> None:
    assert await api.ids(**params) == expected


async def test_messages_paging(api: Harness) -> None:
    seen: list[int] = []
    params: dict[str, str | int] = {"limit": 2}
    pages = 0
    while True:
        status, body = await api.get("/api/messages", **params)
        assert status == 200
        seen += [i["id"] for i in body["items"]]
        pages += 1
        if body["next_before_id"] is None:
            break
        params["before_id"] = body["next_before_id"]
    assert seen == [5, 4, 3, 2, 1]
    assert pages == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2024-05-01T10:00:00"}, "since"),
        ({"since": "1714557600"}, "since"),
        ({"until": "2024-13-01T10:00:00Z"}, "until"),
        ({"status": "lost"}, "status"),
        ({"before_id": "x"}, "before_id"),
        ({"crime_type": "jaywalking"}, "crime_type"),
        ({"country": "France"}, "country"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_message_query_names_the_field(
    api: Harness, params: dict[str, str | int], field: str
) -> None:
    error = await api.bad("/api/messages", **params)
    assert error["field"] == field
    assert error["message"]


async def test_a_parameter_given_twice_is_refused(api: Harness) -> None:
    resp = await api.client.get("/api/messages?limit=1&limit=2", headers=api.auth())
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "limit"


async def test_message_detail_with_routing_and_timeline(api: Harness) -> None:
    status, body = await api.get("/api/messages/m-1", sender="ocrtis")
    assert status == 200
    assert body["id"] == 1
    assert body["status"] == "routed"
    assert body["envelope"]["body"] == "secret body of m-1 from ocrtis"
    assert body["routing"]["explanation"] == ["drug_trafficking → post.es"]
    assert body["routing"]["recipients"] == ["post.es"]
    assert body["error"] is None
    timeline = body["timeline"]
    assert [e["type"] for e in timeline] == ["received", "routed"]
    assert {(e["sender"], e["message_id"]) for e in timeline} == {("ocrtis", "m-1")}
    assert timeline[0]["seq"] < timeline[1]["seq"]


async def test_message_detail_without_sender_is_the_newest(api: Harness) -> None:
    status, body = await api.get("/api/messages/m-1")
    assert status == 200
    assert (body["id"], body["sender"]) == (5, "ma")
    assert [e["sender"] for e in body["timeline"]] == ["ma", "ma"]


async def test_rejected_message_detail(api: Harness) -> None:
    status, body = await api.get("/api/messages/m-4")
    assert status == 200
    assert body["status"] == "rejected"
    assert body["error"] == "kind: Field required"
    assert [e["type"] for e in body["timeline"]] == ["received", "rejected"]


@pytest.mark.parametrize(
    ("path", "params"), [("/api/messages/nope", {}), ("/api/messages/m-1", {"sender": "de"})]
)
async def test_unknown_message_is_404_json(api: Harness, path: str, params: dict[str, str]) -> None:
    status, body = await api.get(path, **params)
    assert status == 404
    assert body["error"]["status"] == 404
    assert body["error"]["message"]


# -- audit -----------------------------------------------------------------------------------------


async def test_audit_all_in_seq_order(api: Harness) -> None:
    api.as_ = "auditor"
    status, body = await api.get("/api/audit")
    assert status == 200
    seqs = [e["seq"] for e in body["items"]]
    assert len(seqs) == 14  # 10 message events, then 4 token_issued
    assert {e["type"] for e in body["items"][10:]} == {"token_issued"}
    assert seqs == sorted(seqs)
    assert body["next_after_seq"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"type": "rejected"}, [("rejected", "ocrtis", "m-4")]),
        ({"type": "triaged"}, [("triaged", "c3n", "m-3")]),
        (
            {"message_id": "m-1", "sender": "ocrtis"},
            [("received", "ocrtis", "m-1"), ("routed", "ocrtis", "m-1")],
        ),
        ({"sender": "ma", "type": "routed"}, [("routed", "ma", "m-1")]),
    ],
)
async def test_audit_filters(
    api: Harness, params: dict[str, str], expected: list[tuple[str, str, str]]
) -> None:
    api.as_ = "auditor"
    status, body = await api.get("/api/audit", **params)
    assert status == 200
    assert [(e["type"], e["sender"], e["message_id"]) for e in body["items"]] == expected


async def test_audit_paging(api: Harness) -> None:
    api.as_ = "auditor"
    status, first = await api.get("/api/audit", limit=4)
    assert status == 200
    assert len(first["items"]) == 4
    assert first["next_after_seq"] == first["items"][-1]["seq"]
    status, rest = await api.get("/api/audit", after_seq=first["next_after_seq"], limit=100)
    assert len(rest["items"]) == 11  # the 10 left, and the record of the first page's read
    assert rest["items"][-1]["type"] == "listed" and rest["items"][-1]["actor"] == "auditor"
    assert rest["next_after_seq"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),
        ({"after_seq": -1}, "after_seq"),
        ({"seq": 1}, "seq"),
    ],
)
async def test_bad_audit_query_names_the_field(
    api: Harness, params: dict[str, str | int], field: str
) -> None:
    api.as_ = "auditor"
    assert (await api.bad("/api/audit", **params))["field"] == field


# -- schemas ---------------------------------------------------------------------------------------


async def test_envelope_schema(api: Harness) -> None:
    status, body = await api.get("/api/schema/envelope")
    assert status == 200
    assert body == envelope_schema()
    assert {"message_id", "sender", "kind", "subject", "body", "sent_at"} <= set(body["required"])


async def test_openapi_describes_every_route(api: Harness) -> None:
    status, doc = await api.get("/api/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["version"] == "9.9.9-test"
    assert set(doc["paths"]) == {
        "/health",
        "/metrics",
        "/api/posts",
        "/api/units",
        "/api/messages",
        "/api/messages/{message_id}",
        "/api/search",
        "/api/watches",
        "/api/watches/{watch_id}",
        "/api/audit",
        "/api/audit/verify",
        "/api/audit/export",
        "/api/dpo/search",
        "/api/dpo/export",
        "/api/schema/envelope",
        "/api/openapi.json",
        "/signin",
        "/signout",
        "/api/me",
        "/api/labels",
        "/console/locales/{lang}/{bundle}",
        "/api/send",
        "/api/feed",
        "/api/cases",
        "/api/cases/{reference}/{action}",
        "/api/posts/{post_id}/inbox",
        "/api/requests/{reference}",
        "/track/{reference}",
        "/api/stats",
        "/api/stats.csv",
        # the operator console (adapters/http_console.py)
        "/",
        "/console/{name}",
        "/api/console/feed",
        "/api/console/triage",
        "/api/console/recipients",
        "/api/console/message",
        "/api/console/route",
        "/api/console/dead",
        "/api/console/dead/{letter_id}/reinject",
        "/api/console/notes",
        "/api/console/glance",
        "/api/console/corrections",
        "/api/console/config/reload",
        "/api/console/alerts",
        "/api/console/alerts/ack",
        "/api/console/watch-hits",
        "/api/console/watch-hits/ack",
        "/api/console/inbox",
        "/api/console/inbox/mark",
        "/api/console/compose",
    }
    names = {p["name"] for p in doc["paths"]["/api/messages"]["get"]["parameters"]}
    assert names == {
        "crime_type",
        "country",
        "recipient",
        "status",
        "sender",
        "since",
        "until",
        "before_id",
        "limit",
    }
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_checked_in_openapi_is_current() -> None:
    on_disk = json.loads((ROOT / "docs" / "openapi.json").read_text("utf-8"))
    assert on_disk == openapi_document(), (
        "regenerate: python -m watchcentre.adapters.openapi > docs/openapi.json"
    )


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


# -- errors and headers ----------------------------------------------------------------------------


async def test_unknown_route_is_404_json(api: Harness) -> None:
    status, body = await api.get("/api/nothing-here")
    assert status == 404
    assert body == {"error": {"status": 404, "message": "Not Found", "field": None}}


async def test_wrong_method_is_405_json(api: Harness) -> None:
    resp = await api.client.post("/api/messages", data=b"{}", headers=api.auth())
    assert resp.status == 405
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"]["status"] == 405
    assert "GET" in resp.headers["Allow"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/api/posts"),
        ("GET", "/api/messages?limit=0"),
        ("GET", "/api/messages/nope"),
        ("GET", "/nowhere"),
        ("GET", "/api/openapi.json"),
        ("DELETE", "/api/audit"),
    ],
)
async def test_security_headers_on_every_response(api: Harness, method: str, path: str) -> None:
    resp = await api.client.request(method, path, headers=api.auth())
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers.get(name) == value, (path, name)


class BrokenStore:
    """Authenticates anyone with the one token it knows, then fails."""

    def __init__(self, token: str) -> None:
        from watchcentre.core.access import TokenRecord, hash_token

        now = datetime.now(UTC)
        self.record = TokenRecord(
            id="t1",
            name="op",
            role=Role.OPERATOR,
            created_at=now,
            expires_at=now.replace(year=now.year + 1),
            hash=hash_token(token),
        )

    async def token_by_hash(self, token_hash: str) -> Any:
        return self.record if token_hash == self.record.hash else None

    async def list_messages(self, query: Any, visibility: Any = None) -> Any:
        raise RuntimeError("database password is hunter2")


async def test_unexpected_failure_is_500_json_without_detail() -> None:
    async def ready() -> dict[str, bool]:
        return {}

    token = "wct_" + "x" * 43
    deps = HttpDeps(
        store=BrokenStore(token),  # type: ignore[arg-type]
        network=NETWORK,
        readiness=ready,
        render_metrics=lambda: (b"", "text/plain"),
        version="0",
    )
    async with TestClient(TestServer(create_app(deps))) as client:
        resp = await client.get("/api/messages", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 500
        assert resp.content_type == "application/json"
        text = await resp.text()
        assert json.loads(text) == {"error": {"status": 500, "message": "internal error", "field": None}}
        assert "hunter2" not in text and "Traceback" not in text
        assert resp.headers["X-Frame-Options"] == "DENY"


# -- the screens' words and header ----------------------------------------------------------------


async def test_labels_give_countries_in_the_language_asked_and_refuse_an_unknown_one(api: Harness) -> None:
    api.as_ = "post:es"  # any signed-in party
    status, fr = await api.get("/api/labels", lang="fr")
    assert status == 200 and fr["lang"] == "fr"
    assert fr["countries"]["ES"] == "Espagne" and fr["countries"]["DE"] == "Allemagne"
    status, en = await api.get("/api/labels", lang="en")
    assert en["countries"]["ES"] == "Spain"
    error = await api.bad("/api/labels", lang="de")
    assert error["field"] == "lang"
    error = await api.bad("/api/labels")
    assert error["field"] == "lang"
    resp = await api.client.get("/api/labels", params={"lang": "fr"})
    assert resp.status == 401


async def test_me_names_the_session_and_its_post(api: Harness) -> None:
    api.as_ = "post:es"
    status, me = await api.get("/api/me")
    assert status == 200
    assert me["role"] == "post:es" and me["kind"] == "post" and me["subject"] == "es"
    assert me["where"] == "Madrid" and me["name"] == "tester post:es"


async def test_catalogs_are_served_for_both_languages_and_nothing_else(api: Harness) -> None:
    for lang in ("en", "fr"):
        resp = await api.client.get(f"/console/locales/{lang}/common.json")
        assert resp.status == 200
        assert "common.signout" in await resp.json()
    for bad in ("de/common.json", "fr/secrets.json", "fr/..%2fcommon.json"):
        resp = await api.client.get(f"/console/locales/{bad}")
        assert resp.status == 404, bad
