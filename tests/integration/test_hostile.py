"""Hostile input, from the attacker's side (issue 12): deeply nested JSON, far-out dates, oversized
headers carrying a token, cross-origin sign-out, an `extend` to year 9999, bidi-override subjects.
Each is a clear 4xx (HTTP) or a dead letter with its `rejected` audit record (AMQP), never a 500, and
the logs hold neither a token nor a 155 KB traceback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.integration.harness import Broker, envelope, running
from tests.integration.processes import ServeProcess
from tests.integration.test_cases_http import Api, tokens
from tests.integration.test_http import NETWORK, OUTCOMES, Harness, issue_all
from watchcentre.adapters.http_app import create_app
from watchcentre.adapters.http_base import HttpDeps
from watchcentre.adapters.logging import configure_logging
from watchcentre.adapters.metrics import PrometheusMetrics
from watchcentre.adapters.sql import SqlStore
from watchcentre.core.access import Role
from watchcentre.core.ports import SystemClock
from watchcentre.security import issue_token
from watchcentre.settings import Settings

FAR_OUT = "9999-12-31T23:59:59-23:59"  # overflowed datetime on the way to UTC: a 500 before


def nested(depth: int) -> bytes:
    return b'{"token": "x", "deep": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Harness]:
    store = await SqlStore.sqlite(str(tmp_path / "watchcentre.db"))
    await store.save_batch(OUTCOMES)
    metrics = PrometheusMetrics()

    async def ready() -> dict[str, bool]:
        return {"database": True}

    deps = HttpDeps(store=store, network=NETWORK, readiness=ready, render_metrics=metrics.render, version="t")
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        yield Harness(client, store, metrics, await issue_all(store))
    finally:
        await client.close()
        await store.close()


async def test_deeply_nested_json_is_a_400_naming_the_problem_and_logs_no_traceback(
    api: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "INFO")
    try:
        for depth in (40, 500, 1500):  # 1500: over orjson's own cap, under the 4 KiB sign-in limit
            resp = await api.client.post(  # unauthenticated, as an attacker would
                "/signin", data=nested(depth), headers={"Content-Type": "application/json"}
            )
            assert resp.status == 400, depth
            error = (await resp.json())["error"]
            assert (error["field"], error["message"]) == ("body", "nested more than 32 levels deep")
        resp = await api.client.post(
            "/signin", data=nested(10), headers={"Content-Type": "application/json"}
        )  # shallow: judged on its fields as before
        assert resp.status == 400 and (await resp.json())["error"]["field"] == "deep"
    finally:
        configure_logging("console", "INFO")
    err = capsys.readouterr().err
    assert "Traceback" not in err and "http_handler_failed" not in err
    assert len(err) < 5000


@pytest.mark.parametrize("path", ["/api/messages", "/api/stats", "/api/stats.csv"])
@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("since", FAR_OUT, "out of range: between 2000-01-01 and 2100-01-01 (UTC)"),
        ("until", "0001-01-01T00:00:00+23:59", "out of range: between 2000-01-01 and 2100-01-01 (UTC)"),
        ("since", "2400-01-01T00:00:00Z", "out of range: between 2000-01-01 and 2100-01-01 (UTC)"),
        ("since", "2024-02-30T00:00:00Z", "not a real date and time"),
    ],
)
async def test_a_far_out_time_in_a_query_is_a_400_naming_the_parameter(
    api: Harness, path: str, param: str, value: str, message: str
) -> None:
    resp = await api.client.get(path, params={param: value}, headers=api.auth("operator"))
    assert resp.status == 400
    assert (await resp.json())["error"] == {"status": 400, "message": message, "field": param}


async def test_a_time_in_range_still_filters(api: Harness) -> None:
    resp = await api.client.get(
        "/api/messages", params={"since": "2024-05-01T10:30:00+01:00"}, headers=api.auth()
    )
    assert resp.status == 200 and [m["id"] for m in (await resp.json())["items"]] == [5, 4, 3]


async def test_a_cross_origin_signout_is_refused(api: Harness) -> None:
    cookie = {"Cookie": f"wc_session={api.tokens['operator']}"}
    resp = await api.client.post("/signout", headers={**cookie, "Origin": "https://evil.example"})
    assert resp.status == 403
    assert (await resp.json())["error"]["message"] == "cross-origin sign-out refused"
    assert "Set-Cookie" not in resp.headers  # the session was not cleared
    same = f"http://{api.client.host}:{api.client.port}"
    resp = await api.client.post("/signout", headers={**cookie, "Origin": same})
    assert resp.status == 200 and "wc_session=" in resp.headers["Set-Cookie"]


# -- a real process: a header over 8 KiB with a token in it ----------------------------------------


async def test_an_oversized_header_does_not_put_the_token_in_the_log(
    amqp_prefix: str, tmp_path: Path
) -> None:
    proc = ServeProcess(
        prefix=amqp_prefix,
        database_url=f"sqlite:///{tmp_path / 'wc.db'}",
        name=f"wc-hdr-{amqp_prefix}",
        log_dir=tmp_path,
    )
    store = await SqlStore.sqlite(str(tmp_path / "wc.db"))
    try:
        token = (await issue_token(store, SystemClock(), role=Role.OPERATOR, subject=None, name="op")).token
    finally:
        await store.close()
    await proc.start()
    try:
        for header in (
            f"Authorization: Bearer {token}{'b' * 9000}",  # the token quoted by aiohttp's parser error
            f"Authorization: Bearer {token}\r\nX-Padding: {'a' * 9000}",
            f"Cookie: wc_session={token}; pad={'c' * 9000}",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
            writer.write(f"GET /api/messages HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n".encode())
            await writer.drain()
            assert b" 400 " in await reader.readline()  # from aiohttp's own parser
            writer.close()
    finally:
        code, _ = await proc.terminate()
    assert code == 0
    log = proc.log_path.read_text()
    assert "Error handling request" in log  # aiohttp did log its traceback: the path was exercised
    assert "Bearer ***" in log
    for leak in (token, token[4:20]):
        assert leak not in log


# -- a real instance: AMQP and HTTP against the real broker, each database -------------------------


@pytest.fixture
def settings(service_settings: Settings) -> Settings:
    return service_settings.model_copy(update={"deadline_tick_s": 3600.0})


def rejected_for(events: list[dict[str, Any]], message_id: str) -> dict[str, Any] | None:
    return next((e for e in events if e["type"] == "rejected" and e.get("message_id") == message_id), None)


async def test_hostile_envelopes_are_dead_lettered_and_audited_and_extend_is_bounded(
    settings: Settings, broker: Broker
) -> None:
    request = envelope(
        sender="ofast", subject="Facture \u202egnp.exe\u200b", body="Cocaïne.", countries=["ES"]
    )
    async with running(settings) as inst, aiohttp.ClientSession() as session:
        store = inst.runtime.store
        api = Api(session, inst.url, await tokens(store))
        await broker.publish(request)
        await broker.wait_events(lambda ev: any(e["type"] == "case_opened" for e in ev))
        reference = broker.events_of("case_opened")[0]["reference"]
        case = await store.get_case(reference)
        assert case is not None and case.legal_due_at is not None
        too_late = (case.legal_due_at + timedelta(days=31)).isoformat()
        in_time = (case.legal_due_at + timedelta(days=29)).isoformat()

        deep = b'{"message_id": "deep-1", "sender": "ofast", "x": ' + b"[" * 600 + b"]" * 600 + b"}"
        await broker.publish(deep)
        await broker.publish(envelope(message_id="far-1", sent_at=FAR_OUT))
        await broker.publish(
            envelope(
                message_id="far-2",
                sender="madrid",
                kind="status",
                reference=reference,
                expected_at=FAR_OUT,
                reason="never",
                subject="s",
                body="b",
            )
        )
        await broker.publish(
            envelope(
                message_id="late-1",
                sender="madrid",
                kind="status",
                reference=reference,
                expected_at=too_late,
                reason="rogatory letter",
                subject="s",
                body="b",
            )
        )
        await broker.wait_events(lambda ev: sum(e["type"] == "rejected" for e in ev) >= 4)

        expected = {
            None: ("envelope", "nested more than 32 levels deep"),  # deep-1: too deep to read its ids
            "far-1": ("sent_at", "out of range: between 2000-01-01 and 2100-01-01 (UTC)"),
            "far-2": ("expected_at", "out of range: between 2000-01-01 and 2100-01-01 (UTC)"),
        }
        for message_id, (field, problem) in expected.items():
            event = rejected_for(broker.events, message_id)  # type: ignore[arg-type]
            assert event is not None, message_id
            assert (event["details"]["field"], event["details"]["problem"]) == (field, problem)
        late = rejected_for(broker.events, "late-1")
        assert late is not None and late["reference"] == reference
        assert "at most 30 days past the legal due time" in late["details"]["problem"]
        audited = await store.audit(event_type="rejected", limit=100)
        assert len(audited) == 4  # recorded, not only published
        dead = await broker.drain("dead")
        assert len(dead) == 4 and any(m.body == deep for m in dead)

        # the same bound and the same range over HTTP
        status, body = await api.act(
            reference, "extend", "post:madrid", {"expected_at": too_late, "reason": "x"}
        )
        assert status == 400 and body["error"]["field"] == "expected_at"
        assert "at most 30 days past the legal due time" in body["error"]["message"]
        status, body = await api.act(
            reference, "extend", "post:madrid", {"expected_at": FAR_OUT, "reason": "x"}
        )
        assert status == 400 and body["error"]["field"] == "expected_at"
        status, body = await api.act(
            reference, "extend", "post:madrid", {"expected_at": in_time, "reason": "x"}
        )
        assert status == 200 and body["expected_at"] == datetime.fromisoformat(in_time).isoformat()
        deep_body: Any = "x"
        for _ in range(40):
            deep_body = [deep_body]
        status, body = await api.call(
            "POST", f"/api/cases/{reference}/ack", "post:madrid", {"reason": deep_body}
        )
        assert status == 400 and body["error"]["field"] == "body"

        # the tracking page holds no data (its script shows the subject as text, the bidi override and
        # zero-width space as markers: tests/integration/test_party_browser.py)
        status, page = await api.call("GET", f"/track/{reference}", "operator")
        assert status == 200
        assert "Facture" not in page and "\u202e" not in page and "\u200b" not in page
