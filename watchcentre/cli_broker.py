"""`watchcentre broker migrate-queues`: delivery queues of another type (classic) moved over to
quorum queues, messages kept (adapters/amqp/migrate.py; docs/operations.md).

`watchcentre broker provision`: one RabbitMQ user per post and unit (plus the centre's, the
gateways' and the service's own, from config/broker.yaml), each with the least permissions it needs
(core/senders.py `grants`), through the management API (adapters/rabbitmq_admin.py).

New passwords are printed once, on standard output (one JSON line per user), and never again.
Re-running is idempotent: existing users keep their password unless `--rotate`; every user's
permissions are applied again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from watchcentre.settings import Settings


def vhost_of(amqp_url: str) -> str:
    """amqp://h/ → '/', amqp://h/%2F → '/', amqp://h/prod → 'prod' (RabbitMQ's URI rules)."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


async def _provision(settings: Settings, args: argparse.Namespace) -> int:
    from watchcentre.adapters.config_files import ConfigError, load_config
    from watchcentre.adapters.rabbitmq_admin import AdminError, RabbitAdmin
    from watchcentre.core.senders import grants

    try:
        config = load_config(settings.config_dir)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    plan = grants(config.broker, config.network, settings.amqp_prefix)
    unknown = set(args.rotate) - {g.user for g in plan}
    if unknown:
        print(f"--rotate: not a user of this network: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    created = rotated = kept = 0
    try:
        async with RabbitAdmin(
            settings.broker_admin_url.get_secret_value(), vhost_of(settings.amqp_urls()[0])
        ) as admin:
            for grant in plan:
                rotate = args.rotate_all or grant.user in args.rotate
                existed = await admin.user_exists(grant.user)
                done = await admin.apply(grant, rotate=rotate)
                if done.password is None:
                    kept += 1
                    continue
                created, rotated = created + (not existed), rotated + existed
                row: dict[str, Any] = {
                    "user": done.user,
                    "password": done.password,
                    "senders": list(done.senders),
                }
                sys.stdout.write(orjson.dumps(row).decode() + "\n")
                sys.stdout.flush()
    except AdminError as exc:
        print(f"provision stopped: {exc}", file=sys.stderr)
        return 1
    print(
        f"{len(plan)} broker user(s) for prefix {settings.amqp_prefix}: {created} created, {rotated} rotated, "
        f"{kept} kept their password; permissions applied to all. Passwords above are shown only once.",
        file=sys.stderr,
    )
    return 0


async def _migrate(settings: Settings) -> int:
    from watchcentre.adapters import amqp
    from watchcentre.adapters.config_files import ConfigError, load_config
    from watchcentre.bootstrap import recipient_keys
    from watchcentre.core.ports import TransientError

    try:
        config = load_config(settings.config_dir)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    names = amqp.Names(settings.amqp_prefix)
    try:
        connection = await amqp.connect(settings.amqp_urls(), f"{settings.instance_name}-migrate")
    except TransientError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        channel = await connection.channel()
        await amqp.declare_exchanges(channel, names)
        done = await amqp.migrate_queues(connection, amqp.delivery_queues(names, recipient_keys(config)))
    except amqp.MigrationRefused as exc:
        print(f"migration stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        await connection.close()
    for m in done:
        sys.stdout.write(orjson.dumps({"queue": m.queue, "messages": m.messages}).decode() + "\n")
    print(f"{len(done)} queue(s) migrated to quorum queues; the others were already right", file=sys.stderr)
    return 0


def cmd_broker(settings: Settings, args: argparse.Namespace) -> int:
    if args.broker_command == "migrate-queues":
        return asyncio.run(_migrate(settings))
    return asyncio.run(_provision(settings, args))


def register(sub: Any) -> None:
    broker = sub.add_parser(
        "broker", help="provision the broker's users; migrate queues to quorum"
    ).add_subparsers(dest="broker_command", required=True)
    p = broker.add_parser(
        "provision",
        help="create a RabbitMQ user per post, unit, centre user, gateway and the service, with least permissions",
    )
    p.add_argument(
        "--rotate", action="append", default=[], metavar="USER", help="give this user a new password"
    )
    p.add_argument("--rotate-all", action="store_true", help="give every user a new password")
    p.set_defaults(fn=cmd_broker)
    broker.add_parser(
        "migrate-queues",
        help="re-create classic delivery queues as quorum queues, messages kept (every instance stopped)",
    ).set_defaults(fn=cmd_broker)
