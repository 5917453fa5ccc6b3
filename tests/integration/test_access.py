"""Need-to-know over HTTP: the whole access matrix as one table, then tokens, sign-in, rate limiting,
access auditing and logs. A real aiohttp server over a real SqlStore (fixture from test_http).

Messages seeded by test_http.OUTCOMES (id: sender → recipients):
  1 m-1  ocrtis → post.es          2 m-2  es → unit.c3n           3 m-3  c3n → centre.triage
  4 m-4  rejected (claims ocrtis)  5 m-1  ma → post.ma, post.es
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.integration.harness import Broker, envelope, running
from tests.integration.test_http import NETWORK, OUTCOMES, PRINCIPALS, Harness, issue_all
from watchcentre.adapters.audit_anchor import FileAnchor
from watchcentre.adapters.http_app import create_app
from watchcentre.adapters.http_base import SESSION_COOKIE, HttpDeps
from watchcentre.adapters.metrics import PrometheusMetrics
from watchcentre.adapters.sql import SqlStore
from watchcentre.core.access import Role
from watchcentre.core.ports import TransientError
from watchcentre.security import issue_token, revoke_token
from watchcentre.settings import Settings

ALL = {**PRINCIPALS, "post:de": (Role.POST, "de"), "unit:ocrtis": (Role.UNIT, "ocrtis")}
ROLES = ["anonymous", "operator", "auditor", "post:es", "post:de", "unit:c3n", "unit:ocrtis"]


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Harness]:
    store = await SqlStore.sqlite(str(tmp_path / "watchcentre.db"))
    await store.save_batch(OUTCOMES)
    tokens = await issue_all(store)
    for label in ("post:de", "unit:ocrtis"):
        role, subject = ALL[label]
        tokens[label] = (await issue_token(store, Clock(), role=role, subject=subject, name=label)).token
    metrics = PrometheusMetrics()

    async def ready() -> dict[str, bool]:
        return {"database": True}

    deps = HttpDeps(
        store=store,
        network=NETWORK,
        readiness=ready,
        render_metrics=metrics.render,
        version="t",
        audit_anchor=FileAnchor(tmp_path / "anchor.jsonl", b"k" * 32),
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        yield Harness(client, store, metrics, tokens)
    finally:
        await client.close()
        await store.close()


# -- the matrix ----------------------------------------------------------------------------------
# Each row: a request, then per role what it gets: a status, or (200, what it sees). What a role may
# not see is absent from lists and searches and 404 on detail, exactly as for a message that does not
# exist; a route a role may not use at all is 403; no valid token is 401.

Seen = int | tuple[int, Any]
D = dict[str, Seen]


def row(path: str, anonymous: Seen = 401, **by_role: Seen) -> tuple[str, D]:
    return path, {"anonymous": anonymous, **{k.replace("__", ":"): v for k, v in by_role.items()}}


MATRIX: list[tuple[str, D]] = [
    row(
        "/health",
        anonymous=200,
        operator=200,
        auditor=200,
        post__es=200,
        post__de=200,
        unit__c3n=200,
        unit__ocrtis=200,
    ),
    row(
        "/signin",
        anonymous=200,
        operator=200,
        auditor=200,
        post__es=200,
        post__de=200,
        unit__c3n=200,
        unit__ocrtis=200,
    ),
    row("/metrics", operator=200, auditor=403, post__es=403, post__de=403, unit__c3n=403, unit__ocrtis=403),
    row(
        "/api/openapi.json",
        operator=200,
        auditor=200,
        post__es=200,
        post__de=200,
        unit__c3n=200,
        unit__ocrtis=200,
    ),
    row(
        "/api/schema/envelope",
        operator=200,
        auditor=200,
        post__es=200,
        post__de=200,
        unit__c3n=200,
        unit__ocrtis=200,
    ),
    row(
        "/api/posts",
        operator=(200, ["es", "ma", "de"]),
        auditor=403,
        post__es=(200, ["es"]),
        post__de=(200, ["de"]),
        unit__c3n=(200, []),
        unit__ocrtis=(200, []),
    ),
    row(
        "/api/units",
        operator=(200, ["ocrtis", "c3n"]),
        auditor=403,
        post__es=(200, []),
        post__de=(200, []),
        unit__c3n=(200, ["c3n"]),
        unit__ocrtis=(200, ["ocrtis"]),
    ),
    row(
        "/api/messages",
        operator=(200, [5, 4, 3, 2, 1]),
        auditor=403,
        post__es=(200, [5, 2, 1]),
        post__de=(200, []),
        unit__c3n=(200, [3, 2]),
        unit__ocrtis=(200, [1]),
    ),
    # search: filters never widen what a role sees
    row(
        "/api/messages?crime_type=drug_trafficking",
        operator=(200, [5, 1]),
        auditor=403,
        post__es=(200, [5, 1]),
        post__de=(200, []),
        unit__c3n=(200, []),
        unit__ocrtis=(200, [1]),
    ),
    row(
        "/api/messages?sender=ocrtis",
        operator=(200, [4, 1]),
        auditor=403,
        post__es=(200, [1]),
        post__de=(200, []),
        unit__c3n=(200, []),
        unit__ocrtis=(200, [1]),
    ),
    row(
        "/api/messages?recipient=unit.c3n",
        operator=(200, [2]),
        auditor=403,
        post__es=(200, [2]),
        post__de=(200, []),
        unit__c3n=(200, [2]),
        unit__ocrtis=(200, []),
    ),
    row(
        "/api/messages?status=rejected",
        operator=(200, [4]),
        auditor=403,
        post__es=(200, []),
        post__de=(200, []),
        unit__c3n=(200, []),
        unit__ocrtis=(200, []),
    ),
    row(
        "/api/messages?limit=1",
        operator=(200, [5]),
        auditor=403,
        post__es=(200, [5]),
        post__de=(200, []),
        unit__c3n=(200, [3]),
        unit__ocrtis=(200, [1]),
    ),
    # full-text search: the same need-to-know, inside the query (both engines: test_search.py)
    row(
        "/api/search?q=secret",
        operator=(200, [1, 2, 3, 5]),
        auditor=403,
        post__es=(200, [1, 2, 5]),
        post__de=(200, []),
        unit__c3n=(200, [2, 3]),
        unit__ocrtis=(200, [1]),
    ),
    row(
        "/api/watches",
        operator=(200, []),
        auditor=403,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    # detail: another's message is 404, the newest *visible* one wins without ?sender
    row(
        "/api/messages/m-1",
        operator=(200, 5),
        auditor=403,
        post__es=(200, 5),
        post__de=404,
        unit__c3n=404,
        unit__ocrtis=(200, 1),
    ),
    row(
        "/api/messages/m-1?sender=ocrtis",
        operator=(200, 1),
        auditor=403,
        post__es=(200, 1),
        post__de=404,
        unit__c3n=404,
        unit__ocrtis=(200, 1),
    ),
    row(
        "/api/messages/m-1?sender=ma",
        operator=(200, 5),
        auditor=403,
        post__es=(200, 5),
        post__de=404,
        unit__c3n=404,
        unit__ocrtis=404,
    ),
    row(
        "/api/messages/m-2",
        operator=(200, 2),
        auditor=403,
        post__es=(200, 2),
        post__de=404,
        unit__c3n=(200, 2),
        unit__ocrtis=404,
    ),
    row(
        "/api/messages/m-3",
        operator=(200, 3),
        auditor=403,
        post__es=404,
        post__de=404,
        unit__c3n=(200, 3),
        unit__ocrtis=404,
    ),
    row(
        "/api/messages/m-4",
        operator=(200, 4),
        auditor=403,
        post__es=404,
        post__de=404,
        unit__c3n=404,
        unit__ocrtis=404,
    ),
    row(
        "/api/messages/nope",
        operator=404,
        auditor=403,
        post__es=404,
        post__de=404,
        unit__c3n=404,
        unit__ocrtis=404,
    ),
    row("/api/audit", operator=403, auditor=200, post__es=403, post__de=403, unit__c3n=403, unit__ocrtis=403),
    row(
        "/api/audit?message_id=m-1",
        operator=403,
        auditor=200,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    row(
        "/api/audit/export",
        operator=403,
        auditor=200,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    # a person's request (the data-protection officer): auditors only, over every message
    row(
        "/api/dpo/search?q=m-1",
        operator=403,
        auditor=200,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    row(
        "/api/dpo/export?q=m-1",
        operator=403,
        auditor=200,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    row(
        "/api/audit/verify",
        operator=403,
        auditor=200,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    # cases (none in this store): lists are scoped, a post's inbox is its own, statistics for operators
    row(
        "/api/cases",
        operator=(200, []),
        auditor=403,
        post__es=(200, []),
        post__de=(200, []),
        unit__c3n=(200, []),
        unit__ocrtis=(200, []),
    ),
    row(
        "/api/posts/es/inbox",
        operator=(200, []),
        auditor=403,
        post__es=(200, []),
        post__de=404,
        unit__c3n=404,
        unit__ocrtis=404,
    ),
    row(
        "/api/requests/WC-2026-000001",
        operator=404,
        auditor=403,
        post__es=404,
        post__de=404,
        unit__c3n=404,
        unit__ocrtis=404,
    ),
    row(
        "/track/WC-2026-000001",
        anonymous=303,  # a page: to /signin?next=…, and back after signing in
        operator=404,
        auditor=403,
        post__es=404,
        post__de=404,
        unit__c3n=404,
        unit__ocrtis=404,
    ),
    row("/api/stats", operator=200, auditor=403, post__es=403, post__de=403, unit__c3n=403, unit__ocrtis=403),
    row(
        "/api/stats.csv",
        operator=200,
        auditor=403,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    row("/nowhere", operator=404, auditor=404, post__es=404, post__de=404, unit__c3n=404, unit__ocrtis=404),
    # the operator console: operators only (the page itself is public and holds no data); without the
    # service wired in (this harness is create_app alone), what needs it answers 503
    row(
        "/console/app.js",
        anonymous=200,
        operator=200,
        auditor=200,
        post__es=200,
        post__de=200,
        unit__c3n=200,
        unit__ocrtis=200,
    ),
    row(
        "/",
        anonymous=303,  # each party's own screen; without a session, to /signin?next=/
        operator=200,
        auditor=200,
        post__es=200,
        post__de=200,
        unit__c3n=200,
        unit__ocrtis=200,
    ),
    row(
        "/api/console/triage",
        operator=200,
        auditor=403,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    row(
        "/api/console/recipients",
        operator=200,
        auditor=403,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    row(
        "/api/console/notes",
        operator=200,
        auditor=403,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    row(
        "/api/console/corrections",
        operator=503,
        auditor=403,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    row(
        "/api/console/glance",
        operator=200,
        auditor=403,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    row(
        "/api/console/message?message_id=m-1",
        operator=503,
        auditor=403,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    row(
        "/api/console/dead",
        operator=503,
        auditor=403,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
    *(
        row(
            path,
            operator=503,  # a bare app: the watch is not wired
            auditor=403,
            post__es=403,
            post__de=403,
            unit__c3n=403,
            unit__ocrtis=403,
        )
        for path in ("/api/console/alerts", "/api/console/watch-hits", "/api/console/inbox")
    ),
    # the screens' words and header: any signed-in party; the catalogs hold no data
    row(
        "/api/me",
        operator=200,
        auditor=200,
        post__es=200,
        post__de=200,
        unit__c3n=200,
        unit__ocrtis=200,
    ),
    row(
        "/api/labels?lang=fr",
        operator=200,
        auditor=200,
        post__es=200,
        post__de=200,
        unit__c3n=200,
        unit__ocrtis=200,
    ),
    row(
        "/console/locales/fr/common.json",
        anonymous=200,
        operator=200,
        auditor=200,
        post__es=200,
        post__de=200,
        unit__c3n=200,
        unit__ocrtis=200,
    ),
    # the feed for every party (need-to-know per event: tests/integration/test_party_feed.py)
    row(
        "/api/feed",
        operator=503,
        auditor=403,
        post__es=503,
        post__de=503,
        unit__c3n=503,
        unit__ocrtis=503,
    ),
    row(
        "/api/console/feed",
        operator=503,
        auditor=403,
        post__es=403,
        post__de=403,
        unit__c3n=403,
        unit__ocrtis=403,
    ),
]

CELLS = [(path, role, expected[role]) for path, expected in MATRIX for role in ROLES]


def test_the_matrix_covers_every_role_and_route() -> None:
    assert all(set(expected) == set(ROLES) for _, expected in MATRIX)
    routed = {path.split("?")[0] for path, _ in MATRIX}
    from watchcentre.adapters.openapi import openapi_document

    documented_gets = {p for p, ops in openapi_document()["paths"].items() if "get" in ops}
    params = {
        "{message_id}": "m-1",
        "{post_id}": "es",
        "{reference}": "WC-2026-000001",
        "{name}": "app.js",
        "{lang}": "fr",
        "{bundle}": "common.json",
    }

    def example(path: str) -> str:
        for name, value in params.items():
            path = path.replace(name, value)
        return path

    assert {example(p) for p in documented_gets} <= routed


def _seen(path: str, body: Any) -> Any:
    if "items" in body and path.startswith("/api/search"):  # best first: equal scores in any order
        return sorted(i["id"] for i in body["items"])
    if "items" in body and path.startswith("/api/messages"):
        return [i["id"] for i in body["items"]]
    if "items" in body:
        return [i["id"] for i in body["items"]]
    return body.get("id")


@pytest.mark.parametrize(("path", "role", "expected"), CELLS, ids=[f"{r}-{p}" for p, r, _ in CELLS])
async def test_access_matrix(api: Harness, path: str, role: str, expected: Seen) -> None:
    headers = {} if role == "anonymous" else api.auth(role)
    resp = await api.client.get(path, headers=headers, allow_redirects=False)
    status, what = expected if isinstance(expected, tuple) else (expected, None)
    assert resp.status == status, await resp.text()
    pages = (
        "/metrics",
        "/signin",
        "/api/stats.csv",
        "/",
        "/console/app.js",
        "/api/audit/export",
        "/console/locales/fr/common.json",
    )
    if status != 200 or path in pages:
        if status >= 400:
            body = await resp.json()
            assert body["error"]["status"] == status
            if status == 404 and path.startswith("/api/messages/"):  # as if it did not exist
                assert body == {"error": {"status": 404, "message": "no such message", "field": "message_id"}}
        return
    body = await resp.json()
    if what is not None:
        assert _seen(path, body) == what


async def test_an_invisible_message_is_answered_exactly_like_a_missing_one(api: Harness) -> None:
    hidden = await api.client.get("/api/messages/m-3", headers=api.auth("post:es"))
    missing = await api.client.get("/api/messages/never-sent", headers=api.auth("post:es"))
    assert (hidden.status, await hidden.read()) == (missing.status, await missing.read())


async def test_the_timeline_of_a_visible_message_shows_no_reads(api: Harness) -> None:
    await api.client.get("/api/messages/m-2", headers=api.auth("operator"))
    resp = await api.client.get("/api/messages/m-2", headers=api.auth("post:es"))
    body = await resp.json()
    assert [e["type"] for e in body["timeline"]] == ["received", "routed"]


# -- access is audited ---------------------------------------------------------------------------


async def test_every_read_of_a_message_is_an_audit_event(api: Harness) -> None:
    await api.client.get("/api/messages/m-1?sender=ocrtis", headers=api.auth("post:es"))
    await api.client.get("/api/messages?crime_type=drug_trafficking", headers=api.auth("unit:ocrtis"))
    await api.client.get("/api/messages/m-3", headers=api.auth("post:es"))  # 404: nothing read

    resp = await api.client.get("/api/audit?type=accessed", headers=api.auth("auditor"))
    [read] = (await resp.json())["items"]
    assert (read["actor"], read["sender"], read["message_id"]) == ("post:es", "ocrtis", "m-1")
    assert read["details"]["name"] == "tester post:es" and read["details"]["id"] == 1
    assert read["at"] and read["hash"]
    resp = await api.client.get("/api/audit?type=listed", headers=api.auth("auditor"))
    [listed, auditor_read] = (await resp.json())["items"]  # the auditor's own read is recorded too
    assert auditor_read["actor"] == "auditor" and auditor_read["details"]["route"] == "/api/audit"
    assert listed["actor"] == "unit:ocrtis"
    assert listed["details"]["ids"] == [1]
    assert listed["details"]["query"] == {"crime_type": "drug_trafficking"}


async def test_no_read_without_its_audit_record(api: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the read cannot be recorded, the message is not shown: fail closed, never an unaudited read."""

    async def cannot_record(events: Any) -> Any:
        raise TransientError("database: connection refused")

    monkeypatch.setattr(api.store, "append_audit", cannot_record)
    for path in ("/api/messages/m-1", "/api/messages"):
        resp = await api.client.get(path, headers=api.auth("operator"))
        text = await resp.text()
        assert resp.status >= 500, path
        assert "secret body of" not in text and "m-1" not in text, path
    monkeypatch.undo()
    resp = await api.client.get("/api/audit?type=accessed", headers=api.auth("auditor"))
    assert (await resp.json())["items"] == []


