"""Reliability (issue 7): nothing lost, nothing doubled, under crashes, broker and database outages,
poison input, graceful shutdown, two instances, and dead-letter replay.

The promise, checked message by message at the end of each test: every message published on
P.inbound is either routed (exactly one `routed`/`triaged` audit record, and a copy in each of its
recipients' queues) or in P.dead with a reason; never both, never neither. Redundant copies (same
deterministic AMQP message_id) are allowed and counted.

Real RabbitMQ and PostgreSQL, real `watchcentre serve` processes. The machine is shared, so outages
are caused for the service alone: its AMQP or PostgreSQL traffic goes through a TCP proxy the test
cuts (see proxy.py and docs/guarantees.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import orjson
import pytest

from tests.integration.harness import ROOT, Broker, envelope, running
from tests.integration.processes import WATCHCENTRE, ServeProcess, async_true, poll_until
from tests.integration.proxy import Proxy
from tests.integration.service_fixtures import CONFIG_DIR, POSTGRES_URL
from watchcentre.adapters.amqp.publisher import UNCONFIRMED_TIMEOUT_S
from watchcentre.adapters.config_files import load_config
from watchcentre.adapters.sql import SqlStore
from watchcentre.bootstrap import recipient_keys
from watchcentre.core.ports import TransientError
from watchcentre.core.routing import copy_id
from watchcentre.samples import sample_envelopes
from watchcentre.security import Verification, verify_audit
from watchcentre.settings import Settings

CRASH_MESSAGES = int(os.environ.get("WATCHCENTRE_CRASH_MESSAGES", "3000"))
"""Test 1's stream. CI: 3,000 (bounded time on a shared machine); the issue's figure, 10,000:
WATCHCENTRE_CRASH_MESSAGES=10000 (see docs/guarantees.md for the figures of such a run)."""
BACKLOG_MESSAGES = int(os.environ.get("WATCHCENTRE_BACKLOG_MESSAGES", "5000"))
"""Test 7's backlog. CI: 5,000; the issue's figure, 100,000: WATCHCENTRE_BACKLOG_MESSAGES=100000
(or `python -m benchmarks memory`)."""
PEAK_RSS_MB = 250.0
ADMIN_URL = "http://guest:guest@127.0.0.1:15672/"  # RabbitMQ's management API (a policy)
KEYS = recipient_keys(load_config(CONFIG_DIR))


def report(line: str) -> None:
    """Figures for the record (shown with pytest -s, and in the CI log)."""
    print(f"[reliability] {line}", file=sys.stderr)


async def dead_count_is(broker: Broker, n: int) -> bool:
    return await broker.count("dead") == n


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    name = f"wc_rel_{secrets.token_hex(4)}"
    yield name
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def procs() -> AsyncIterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for p in started:
        await p.ensure_stopped()
        # shown by pytest only when the test failed: what the service said last
        tail = p.log_path.read_text(errors="replace").splitlines()[-60:] if p.log_path.exists() else []
        print(f"--- last lines of {p.log_path.name} ---", *tail, sep="\n", file=sys.stderr)


def serve(procs: list[ServeProcess], tmp_path: Path, prefix: str, schema: str, **kw: Any) -> ServeProcess:
    p = ServeProcess(
        prefix=prefix,
        database_url=kw.pop("database_url", POSTGRES_URL),
        schema=schema,
        name=kw.pop("name", f"wc-{prefix}-{len(procs)}"),
        log_dir=tmp_path,
        **kw,
    )
    procs.append(p)
    return p


# -- the stream and the promise -----------------------------------------------------------------------


def stream(n: int, tag: str, bad_every: int = 97) -> list[bytes]:
    """Realistic envelopes to many recipients, and now and then one from an unknown sender."""
    out = []
    for i, env in enumerate(sample_envelopes(n, prefix=f"{tag}", seed=11)):
        if i % bad_every == bad_every - 1:
            env = {**env, "sender": "nobody"}
        out.append(orjson.dumps(env))
    return out


async def publish_all(broker: Broker, bodies: Iterable[bytes], batch: int = 500) -> None:
    pending: list[Any] = []
    for body in bodies:
        pending.append(broker.publish(body))
        if len(pending) >= batch:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def settled(schema: str) -> int:
    """How many distinct inputs the audit store has a final record for."""
    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval("SELECT count(DISTINCT (sender, message_id)) FROM messages") or 0)
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


async def wait_settled(schema: str, n: int, within: float) -> float:
    """Wait until `n` inputs are settled; fail if none settles for `within` seconds (a stall).

    A stall, not a total time: the machine is shared and the rate varies with its load; what the
    tests assert is that the service keeps (or starts again) making progress by itself."""
    started = last_progress = time.monotonic()
    best = -1
    while (done := await settled(schema)) < n:
        if done > best:
            best, last_progress = done, time.monotonic()
        elif time.monotonic() - last_progress > within:
            raise AssertionError(f"only {done}/{n} settled, none for {within}s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def inbound_drained(broker: Broker, within: float = 60.0) -> None:
    """Redeliveries of inputs already settled (their ack was lost with a connection) come back to
    P.inbound; the service acks them as duplicates. Wait for that before stopping it."""
    await poll_until(lambda: inbound_is_empty(broker), within, "P.inbound drained")


async def inbound_is_empty(broker: Broker) -> bool:
    return await broker.count("inbound") == 0


@dataclass
class Verdict:
    routed: int = 0
    dead: int = 0
    copies: int = 0
    redundant_copies: int = 0
    redundant_dead: int = 0
    problems: list[str] = field(default_factory=list)


async def check_promise(
    broker: Broker, schema: str, bodies: list[bytes], taken: dict[str, list[Any]] | None = None
) -> Verdict:
    """Every input routed exactly once with its copies delivered, or dead-lettered with a reason."""
    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
    try:
        audit = Counter(
            (r["sender"], r["message_id"])
            for r in await conn.fetch(
                "SELECT sender, message_id FROM audit WHERE type IN ('routed', 'triaged')"
            )
        )
        recipients = {
            (r["sender"], r["message_id"]): orjson.loads(r["recipients"])
            for r in await conn.fetch(
                "SELECT sender, message_id, recipients FROM messages WHERE status <> 'rejected'"
            )
        }
    finally:
        await conn.close()
    dead: dict[bytes, list[str | None]] = {}
    for m in await broker.drain("dead"):
        reason = (m.headers or {}).get("x-watchcentre-error")
        dead.setdefault(m.body, []).append(str(reason) if reason else None)
    delivered: dict[tuple[str, str], set[str]] = {}
    amqp_ids: Counter[tuple[str, str | None]] = Counter()  # a recipient deduplicates in its own queue
    v = Verdict()
    for key in KEYS:
        for m in [*(taken or {}).get(key, []), *await broker.drain(key)]:
            copy = orjson.loads(m.body)
            delivered.setdefault((copy["sender"], copy["message_id"]), set()).add(key)
            amqp_ids[key, m.message_id] += 1
            v.copies += 1
    v.redundant_copies = sum(c - 1 for c in amqp_ids.values())
    v.redundant_dead = sum(len(r) - 1 for r in dead.values())
    assert await broker.count("inbound") == 0, "inputs left in P.inbound"
    for raw in bodies:
        env = orjson.loads(raw)
        key = (env["sender"], env["message_id"])
        routings = audit.get(key, 0)
        in_dead = raw in dead
        if routings > 1:
            v.problems.append(f"{key}: routed {routings} times")
        if routings and in_dead:
            v.problems.append(f"{key}: routed AND dead-lettered")
        if not routings and not in_dead:
            v.problems.append(f"{key}: neither routed nor dead-lettered (lost)")
        if in_dead and not all(dead[raw]):
            v.problems.append(f"{key}: dead-lettered without a reason")
        if routings:
            v.routed += 1
            missing = set(recipients.get(key, [])) - delivered.get(key, set())
            if missing or key not in recipients:
                v.problems.append(f"{key}: audited as routed but no copy in {sorted(missing)}")
        if in_dead:
            v.dead += 1
    assert not v.problems, v.problems[:20]
    return v


# -- 1. crashes ---------------------------------------------------------------------------------------


async def test_sigkill_three_times_mid_stream_loses_nothing_and_doubles_nothing(
    broker: Broker, amqp_prefix: str, schema: str, procs: list[ServeProcess], tmp_path: Path
) -> None:
    n = CRASH_MESSAGES
    seed = int(os.environ.get("WATCHCENTRE_CRASH_SEED", secrets.randbelow(10**6)))
    rng = random.Random(seed)
    bodies = stream(n, f"crash-{amqp_prefix}")
    await broker.declare_topology()
    started = time.monotonic()
    feeding = asyncio.create_task(publish_all(broker, bodies))  # the stream flows while we kill
    proc = serve(procs, tmp_path, amqp_prefix, schema)
    await proc.start()
    kills = []
    for lo, hi in ((0.10, 0.30), (0.40, 0.60), (0.70, 0.85)):
        at = int(n * rng.uniform(lo, hi))
        await wait_settled(schema, at, within=120)
        await asyncio.sleep(rng.uniform(0, 0.3))  # land anywhere in a batch, not just after a commit
        kills.append(await settled(schema))
        await proc.kill()
        await proc.start()
    await feeding
    await wait_settled(schema, n, within=180)
    await inbound_drained(broker)
    code, _ = await proc.terminate()
    assert code == 0
    elapsed = time.monotonic() - started
    v = await check_promise(broker, schema, bodies)
    report(
        f"crash: {n} messages, SIGKILL x{len(kills)} at settled={kills} (seed {seed}); "
        f"{v.routed} routed, {v.dead} dead-lettered; redundant copies {v.redundant_copies} "
        f"(of {v.copies}), redundant dead letters {v.redundant_dead}; {elapsed:.1f}s"
    )
    assert v.routed + v.dead == n


# -- 2. broker outage ---------------------------------------------------------------------------------


async def test_broker_outage_the_service_reconnects_and_resumes_by_itself(
    broker: Broker, amqp_prefix: str, schema: str, procs: list[ServeProcess], tmp_path: Path
) -> None:
    n = 1200
    async with streaming_through_a_proxy(broker, amqp_prefix, schema, procs, tmp_path, n) as (
        proc,
        proxy,
        bodies,
        feeding,
    ):
        proxy.cut()  # the broker is gone, as the service sees it
        detected = await proc.wait_health(False, within=15, check="broker")
        await poll_until(async_true(lambda: proxy.refused >= 2), 30, "reconnection attempts refused")
        # meanwhile a recipient's queue disappears (the service cannot publish now: nothing is lost
        # in between); the service must declare it again, and bind it, when it reconnects
        taken = {"post.rabat": await broker.drain("post.rabat")}
        assert broker.channel is not None
        await broker.channel.queue_delete(f"{amqp_prefix}.post.rabat")
        during = await settled(schema)
        proxy.restore()
        back = await proc.wait_health(True, within=30)
        await poll_until(lambda: queue_exists(f"{amqp_prefix}.post.rabat"), 30, "post.rabat declared again")
        t0 = time.monotonic()
        await wait_settled(schema, during + 1, within=30)  # consuming again
        resumed = time.monotonic() - t0 + back

        # a second, server-side disruption: RabbitMQ closes the service's own connection
        closed = close_own_connections(proc.name)
        await feeding
        await wait_settled(schema, n, within=120)
        await proc.wait_health(True, within=30)
        await inbound_drained(broker)
        code, _ = await proc.terminate()
        assert code == 0
    v = await check_promise(broker, schema, bodies, taken)
    report(
        f"broker outage: /health not ready after {detected:.2f}s; ready {back:.2f}s after restore, "
        f"consuming {resumed:.2f}s after restore; closed own connections by rabbitmqctl: {closed}; "
        f"{v.routed} routed, {v.dead} dead; redundant copies {v.redundant_copies}; post.rabat deleted during "
        f"the outage ({len(taken['post.rabat'])} copies taken out first) and declared again by the service"
    )
    # aio-pika logs the URL on every reconnection attempt: the password never reaches the log
    log = proc.log_path.read_text()
    assert "amqp://guest:***@" in log and ":guest@" not in log
    assert v.dead == sum(1 for b in bodies if orjson.loads(b)["sender"] == "nobody")


async def test_an_instance_stops_within_its_deadline_while_the_broker_is_out(
    broker: Broker, amqp_prefix: str, schema: str, procs: list[ServeProcess], tmp_path: Path
) -> None:
    # an operator stops (or a supervisor restarts) an instance during a broker outage: it must stop
    # within its shutdown deadline, not wait for a broker that may not come back
    deadline = {"WATCHCENTRE_SHUTDOWN_DEADLINE_S": "3"}
    async with streaming_through_a_proxy(broker, amqp_prefix, schema, procs, tmp_path, 400, deadline) as (
        proc,
        proxy,
        _,
        feeding,
    ):
        proxy.cut()  # in the middle of the stream: handlers in flight, the broker gone
        await proc.wait_health(False, within=15, check="broker")
        code, took_s = await proc.terminate(within=60)
        await feeding
    report(f"stopped during a broker outage in {took_s:.2f}s (deadline 3 s), exit code {code}")
    assert code == 0
    # the deadline for the handlers, the last events' wait for their channel, then an orderly stop
    assert took_s < 3 + UNCONFIRMED_TIMEOUT_S + 5


@contextlib.asynccontextmanager
async def streaming_through_a_proxy(
    broker: Broker,
    prefix: str,
    schema: str,
    procs: list[ServeProcess],
    tmp_path: Path,
    n: int,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[tuple[ServeProcess, Proxy, list[bytes], asyncio.Task[None]]]:
    """An instance reaching the broker through a proxy the test can cut, `n` inputs being published,
    a quarter of them already settled."""
    bodies = stream(n, f"proxy-{prefix}")
    await broker.declare_topology()
    proxy = await Proxy("127.0.0.1", 5672).start()
    try:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        proc = serve(procs, tmp_path, prefix, schema, amqp_url=url, extra_env=extra_env)
        await proc.start()
        feeding = asyncio.create_task(publish_all(broker, bodies))
        await wait_settled(schema, n // 4, within=60)
        yield proc, proxy, bodies, feeding
    finally:
        await proxy.close()


async def queue_exists(name: str) -> bool:
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    try:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
        return True
    finally:
        await connection.close()


def close_own_connections(name: str) -> int:
    """`rabbitmqctl close_connection` for the connections named `name` only (shared broker)."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    pids = [
        line.split("\t", 1)[0]
        for line in out.splitlines()
        if f'"connection_name","{name}"' in line or f'<<"connection_name">>,longstr,<<"{name}">>' in line
    ]
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "reliability test"], timeout=30, check=True
        )
    return len(pids)


