"""Fuzzing, bounded in time (both together well under 60 s):

* the HTTP API from its own OpenAPI document with schemathesis: no 5xx, every response conforms to
  the document (status, content type, headers, schema), authentication enforced;
* the envelope pipeline with hypothesis: every input either routes or is dead-lettered with a reason.

Both draw the same examples on every run (the `repeatable` hypothesis profile of tests/conftest.py),
so a red run can be replayed exactly and a landing never depends on the luck of the draw. Explore
beyond them with WATCHCENTRE_FUZZ_SEED=random (and `--hypothesis-seed=N` to replay a find), then
turn what they find into a fix.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integration.test_http import NETWORK, OUTCOMES
from watchcentre.adapters.audit_anchor import FileAnchor
from watchcentre.adapters.config_files import load_config
from watchcentre.adapters.http_app import create_app
from watchcentre.adapters.http_base import HttpDeps
from watchcentre.adapters.http_cases import CASES
from watchcentre.adapters.http_console import CONSOLE, ConsoleDeps, FeedHub
from watchcentre.adapters.http_screens import SUBMIT
from watchcentre.adapters.http_watch import WATCH
from watchcentre.adapters.metrics import PrometheusMetrics
from watchcentre.adapters.openapi import openapi_document
from watchcentre.adapters.sql import SqlStore
from watchcentre.bootstrap import Reloader, build_classifier, build_service
from watchcentre.core.access import Role
from watchcentre.core.ports import OutboundCopy, SystemClock
from watchcentre.core.records import AuditEvent, DeadLetterView
from watchcentre.core.senders import SenderPolicy
from watchcentre.security import issue_token
from watchcentre.service import ServiceSettings
from watchcentre.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FUZZ_EXAMPLES = 40  # per operation; ~10 operations


class Server:
    """The HTTP API in its own thread and event loop, so schemathesis can call it synchronously."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.loop = asyncio.new_event_loop()
        self.tokens: dict[str, str] = {}
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.store = await SqlStore.sqlite(str(self.db))
        await self.store.save_batch(OUTCOMES)
        for label, role, subject in (
            ("operator", Role.OPERATOR, None),
            ("auditor", Role.AUDITOR, None),
            ("post", Role.POST, "es"),
        ):
            issued = await issue_token(self.store, SystemClock(), role=role, subject=subject, name=label)
            self.tokens[label] = issued.token
        metrics = PrometheusMetrics()

        async def ready() -> dict[str, bool]:
            return {"database": True}

        deps = HttpDeps(
            store=self.store,
            network=NETWORK,
            readiness=ready,
            render_metrics=metrics.render,
            version="fuzz",
            max_auth_failures=1_000_000,
            # as deployed: exports are signed with the anchor's key (without one, a plain 503)
            audit_anchor=FileAnchor(Path(tempfile.mkdtemp()) / "audit-anchor.jsonl", b"k" * 32),
        )
        app = create_app(deps)
        # the console, wired as bootstrap does, on a publisher that records instead of AMQP
        classifier = build_classifier(_config)
        self.service = build_service(
            config=_config,
            classifier=classifier,
            store=self.store,
            publisher=Recorder(),
            metrics=Recorder(),
            clock=SystemClock(),
            settings=ServiceSettings(senders=SenderPolicy(development=True)),
            labels=self.store,
        )
        await self.service.start()

        async def declare(_: Any) -> None:  # no broker here: the queues of a new network go nowhere
            return None

        reloader = Reloader(
            settings=Settings(config_dir=str(ROOT / "config")),
            service=self.service,
            store=self.store,
            declare=declare,
            on_changed=lambda _: None,
        )
        app[CASES] = self.service.desk
        app[SUBMIT] = self.service.submissions
        app[WATCH] = self.service.watch
        app[CONSOLE] = ConsoleDeps(
            actions=self.service.operator,
            hub=FeedHub(self.store),
            classify=classifier.classify,
            dead_letters=NoDeadLetters(),
            reload=reloader.reload,
        )
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.service.stop()
        await self.store.close()

    def __enter__(self) -> Server:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("fuzz") / "wc.db") as s:
        yield s


SCHEMA = schemathesis.openapi.from_dict(openapi_document("fuzz"))
COUNTS: dict[str, int] = {"cases": 0, "5xx": 0}
WEBSOCKETS = ("/api/console/feed", "/api/feed")


