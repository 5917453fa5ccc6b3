"""Classic queues from an older version: the service names them and waits (no crash loop), and
`watchcentre broker migrate-queues` re-creates them as quorum queues with their messages; the
waiting instance then starts by itself."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aio_pika
import orjson

from tests.integration.harness import ROOT, Broker
from tests.integration.processes import WATCHCENTRE, ServeProcess, poll_until
from watchcentre.adapters.amqp import QUORUM


async def test_classic_queues_are_named_waited_on_and_migrated_with_their_messages(
    broker: Broker, amqp_prefix: str, tmp_path: Path
) -> None:
    assert broker.channel is not None
    p = amqp_prefix
    # what an older version left: a classic recipient queue holding copies not yet read
    routed = await broker.channel.declare_exchange(f"{p}.routed", "topic", durable=True)
    rabat = await broker.channel.declare_queue(f"{p}.post.rabat", durable=True)
    await rabat.bind(routed, "post.rabat")
    for i in range(3):
        await broker.channel.default_exchange.publish(
            aio_pika.Message(b'{"copy": %d}' % i, message_id=f"copy-{i}"), routing_key=f"{p}.post.rabat"
        )

    proc = ServeProcess(
        prefix=p, database_url=f"sqlite:///{tmp_path / 'wc.db'}", name=f"wc-{p}", log_dir=tmp_path
    )
    starting = asyncio.create_task(proc.start(healthy_within=60))
    try:
        await poll_until(lambda: _logged(proc, "queues_not_quorum"), 30, "the classic queue named")
        line = orjson.loads(proc.log_lines("queues_not_quorum")[0])
        assert line["queues"] == [f"{p}.post.rabat"] and line["fix"] == "watchcentre broker migrate-queues"
        assert not starting.done(), (
            "the instance must wait, not exit (a supervisor would restart it in a loop)"
        )
        assert (await proc.health())[0] == 0  # not serving: nothing consumed, nothing published

        migrate = await asyncio.create_subprocess_exec(
            *WATCHCENTRE, "broker", "migrate-queues", env=proc.env, cwd=str(ROOT), stdout=-1, stderr=-1
        )
        out, err = await asyncio.wait_for(migrate.communicate(), 60)
        assert migrate.returncode == 0, err.decode()
        print(err.decode(), file=sys.stderr)
        assert [orjson.loads(x) for x in out.splitlines()] == [{"queue": f"{p}.post.rabat", "messages": 3}]

        await asyncio.wait_for(starting, 40)  # starts by itself at its next look
    finally:
        if not starting.done():
            starting.cancel()
        await proc.ensure_stopped()

    # the same name, now a quorum queue (the broker accepts the quorum declare), with its copies
    channel = await broker.connection.channel()  # type: ignore[union-attr]
    queue = await channel.declare_queue(f"{p}.post.rabat", durable=True, arguments=dict(QUORUM))
    assert queue.declaration_result.message_count == 3
    bodies = [(await queue.get(no_ack=True)).body for _ in range(3)]
    assert sorted(bodies) == [b'{"copy": 0}', b'{"copy": 1}', b'{"copy": 2}']
    await channel.close()


async def _logged(proc: ServeProcess, event: str) -> bool:
    return proc.log_path.exists() and bool(proc.log_lines(event))
