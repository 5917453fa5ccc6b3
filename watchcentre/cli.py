"""The `watchcentre` command: serve, publish, demo, classify, check-config, dead, broker provision."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from watchcentre.settings import Settings


def _iter_envelopes(source: str) -> Iterator[bytes]:
    """JSON array, single JSON object, or JSON Lines; from a file or '-' for stdin."""
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    stripped = data.lstrip()
    if stripped.startswith(b"["):
        for item in orjson.loads(data):
            yield orjson.dumps(item)
        return
    for line in data.splitlines():
        if line.strip():
            yield line.strip()


async def _publish(settings: Settings, bodies: Iterable[bytes], total: int | None) -> int:
    import aio_pika
    from rich.progress import Progress

    from watchcentre.adapters.amqp import Names, connect, user_of

    names = Names(settings.amqp_prefix)
    connection = await connect(settings.amqp_urls(), f"{settings.instance_name}-publish")
    sent = 0
    user = user_of(connection)
    async with connection:
        # P.intake (declared by the service) is where a provisioned sender may publish; before the
        # service ever ran, only P.inbound through the default exchange (guest, development) exists.
        channel = await connection.channel(publisher_confirms=True)
        try:
            exchange, key = await channel.get_exchange(names.intake, ensure=True), ""
        except aio_pika.exceptions.ChannelClosed:
            channel = await connection.channel(publisher_confirms=True)
            exchange, key = channel.default_exchange, names.inbound
        with Progress(transient=not sys.stderr.isatty()) as progress:
            task = progress.add_task(f"publishing to {exchange.name or names.inbound}", total=total)
            batch: list[asyncio.Future[Any]] = []
            for body in bodies:
                msg = aio_pika.Message(
                    body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    user_id=user,  # the broker checks it: the service trusts it to name who published
                )
                batch.append(asyncio.ensure_future(exchange.publish(msg, key)))
                if len(batch) >= 500:
                    await asyncio.gather(*batch)
                    sent += len(batch)
                    progress.advance(task, len(batch))
                    batch = []
            await asyncio.gather(*batch)
            sent += len(batch)
            progress.advance(task, len(batch))
    return sent


def _use_event_loop(choice: str) -> None:
    """uvloop's loop, transports and futures are C: about a third less CPU per routed message."""
    if choice == "asyncio":
        return
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
    from aiohttp import web

    from watchcentre.adapters.config_files import ConfigError
    from watchcentre.bootstrap import build_app

    _use_event_loop(settings.event_loop)
    try:
        web.run_app(
            build_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            print=lambda m: print(m, file=sys.stderr),
            shutdown_timeout=settings.shutdown_deadline_s,
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    bodies = list(_iter_envelopes(args.source))
    sent = asyncio.run(_publish(settings, bodies, len(bodies)))
    print(f"published {sent} envelope(s) to {settings.amqp_prefix}.inbound")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from watchcentre.samples import sample_envelopes

    bodies = [orjson.dumps(e) for e in sample_envelopes(args.count, prefix=args.id_prefix)]
    sent = asyncio.run(_publish(settings, bodies, len(bodies)))
    print(f"published {sent} demo envelope(s) to {settings.amqp_prefix}.inbound")
    return 0


def cmd_classify(settings: Settings, args: argparse.Namespace) -> int:
    from watchcentre.adapters.config_files import load_config
    from watchcentre.bootstrap import build_classifier

    classifier = build_classifier(load_config(settings.config_dir))
    text = sys.stdin.read()
    result = classifier.classify(args.subject or "", text)
    out = {
        "crime_types": result.crime_types,
        "countries": result.countries,
        "country_confidence": result.country_confidence,
        "home_mentions": result.home_mentions,
        "explanation": result.explanation(),
    }
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def cmd_check_config(settings: Settings, _: argparse.Namespace) -> int:
    from watchcentre.adapters.config_files import ConfigError, load_config
    from watchcentre.bootstrap import build_classifier

    try:
        config = load_config(settings.config_dir)
        build_classifier(config)
    except (ConfigError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    net = config.network
    covered = sum(len(p.countries) for p in net.posts)
    phrases = sum(
        len(v) for c in config.rules.codes.values() for v in [*c.strong.values(), *c.phrases.values()]
    )
    print(
        f"config OK ({config.directory}): {len(net.posts)} posts covering {covered} countries, "
        f"{len(net.units)} units, {len(config.rules.codes)} crime types with {phrases} phrases"
    )
    return 0


async def _dead(settings: Settings, args: argparse.Namespace) -> int:
    import getpass
    from datetime import UTC, datetime

    from watchcentre.adapters import amqp
    from watchcentre.core.records import AuditEvent, EventType

    names = amqp.Names(settings.amqp_prefix)
    if args.dead_command == "list":
        connection = await amqp.connect(settings.amqp_urls(), f"{settings.instance_name}-cli")
        try:
            letters = await amqp.list_dead(connection, names, args.limit)
        finally:
            await connection.close()
        for d in letters:
            row = {
                "id": d.id,
                "sender": d.sender,
                "message_id": d.message_id,
                "reason": d.reason,
                "size": d.size,
            }
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        print(f"{len(letters)} dead letter(s) in {names.dead}", file=sys.stderr)
        return 0
    if not args.all and not args.ids:
        print("name dead letter IDs (see `watchcentre dead list`) or --all", file=sys.stderr)
        return 2

    from watchcentre.bootstrap import open_store
    from watchcentre.core.ports import TransientError

    # A replay is audited: no store, no replay. Each dead letter is recorded (`replayed`, in the
    # hash-chained audit) once its re-publication is confirmed and before it leaves P.dead.
    try:
        store = await open_store(settings)
    except TransientError as exc:
        print(
            f"no replay: the audit store is unreachable ({exc}); a replay must be recorded", file=sys.stderr
        )
        return 1
    actor = f"operator:{args.by or getpass.getuser()}"
    events: list[AuditEvent] = []

    async def record(d: amqp.DeadLetter) -> None:
        event = AuditEvent(
            at=datetime.now(UTC),
            type=EventType.REPLAYED,
            actor=actor,
            sender=d.sender,
            message_id=d.message_id,
            details={"dead_letter": d.id, "reason": d.reason},
        )
        events.extend(await store.append_audit([event]))

    try:
        connection = await amqp.connect(settings.amqp_urls(), f"{settings.instance_name}-cli")
        try:
            replayed = await amqp.replay_dead(connection, names, None if args.all else set(args.ids), record)
            for e in events:
                sys.stdout.write(orjson.dumps(e.model_dump(mode="json")).decode() + "\n")
            await amqp.announce(connection, names, events)
        finally:
            await connection.close()
    finally:
        await store.close()
    missing = set(args.ids or ()) - {d.id for d in replayed}
    print(f"replayed {len(replayed)} dead letter(s) to {names.inbound}", file=sys.stderr)
    if missing:
        print(f"not found in {names.dead}: {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    return 0


def cmd_dead(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_dead(settings, args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="watchcentre", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the AMQP consumer and the HTTP server").set_defaults(fn=cmd_serve)
    p = sub.add_parser("publish", help="send envelopes (JSON, JSON array or JSON Lines) to P.inbound")
    p.add_argument("source", help="a file, or - for standard input")
    p.set_defaults(fn=cmd_publish)
    d = sub.add_parser("demo", help="publish realistic sample envelopes to P.inbound")
    d.add_argument("--count", type=int, default=20)
    d.add_argument(
        "--id-prefix", default=f"demo-{int(time.time())}", help="message_id prefix (ids must be new)"
    )
    d.set_defaults(fn=cmd_demo)
    c = sub.add_parser("classify", help="classify text from standard input and explain why")
    c.add_argument("--subject", default="")
    c.set_defaults(fn=cmd_classify)
    sub.add_parser("check-config", help="validate config/ and exit").set_defaults(fn=cmd_check_config)
    dead = sub.add_parser("dead", help="list or replay dead letters (P.dead)")
    dead_sub = dead.add_subparsers(dest="dead_command", required=True)
    dl = dead_sub.add_parser("list", help="one JSON line per dead letter: id, sender, message_id, reason")
    dl.add_argument("--limit", type=int, default=1000)
    dl.set_defaults(fn=cmd_dead)
    dr = dead_sub.add_parser("replay", help="move dead letters back to P.inbound (after a fix)")
    dr.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids from `watchcentre dead list`")
    dr.add_argument("--all", action="store_true", help="replay every dead letter")
    dr.add_argument("--by", help="who replays, for the audit (default: the login name)")
    dr.set_defaults(fn=cmd_dead)
    from watchcentre import cli_admin

    cli_admin.register(sub)  # token issue|revoke|list, audit verify
    from watchcentre import cli_broker

    cli_broker.register(sub)  # broker provision
    args = parser.parse_args(argv)

    from watchcentre.adapters.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    result: int = args.fn(settings, args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