@pytest.mark.parametrize("role", ["operator", "auditor", "post"])
def test_the_http_api_against_its_openapi_document(server: Server, role: str) -> None:
    started = time.monotonic()
    # the live feed is a WebSocket (its upgrade is not an HTTP exchange schemathesis can make):
    # tests/integration/test_console_*.py cover it
    operations = [op.ok() for op in SCHEMA.get_all_operations() if op.ok().path not in WEBSOCKETS]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: Any) -> None:
            headers = {"Authorization": f"Bearer {server.tokens[role]}"}
            if isinstance(case.query, dict):  # an opaque cursor only the server makes: a drawn one is
                case.query.pop("before", None)  # rightly 400 (test_case_lists.py covers paging)
            response = case.call(base_url=f"http://127.0.0.1:{server.port}", headers=headers)
            COUNTS["cases"] += 1
            if response.status_code >= 500:
                COUNTS["5xx"] += 1
            assert response.status_code < 500, (case.method, case.path, response.text)
            # what a schema cannot say (a real country, a sender of this network, a valid phone number,
            # an expiry still ahead, a query with a word in it) is a 400 naming the field: valid in shape,
            # refused in substance
            semantic = (
                [positive_data_acceptance]
                if case.path in ("/api/send", "/api/console/compose", "/api/watches", "/api/search")
                else []
            )
            case.validate_response(response, headers=headers, excluded_checks=semantic)

        check()
    print(f"\nschemathesis ({role}): {COUNTS} in {time.monotonic() - started:.1f}s")
    assert COUNTS["5xx"] == 0


class NoDeadLetters:
    """An empty dead-letter queue: the HTTP fuzzing needs no broker."""

    async def list(self, limit: int = 200) -> list[DeadLetterView]:
        return []

    async def reinject(
        self,
        letter_id: str,
        body: bytes | None,
        headers: Mapping[str, str],
        on_reinjected: Callable[[DeadLetterView], Awaitable[None]],
    ) -> DeadLetterView | None:
        return None


# -- the envelope pipeline -----------------------------------------------------------------------


class Recorder:
    """Publisher and Metrics: what was routed and what was dead-lettered, with the reason."""

    def __init__(self) -> None:
        self.routed: list[OutboundCopy] = []
        self.dead: list[tuple[bytes, str]] = []

    async def publish_routed(self, copies: Sequence[OutboundCopy]) -> None:
        self.routed.extend(copies)

    async def publish_dead(self, body: bytes, reason: str, headers: Mapping[str, str]) -> None:
        self.dead.append((body, reason))

    async def publish_events(self, events: Sequence[AuditEvent]) -> None:
        return None

    async def publish_reply(self, to: str, body: bytes, correlation_id: str | None) -> None:
        return None

    def __getattr__(self, name: str) -> Any:  # the Metrics methods: counted nowhere
        return lambda *args, **kwargs: None


_config = load_config(ROOT / "config")
SENDERS = ["ofast", "centre", *[p.id for p in _config.network.posts[:3]], "nobody", ""]
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    TEXT,
    st.lists(TEXT, max_size=3),
    st.dictionaries(TEXT, TEXT, max_size=2),
)
ENVELOPES = st.fixed_dictionaries(
    {
        "message_id": st.one_of(TEXT, st.uuids().map(str)),
        "sender": st.sampled_from(SENDERS),
        "kind": st.sampled_from(["request", "reply", "information", "alert", "other"]),
        "subject": st.one_of(TEXT, st.just("Trafic de cocaïne vers le Maroc")),
        "body": st.one_of(TEXT, st.just("Saisie de 3 kg de cocaïne à Tanger, suspect colombien.")),
        "sent_at": st.one_of(st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat), TEXT),
    },
    optional={
        "countries": st.lists(st.sampled_from(["MA", "ES", "ma", "XX", "FR", "1"]), max_size=3),
        "crime_types": st.lists(st.sampled_from(["drug_trafficking", "cybercrime", "nope"]), max_size=2),
        "handling": st.sampled_from(["no-onward", "centre-only", "restricted", "secret", ""]),
        "priority": st.sampled_from(["urgent", "normal", "low"]),
        "in_reply_to": TEXT,
        "extra": FIELD_VALUES,
    },
)


def _json(value: Any) -> bytes:
    """Standard-library JSON: big integers and NaN included, as a careless sender would write them."""
    return json.dumps(value).encode()


INPUTS = st.one_of(
    ENVELOPES.map(_json),
    st.dictionaries(TEXT, FIELD_VALUES, max_size=4).map(_json),
    st.binary(max_size=200),
    FIELD_VALUES.map(_json),
)


