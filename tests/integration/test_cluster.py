"""A real three-node RabbitMQ cluster (issue 16): a backlog drains through it, and inputs keep
arriving, while the node that leads `P.inbound` (and holds the service's connection) is stopped;
nothing is lost, nothing is routed twice, and routing resumes within 10 s.

The cluster is private to the test (tests/integration/cluster.py: its own node names, ports and
directories), so a node can really be stopped on this shared machine. `pytest -s` prints the
figures (`[cluster]` lines).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from tests.integration.cluster import Cluster, rabbitmq_script
from tests.integration.harness import Broker
from tests.integration.processes import ServeProcess, poll_until
from tests.integration.test_reliability import (
    KEYS,
    async_true,
    check_promise,
    inbound_is_empty,
    publish_all,
    serve,
    settled,
    stream,
    wait_settled,
)
from tests.integration.test_reliability import procs as procs  # fixtures, used by name
from tests.integration.test_reliability import schema as schema

BACKLOG = int(os.environ.get("WATCHCENTRE_CLUSTER_MESSAGES", "3000"))
ARRIVING_PER_S = 100
"""Inputs keep arriving at this rate from a third of the backlog settled until routing has resumed
after the node's stop, as they would in production: a backlog
alone can drain while the node takes its time to stop (seconds under load), and then nothing would
be left to show whether routing resumed."""
ARRIVING_MAX = 30_000
PREFETCH = 50
"""Small, so that "routing resumed" can be told from in-flight work finishing: past the count settled
when the node was gone, more than PREFETCH new settlements need at least one new delivery."""
RESUME_WITHIN_S = 10.0

pytestmark = pytest.mark.skipif(
    rabbitmq_script("rabbitmq-server") is None, reason="rabbitmq-server not installed"
)


def report(line: str) -> None:
    print(f"[cluster] {line}", file=sys.stderr)


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # a short path: Erlang and the node's own files live under it
    c = Cluster(Path(f"/tmp/wc-cluster-{secrets.token_hex(4)}"))
    try:
        started = time.monotonic()
        c.start()
        report(f"3 nodes started and clustered in {time.monotonic() - started:.1f}s")
        yield c
    finally:
        c.close()  # every node stopped (killed if need be), the directory removed


@pytest.fixture
async def on_cluster(cluster: Cluster) -> AsyncIterator[tuple[Cluster, str, Broker]]:
    prefix = f"wcc-{secrets.token_hex(4)}"
    declarer = await Broker(prefix, cluster.nodes[0].url).open()
    try:
        await declarer.declare_topology()  # P.inbound is led by the node it is declared through
    finally:
        assert declarer.connection is not None
        await declarer.connection.close()
    leader = cluster.leader_of(f"{prefix}.inbound")
    # the test speaks to a node that stays up; the service starts on the leader
    other = next(n for n in cluster.nodes if n is not leader)
    broker = await Broker(prefix, other.url).open()
    try:
        yield cluster, prefix, broker
    finally:
        assert broker.connection is not None
        await broker.connection.close()


async def test_a_backlog_drains_through_a_cluster_while_the_inbound_leader_node_is_stopped(
    on_cluster: tuple[Cluster, str, Broker],
    schema: str,
    procs: list[ServeProcess],
    tmp_path: Path,
) -> None:
    cluster, prefix, broker = on_cluster
    n = BACKLOG
    pool = stream(n + ARRIVING_MAX, f"cluster-{prefix}")
    bodies = pool[:n]  # every input published, the backlog then those arriving
    await publish_all(broker, bodies)
    leader = cluster.leader_of(f"{prefix}.inbound")
    addresses = [leader.url, *(node.url for node in cluster.nodes if node is not leader)]
    proc = serve(
        procs,
        tmp_path,
        prefix,
        schema,
        amqp_url=",".join(addresses),
        extra_env={"WATCHCENTRE_PREFETCH": str(PREFETCH)},
    )
    started = time.monotonic()
    await proc.start()
    await wait_settled(schema, n // 3, within=60)
    enough = asyncio.Event()
    arriving = asyncio.create_task(keep_arriving(broker, iter(pool[n:]), bodies, enough))

    # the settled count, sampled all along the stop: the longest time without a new settlement is
    # what an operator would see of the failover
    samples: list[tuple[float, int]] = []

    async def sample() -> None:
        while True:
            samples.append((time.monotonic(), await settled(schema)))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    await poll_until(async_true(lambda: len(samples) >= 2), 10, "sampling")
    stop_at = time.monotonic()
    before = await settled(schema)
    await asyncio.to_thread(cluster.stop, leader)  # returns once the node's VM has exited
    gone_at = time.monotonic()
    gone = await settled(schema)

    async def routing_again() -> bool:
        return await settled(schema) > gone + PREFETCH

    try:
        await poll_until(routing_again, 60, "routing resumed after the leader node stopped")
    except AssertionError:
        arriving.cancel()
        await report_stall(cluster, proc)
        raise
    finally:
        enough.set()  # the inputs after this are not needed to see the resumption
    resumed_at = time.monotonic()
    resumed_s = resumed_at - gone_at
    await poll_until(async_true(lambda: samples[-1][0] > resumed_at), 10, "a sample after the resumption")
    sampler.cancel()
    await asyncio.wait_for(arriving, 60)
    n = len(bodies)
    stopped_s = gone_at - stop_at
    progress = [t for (_, prev), (t, c) in itertools.pairwise(samples) if c > prev]
    marks = [stop_at, *(t for t in progress if t > stop_at), samples[-1][0]]
    stall_s = max(b - a for a, b in itertools.pairwise(marks))
    new_leader = await asyncio.to_thread(cluster.leader_of, f"{prefix}.inbound")

    try:
        await wait_settled(schema, n, within=60)
    except AssertionError:
        await report_stall(cluster, proc)
        raise
    await poll_until(lambda: inbound_is_empty(broker), 60, "P.inbound drained")
    code, _ = await proc.terminate()
    assert code == 0
    drained_s = time.monotonic() - started
    copies = await recipient_copies(broker)
    v = await check_promise(broker, schema, bodies, copies)

    # nothing routed twice in the recipients' queues either: every copy one recipient holds of one
    # input has the same deterministic id (a redundant copy is the same copy again, see guarantees.md)
    ids: dict[tuple[str, str, str], set[str | None]] = {}
    for key, messages in copies.items():
        for m in messages:
            c = orjson.loads(m.body)
            ids.setdefault((c["sender"], c["message_id"], key), set()).add(m.message_id)
    assert all(len(s) == 1 for s in ids.values())

    moved = proc.log_lines("broker_address_next")
    connected = proc.log_lines("broker_connected")
    renewed = proc.log_lines("confirm_channel_renewed")
    reopened = proc.log_lines("channel_reopened")
    report(
        f"{n} inputs ({BACKLOG} in a backlog, then {n - BACKLOG} arriving); stopped the P.inbound leader {leader.name} at {before} settled (the stop took "
        f"{stopped_s:.1f}s; new leader {new_leader.name}); longest time without a settlement from the stop "
        f"on {stall_s:.2f}s; routing resumed {resumed_s:.2f}s after the node was gone; drained in "
        f"{drained_s:.1f}s; {v.routed} routed + {v.dead} dead = {v.routed + v.dead}; "
        f"redundant copies {v.redundant_copies} of {v.copies}; service moved address {len(moved)}x, "
        f"connected {len(connected)}x; confirm channel renewed after a nack {len(renewed)}x; "
        f"a channel left closed reopened by the watch {len(reopened)}x"
    )
    assert v.routed + v.dead == n
    # only the inputs from an unknown sender are dead: none was dead-lettered by the broker's delivery
    # limit for having been handed back again and again during the failover
    assert v.dead == sum(1 for b in bodies if orjson.loads(b)["sender"] == "nobody")
    assert new_leader is not leader
    assert moved and len(connected) >= 2, "the service did not reconnect to another node"
    assert stall_s <= RESUME_WITHIN_S, f"no input settled for {stall_s:.2f}s during the failover"
    assert resumed_s <= RESUME_WITHIN_S, f"routing resumed {resumed_s:.2f}s after the node was gone"


async def keep_arriving(
    broker: Broker, pool: Iterator[bytes], published: list[bytes], enough: asyncio.Event
) -> None:
    """Publish inputs from `pool` at ARRIVING_PER_S (through a node that stays up) until `enough` is
    set, each added to `published` once the broker confirmed it. A publish refused or lost during the
    election is published again: a second copy of an input is a duplicate, which the service drops."""
    per_tick = max(1, ARRIVING_PER_S // 10)
    while not enough.is_set():
        for body in itertools.islice(pool, per_tick):
            while not enough.is_set():
                try:
                    await broker.publish(body)
                    published.append(body)
                    break
                except Exception as exc:  # any failure of this test client: try again
                    report(f"publish retried: {type(exc).__name__}")
                    await asyncio.sleep(0.2)
        await asyncio.sleep(0.1)


async def report_stall(cluster: Cluster, proc: ServeProcess) -> None:
    """What the cluster says of its queues and consumers, and what the service says it waits for
    (SIGUSR1: `task_waits` lines, then `consumer_state` last), with its last warnings and errors."""
    report(await asyncio.to_thread(broker_state, cluster))
    os.kill(proc.pid, signal.SIGUSR1)
    await poll_until(async_true(lambda: bool(proc.log_lines("consumer_state"))), 10, "the task dump")
    log = proc.log_path.read_text(errors="replace").splitlines()
    report(
        "the service's last warnings and errors:\n"
        + "\n".join([x for x in log if '"level": "info"' not in x][-80:])
    )


def broker_state(cluster: Cluster) -> str:
    """What the cluster (private to the test) says of its queues, consumers and channels."""
    node = cluster.alive()[0]
    lines = []
    for what in (
        ("list_queues", "name", "leader", "messages_ready", "messages_unacknowledged", "consumers"),
        ("list_consumers", "queue_name", "channel_pid", "consumer_tag", "prefetch_count", "active"),
        ("list_channels", "pid", "connection", "number", "consumer_count", "messages_unacknowledged"),
        ("list_connections", "name", "peer_port", "channels", "state"),
    ):
        try:
            out = cluster.ctl(node, "-q", *what, timeout=30)
        except (RuntimeError, OSError) as exc:
            out = repr(exc)
        lines.append(f"$ rabbitmqctl {' '.join(what)}\n{out}")
    return "\n".join(lines)


async def recipient_copies(broker: Broker) -> dict[str, list[object]]:
    """Every copy in the recipients' queues, taken out (check_promise reads them from here)."""
    return {key: list(await broker.drain(key)) for key in KEYS}
