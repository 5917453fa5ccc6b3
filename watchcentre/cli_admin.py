"""`watchcentre token issue|revoke|list`, `watchcentre audit verify` and `watchcentre backup`: each takes the settings and
the parsed arguments, and returns the exit status. Registered in cli.py with `register(sub)`.

The token is printed once, on standard output, and never again: the store keeps only its SHA-256.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import orjson

from watchcentre.core.access import Role
from watchcentre.core.audit_chain import Verification
from watchcentre.core.ports import Store, SystemClock
from watchcentre.settings import Settings

T = TypeVar("T")


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    from watchcentre.bootstrap import open_store

    store = await open_store(settings)
    try:
        return await work(store)
    finally:
        await store.close()


def _role(text: str, post: str | None, unit: str | None) -> tuple[Role, str | None]:
    """`--role post --post es`, or `--role post:es`."""
    name, _, subject = text.partition(":")
    try:
        role = Role(name)
    except ValueError:
        raise SystemExit(f"--role: one of {', '.join(r.value for r in Role)}") from None
    if subject and (post or unit):
        raise SystemExit("--role: give the id once (post:ID, or --post ID)")
    return role, subject or (post if role is Role.POST else unit if role is Role.UNIT else post or unit)


def cmd_token_issue(settings: Settings, args: argparse.Namespace) -> int:
    from watchcentre.adapters.config_files import ConfigError, load_config
    from watchcentre.security import TokenError, issue_token

    role, subject = _role(args.role, args.post, args.unit)
    try:
        network = load_config(settings.config_dir).network
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2

    async def work(store: Store) -> int:
        try:
            issued = await issue_token(
                store,
                SystemClock(),
                role=role,
                subject=subject,
                name=args.name,
                ttl=timedelta(days=args.days),
                network=network,
                issued_by=f"cli:{args.name}",
            )
        except TokenError as exc:
            print(f"token not issued: {exc}", file=sys.stderr)
            return 2
        r = issued.record
        print(
            f"issued token {r.id} for {r.name} ({r.principal().label}), expires {r.expires_at.isoformat()};"
            " it is shown only once:",
            file=sys.stderr,
        )
        print(issued.token)
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_token_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from watchcentre.security import revoke_token

    async def work(store: Store) -> int:
        record = await revoke_token(store, SystemClock(), args.token_id, revoked_by="cli")
        if record is None:
            print(f"no token {args.token_id}", file=sys.stderr)
            return 1
        print(f"token {record.id} ({record.name}, {record.principal().label}) revoked at {record.revoked_at}")
        return 0

    return asyncio.run(_with_store(settings, work))


def cmd_token_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(store: Store) -> list[dict[str, Any]]:
        return [t.model_dump(mode="json", exclude={"hash"}) for t in await store.tokens()]

    rows = asyncio.run(_with_store(settings, work))
    sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    from watchcentre.adapters.audit_anchor import AnchorKeyError, FileAnchor
    from watchcentre.bootstrap import open_anchor
    from watchcentre.security import verify_audit

    try:
        anchor = open_anchor(settings, create_key=False)
    except AnchorKeyError as exc:
        print(f"audit anchor cannot be checked: {exc}", file=sys.stderr)
        return 2
    if args.anchor:  # e.g. the off-host copy
        anchor = FileAnchor(args.anchor, anchor.key)

    async def work(store: Store) -> Verification:
        return await verify_audit(store, anchor)

    result = asyncio.run(_with_store(settings, work))
    sys.stdout.write(orjson.dumps(result.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode() + "\n")
    if not result.ok:
        print(f"audit trail NOT intact ({len(result.problems)} problem(s)):", file=sys.stderr)
        for problem in result.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    anchored = result.anchor.newest_seq if result.anchor else None
    print(
        f"audit trail intact: {result.checked} record(s), head seq {result.head_seq} {result.head_hash};"
        f" newest checkpoint seq {anchored} in {anchor.where}",
        file=sys.stderr,
    )
    return 0


def cmd_audit_verify_export(settings: Settings, args: argparse.Namespace) -> int:
    """Offline: no database, only the file and (unless --no-key) the anchor's key."""
    from pathlib import Path

    from watchcentre.adapters.audit_anchor import AnchorKeyError, load_key
    from watchcentre.core.audit_export import verify_export

    key: bytes | None = None
    if not args.no_key:
        secret = settings.audit_anchor_key.get_secret_value() if settings.audit_anchor_key else None
        try:
            key = load_key(secret, settings.audit_anchor_key_path, create=False)
        except AnchorKeyError as exc:
            print(f"the signature cannot be checked: {exc} (or pass --no-key)", file=sys.stderr)
            return 2
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"{args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    problems = verify_export(data, key)
    if [p for p in problems if not p.startswith("signature not checked")]:
        print(f"{args.file}: NOT intact ({len(problems)} problem(s)):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    records = max(0, data.count(b"\n") - 2)
    signed = "signature checked" if key is not None else "signature NOT checked (--no-key)"
    print(f"{args.file}: intact: {records} record(s), chain links, {signed}", file=sys.stderr)
    return 0


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    """A consistent copy of the store while the service runs, and of the audit anchor beside it."""
    from pathlib import Path
    from urllib.parse import urlparse

    from watchcentre.adapters.backup import BackupResult, backup_postgres, backup_sqlite
    from watchcentre.bootstrap import sqlite_path

    url = settings.database_url.get_secret_value()
    to = Path(args.to)
    if to.exists() and not args.force:
        print(f"{to} exists: choose a new path (or --force to replace it)", file=sys.stderr)
        return 2
    anchor = Path(settings.audit_anchor_path)
    scheme = urlparse(url).scheme
    try:
        result: BackupResult
        if scheme == "sqlite":
            result = backup_sqlite(sqlite_path(url), to, anchor)
        elif scheme in ("postgresql", "postgres"):
            result = backup_postgres(url, settings.database_schema, to, anchor)
        else:
            print(f"WATCHCENTRE_DATABASE_URL: unsupported scheme '{scheme}'", file=sys.stderr)
            return 2
    except (OSError, RuntimeError) as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    row = {
        "path": str(result.path),
        "anchor": str(result.anchor) if result.anchor else None,
        "engine": result.engine,
        "bytes": result.bytes,
        "seconds": round(result.seconds, 3),
    }
    sys.stdout.write(orjson.dumps(row).decode() + "\n")
    print(
        f"backup of the {result.engine} store written to {result.path} ({result.bytes} bytes,"
        f" {result.seconds:.2f} s); anchor copy: {result.anchor or 'none (no anchor file yet)'}."
        " Check it: docs/operations.md, 'Backup and restore'.",
        file=sys.stderr,
    )
    return 0


def register(sub: Any) -> None:
    """Add `token`, `audit` and `backup` to the `watchcentre` sub-commands."""
    token = sub.add_parser("token", help="issue, revoke or list bearer tokens").add_subparsers(
        dest="token_command", required=True
    )
    issue = token.add_parser("issue", help="issue a token (printed once)")
    issue.add_argument("--role", required=True, help="operator | auditor | post | unit (or post:ID, unit:ID)")
    issue.add_argument("--post", help="the post id, for --role post")
    issue.add_argument("--unit", help="the unit id, for --role unit")
    issue.add_argument("--name", required=True, help="the person the token is for")
    issue.add_argument("--days", type=float, default=30.0, help="lifetime in days (default 30, at most 366)")
    issue.set_defaults(fn=cmd_token_issue)
    revoke = token.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    revoke.set_defaults(fn=cmd_token_revoke)
    token.add_parser("list", help="list tokens (never the secrets)").set_defaults(fn=cmd_token_list)
    audit = sub.add_parser("audit", help="check the audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit.add_parser(
        "verify",
        help="check the hash chain, gaps in seq and the signed anchor; exit 1 and name every problem",
    )
    verify.add_argument(
        "--anchor", help="the anchor file to check against (default: WATCHCENTRE_AUDIT_ANCHOR_PATH)"
    )
    verify.set_defaults(fn=cmd_audit_verify)
    check = audit.add_parser(
        "verify-export",
        help="check an audit export (GET /api/audit/export) offline: signature, hashes, links",
    )
    check.add_argument("file")
    check.add_argument("--no-key", action="store_true", help="check the hashes and links only")
    check.set_defaults(fn=cmd_audit_verify_export)
    backup = sub.add_parser(
        "backup",
        help="a consistent copy of the store while the service runs (SQLite online backup, or pg_dump)",
    )
    backup.add_argument(
        "--to", required=True, help="the copy's path; the anchor is copied to PATH.anchor.jsonl"
    )
    backup.add_argument("--force", action="store_true", help="replace an existing file at --to")
    backup.set_defaults(fn=cmd_backup)
