"""The reference: the least a router can do with the same guarantees as watchcentre's hot path.

Consume `P.inbound` (prefetch 200), parse the JSON, route to `post.<id>` by the first `countries`
hint, publish a persistent copy on a confirm channel, await the confirm, ack. No validation, no
classification, no audit trail. The harness declares and binds the destination queues beforehand.

    python -m benchmarks.reference_router --prefix P --url amqp://guest:guest@127.0.0.1:5672/
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage

from benchmarks.common import AMQP_URL, CONFIG_DIR, inbound_arguments, post_by_country


async def serve(prefix: str, url: str, config_dir: Path, prefetch: int) -> None:
    posts = {country: f"post.{post}" for country, post in post_by_country(config_dir).items()}
    connection = await aio_pika.connect(url, client_properties={"connection_name": "reference-router"})
    async with connection:
        consume = await connection.channel()
        await consume.set_qos(prefetch_count=prefetch)
        confirm = await connection.channel(publisher_confirms=True)
        inbound = await consume.declare_queue(
            f"{prefix}.inbound", durable=True, arguments=inbound_arguments(prefix)
        )
        routed = await confirm.get_exchange(f"{prefix}.routed", ensure=False)

        async def on_message(message: AbstractIncomingMessage) -> None:
            envelope = orjson.loads(message.body)
            await routed.publish(
                aio_pika.Message(
                    message.body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    headers=message.headers,
                ),
                routing_key=posts[envelope["countries"][0]],
            )
            await message.ack()

        await inbound.consume(on_message)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--url", default=AMQP_URL)
    parser.add_argument("--config", type=Path, default=CONFIG_DIR)
    parser.add_argument("--prefetch", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(serve(args.prefix, args.url, args.config, args.prefetch))


if __name__ == "__main__":
    main()
