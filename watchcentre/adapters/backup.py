"""Consistent copies of the store while the service runs (`watchcentre backup --to PATH`).

Blocking calls: run them in a thread from an event loop. SQLite: the online backup API, in one
step, on a connection of its own. In WAL mode
a reader never blocks the writers, and the one step reads a single snapshot: the copy is the
database as of one commit. PostgreSQL: `pg_dump --format=custom` of the service's schema, which
reads one snapshot in a repeatable-read transaction; restore it with `pg_restore` (docs/operations.md).

The audit anchor file is copied first, then the database: every checkpoint in the copied anchor
was written after the head it signs was committed, so the copied trail holds them all and
`watchcentre audit verify` passes on the copy with the copied anchor.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse


@dataclass(frozen=True)
class BackupResult:
    path: Path
    anchor: Path | None
    engine: str
    bytes: int
    seconds: float


def anchor_copy_path(to: Path) -> Path:
    return to.with_name(to.name + ".anchor.jsonl")


def _copy_anchor(anchor: Path | None, to: Path) -> Path | None:
    if anchor is None or not anchor.exists():
        return None
    target = anchor_copy_path(to)
    shutil.copyfile(anchor, target)
    return target


def _sqlite_copy(source: str, to: Path) -> None:
    src = sqlite3.connect(source, timeout=30.0)  # it only reads
    try:
        partial = to.with_name(to.name + ".partial")
        partial.unlink(missing_ok=True)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # pages=-1: the whole database in one step, from one snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # the copy is one self-contained file
        finally:
            dst.close()
        os.replace(partial, to)  # a half-written copy never carries the final name
    finally:
        src.close()


def backup_sqlite(source: str, to: Path, anchor: Path | None) -> BackupResult:
    if not Path(source).exists():
        raise FileNotFoundError(f"no SQLite database at {source}")
    started = time.perf_counter()
    copied_anchor = _copy_anchor(anchor, to)
    _sqlite_copy(source, to)
    return BackupResult(to, copied_anchor, "sqlite", to.stat().st_size, time.perf_counter() - started)


def _libpq_dsn(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password (which goes to PGPASSWORD: never on a command line)."""
    url = urlparse(dsn)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password
        netloc = url.netloc.replace(f":{url.password}@", "@", 1)
        url = url._replace(netloc=netloc)
    return urlunparse(url), env


def backup_postgres(dsn: str, schema: str, to: Path, anchor: Path | None) -> BackupResult:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise FileNotFoundError("pg_dump is not installed (Debian: postgresql-client)")
    started = time.perf_counter()
    copied_anchor = _copy_anchor(anchor, to)
    safe_dsn, env = _libpq_dsn(dsn)
    partial = to.with_name(to.name + ".partial")
    args = [pg_dump, "--format=custom", f"--schema={schema}", "--no-owner", f"--file={partial}", safe_dsn]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"pg_dump failed ({done.returncode}): {done.stderr.strip()}")
    os.replace(partial, to)
    return BackupResult(to, copied_anchor, "postgresql", to.stat().st_size, time.perf_counter() - started)
