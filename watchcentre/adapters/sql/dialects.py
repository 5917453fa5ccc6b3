"""What truly differs between SQLite and PostgreSQL, behind one seam (`Dialect`, `Tx`).

The store (store.py) writes each query once, with numbered parameters (`$1`); a dialect runs it:
connection and transaction handling, the placeholder spelling, how values travel (text and
timestamp parameters are made ready by `fetch`; `ts` and `text` do it for inserted rows; `at`
reads a timestamp back, aware), the bulk insert and the audit sequence (the DDL's words are
schema.py's). `write(body, serial)` runs `body(tx)` as one transaction, rolled back if it raises;
`serial`: writers take turns (the audit chain needs it), else only row locks and unique keys order
them. A `Tx` has `fetch`, `insert` (many rows in a constant number of statements; with `returning`,
ON CONFLICT DO NOTHING and the inserted rows' `returning` columns, in no particular order) and
`next_seqs` (fresh audit sequence numbers, ascending, under the writer lock).

SQLite: one connection on one thread of our own. A write transaction is one job on that thread,
BEGIN IMMEDIATE to COMMIT: the transaction body is an `async def` whose awaits on `Tx` never
suspend, so the thread drives it to the end in one go (one hand-over between the event loop and
the thread per transaction, not one per statement). WAL checkpoints: `Checkpointer`.

PostgreSQL: an asyncpg pool; a writer takes a per-schema advisory lock until COMMIT, so audit `seq`
follows commit order. Text cannot hold NUL characters: they are stored as U+FFFD.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import structlog

from watchcentre.core.ports import TransientError
from watchcentre.tasks import cancel_and_wait

T = TypeVar("T")
log = structlog.get_logger("watchcentre.store")

# Column kinds: how a value travels (store.py), the PostgreSQL bulk insert's array types.
TEXT, INT, TS, JSON, BLOB = "text", "int", "ts", "json", "blob"
Columns = Sequence[tuple[str, str]]  # (name, kind)


def columns(spec: str) -> Columns:
    """`"id:int at:ts author"` → (("id", INT), ("at", TS), ("author", TEXT)): text unless it says."""
    return tuple((name, kind or TEXT) for name, _, kind in (c.partition(":") for c in spec.split()))


def utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


# -- SQLite ----------------------------------------------------------------------------------------

# Busy/locked: another process holds the write lock; I/O error, disk full, cannot open: the volume.
_SQLITE_TRANSIENT = {getattr(sqlite3, f"SQLITE_{e}") for e in ("BUSY", "LOCKED", "IOERR", "FULL", "CANTOPEN")}
_PARAM = re.compile(r"\$(\d+)")
_SQLITE_CHUNK = 500  # rows per multi-row INSERT: SQLite caps bound parameters per statement


@lru_cache(maxsize=512)
def _qmarks(sql: str) -> str:
    """`$1` → `?1`: SQLite's own numbered parameters, so a query is written once."""
    return _PARAM.sub(r"?\1", sql)


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *params: Any) -> list[Any]:
        values = [_iso(p) if isinstance(p, datetime) else p for p in params]
        return self._conn.execute(_qmarks(sql), values).fetchall()

    async def insert(
        self, table: str, columns: Columns, rows: Sequence[tuple[Any, ...]], returning: str = ""
    ) -> list[Any]:
        insert = f"INSERT INTO {table} ({', '.join(c for c, _ in columns)}) VALUES "
        row_marks = "(" + ", ".join("?" * len(columns)) + ")"
        if not returning:
            self._conn.executemany(insert + row_marks, rows)
            return []
        out: list[Any] = []
        for i in range(0, len(rows), _SQLITE_CHUNK):
            chunk = rows[i : i + _SQLITE_CHUNK]
            values = ", ".join([row_marks] * len(chunk))
            sql = f"{insert}{values} ON CONFLICT DO NOTHING RETURNING {returning}"
            out += self._conn.execute(sql, [v for row in chunk for v in row]).fetchall()
        return out

    async def next_seqs(self, n: int) -> list[int]:
        # sqlite_sequence (unlike max(seq)) never hands the same number out twice.
        sql = "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'audit'"
        base = int(self._conn.execute(sql).fetchone()[0])
        return list(range(base + 1, base + 1 + n))