# -- tokens: expiry, revocation, rate limiting ----------------------------------------------------


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], SqlStore, Clock]]:
    store = await SqlStore.sqlite(str(tmp_path / "wc.db"))
    clock = Clock()

    async def ready() -> dict[str, bool]:
        return {}

    deps = HttpDeps(
        store=store,
        network=NETWORK,
        readiness=ready,
        render_metrics=lambda: (b"", "text/plain"),
        version="t",
        clock=clock,
        max_auth_failures=10,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        yield client, store, clock
    finally:
        await client.close()
        await store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_stops_working_when_it_expires(
    clocked: tuple[TestClient[Any, Any], SqlStore, Clock],
) -> None:
    client, store, clock = clocked
    issued = await issue_token(
        store, clock, role=Role.OPERATOR, subject=None, name="A", ttl=timedelta(hours=8)
    )
    assert (await client.get("/api/posts", headers=bearer(issued.token))).status == 200
    clock.at += timedelta(hours=8)
    resp = await client.get("/api/posts", headers=bearer(issued.token))
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_revoked_token_stops_working_at_once(
    clocked: tuple[TestClient[Any, Any], SqlStore, Clock],
) -> None:
    client, store, clock = clocked
    issued = await issue_token(store, clock, role=Role.POST, subject="es", name="B")
    other = await issue_token(store, clock, role=Role.POST, subject="es", name="C")
    assert (await client.get("/api/messages", headers=bearer(issued.token))).status == 200
    revoked = await revoke_token(store, clock, issued.record.id)
    assert revoked is not None and revoked.revoked_at is not None
    assert (await client.get("/api/messages", headers=bearer(issued.token))).status == 401
    assert (await client.get("/api/messages", headers=bearer(other.token))).status == 200
    assert await revoke_token(store, clock, issued.record.id) is not None  # idempotent
    assert await revoke_token(store, clock, "no-such-id") is None
    types = [e.type for e in await store.audit()]
    assert types.count("token_issued") == 2 and types.count("token_revoked") == 1


async def test_only_a_hash_of_the_token_is_stored(
    clocked: tuple[TestClient[Any, Any], SqlStore, Clock], tmp_path: Path
) -> None:
    _, store, clock = clocked
    issued = await issue_token(store, clock, role=Role.AUDITOR, subject=None, name="D")
    assert issued.token.encode() not in (tmp_path / "wc.db").read_bytes()
    assert len(issued.token) >= 4 + 43  # 32 random bytes
    [record] = await store.tokens()
    assert record.hash != issued.token and len(record.hash) == 64


async def test_failed_authentications_are_rate_limited_per_address(
    clocked: tuple[TestClient[Any, Any], SqlStore, Clock],
) -> None:
    client, store, clock = clocked
    good = await issue_token(store, clock, role=Role.OPERATOR, subject=None, name="E")
    for i in range(10):
        assert (await client.get("/api/posts", headers=bearer(f"wct_guess{i:040d}"))).status == 401
    resp = await client.get("/api/posts", headers=bearer(good.token))
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    signin = await client.post("/signin", data={"token": good.token})
    assert signin.status == 429
    assert (await client.get("/health")).status == 200  # public routes stay up


async def test_the_scraper_token_opens_metrics_and_nothing_else(tmp_path: Path) -> None:
    store = await SqlStore.sqlite(str(tmp_path / "wc.db"))
    scraper = "scrape-" + "s" * 40

    async def ready() -> dict[str, bool]:
        return {}

    deps = HttpDeps(
        store=store,
        network=NETWORK,
        readiness=ready,
        render_metrics=lambda: (b"m 1\n", "text/plain"),
        version="t",
        metrics_token=scraper,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        metrics = await client.get("/metrics", headers=bearer(scraper))
        assert metrics.status == 200 and await metrics.read() == b"m 1\n"
        for path in ("/api/messages", "/api/posts", "/api/audit", "/api/openapi.json"):
            assert (await client.get(path, headers=bearer(scraper))).status == 401, path
        assert (await client.get("/metrics", headers=bearer(scraper + "x"))).status == 401
        assert (await client.get("/metrics")).status == 401
    finally:
        await client.close()
        await store.close()


# -- sign-in ------------------------------------------------------------------------------------


async def test_the_signin_page_is_a_plain_form_without_script(api: Harness) -> None:
    resp = await api.client.get("/signin")
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "<form" in text and 'name="token"' in text and 'type="password"' in text
    # the form works without script; the one script (its words in French) is a module from /console/
    assert text.count("<script") == 1 and '<script type="module" src="/console/signin.js"></script>' in text
    assert "style=" not in text and not re.search(r"\son[a-z]+=", text)
    assert "watchcentre token issue" in text  # where a token comes from
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "next_",
    [
        "//evil.example/x",
        "/\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "evil.example",
        "",
        "/" + "a" * 3000,
    ],
)
async def test_signing_in_never_sends_the_browser_to_another_site(api: Harness, next_: str) -> None:
    """`next` comes from a link anyone can write: only a path on this site is followed."""
    page = await api.client.get("/signin", params={"next": next_})
    assert 'name="next" value="/"' in await page.text()
    form = {"token": api.tokens["post:es"], "next": next_}
    resp = await api.client.post("/signin", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"


async def test_signing_in_returns_to_the_page_asked_for(api: Harness) -> None:
    back = "/track/WC-2026-7KQ2M9XH4TF?from=mail"
    page = await api.client.get("/signin", params={"next": back})
    assert f'name="next" value="{back}"' in await page.text()
    form = {"token": api.tokens["unit:c3n"], "next": back}
    resp = await api.client.post("/signin", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == back
    failed = await api.client.post("/signin", data={"token": "wct_nope", "next": back})
    assert failed.status == 401 and f'name="next" value="{back}"' in await failed.text()


async def test_signing_in_sets_a_secure_httponly_strict_cookie_that_authenticates(api: Harness) -> None:
    resp = await api.client.post("/signin", data={"token": api.tokens["post:es"]}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age="):
        assert attribute in cookie
    session = {"Cookie": f"{SESSION_COOKIE}={api.tokens['post:es']}"}
    listed = await api.client.get("/api/messages", headers=session)
    assert [i["id"] for i in (await listed.json())["items"]] == [5, 2, 1]  # post:es scope through the cookie


async def test_the_secure_flag_can_be_turned_off_for_plain_http_on_localhost(tmp_path: Path) -> None:
    store = await SqlStore.sqlite(str(tmp_path / "wc.db"))
    issued = await issue_token(store, Clock(), role=Role.OPERATOR, subject=None, name="F")

    async def ready() -> dict[str, bool]:
        return {}

    deps = HttpDeps(
        store=store,
        network=NETWORK,
        readiness=ready,
        render_metrics=lambda: (b"", "text/plain"),
        version="t",
        cookie_secure=False,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        resp = await client.post("/signin", data={"token": issued.token}, allow_redirects=False)
    finally:
        await client.close()
        await store.close()
    cookie = resp.headers["Set-Cookie"]
    assert resp.status == 303 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie
    assert Settings().cookie_secure is True  # the default stays Secure


async def test_signing_in_with_json(api: Harness) -> None:
    resp = await api.client.post("/signin", json={"token": api.tokens["auditor"]})
    assert resp.status == 200
    body = await resp.json()
    assert (body["role"], body["name"]) == ("auditor", "tester auditor")
    assert "HttpOnly" in resp.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"json": {"token": "wct_nope"}}, 401, None),
        ({"data": {"token": "wct_nope"}}, 401, None),
        ({"json": {"token": "x", "role": "operator"}}, 400, "role"),
        ({"json": {"token": 12}}, 400, "token"),
        ({"json": {}}, 400, "token"),
        ({"json": ["token"]}, 400, "body"),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "body"),
        ({"data": b"token=x", "headers": {"Content-Type": "text/plain"}}, 415, None),
        ({"data": b"x" * 5000, "headers": {"Content-Type": "application/json"}}, 413, None),
        ({"json": {"token": "x"}, "headers": {"Origin": "https://evil.example"}}, 403, None),
    ],
)
async def test_a_bad_signin_is_a_clear_4xx(
    api: Harness, kwargs: dict[str, Any], status: int, field: str | None
) -> None:
    resp = await api.client.post("/signin", **kwargs)
    assert resp.status == status
    assert "Set-Cookie" not in resp.headers
    if resp.content_type == "application/json":
        assert (await resp.json())["error"]["field"] == field


