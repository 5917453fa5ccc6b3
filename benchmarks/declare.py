"""What declaring the delivery queues costs at start, classic against quorum, in the same run
(docs/performance.md, "Declaring the queues").

    python -m benchmarks.declare --runs 3

Each run, for each kind, under a fresh prefix: `declare_queues` on a new broker topology (fresh),
then again (already there, as at every later start); then everything is deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time

import aio_pika

from benchmarks.common import AMQP_URL, CONFIG_DIR
from watchcentre.adapters.amqp import DeliveryQueue, Names, delivery_queues
from watchcentre.adapters.amqp.topology import declare_exchanges, declare_queues
from watchcentre.adapters.config_files import load_config
from watchcentre.bootstrap import recipient_keys


async def measure(runs: int) -> None:
    keys = recipient_keys(load_config(CONFIG_DIR))
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    try:
        for _ in range(runs):
            for kind in ("classic", "quorum"):
                names = Names(f"wcb-declare-{secrets.token_hex(3)}")
                await declare_exchanges(channel, names)
                queues = delivery_queues(names, keys)
                if kind == "classic":
                    queues = [DeliveryQueue(q.name, {}, q.bindings) for q in queues]
                started = time.monotonic()
                await declare_queues(channel, queues)
                fresh_s = time.monotonic() - started
                started = time.monotonic()
                await declare_queues(channel, queues)
                again_s = time.monotonic() - started
                print(f"{kind}: {len(queues)} queues, fresh {fresh_s:.2f} s, already there {again_s:.2f} s")
                for q in queues:
                    await channel.queue_delete(q.name)
                for exchange in (names.intake, names.routed, names.events):
                    await channel.exchange_delete(exchange)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(measure(parser.parse_args().runs))


if __name__ == "__main__":
    main()