# -- 3. database outage -------------------------------------------------------------------------------


async def test_database_outage_pauses_intake_and_resumes_without_burning_delivery_counts(
    broker: Broker, amqp_prefix: str, schema: str, procs: list[ServeProcess], tmp_path: Path
) -> None:
    n = 1200
    bodies = stream(n, f"pg-{amqp_prefix}")
    await broker.declare_topology()
    proxy = await Proxy("127.0.0.1", 5432).start()
    try:
        proc = serve(
            procs,
            tmp_path,
            amqp_prefix,
            schema,
            database_url=f"postgresql://postgres@127.0.0.1:{proxy.port}/test",
        )
        await proc.start()
        tail = 200  # published after the second disruption, so there is work left to do after it
        feeding = asyncio.create_task(publish_all(broker, bodies[:-tail]))
        await wait_settled(schema, n // 4, within=60)

        proxy.cut()  # PostgreSQL is gone, as the service sees it
        detected = await proc.wait_health(False, within=15, check="database")
        await poll_until(async_true(lambda: proxy.refused >= 5), 30, "probes refused")
        status, body = await proc.health()
        assert status == 503 and body["checks"] == {"broker": True, "database": False}
        paused = len(proc.log_lines("intake_paused"))
        during = await settled(schema)
        proxy.restore()
        t0 = time.monotonic()
        back = await proc.wait_health(True, within=30)
        await wait_settled(schema, during + 1, within=30)  # consuming again
        resumed = time.monotonic() - t0

        # a second, server-side disruption, as a PostgreSQL restart does to its sessions: the server
        # terminates the service's own backends (found by the proxy's ports; the machine is shared)
        await feeding
        terminated = await terminate_own_backends(proxy.upstream_ports())
        await publish_all(broker, bodies[-tail:])
        await wait_settled(schema, n, within=120)
        await proc.wait_health(True, within=30)
        await inbound_drained(broker)
        code, _ = await proc.terminate()
        assert code == 0
    finally:
        await proxy.close()
    assert paused >= 1
    v = await check_promise(broker, schema, bodies)
    report(
        f"database outage: /health not ready after {detected:.2f}s, ready {back:.2f}s after restore, "
        f"routing again {resumed:.2f}s after restore; "
        f"intake paused {paused}x; {terminated} own backends terminated by the server afterwards; "
        f"{v.routed} routed, {v.dead} dead (only the bad inputs)"
    )
    assert terminated >= 1
    # no good message was dead-lettered: neither as poison nor by the broker's delivery limit
    assert v.dead == sum(1 for b in bodies if orjson.loads(b)["sender"] == "nobody")


async def terminate_own_backends(client_ports: list[int]) -> int:
    """pg_terminate_backend for the sessions coming from these local ports only (shared server)."""
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE client_port = ANY($1::int[]) AND pid <> pg_backend_pid()",
            client_ports,
        )
    finally:
        await conn.close()
    return sum(1 for r in rows if r[0])