def test_every_input_is_routed_or_dead_lettered_with_a_reason(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(SqlStore.sqlite(str(tmp_path / "pipeline.db")))
    recorder = Recorder()
    service = build_service(
        config=_config,
        classifier=build_classifier(_config),
        store=store,
        publisher=recorder,
        metrics=recorder,
        clock=SystemClock(),
        max_batch=1,
        settings=ServiceSettings(senders=SenderPolicy(development=True)),
    )
    loop.run_until_complete(service.start())
    outcomes = {"routed": 0, "triage": 0, "dead": 0, "duplicate": 0}

    @given(raw=INPUTS)
    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(raw: bytes) -> None:
        routed, dead = len(recorder.routed), len(recorder.dead)
        status = loop.run_until_complete(service.pipeline.handle(raw))
        if status is not None:
            assert len(recorder.routed) > routed, "routed without a copy"
            outcomes[status] += 1
        elif len(recorder.dead) > dead:
            body, reason = recorder.dead[-1]
            assert body == raw
            assert reason and ": " in reason  # "field: problem"
            outcomes["dead"] += 1
        else:  # already handled: the same (sender, message_id) or the same rejected bytes
            outcomes["duplicate"] += 1

    try:
        check()
    finally:
        loop.run_until_complete(service.stop())
        loop.run_until_complete(store.close())
        loop.close()
    print(f"\nenvelope pipeline: {outcomes}")
    assert outcomes["dead"] > 0 and outcomes["routed"] + outcomes["triage"] > 0


# -- hostile shapes: deep nesting and far-out times (issue 12) -------------------------------------

DEPTHS = st.integers(min_value=1, max_value=3000)
OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m))
)
ANY_TIME = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS).map(
    datetime.isoformat
) | st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2024-02-30T00:00:00Z"])


def _deep(depth: int, opener: str) -> str:
    """JSON `depth` levels deep: nested arrays or nested objects."""
    return "[" * depth + "]" * depth if opener == "[" else '{"a":' * depth + "1" + "}" * depth


def test_deep_json_and_far_out_times_over_http_are_4xx(server: Server) -> None:
    base = f"http://127.0.0.1:{server.port}"
    operator = {"Authorization": f"Bearer {server.tokens['operator']}"}

    @given(
        depth=DEPTHS,
        opener=st.sampled_from(["[", "{"]),
        path=st.sampled_from(["/signin", "/api/console/route"]),
    )
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def deep(depth: int, opener: str, path: str) -> None:
        body = '{"token": "x", "deep": ' + _deep(depth, opener) + "}"
        resp = requests.post(
            base + path, data=body, headers={**operator, "Content-Type": "application/json"}, timeout=10
        )
        assert 400 <= resp.status_code < 500, (depth, resp.text)
        if depth >= 32 and resp.status_code != 413:  # with the object holding it: over the limit of 32
            assert resp.json()["error"] == {
                "status": 400,
                "message": "nested more than 32 levels deep",
                "field": "body",
            }

    @given(
        at=ANY_TIME,
        param=st.sampled_from(["since", "until"]),
        path=st.sampled_from(["/api/messages", "/api/stats"]),
    )
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def dates(at: str, param: str, path: str) -> None:
        resp = requests.get(base + path, params={param: at}, headers=operator, timeout=10)
        assert resp.status_code in (200, 400), (at, resp.text)
        if resp.status_code == 400:
            assert resp.json()["error"]["field"] == param

    deep()
    dates()


def test_deep_and_far_out_envelopes_are_dead_lettered_and_audited(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(SqlStore.sqlite(str(tmp_path / "hostile.db")))
    recorder = Recorder()
    service = build_service(
        config=_config,
        classifier=build_classifier(_config),
        store=store,
        publisher=recorder,
        metrics=recorder,
        clock=SystemClock(),
        max_batch=1,
        settings=ServiceSettings(),
    )
    loop.run_until_complete(service.start())
    hostile = st.one_of(
        st.tuples(DEPTHS, st.sampled_from(["[", "{"])).map(
            lambda d: b'{"message_id": "deep", "sender": "ofast", "countries": ' + _deep(*d).encode() + b"}"
        ),
        ANY_TIME.map(lambda at: _json({**_base_envelope(), "sent_at": at})),
    )

    @given(raw=hostile)
    @settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(raw: bytes) -> None:
        dead = len(recorder.dead)
        status = loop.run_until_complete(service.pipeline.handle(raw))
        if status is not None or len(recorder.dead) == dead:
            return  # a sane time routes; a repeated input is a duplicate
        body, reason = recorder.dead[-1]
        assert body == raw and ": " in reason
        audited = loop.run_until_complete(store.audit(event_type="rejected", limit=10_000))
        assert any(e.details.get("problem") == reason.split(": ", 1)[1] for e in audited), reason

    try:
        check()
    finally:
        loop.run_until_complete(service.stop())
        loop.run_until_complete(store.close())
        loop.close()


def _base_envelope() -> dict[str, Any]:
    return {
        "message_id": f"far-{time.monotonic_ns()}",
        "sender": "ofast",
        "kind": "information",
        "subject": "Trafic",
        "body": "Saisie.",
        "sent_at": "",
    }
