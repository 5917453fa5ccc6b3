"""`watchcentre retention apply [--now RFC3339] [--dry-run] [--by NAME]`: one retention pass.

Prints the counts per category as one JSON object on standard output (and a line per category on
standard error). The dead letters of `P.dead` are included when the broker answers; without it the
pass still purges the database and says the dead letters were not looked at (exit 0: the next
scheduled pass catches up).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from watchcentre.settings import Settings


def _when(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the offset (Z or +hh:mm): {text!r}")
    return at.astimezone(UTC)


async def _apply(settings: Settings, args: argparse.Namespace) -> int:
    from watchcentre.adapters import amqp
    from watchcentre.adapters.config_files import ConfigError, load_config
    from watchcentre.bootstrap import dead_letter_purge, open_store
    from watchcentre.core.ports import TransientError
    from watchcentre.retention import apply_once

    try:
        rules = load_config(settings.config_dir).retention
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if rules is None:
        print(f"no retention.yaml in {settings.config_dir}: nothing to apply", file=sys.stderr)
        return 2
    now = args.now or datetime.now(UTC)
    actor = f"operator:{args.by or getpass.getuser()}"
    store = await open_store(settings)
    connection: Any = None
    try:
        try:
            connection = await amqp.connect(
                settings.amqp_url.get_secret_value(), f"{settings.instance_name}-retention"
            )
        except TransientError as exc:
            print(f"dead letters not looked at: the broker is unreachable ({exc})", file=sys.stderr)
        purge_dead = (
            None
            if connection is None
            else dead_letter_purge(connection, amqp.Names(settings.amqp_prefix), store)
        )
        report = await apply_once(
            store,
            rules,
            now,
            at=datetime.now(UTC),
            dry_run=args.dry_run,
            actor=actor,
            dead_letters=purge_dead,
        )
    finally:
        if connection is not None:
            await connection.close()
        await store.close()
    summary = report.summary()
    out = {"now": now.isoformat(), "dry_run": args.dry_run, "counts": summary}
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    verb = "would erase" if args.dry_run else "erased"
    for category, n in summary.items():
        print(f"{category}: {verb} {n['erased']}, due for review {n['review_due']}", file=sys.stderr)
    return 0


def cmd_retention_apply(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_apply(settings, args))


def register(sub: Any) -> None:
    retention = sub.add_parser("retention", help="apply config/retention.yaml").add_subparsers(
        dest="retention_command", required=True
    )
    apply = retention.add_parser("apply", help="run one retention pass; prints the counts per category")
    apply.add_argument("--now", type=_when, help="the time to apply the limits at (RFC 3339; default: now)")
    apply.add_argument("--dry-run", action="store_true", help="count only: erase nothing")
    apply.add_argument("--by", help="who runs it, for the audit (default: the login name)")
    apply.set_defaults(fn=cmd_retention_apply)