def _iso(at: datetime) -> str:
    """ISO-8601 UTC with microseconds: fixed width, so text order is time order."""
    return utc(at).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a transaction body whose awaits never suspend (`_SqliteTx`) to its end, here and now."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a SQLite transaction awaited something other than its connection")


class SqliteDialect:
    """One SQLite file (WAL mode): for a single instance, a workstation or the tests."""

    name: ClassVar[str] = "sqlite"

    def __init__(self, path: str, checkpoint_every: float = 0.25) -> None:
        self._path = path
        # The one thread that owns the connection: every statement, read or write, runs on it.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None
        self._checkpoints = None if path == ":memory:" else Checkpointer(path, checkpoint_every)

    async def connect(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        with _sqlite_transient():
            await asyncio.get_running_loop().run_in_executor(self._thread, self._connect)
        if self._checkpoints is not None:
            self._checkpoints.start()

    def _connect(self) -> None:
        # isolation_level=None: no implicit transactions; `write` issues BEGIN IMMEDIATE itself.
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=10.0, check_same_thread=False)
        try:
            # NORMAL in WAL mode survives a process crash (only a power loss or OS crash can lose the
            # last commits; FULL, an fsync per commit, would cost). The autocheckpoint is the net
            # under the Checkpointer, should it fall behind.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint={Checkpointer.FALLBACK_PAGES}")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    ts = staticmethod(_iso)
    at = staticmethod(datetime.fromisoformat)
    json_text = staticmethod("json_extract({}, '$.{}')".format)  # (column, key): a top-level key's text

    def text(self, value: str) -> str:
        return value

    async def fetch(self, sql: str, *params: Any) -> list[Any]:
        return await self._run(lambda conn: _drive(_SqliteTx(conn).fetch(sql, *params)))

    async def fetch_replanned(self, sql: str, *params: Any) -> list[Any]:
        """A read planned for its parameters' values every time (a search: its best plan depends on
        how common its words are). SQLite's planner does that anyway."""
        return await self.fetch(sql, *params)

    async def write(self, body: Callable[[Tx], Coroutine[Any, Any, T]], serial: bool = True) -> T:
        """BEGIN IMMEDIATE makes the transaction the only writer, in this process and any other.
        A caller cancelled meanwhile does not stop the job: the transaction commits or rolls back
        whole, as the next redelivery's duplicate check expects."""
        return await self._run(lambda conn: _immediate(conn, lambda: _drive(body(_SqliteTx(conn)))))

    async def migrate(self, steps: Sequence[tuple[int, str, str]]) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, description TEXT NOT NULL)"
            )
            done = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
            columns = {r[1] for r in conn.execute("PRAGMA table_info(audit)")}
            for column in ("prev_hash", "hash"):  # a database from before the hash chain
                if columns and column not in columns:
                    conn.execute(f"ALTER TABLE audit ADD COLUMN {column} TEXT")
            for version, description, sql in steps:
                if version > done:
                    for statement in _statements(sql):
                        if not _column_there(conn, statement):
                            conn.execute(statement)
                    now = _iso(datetime.now(UTC))
                    conn.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (version, now, description))

        await self._run(lambda conn: _immediate(conn, lambda: job(conn)))

    async def ping(self) -> None:
        await self.fetch("SELECT 1")

    async def close(self) -> None:
        """Idempotent: a store may be closed twice."""
        if self._checkpoints is not None:
            await self._checkpoints.stop()
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA optimize")  # refreshes planner statistics when useful
            conn.close()

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        def on_thread() -> T:
            if self._conn is None:
                raise TransientError("sqlite: the store is closed")
            return job(self._conn)

        try:
            with _sqlite_transient():
                return await asyncio.get_running_loop().run_in_executor(self._thread, on_thread)
        except RuntimeError as exc:  # the executor was shut down: the store is closed
            if "shutdown" not in str(exc):
                raise
            raise TransientError("sqlite: the store is closed") from exc