async def test_a_request_body_over_the_limit_is_413(api: Harness) -> None:
    resp = await api.client.post("/signout", data=b"x" * (1024 * 1024 + 1))
    assert resp.status == 413


async def test_signing_out_clears_the_cookie(api: Harness) -> None:
    resp = await api.client.post("/signout")
    assert resp.status == 200 and f"{SESSION_COOKIE}=" in resp.headers["Set-Cookie"]


# -- logs -----------------------------------------------------------------------------------------


async def test_no_token_and_no_message_body_reaches_the_logs(
    api: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    from watchcentre.adapters.logging import configure_logging

    configure_logging("json", "DEBUG")
    try:
        guess = "wct_" + "g" * 43
        await api.client.get("/api/messages", headers=bearer(guess))
        await api.client.post("/signin", data={"token": guess})
        await api.client.get("/api/messages/m-1", headers=api.auth("operator"))
        import structlog

        structlog.get_logger("t").info(
            "connecting", url="amqp://guest:s3cret@host/", token=api.tokens["operator"]
        )
    finally:
        configure_logging("console", "INFO")
    err = capsys.readouterr().err
    assert "authentication_failed" in err and "signin_failed" in err
    for secret in (guess, api.tokens["operator"], "s3cret", "secret body of"):
        assert secret not in err
    assert json.loads(err.strip().splitlines()[-1])["url"] == "amqp://guest:***@host/"


# -- the matrix over AMQP: who may act on a case ----------------------------------------------------
# Each cell acts on its own fresh case (a request from ofast routed to madrid) as one sender with one
# kind. A party allowed to act changes the case; a party whose side may not is refused (dead letter
# naming the rule); anyone else is no party: the case is untouched and the message goes to triage.

AMQP_SENDERS = ["madrid", "rome", "ofast", "oclco", "centre"]
AMQP_ACTIONS: dict[str, dict[str, Any]] = {
    "ack": {"kind": "ack"},
    "status": {"kind": "status", "state": "in_progress"},
    "clarification": {"kind": "clarification", "clarification": "request"},
    "reply": {"kind": "reply"},
}
_OK = {"ack": "acknowledged", "status": "in_progress", "clarification": "routed", "reply": "answered"}
AMQP_MATRIX: dict[tuple[str, str], str] = {
    **{("madrid", a): _OK[a] for a in AMQP_ACTIONS},
    **{("centre", a): _OK[a] for a in AMQP_ACTIONS},
    **{(s, a): "triage" for s in ("rome", "oclco") for a in AMQP_ACTIONS},
    ("ofast", "ack"): "refused",
    ("ofast", "status"): "refused",
    ("ofast", "clarification"): "refused",
    ("ofast", "reply"): "no_answer",  # routed; the requester's own reply answers nothing
}


def test_the_amqp_matrix_covers_every_sender_and_action() -> None:
    assert set(AMQP_MATRIX) == {(s, a) for s in AMQP_SENDERS for a in AMQP_ACTIONS}


async def test_access_matrix_over_amqp(service_settings: Settings, broker: Broker) -> None:
    cells = list(AMQP_MATRIX)
    requests = {cell: envelope(sender="ofast", countries=["ES"]) for cell in cells}
    async with running(service_settings) as inst:
        store = inst.runtime.store
        for body in requests.values():
            await broker.publish(body)
        await broker.wait_events(lambda ev: sum(e["type"] == "case_opened" for e in ev) >= len(cells))
        cases = {c.message_id: c for c in await store.list_cases()}
        actions = {}
        for cell in cells:
            sender, action = cell
            case = cases[requests[cell]["message_id"]]
            link = {"in_reply_to": case.message_id} if action == "reply" else {"reference": case.reference}
            actions[cell] = envelope(sender=sender, subject="suivi", body="-", **AMQP_ACTIONS[action], **link)
            await broker.publish(actions[cell])
        ids = {a["message_id"] for a in actions.values()}
        await broker.wait_events(
            lambda ev: (
                len({e["message_id"] for e in ev if e["type"] in ("routed", "triaged", "rejected")} & ids)
                == len(ids)
            )
        )
        await broker.wait_events(
            lambda ev: (
                sum(e["type"] == "case_answered" for e in ev)
                >= sum(v == "answered" for v in AMQP_MATRIX.values())
            )
        )
        after = {cell: await store.get_case(cases[requests[cell]["message_id"]].reference) for cell in cells}
        outcome = {cell: (await store.get_message(actions[cell]["message_id"], cell[0])) for cell in cells}
    dead = {
        orjson.loads(m.body)["message_id"]: m.headers["x-watchcentre-error"]
        for m in await broker.drain("dead")
    }
    for cell, expected in AMQP_MATRIX.items():
        case, message = after[cell], outcome[cell]
        assert case is not None, cell
        if expected == "refused":
            assert dead[actions[cell]["message_id"]].startswith("state: a unit may not"), cell
            assert case.state == "routed" and case.version == 0, cell
        elif expected == "triage":
            assert message is not None and message.status == "triage", cell
            assert case.state == "routed" and case.version == 0, cell  # untouched
        elif expected == "no_answer":
            assert message is not None and message.status == "routed", cell
            assert case.state == "routed" and case.version == 0, cell
        else:
            assert case.state == expected, cell
            if cell[1] == "clarification":
                assert case.clarification_since is not None, cell