def in_process(amqp_prefix: str, schema: str) -> Settings:
    """An instance run in the test's own process, on the test's PostgreSQL schema."""
    return Settings(
        amqp_prefix=amqp_prefix,
        database_url=POSTGRES_URL,  # type: ignore[arg-type]
        database_schema=schema,
        config_dir=str(CONFIG_DIR),
        http_port=0,
        shutdown_deadline_s=5.0,
    )


# -- 4. poison input, and transient failures that are not poison ----------------------------------------


async def test_poison_is_dead_lettered_with_its_reason_while_the_stream_flows(
    broker: Broker, amqp_prefix: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = in_process(amqp_prefix, schema)
    good = [envelope(message_id=f"good-{i:04d}", countries=["MA"]) for i in range(300)]
    poison = envelope(message_id="poison", subject="POISON", countries=["MA"])
    flaky = envelope(message_id="flaky", countries=["DZ"])
    async with running(settings) as inst:
        pipeline, store = inst.runtime.service.pipeline, inst.runtime.store
        real_classify = pipeline.classifier.classify
        real_seen_many = store.seen_many
        outages = {"left": 8}  # more transient failures than max_attempts (5)

        def classify(subject: str, *args: Any, **kwargs: Any) -> Any:
            if subject == "POISON":
                raise RuntimeError("rule engine exploded")
            return real_classify(subject, *args, **kwargs)

        async def seen_many(keys: Sequence[tuple[str, str]]) -> list[bool]:
            # The duplicate look-up is batched: an outage fails the whole batch it hits.
            if any(message_id == "flaky" for _, message_id in keys) and outages["left"] > 0:
                outages["left"] -= 1
                raise TransientError("database: connection refused")
            return await real_seen_many(keys)

        monkeypatch.setattr(pipeline.classifier, "classify", classify)
        monkeypatch.setattr(store, "seen_many", seen_many)
        await broker.publish(flaky)
        for i, env in enumerate(good):
            await broker.publish(env)
            if i == 100:
                await broker.publish(poison)
        await wait_settled(schema, len(good) + 2, within=60)
        intake = inst.runtime.guard
        assert intake.pauses >= 1
    dead = await broker.drain("dead")
    assert [orjson.loads(m.body)["message_id"] for m in dead] == ["poison"]
    reason = str(dead[0].headers["x-watchcentre-error"])
    assert reason == "handler: handler failed 5 times: RuntimeError: rule engine exploded"
    assert outages["left"] == 0
    assert {orjson.loads(m.body)["message_id"] for m in await broker.drain("post.algiers")} == {"flaky"}
    assert len(await broker.drain("post.rabat")) == len(good)
    assert [e["message_id"] for e in broker.events_of("rejected")] == ["poison"]
    report(
        f"poison: dead-lettered after 5 failures; flaky survived 8 transient failures; {intake.pauses} pauses"
    )


async def test_an_input_whose_publishes_keep_being_nacked_is_dead_lettered_with_its_record_at_the_limit(
    broker: Broker, amqp_prefix: str, schema: str
) -> None:
    """One recipient queue refuses every publish (a policy: max-length 0, overflow reject-publish;
    the broker nacks each publish on the confirm channel, as it did on a channel opened during a
    leader election in test_cluster.py). That is not the input's fault, so it is never counted as a
    failure, and the broker's delivery limit (20 returns) is reached: at the last delivery the
    service dead-letters the input itself, with its reason and its `rejected` record, instead of
    handing it back for the broker to dead-letter unrecorded. The other inputs are routed."""
    settings = in_process(amqp_prefix, schema)
    policy = f"{ADMIN_URL}api/policies/%2F/{amqp_prefix}-refuse"
    refused = envelope(message_id="refused", countries=["DZ"])  # post.algiers alone
    good = [envelope(message_id=f"good-{i:03d}", countries=["MA"]) for i in range(50)]
    async with running(settings) as inst, aiohttp.ClientSession() as admin:
        rule = {
            "pattern": f"^{re.escape(amqp_prefix)}\\.post\\.algiers$",
            "definition": {"max-length": 0, "overflow": "reject-publish"},
            "apply-to": "queues",
            "priority": 100,
        }
        async with admin.put(policy, json=rule) as answer:
            assert answer.status in (201, 204), await answer.text()
        try:
            await refusing(broker, "post.algiers")
            await broker.publish(refused)
            for env in good:
                await broker.publish(env)
            await wait_settled(schema, len(good) + 1, within=60)
            pauses = inst.runtime.guard.pauses
        finally:
            async with admin.delete(policy) as answer:
                assert answer.status == 204
    [dead] = await broker.drain("dead")
    assert orjson.loads(dead.body)["message_id"] == "refused"
    reason = str(dead.headers["x-watchcentre-error"])
    assert reason.startswith("delivery: delivered 21 times, the broker's limit, without being handled"), (
        reason
    )
    assert "x-death" not in dead.headers  # dead-lettered by the service, not by the broker
    assert [e["message_id"] for e in broker.events_of("rejected")] == ["refused"]
    assert all(m.body == b"filler" for m in await broker.drain("post.algiers"))
    # inputs whose publish was on the channel a nack closed were published again, under the same id
    copies = await broker.drain("post.rabat")
    assert {m.message_id for m in copies} == {copy_id("ofast", e["message_id"]) for e in good}
    report(
        f"nacked input: dead-lettered with its record at delivery 21; {pauses} intake pauses;"
        f" {len(copies)} copies of {len(good)} inputs (same ids)"
    )


async def refusing(broker: Broker, suffix: str) -> None:
    """Fill the queue up to its policy's max-length and wait until the broker nacks a publish to it
    (a policy reaches the queue a moment after it is set; the first message over the limit is taken)."""
    assert broker.channel is not None
    for _ in range(50):
        try:
            await broker.channel.default_exchange.publish(
                aio_pika.Message(b"filler"), routing_key=f"{broker.prefix}.{suffix}"
            )
        except aio_pika.exceptions.DeliveryError:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{suffix} still takes publishes")


# -- 5. graceful shutdown -------------------------------------------------------------------------------


async def test_sigterm_stops_consuming_finishes_in_flight_and_exits_within_the_deadline(
    broker: Broker, amqp_prefix: str, schema: str, procs: list[ServeProcess], tmp_path: Path
) -> None:
    n = 1000
    bodies = stream(n, f"term-{amqp_prefix}")
    await broker.declare_topology()
    await publish_all(broker, bodies)
    proc = serve(procs, tmp_path, amqp_prefix, schema)
    await proc.start()
    await wait_settled(schema, n // 4, within=60)
    code, took = await proc.terminate(within=20)
    assert code == 0
    assert took < 10 + 2  # WATCHCENTRE_SHUTDOWN_DEADLINE (10 s) and a margin
    stopped = proc.log_lines("stopped_consuming")
    assert len(stopped) == 1 and orjson.loads(stopped[0])["unfinished"] == 0
    at_stop = await settled(schema)
    assert at_stop < n, "stopped mid-stream"
    await proc.start()
    await wait_settled(schema, n, within=120)
    await inbound_drained(broker)
    await proc.terminate()
    v = await check_promise(broker, schema, bodies)
    report(
        f"SIGTERM: exit 0 in {took:.2f}s at {at_stop}/{n} settled, 0 unfinished; "
        f"redundant copies after restart {v.redundant_copies}"
    )
    assert v.redundant_copies == 0  # a clean stop leaves nothing half done


async def test_sigusr1_says_where_a_running_instance_waits_and_it_goes_on(
    broker: Broker, amqp_prefix: str, schema: str, procs: list[ServeProcess], tmp_path: Path
) -> None:
    # what an operator asks of an instance gone silent (docs/operations.md): asked while it routes
    n = 400
    bodies = stream(n, f"usr1-{amqp_prefix}")
    await broker.declare_topology()
    proc = serve(procs, tmp_path, amqp_prefix, schema)
    await proc.start()
    await publish_all(broker, bodies[: n // 2])
    os.kill(proc.pid, signal.SIGUSR1)
    await poll_until(async_true(lambda: bool(proc.log_lines("consumer_state"))), 10, "the dump")
    waits = {
        orjson.loads(line)["task"]: orjson.loads(line)["awaits"] for line in proc.log_lines("task_waits")
    }
    assert waits["batcher-commit"][0].startswith("watchcentre/batching.py:")
    [state] = [orjson.loads(line) for line in proc.log_lines("consumer_state")]
    assert state["tag"] and state["paused"] is False and state["channel_closed"] is False
    await publish_all(broker, bodies[n // 2 :])  # and it goes on routing
    await wait_settled(schema, n, within=60)
    code, _ = await proc.terminate()
    assert code == 0


# -- 6. two instances -------------------------------------------------------------------------------------


async def test_two_instances_share_the_queue_and_the_database(
    broker: Broker, amqp_prefix: str, schema: str, procs: list[ServeProcess], tmp_path: Path
) -> None:
    n = 1500
    bodies = stream(n, f"two-{amqp_prefix}")
    # every input twice: the two instances race on the same (sender, message_id)
    await broker.declare_topology()
    a, b = serve(procs, tmp_path, amqp_prefix, schema), serve(procs, tmp_path, amqp_prefix, schema)
    await asyncio.gather(a.start(), b.start())
    await publish_all(broker, [x for body in bodies for x in (body, body)])
    took = await wait_settled(schema, n, within=120)
    await inbound_drained(broker)  # the second copy of every input, acked as a duplicate
    await b.wait_health(True)
    # the audit commit comes before the ack and the metric: let the last in-flight inputs finish
    audited = await routed_in_audit(schema)

    async def counted() -> bool:
        return sum([await p.metric("watchcentre_messages_routed_total") for p in (a, b)]) >= audited

    await poll_until(counted, 30, f"both instances' routed counters add up to the {audited} audited")
    shares = [await p.metric("watchcentre_messages_routed_total") for p in (a, b)]
    rss = [p.peak_rss_mb() for p in (a, b)]
    for p in (a, b):
        assert (await p.terminate())[0] == 0
    v = await check_promise(broker, schema, bodies)
    report(
        f"two instances: {n} messages (each published twice) in {took:.1f}s; routed by a/b = "
        f"{shares[0]:.0f}/{shares[1]:.0f}; peak RSS {rss[0]:.0f}/{rss[1]:.0f} MB; "
        f"redundant copies {v.redundant_copies}, redundant dead letters {v.redundant_dead}"
    )
    assert sum(shares) == v.routed  # each input routed once, by one instance or the other
    assert min(shares) >= 0.15 * sum(shares), shares


async def routed_in_audit(schema: str) -> int:
    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval("SELECT count(*) FROM audit WHERE type IN ('routed', 'triaged')") or 0)
    finally:
        await conn.close()


async def verify_audit_at(schema: str) -> Verification:
    store = await SqlStore.postgres(POSTGRES_URL, schema=schema)
    try:
        return await verify_audit(store)
    finally:
        await store.close()


# -- 7. memory with a backlog -------------------------------------------------------------------------


def rss_mb(pid: int, key: str = "VmRSS") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


async def test_memory_is_bounded_by_the_prefetch_not_by_the_backlog(
    broker: Broker, amqp_prefix: str, schema: str, procs: list[ServeProcess], tmp_path: Path
) -> None:
    n = BACKLOG_MESSAGES
    bodies = stream(n, f"mem-{amqp_prefix}", bad_every=10**9)
    await broker.declare_topology()
    await publish_all(broker, bodies, batch=1000)
    assert await broker.count("inbound") == n  # the whole backlog waits before the service starts
    del bodies
    proc = serve(procs, tmp_path, amqp_prefix, schema, extra_env={"WATCHCENTRE_PREFETCH": "200"})
    started = time.monotonic()
    await proc.start()
    samples: list[tuple[int, float]] = []  # (settled, RSS MB), every 250 ms while draining
    last_progress, best = time.monotonic(), -1
    while (done := await settled(schema)) < n:
        if done > best:
            best, last_progress = done, time.monotonic()
        elif time.monotonic() - last_progress > 60:
            raise AssertionError(f"only {done}/{n} drained, none for 60 s")
        if (rss := rss_mb(proc.pid)) is not None:
            samples.append((done, rss))
        await asyncio.sleep(0.25)
    took = time.monotonic() - started
    peak = rss_mb(proc.pid, "VmHWM") or 0.0
    code, _ = await proc.terminate()
    assert code == 0
    assert await broker.count("inbound") == 0

    def at(fraction: float) -> float:
        return next(r for d, r in samples if d >= fraction * n)

    at10, at50, at90 = at(0.10), at(0.50), at(0.90)
    report(
        f"memory: backlog {n} drained in {took:.1f}s ({n / took:.0f}/s), prefetch 200; peak RSS {peak:.0f} MB; "
        f"RSS {at10:.0f} / {at50:.0f} / {at90:.0f} MB at 10 / 50 / 90 % drained"
    )
    assert peak <= PEAK_RSS_MB
    # flat: handling more messages does not grow the process (nothing kept per message)
    assert at90 <= at10 * 1.10 + 5, (at10, at90)


# -- 8. dead-letter replay ---------------------------------------------------------------------------------


def cli(prefix: str, schema: str, *args: str) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        "WATCHCENTRE_AMQP_PREFIX": prefix,
        "WATCHCENTRE_LOG_FORMAT": "json",
        "WATCHCENTRE_DATABASE_URL": POSTGRES_URL,
        "WATCHCENTRE_DATABASE_SCHEMA": schema,
    }
    out = subprocess.run(
        [*WATCHCENTRE, "dead", *args], capture_output=True, env=env, timeout=60, check=True, cwd=str(ROOT)
    )
    return [orjson.loads(line) for line in out.stdout.splitlines() if line.strip()]


async def test_dead_letters_are_listed_and_replayed_after_a_fix_without_duplicates(
    broker: Broker, amqp_prefix: str, schema: str, procs: list[ServeProcess], tmp_path: Path
) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    fixable = [envelope(message_id=f"newunit-{i}", sender="newunit", countries=["MA"]) for i in range(3)]
    broken = envelope(message_id="broken", kind="gossip")
    fine = envelope(message_id="fine", countries=["MA"])
    proc = serve(procs, tmp_path, amqp_prefix, schema, config_dir=config)
    await proc.start()
    for env in (*fixable, broken, fine):
        await broker.publish(env)
    await wait_settled(schema, 5, within=30)
    await proc.terminate()

    listed = await asyncio.to_thread(cli, amqp_prefix, schema, "list")
    assert sorted(d["message_id"] for d in listed) == ["broken", "newunit-0", "newunit-1", "newunit-2"]
    assert all(d["reason"] for d in listed)
    assert await asyncio.to_thread(cli, amqp_prefix, schema, "list") == listed  # listing takes nothing away

    # the fix: the network learns the new unit; the service restarts with it
    network = config / "network.yaml"
    network.write_text(
        network.read_text().replace(
            "units:\n",
            'units:\n  - id: newunit\n    name: "New unit"\n    crime_areas: [drug_trafficking]\n',
            1,
        )
    )
    await proc.start()
    one = next(d for d in listed if d["message_id"] == "newunit-0")
    replayed = await asyncio.to_thread(
        cli, amqp_prefix, schema, "replay", "--by", "reliability-test", one["id"]
    )
    assert [e["message_id"] for e in replayed] == ["newunit-0"]
    assert replayed[0]["type"] == "replayed" and replayed[0]["details"]["reason"] == one["reason"]
    replayed += await asyncio.to_thread(
        cli, amqp_prefix, schema, "replay", "--by", "reliability-test", "--all"
    )
    await broker.wait_events(lambda ev: len({e["message_id"] for e in ev if e["type"] == "routed"}) >= 4, 30)
    await broker.wait_events(lambda ev: len([e for e in ev if e["type"] == "replayed"]) >= 4, 30)
    # `broken` was replayed too and is still broken: dead-lettered again, not lost, recorded once
    await poll_until(lambda: dead_count_is(broker, 1), 30, "broken dead-lettered again")
    replayed += await asyncio.to_thread(
        cli, amqp_prefix, schema, "replay", "--by", "reliability-test", "--all"
    )  # replay once more
    await poll_until(lambda: dead_count_is(broker, 1), 30, "broken dead-lettered again")
    await proc.terminate()
    after = await asyncio.to_thread(cli, amqp_prefix, schema, "list")
    assert [d["message_id"] for d in after] == ["broken"]
    assert after[0]["reason"] == next(d["reason"] for d in listed if d["message_id"] == "broken")

    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch("SELECT message_id, type, actor, details FROM audit ORDER BY seq")
    finally:
        await conn.close()
    got = Counter((r["message_id"], r["type"]) for r in rows)
    for i in range(3):
        assert got[(f"newunit-{i}", "rejected")] == 1 and got[(f"newunit-{i}", "routed")] == 1
    assert got[("broken", "rejected")] == 1 and got[("fine", "routed")] == 1
    # every replay is in the audit, by whom and from which dead letter, before the routing it led to
    audited = [r for r in rows if r["type"] == "replayed"]
    assert len(audited) == len(replayed) == 5  # newunit-0; then newunit-1, -2 and broken; then broken again
    assert Counter(r["message_id"] for r in audited) == Counter(
        {"newunit-0": 1, "newunit-1": 1, "newunit-2": 1, "broken": 2}
    )
    assert {r["actor"] for r in audited} == {"operator:reliability-test"}
    assert {orjson.loads(r["details"])["dead_letter"] for r in audited} == {d["id"] for d in listed}
    order = [(r["message_id"], r["type"]) for r in rows]
    for i in range(3):
        assert order.index((f"newunit-{i}", "replayed")) < order.index((f"newunit-{i}", "routed"))
    assert (await verify_audit_at(schema)).ok  # the replays are chained like every other record
    copies = await broker.drain("unit.newunit") + await broker.drain("post.rabat")
    assert Counter(orjson.loads(m.body)["message_id"] for m in copies) == Counter(
        {"newunit-0": 1, "newunit-1": 1, "newunit-2": 1, "fine": 1}
    )
    await broker.drain("dead")
    assert broker.channel is not None
    await broker.channel.queue_delete(f"{amqp_prefix}.unit.newunit")
    report(f"dead replay: {len(replayed)} replays, 3 fixed and routed once, 1 still broken back in P.dead")


async def test_no_replay_without_its_audit_record(broker: Broker, amqp_prefix: str) -> None:
    await broker.declare_topology()
    assert broker.channel is not None
    await broker.channel.default_exchange.publish(
        aio_pika.Message(b'{"not": "an envelope"}', headers={"x-watchcentre-error": "envelope: bad"}),
        routing_key=f"{amqp_prefix}.dead",
    )
    await poll_until(lambda: dead_count_is(broker, 1), 10, "a dead letter waits")
    env = {
        **os.environ,
        "WATCHCENTRE_AMQP_PREFIX": amqp_prefix,
        "WATCHCENTRE_LOG_FORMAT": "json",
        "WATCHCENTRE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test",
    }
    out = await asyncio.to_thread(
        subprocess.run,
        [*WATCHCENTRE, "dead", "replay", "--all"],
        capture_output=True,
        env=env,
        timeout=60,
        cwd=str(ROOT),
    )
    assert out.returncode == 1
    assert b"audit store is unreachable" in out.stderr and out.stdout == b""
    assert await broker.count("dead") == 1 and await broker.count("inbound") == 0  # nothing moved