def _immediate(conn: sqlite3.Connection, job: Callable[[], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = job()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


_ADD_COLUMN = re.compile(r"^\s*ALTER TABLE (\w+) ADD COLUMN\s+(\w+)", re.IGNORECASE)


def _column_there(conn: sqlite3.Connection, statement: str) -> bool:
    """An ADD COLUMN whose column exists (SQLite has no IF NOT EXISTS for it): a database from
    before schema versions re-runs every step, as PostgreSQL's IF NOT EXISTS allows."""
    m = _ADD_COLUMN.match(statement)
    return m is not None and any(r[1] == m[2] for r in conn.execute(f"PRAGMA table_info({m[1]})"))


def _statements(script: str) -> Iterator[str]:
    """A migration's statements, one by one (triggers keep their inner `;` until `END;`)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer
            buffer = ""
    if buffer.strip():
        yield buffer


@contextmanager
def _sqlite_transient() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _SQLITE_TRANSIENT:
            raise TransientError(f"sqlite: {exc}") from exc
        raise


class Checkpointer:
    """Copies the write-ahead log into the database file every `interval` seconds, from a connection
    and thread of its own (PASSIVE: it never blocks a writer, and stops short of frames a reader
    still needs). Left to SQLite, the checkpoint runs inside whichever commit crosses 1,000 pages of
    log, and that commit pays for the copy and its fsync (20-40 ms); small and often is best (figures
    in docs/performance.md), and a checkpoint with nothing to copy costs next to nothing."""

    FALLBACK_PAGES = 20_000  # ~80 MB of log: SQLite checkpoints in a commit only if this falls behind

    def __init__(self, path: str, interval: float = 0.25) -> None:
        self._path, self._interval = path, interval
        self._conn: sqlite3.Connection | None = None
        # One thread owns the connection: a checkpoint and the close are queued on it, one after
        # the other, so the close never comes while a checkpoint is running (sqlite3 would crash).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-checkpoints")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sqlite-checkpoints")

    async def stop(self) -> None:
        """Idempotent: a store may be closed twice."""
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait(task)  # a checkpoint under way goes on in its thread...
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)  # ...and ends first
        self._thread.shutdown(wait=False)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._interval)
            try:
                await loop.run_in_executor(self._thread, self._checkpoint)
            except sqlite3.Error as exc:  # busy, or the file is gone: the fallback still holds
                log.warning("sqlite_checkpoint_failed", error=str(exc))

    def _checkpoint(self) -> None:
        """One PASSIVE checkpoint; on the checkpoint thread only."""
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, timeout=1.0, check_same_thread=False)
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


# -- PostgreSQL ------------------------------------------------------------------------------------

_PG_TRANSIENT = (
    OSError,  # refused, reset, unreachable
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, ConnectionDoesNotExistError
    asyncpg.InterfaceError,  # the connection was closed under us
    asyncpg.exceptions.OperatorInterventionError,  # 57: CannotConnectNow, AdminShutdown
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # 40: serialization failure, deadlock
)
_PG_ARRAY = {TEXT: "text[]", INT: "bigint[]", TS: "timestamptz[]", JSON: "text[]", BLOB: "bytea[]"}
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Held until COMMIT by each serial writer: transactions commit one at a time, so a reader paging the
# audit by `after_seq` never sees seq N+1 committed before seq N. One lock per schema.
_WRITER_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.watchcentre.writer'))"


def _pg_text(value: str) -> str:
    return value.replace("\x00", "\ufffd")


class _PostgresTx:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *params: Any) -> list[Any]:
        values = [
            _pg_text(p) if isinstance(p, str) else utc(p) if isinstance(p, datetime) else p for p in params
        ]
        return list(await self._conn.fetch(sql, *values))

    async def insert(
        self, table: str, columns: Columns, rows: Sequence[tuple[Any, ...]], returning: str = ""
    ) -> list[Any]:
        """One `INSERT … SELECT FROM unnest(…)` whatever the number of rows; rows in their order."""
        names = ", ".join(c for c, _ in columns)
        chosen = ", ".join(f"{c}::jsonb" if kind == JSON else c for c, kind in columns)
        arrays = ", ".join(f"${i}::{_PG_ARRAY[kind]}" for i, (_, kind) in enumerate(columns, start=1))
        sql = (
            f"INSERT INTO {table} ({names}) SELECT {chosen}"
            f" FROM unnest({arrays}) WITH ORDINALITY AS u({names}, ord) ORDER BY ord"
        )
        if returning:
            sql += f" ON CONFLICT DO NOTHING RETURNING {returning}"
        by_column = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in columns]
        return list(await self._conn.fetch(sql, *by_column))

    async def next_seqs(self, n: int) -> list[int]:
        # Drawn first (under the writer lock), so that each record's hash covers its seq.
        sql = "SELECT nextval(pg_get_serial_sequence('audit', 'seq')) FROM generate_series(1, $1)"
        return sorted(int(r[0]) for r in await self._conn.fetch(sql, n))


class PostgresDialect:
    """One PostgreSQL schema (>= 14): for several instances sharing one database."""

    name: ClassVar[str] = "postgres"

    def __init__(self, dsn: str, schema: str = "public", min_size: int = 1, max_size: int = 10) -> None:
        if not _IDENTIFIER.match(schema):
            raise ValueError(f"schema {schema!r}: use lower-case letters, digits and '_'")
        self._dsn, self._schema = dsn, schema
        self._pool: Any = None
        self._pool_args = dict(min_size=min_size, max_size=max_size, server_settings={"search_path": schema})

    async def connect(self) -> None:
        with _pg_transient():
            self._pool = await asyncpg.create_pool(self._dsn, **self._pool_args)

    ts = staticmethod(utc)
    text = staticmethod(_pg_text)
    json_text = staticmethod("({} ->> '{}')".format)

    def at(self, value: Any) -> datetime:
        return value  # type: ignore[no-any-return]

    async def fetch(self, sql: str, *params: Any) -> list[Any]:
        with _pg_transient():
            async with self._pool.acquire() as conn:
                return await _PostgresTx(conn).fetch(sql, *params)

    async def fetch_replanned(self, sql: str, *params: Any) -> list[Any]:
        # asyncpg prepares every statement; after five runs PostgreSQL may keep a generic plan,
        # chosen without the tsquery's value (docs/performance.md#search-and-identifiers)
        with _pg_transient():
            async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                return await _PostgresTx(conn).fetch(sql, *params)

    async def write(self, body: Callable[[Tx], Coroutine[Any, Any, T]], serial: bool = True) -> T:
        with _pg_transient():
            async with self._pool.acquire() as conn, conn.transaction():
                if serial:
                    await conn.execute(_WRITER_LOCK)
                return await body(_PostgresTx(conn))

    async def migrate(self, steps: Sequence[tuple[int, str, str]]) -> None:
        """The advisory lock keeps two instances starting together from racing."""
        with _pg_transient():
            async with self._pool.acquire() as conn, conn.transaction():
                ddl_lock = "SELECT pg_advisory_xact_lock(hashtext($1))"
                await conn.execute(ddl_lock, f"{self._schema}.watchcentre.ddl")
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version"
                    " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL, description text NOT NULL)"
                )
                done = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
                for version, description, sql in steps:
                    if version > done:
                        await conn.execute(sql)
                        sql = "INSERT INTO schema_version VALUES ($1, now(), $2)"
                        await conn.execute(sql, version, description)

    async def ping(self) -> None:
        with _pg_transient():
            async with asyncio.timeout(5.0), self._pool.acquire() as conn:
                await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


@contextmanager
def _pg_transient() -> Iterator[None]:
    try:
        yield
    except _PG_TRANSIENT as exc:
        raise TransientError(f"postgresql: {type(exc).__name__}: {exc}") from exc


# The seam the store is written against: one of the two engines, and a transaction on it.
Dialect = SqliteDialect | PostgresDialect
Tx = _SqliteTx | _PostgresTx
