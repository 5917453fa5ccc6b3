"""The Store on SQLite (aiosqlite): one file, for a single instance, a workstation or the tests.

One connection, driven by aiosqlite's own thread. A write transaction is one job on that thread,
BEGIN to COMMIT (`_write`): it is never interleaved with another statement, and it costs one
hand-over between the event loop and the thread, not one per statement. WAL checkpoints run on a
connection and thread of their own (`Checkpointer`). Timestamps are ISO-8601 UTC text with
microseconds (`2024-05-01T10:00:00.000000Z`), so that text order is time order. Crime types,
countries and recipients are JSON arrays on the row and, for indexed filtering, rows of the side
table `message_tags`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import structlog
from pydantic_core import to_json

from watchcentre.core.access import Role, TokenRecord
from watchcentre.core.audit_chain import GENESIS, event_hash
from watchcentre.core.bounds import too_deep
from watchcentre.core.lifecycle import AWAITING_ACK, AWAITING_ANSWER, Case
from watchcentre.core.manual import ManualRecord, ManualRouting, Note, Tallies
from watchcentre.core.ports import OpsCounts, ReferenceTaken, TransientError
from watchcentre.core.records import (
    Accepted,
    AuditEvent,
    CaseCursor,
    MessageQuery,
    Outcome,
    Rejected,
    Status,
    StoredMessage,
    Visibility,
    handling_of,
)
from watchcentre.core.references import new_reference
from watchcentre.core.routing import Original
from watchcentre.tasks import cancel_and_wait

T = TypeVar("T")
log = structlog.get_logger("watchcentre.store")

_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY,
    sender      TEXT,
    message_id  TEXT,
    kind        TEXT,
    priority    TEXT,
    reference   TEXT,
    subject     TEXT,
    status      TEXT NOT NULL CHECK (status IN ('routed', 'triage', 'rejected')),
    received_at TEXT NOT NULL,
    crime_types TEXT NOT NULL DEFAULT '[]',
    countries   TEXT NOT NULL DEFAULT '[]',
    recipients  TEXT NOT NULL DEFAULT '[]',
    envelope    TEXT,
    routing     TEXT,
    error       TEXT,
    raw         BLOB,
    digest      TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_accepted_key ON messages (sender, message_id)
    WHERE status != 'rejected';
CREATE UNIQUE INDEX IF NOT EXISTS messages_rejected_digest ON messages (digest) WHERE status = 'rejected';
CREATE INDEX IF NOT EXISTS messages_received ON messages (received_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS messages_status ON messages (status, id DESC);
CREATE INDEX IF NOT EXISTS messages_sender ON messages (sender, id DESC);
CREATE INDEX IF NOT EXISTS messages_reference ON messages (reference, id DESC);
CREATE INDEX IF NOT EXISTS messages_message_id ON messages (message_id, id DESC);

CREATE TABLE IF NOT EXISTS message_tags (
    tag_kind   TEXT NOT NULL CHECK (tag_kind IN ('crime_type', 'country', 'recipient')),
    tag        TEXT NOT NULL,
    message_fk INTEGER NOT NULL REFERENCES messages (id),
    PRIMARY KEY (tag_kind, tag, message_fk)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    type       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    sender     TEXT,
    message_id TEXT,
    reference  TEXT,
    details    TEXT NOT NULL DEFAULT '{}',
    prev_hash  TEXT,
    hash       TEXT
);
CREATE INDEX IF NOT EXISTS audit_message_id ON audit (message_id, seq);
CREATE INDEX IF NOT EXISTS audit_sender ON audit (sender, seq);
CREATE INDEX IF NOT EXISTS audit_type ON audit (type, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit is append-only: DELETE refused'); END;

CREATE TABLE IF NOT EXISTS tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    subject    TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    hash       TEXT NOT NULL UNIQUE
);

CREATE INDEX IF NOT EXISTS audit_reference ON audit (reference, seq);
CREATE TABLE IF NOT EXISTS cases (
    reference             TEXT PRIMARY KEY,
    sender                TEXT NOT NULL,
    message_id            TEXT NOT NULL,
    state                 TEXT NOT NULL,
    version               INTEGER NOT NULL DEFAULT 0,
    opened_at             TEXT NOT NULL,
    ack_due_at            TEXT,
    warn_at               TEXT,
    due_at                TEXT,
    ack_overdue_raised_at TEXT,
    warning_raised_at     TEXT,
    overdue_raised_at     TEXT,
    data                  TEXT NOT NULL,
    UNIQUE (sender, message_id)
);
CREATE INDEX IF NOT EXISTS cases_state ON cases (state, due_at);
DROP INDEX IF EXISTS cases_opened;
CREATE INDEX IF NOT EXISTS cases_newest ON cases (opened_at, reference);
CREATE INDEX IF NOT EXISTS cases_sender_newest ON cases (sender, opened_at, reference);
CREATE TABLE IF NOT EXISTS case_recipients (
    recipient TEXT NOT NULL,
    reference TEXT NOT NULL,
    PRIMARY KEY (recipient, reference)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS case_recipients_reference ON case_recipients (reference);
CREATE TRIGGER IF NOT EXISTS cases_recipients_insert AFTER INSERT ON cases BEGIN
    INSERT OR IGNORE INTO case_recipients (recipient, reference)
        SELECT value, NEW.reference FROM json_each(NEW.data, '$.recipients');
END;
CREATE TRIGGER IF NOT EXISTS cases_recipients_update AFTER UPDATE OF data ON cases BEGIN
    DELETE FROM case_recipients WHERE reference = OLD.reference;
    INSERT OR IGNORE INTO case_recipients (recipient, reference)
        SELECT value, NEW.reference FROM json_each(NEW.data, '$.recipients');
END;
CREATE TRIGGER IF NOT EXISTS cases_recipients_delete AFTER DELETE ON cases BEGIN
    DELETE FROM case_recipients WHERE reference = OLD.reference;
END;
INSERT OR IGNORE INTO case_recipients (recipient, reference)
    SELECT j.value, c.reference FROM cases c, json_each(c.data, '$.recipients') j
    WHERE NOT EXISTS (SELECT 1 FROM case_recipients);

CREATE TABLE IF NOT EXISTS manual_routes (
    sender     TEXT NOT NULL,
    message_id TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    recipients TEXT NOT NULL,
    PRIMARY KEY (sender, message_id, revision)
);

CREATE TABLE IF NOT EXISTS notes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    author      TEXT NOT NULL,
    text        TEXT NOT NULL,
    message_ids TEXT NOT NULL DEFAULT '[]',
    refs        TEXT NOT NULL DEFAULT '[]'
);
COMMIT;
"""

# A case from before markings followed cases: it takes its request's marking (once: a case written
# since then has the key, null or not).
_CASE_MARKINGS = """
UPDATE cases SET data = json_set(data, '$.handling', (
    SELECT json_extract(m.envelope, '$.handling') FROM messages m
    WHERE m.sender = cases.sender AND m.message_id = cases.message_id AND m.status != 'rejected'))
WHERE json_type(data, '$.handling') IS NULL
"""

_INSERT_MESSAGE = """
INSERT INTO messages (sender, message_id, kind, priority, reference, subject, status, received_at,
                      crime_types, countries, recipients, envelope, routing, error, raw, digest)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
"""

_INSERTED_SINCE = "SELECT id, status, sender, message_id, digest FROM messages WHERE id > ? ORDER BY id"

_INSERT_TAG = "INSERT INTO message_tags (tag_kind, tag, message_fk) VALUES (?, ?, ?)"

_INSERT_AUDIT = """
INSERT INTO audit (seq, at, type, actor, sender, message_id, reference, details, prev_hash, hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_MESSAGE_COLUMNS = (
    "id, sender, message_id, kind, priority, reference, subject, status, received_at,"
    " crime_types, countries, recipients, envelope, routing, error"
)
_AUDIT_COLUMNS = "seq, at, type, actor, sender, message_id, reference, details, prev_hash, hash"
_TOKEN_COLUMNS = "id, name, role, subject, created_at, expires_at, revoked_at, hash"

# Busy/locked: another process holds the write lock; I/O error, disk full, cannot open: the volume.
_TRANSIENT_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
    }
)


class SqliteStore:
    """Messages and the audit trail in one SQLite file (WAL mode)."""

    def __init__(self, db: aiosqlite.Connection, checkpoints: Checkpointer | None = None) -> None:
        self._db = db
        self._checkpoints = checkpoints

    @classmethod
    async def open(cls, path: str, checkpoint_every: float = 0.25) -> SqliteStore:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        with _transient():
            # isolation_level=None: no implicit transactions; save_batch issues BEGIN IMMEDIATE itself.
            db = await aiosqlite.connect(path, isolation_level=None, timeout=10.0)
            try:
                await db.execute("PRAGMA journal_mode=WAL")
                # In WAL mode, NORMAL is durable across a process crash: a committed transaction is in
                # the WAL file, which the OS keeps. Only a power loss or OS crash can lose the last
                # commits; FULL (an fsync per commit) would guard against that, at a cost.
                await db.execute("PRAGMA synchronous=NORMAL")
                # Checkpoints (WAL → database file, with an fsync) run on their own connection and
                # thread, not inside a commit on the hot path (see Checkpointer); this is the net
                # under them should they fall behind.
                await db.execute(f"PRAGMA wal_autocheckpoint={Checkpointer.FALLBACK_PAGES}")
                await db.executescript(_SCHEMA)
                columns = {r[1] for r in await db.execute_fetchall("PRAGMA table_info(audit)")}
                for column in ("prev_hash", "hash"):  # a database from before the hash chain
                    if column not in columns:
                        await db.execute(f"ALTER TABLE audit ADD COLUMN {column} TEXT")
                await db.execute(_CASE_MARKINGS)
            except BaseException:
                await db.close()
                raise
        checkpoints = None if path == ":memory:" else Checkpointer(path, checkpoint_every)
        if checkpoints is not None:
            checkpoints.start()
        return cls(db, checkpoints)

    # -- writes ------------------------------------------------------------------------------------

    async def save_batch(self, outcomes: Sequence[Outcome]) -> list[list[AuditEvent] | None]:
        if not outcomes:
            return []
        rows = [_message_row(o) for o in outcomes]
        firsts = _first_by_key(rows)  # a later duplicate in the batch is not even sent

        def tx(db: sqlite3.Connection) -> list[list[AuditEvent] | None]:
            inserted = _insert_messages(db, [rows[i] for i in firsts.values()], firsts)
            tags = [t for i, fk in inserted.items() for t in _tag_rows(outcomes[i], fk)]
            db.executemany(_INSERT_TAG, tags)
            events = [(i, e) for i in sorted(inserted) for e in outcomes[i].events]
            chained = _insert_events(db, [e for _, e in events])
            return _committed(len(outcomes), inserted, events, chained)

        return await self._write(tx)

    async def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        if not events:
            return []
        return await self._write(lambda db: _insert_events(db, list(events)))

    # -- tokens ------------------------------------------------------------------------------------

    async def add_token(self, token: TokenRecord, event: AuditEvent) -> None:

        def tx(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token.id, token.name, token.role.value, token.subject, _ts(token.created_at),
                    _ts(token.expires_at), None if token.revoked_at is None else _ts(token.revoked_at), token.hash,
                ),
            )  # fmt: skip
            _insert_events(db, [event])

        await self._write(tx)

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        rows = await self._fetch(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE hash = ?", (token_hash,))
        return _token(rows[0]) if rows else None

    async def tokens(self) -> list[TokenRecord]:
        rows = await self._fetch(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC, id", ())
        return [_token(r) for r in rows]

    async def revoke_token(self, token_id: str, at: datetime, event: AuditEvent) -> TokenRecord | None:

        def tx(db: sqlite3.Connection) -> list[Any]:
            cursor = db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (_ts(at), token_id)
            )
            if cursor.rowcount:
                _insert_events(db, [event])
            return db.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,)).fetchall()

        rows = await self._write(tx)
        return _token(rows[0]) if rows else None

    # -- reads -------------------------------------------------------------------------------------

    async def seen(self, sender: str, message_id: str) -> bool:
        rows = await self._fetch(
            "SELECT 1 FROM messages WHERE sender = ? AND message_id = ? AND status != 'rejected' LIMIT 1",
            (sender, message_id),
        )
        return bool(rows)

    async def seen_many(self, keys: Sequence[tuple[str, str]]) -> list[bool]:
        found: set[tuple[str, str]] = set()
        for i in range(0, len(keys), 400):  # SQLite caps bound parameters per statement
            chunk = keys[i : i + 400]
            rows = await self._fetch(
                "SELECT sender, message_id FROM messages WHERE status != 'rejected' AND (sender, message_id) IN ("
                + ",".join("(?, ?)" for _ in chunk)
                + ")",
                tuple(v for key in chunk for v in key),
            )
            found.update((r[0], r[1]) for r in rows)
        return [key in found for key in keys]

    async def seen_rejection(self, digest: str) -> bool:
        rows = await self._fetch(
            "SELECT 1 FROM messages WHERE digest = ? AND status = 'rejected' LIMIT 1", (digest,)
        )
        return bool(rows)

    async def originals(self, message_id: str) -> list[Original]:
        rows = await self._fetch(
            "SELECT sender, message_id, recipients, reference FROM messages"
            " WHERE message_id = ? AND status != 'rejected' ORDER BY id DESC",
            (message_id,),
        )
        return [Original(r[0], r[1], tuple(json.loads(r[2])), r[3]) for r in rows]

    async def get_message(
        self, message_id: str, sender: str | None = None, visibility: Visibility | None = None
    ) -> StoredMessage | None:
        where, params = ["m.message_id = ?"], [message_id]
        if sender is not None:
            where.append("m.sender = ?")
            params.append(sender)
        if visibility is not None:
            condition, more = _visible(visibility)
            where.append(condition)
            params += more
        rows = await self._fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE {' AND '.join(where)} ORDER BY m.id DESC LIMIT 1",
            params,
        )
        return _stored_message(rows[0]) if rows else None

    async def list_messages(
        self, query: MessageQuery, visibility: Visibility | None = None
    ) -> list[StoredMessage]:
        sql, params = _list_query(query, visibility)
        return [_stored_message(r) for r in await self._fetch(sql, params)]

    async def audit(
        self,
        *,
        after_seq: int = 0,
        limit: int = 100,
        sender: str | None = None,
        message_id: str | None = None,
        event_type: str | None = None,
        reference: str | None = None,
    ) -> list[AuditEvent]:
        where: list[str] = ["seq > ?"]
        params: list[Any] = [after_seq]
        for column, value in (
            ("sender", sender),
            ("message_id", message_id),
            ("type", event_type),
            ("reference", reference),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self._fetch(
            f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
            [*params, limit],
        )
        return [_audit_event(r) for r in rows]

    # -- cases -------------------------------------------------------------------------------------

    async def open_case(self, case: Case, events: Sequence[AuditEvent]) -> tuple[Case, bool]:
        return await self._write(lambda db: _open_case(db, case, events))

    async def open_cases(self, cases: Sequence[Case]) -> list[tuple[Case, bool] | ReferenceTaken]:

        def tx(db: sqlite3.Connection) -> list[tuple[Case, bool] | ReferenceTaken]:
            out: list[tuple[Case, bool] | ReferenceTaken] = []
            for case in cases:  # one after the other: a later one sees the earlier ones
                try:
                    out.append(_open_case(db, case, []))
                except ReferenceTaken as taken:  # nothing written for this one
                    out.append(taken)
            return out

        return await self._write(tx)

    async def get_case(self, reference: str) -> Case | None:
        rows = await self._fetch(f"SELECT {_CASE_COLUMNS} FROM cases WHERE reference = ?", (reference,))
        return _case(rows[0]) if rows else None

    async def update_case(
        self, case: Case, expected_version: int, events: Sequence[AuditEvent], reset_alerts: bool = False
    ) -> list[AuditEvent] | None:
        reset = ", warning_raised_at = NULL, overdue_raised_at = NULL" if reset_alerts else ""

        def tx(db: sqlite3.Connection) -> list[AuditEvent] | None:
            if not _write_case(db, case, expected_version, reset):
                return None
            return _insert_events(db, list(events))

        return await self._write(tx)

    async def list_cases(
        self,
        *,
        visibility: Visibility | None = None,
        open_only: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        before: CaseCursor | None = None,
        limit: int = 1000,
    ) -> list[Case]:
        where, params = ["1 = 1"], []
        if visibility is not None:
            senders, recipients = sorted(visibility.senders), sorted(visibility.recipients)
            where.append(_case_visible(len(senders), len(recipients)))
            params += [*senders, *recipients]
        if open_only:
            where.append(f"state IN ({_OPEN})")
        if since is not None:
            where.append("opened_at >= ?")
            params.append(_ts(since))
        if until is not None:
            where.append("opened_at < ?")
            params.append(_ts(until))
        if before is not None:
            where.append("(opened_at, reference) < (?, ?)")
            params += [_ts(before.opened_at), before.reference]
        rows = await self._fetch(
            f"SELECT {_CASE_COLUMNS} FROM cases WHERE {' AND '.join(where)}"
            " ORDER BY opened_at DESC, reference DESC LIMIT ?",
            [*params, limit],
        )
        return [_case(r) for r in rows]

    async def due_alerts(self, now: datetime) -> list[tuple[str, str]]:
        t = _ts(now)
        out: list[tuple[str, str]] = []
        for alert, condition in _ALERT_DUE.items():
            rows = await self._fetch(
                f"SELECT reference FROM cases WHERE {condition} ORDER BY reference", {"now": t}
            )
            out += [(r[0], alert) for r in rows]
        return out

    async def raise_alert(
        self, reference: str, alert: str, now: datetime, event: AuditEvent
    ) -> AuditEvent | None:
        t = _ts(now)
        also = ", warning_raised_at = coalesce(warning_raised_at, :now)" if alert == "overdue" else ""

        def tx(db: sqlite3.Connection) -> AuditEvent | None:
            cursor = db.execute(
                f"UPDATE cases SET {alert}_raised_at = :now{also} WHERE reference = :ref AND {_ALERT_DUE[alert]}",
                {"now": t, "ref": reference},
            )
            if cursor.rowcount != 1:
                return None
            return _insert_events(db, [event])[0]

        return await self._write(tx)

    async def counts(self) -> dict[str, Any]:
        rows = await self._fetch(
            "SELECT status, count(*) FROM messages GROUP BY status"
            " UNION ALL SELECT 'audit_events', count(*) FROM audit",
            (),
        )
        totals: dict[str, Any] = {s.value: 0 for s in Status} | {"audit_events": 0}
        totals.update({r[0]: r[1] for r in rows})
        return totals

    # -- the operator console ------------------------------------------------------------------------

    async def last_seq(self) -> int:
        rows = await self._fetch("SELECT coalesce(max(seq), 0) FROM audit", ())
        return int(rows[0][0])

    async def apply_manual(self, decision: ManualRouting) -> list[AuditEvent] | None:
        d = decision

        def tx(db: sqlite3.Connection) -> list[AuditEvent] | None:
            cursor = db.execute(
                "INSERT INTO manual_routes (sender, message_id, revision, at, actor, reason, recipients)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    d.sender,
                    d.message_id,
                    d.revision,
                    _ts(d.at),
                    d.actor,
                    d.reason,
                    _json(d.routing.recipients),
                ),
            )
            if not cursor.rowcount:
                return None
            rows = db.execute(
                "SELECT id FROM messages WHERE sender = ? AND message_id = ? AND status != 'rejected'",
                (d.sender, d.message_id),
            ).fetchall()
            if not rows:
                raise LookupError(f"no accepted message {d.sender}/{d.message_id}")
            fk = int(rows[0][0])
            db.execute(
                "UPDATE messages SET status = 'routed', recipients = ?, routing = ? WHERE id = ?",
                (_json(d.recipients), _json(d.routing), fk),
            )
            db.executemany(
                "INSERT INTO message_tags (tag_kind, tag, message_fk) VALUES ('recipient', ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(r, fk) for r in d.recipients],
            )
            if d.case is not None and not _write_case(db, d.case, d.case.version):
                raise _CaseChanged  # rolls the decision back: nothing of it is written
            return _insert_events(db, list(d.events))

        try:
            return await self._write(tx)
        except _CaseChanged:
            return None

    async def manual_routings(self, sender: str, message_id: str) -> list[ManualRecord]:
        rows = await self._fetch(
            "SELECT revision, at, actor, reason, recipients FROM manual_routes"
            " WHERE sender = ? AND message_id = ? ORDER BY revision",
            (sender, message_id),
        )
        return [
            ManualRecord(revision=r[0], at=datetime.fromisoformat(r[1]), actor=r[2], reason=r[3],
                         recipients=json.loads(r[4]))
            for r in rows
        ]  # fmt: skip

    async def add_note(self, note: Note, event: AuditEvent) -> tuple[Note, list[AuditEvent]]:

        def tx(db: sqlite3.Connection) -> tuple[Note, list[AuditEvent]]:
            cursor = db.execute(
                "INSERT INTO notes (at, author, text, message_ids, refs) VALUES (?, ?, ?, ?, ?)",
                (_ts(note.at), note.author, note.text, _json(note.message_ids), _json(note.references)),
            )
            note_id = int(cursor.lastrowid or 0)
            details = {**event.details, "note_id": note_id}
            events = _insert_events(db, [event.model_copy(update={"details": details})])
            return note.model_copy(update={"id": note_id}), events

        return await self._write(tx)

    async def notes(self, limit: int = 50, before_id: int | None = None) -> list[Note]:
        rows = await self._fetch(
            "SELECT id, at, author, text, message_ids, refs FROM notes WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before_id if before_id is not None else 2**63 - 1, limit),
        )
        return [
            Note(id=r[0], at=datetime.fromisoformat(r[1]), author=r[2], text=r[3],
                 message_ids=json.loads(r[4]), references=json.loads(r[5]))
            for r in rows
        ]  # fmt: skip

    async def tallies(self, since: datetime) -> Tallies:
        rows = await self._fetch(
            "SELECT t.tag_kind, t.tag, count(*) FROM messages m JOIN message_tags t ON t.message_fk = m.id"
            " WHERE m.received_at >= ? AND m.status != 'rejected' AND t.tag_kind IN ('crime_type', 'country')"
            " GROUP BY t.tag_kind, t.tag",
            (_ts(since),),
        )
        total = await self._fetch(
            "SELECT count(*) FROM messages WHERE received_at >= ? AND status != 'rejected'", (_ts(since),)
        )
        return Tallies(
            since=since,
            total=int(total[0][0]),
            crime_types={r[1]: int(r[2]) for r in rows if r[0] == "crime_type"},
            countries={r[1]: int(r[2]) for r in rows if r[0] == "country"},
        )

    # -- operations: the gauges of /metrics (issue 18) ------------------------------------------------

    async def ops_counts(self, now: datetime) -> OpsCounts:
        return OpsCounts.of_rows((r[0], r[1]) for r in await self._fetch(_OPS_COUNTS, {"now": _ts(now)}))

    async def ping(self) -> None:
        try:
            await self._fetch("SELECT 1", ())
        except ValueError as exc:  # aiosqlite: the connection is closed
            raise TransientError(f"sqlite: {exc}") from exc

    async def close(self) -> None:
        if self._checkpoints is not None:
            await self._checkpoints.stop()
        with contextlib.suppress(sqlite3.Error, ValueError):
            await self._db.execute("PRAGMA optimize")  # refreshes planner statistics when useful
        await self._db.close()

    # -- plumbing ----------------------------------------------------------------------------------

    async def _fetch(self, sql: str, params: Iterable[Any]) -> list[sqlite3.Row]:
        with _transient():
            return list(await self._db.execute_fetchall(sql, params))

    async def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` as one write transaction, BEGIN IMMEDIATE to COMMIT, as a single job on the
        connection's thread: no other statement can come between, and the event loop hands over
        once per transaction instead of once per statement (the latency of everything queued behind
        it). Rolled back if `body` raises. A caller cancelled meanwhile does not stop the job: its
        transaction commits or rolls back whole, as the next redelivery's duplicate check expects.

        `Connection._execute` and `_conn` are aiosqlite's own way to run a call on its thread (every
        public method goes through them); tests/integration/test_store*.py exercise this path."""
        db = self._db

        def job() -> T:
            conn = db._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        with _transient():
            result: T = await db._execute(job)  # type: ignore[no-untyped-call]
            return result


class _CaseChanged(Exception):
    """Inside a write transaction: the case was changed by another writer (the transaction is undone)."""


def _write_case(db: sqlite3.Connection, case: Case, expected_version: int, also: str = "") -> bool:
    """Store the case (version + 1) if its stored version is still `expected_version`."""
    cursor = db.execute(
        "UPDATE cases SET state = ?, version = version + 1, ack_due_at = ?, warn_at = ?, due_at = ?,"
        f" data = ?{also} WHERE reference = ? AND version = ?",
        (
            case.state.value, _ots(case.ack_due_at), _ots(case.warn_at), _ots(case.due_at),
            _case_data(case), case.reference, expected_version,
        ),
    )  # fmt: skip
    return cursor.rowcount == 1


def _open_case(db: sqlite3.Connection, case: Case, events: Sequence[AuditEvent]) -> tuple[Case, bool]:
    """Open one case inside the caller's write transaction (see `SqliteStore.open_case`)."""
    rows = db.execute(
        f"SELECT {_CASE_COLUMNS} FROM cases WHERE sender = ? AND message_id = ?",
        (case.sender, case.message_id),
    ).fetchall()
    if rows:
        return _case(rows[0]), False
    reference = case.reference
    if reference:
        taken = db.execute(f"SELECT {_CASE_COLUMNS} FROM cases WHERE reference = ?", (reference,)).fetchall()
        if taken:
            raise ReferenceTaken(_case(taken[0]))
    else:  # the only writer holds the lock: a reference found free here is still free at the INSERT
        year = case.opened_at.astimezone(UTC).year
        reference = new_reference(year)
        while db.execute("SELECT 1 FROM cases WHERE reference = ?", (reference,)).fetchall():
            reference = new_reference(year)
        case = case.model_copy(update={"reference": reference})
    db.execute(
        "INSERT INTO cases (reference, sender, message_id, state, version, opened_at, ack_due_at, warn_at,"
        " due_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            reference, case.sender, case.message_id, case.state.value, case.version, _ts(case.opened_at),
            _ots(case.ack_due_at), _ots(case.warn_at), _ots(case.due_at), _case_data(case),
        ),
    )  # fmt: skip
    _insert_events(db, [e.model_copy(update={"reference": reference}) for e in events])
    return case, True


class Checkpointer:
    """Copies the write-ahead log into the database file every `interval` seconds, from a connection
    and thread of its own (PASSIVE: it never blocks a writer, and stops short of frames a reader
    still needs).

    Left to SQLite, the checkpoint runs inside whichever commit crosses 1,000 pages of log, and that
    commit pays for the copy and its fsync: 20-40 ms for ~1 % of the messages. Measured with
    `python -m benchmarks latency --rate 100 --seconds 30`, p99 against the reference router's in
    the same run: 26 vs 6.4 ms left to SQLite; 22 vs 6.2 ms every 1 s; 35 vs 5.5 ms every 10 s (one
    stall of 180 ms); 15.8 vs 6.9 ms every 0.25 s; 14.2 vs 7.3 ms every 0.1 s. Small and often is
    best; a checkpoint with nothing to copy costs next to nothing."""

    FALLBACK_PAGES = 20_000  # ~80 MB of log: SQLite checkpoints in a commit only if this falls behind

    def __init__(self, path: str, interval: float = 0.25) -> None:
        self._path = path
        self._interval = interval
        self._conn: sqlite3.Connection | None = None
        # One thread owns the connection: a checkpoint and the close are queued on it, one after
        # the other, so the close never comes while a checkpoint is running (sqlite3 would crash).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-checkpoints")
        self._task: asyncio.Task[None] | None = None
        self.ran = asyncio.Event()  # set after each background run (for the tests)

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
            self.ran.set()

    def _checkpoint(self) -> None:
        """One PASSIVE checkpoint; on the checkpoint thread only."""
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, timeout=1.0, check_same_thread=False)
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@contextmanager
def _transient() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _TRANSIENT_CODES:
            raise TransientError(f"sqlite: {exc}") from exc
        raise


# BEGIN IMMEDIATE makes a batch the only writer, in this process and any other: the rows with an id
# above the last one are exactly those the batch inserted, and numbering its events from the last seq
# is safe (and makes seq order commit order). A handful of calls per batch, whatever its size.


def _insert_messages(
    db: sqlite3.Connection, rows: list[tuple[Any, ...]], firsts: dict[_Key, int]
) -> dict[int, int]:
    """Insert what is new; return {outcome index: message id} for the rows actually inserted."""
    last_id = _scalar(db, "SELECT coalesce(max(id), 0) FROM messages")
    db.executemany(_INSERT_MESSAGE, rows)
    new = db.execute(_INSERTED_SINCE, (last_id,)).fetchall()
    return {firsts[_key(r[1], r[2], r[3], r[4])]: int(r[0]) for r in new}


def _insert_events(db: sqlite3.Connection, events: list[AuditEvent]) -> list[AuditEvent]:
    """Insert events after the last one, each chained to its predecessor; the events as stored."""
    if not events:
        return []
    # sqlite_sequence (unlike max(seq)) never hands the same number out twice.
    base = _scalar(db, "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'audit'")
    last = db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchall()
    prev = (last[0][0] if last else None) or GENESIS
    rows, stored = [], []
    for seq, e in enumerate(events, start=base + 1):
        row = _audit_row(seq, e)
        event = _audit_event((*row, prev, None))
        digest = event_hash(prev, event)
        rows.append((*row, prev, digest))
        stored.append(event.model_copy(update={"hash": digest}))
        prev = digest
    db.executemany(_INSERT_AUDIT, rows)
    return stored


def _scalar(db: sqlite3.Connection, sql: str) -> int:
    rows = db.execute(sql).fetchall()
    return int(rows[0][0]) if rows else 0


def _committed(
    n: int, inserted: Iterable[int], events: list[tuple[int, AuditEvent]], stored: list[AuditEvent]
) -> list[list[AuditEvent] | None]:
    """Per outcome: its events as stored (seq, hash), or None when nothing was written for it."""
    committed: dict[int, list[AuditEvent]] = {i: [] for i in inserted}
    for (i, _), event in zip(events, stored, strict=True):
        committed[i].append(event)
    return [committed.get(i) for i in range(n)]


# -- rows ------------------------------------------------------------------------------------------


def _ts(at: datetime) -> str:
    """ISO-8601 UTC with microseconds: fixed width, so text order is time order. Naive means UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(value: Any) -> str:
    """Compact JSON text (pydantic-core: fast); NaN and infinities as null, as PostgreSQL needs too."""
    return to_json(value, inf_nan_mode="null", fallback=str).decode()


def _raw_envelope(raw: bytes) -> dict[str, Any] | None:
    """The rejected input as a JSON object, when it is one (for display); None otherwise."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse)  # NaN: not JSON
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # lone surrogates ("\\ud800") are not text
    except (ValueError, RecursionError):
        return None
    if too_deep(data):  # kept as raw bytes only: too deep to serialise for display
        return None
    return data if isinstance(data, dict) else None


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _message_row(outcome: Outcome) -> tuple[Any, ...]:
    if isinstance(outcome, Accepted):
        env, routing = outcome.envelope, outcome.routing
        return (
            env.sender, env.message_id, env.kind.value, env.priority.value, env.reference, env.subject,
            outcome.status.value, _ts(outcome.received_at),
            _json(routing.crime_types), _json(routing.countries), _json(routing.recipients),
            _json(env), _json(routing), None, None, None,
        )  # fmt: skip
    envelope = _raw_envelope(outcome.raw)
    return (
        outcome.rejection.sender, outcome.rejection.message_id, None, None, None, None,
        Status.REJECTED.value, _ts(outcome.received_at), "[]", "[]", "[]",
        None if envelope is None else _json(envelope), None, outcome.rejection.reason,
        outcome.raw, outcome.digest,
    )  # fmt: skip


_Key = tuple[str | None, ...]


def _key(status: str, sender: str | None, message_id: str | None, digest: str | None) -> _Key:
    """What makes a row a duplicate: the digest of a rejection, the (sender, message_id) otherwise."""
    return ("rejected", digest) if status == Status.REJECTED else ("accepted", sender, message_id)


def _first_by_key(rows: list[tuple[Any, ...]]) -> dict[_Key, int]:
    firsts: dict[_Key, int] = {}
    for i, row in enumerate(rows):
        firsts.setdefault(_key(row[6], row[0], row[1], row[15]), i)
    return firsts


def _tag_rows(outcome: Outcome, message_fk: int) -> list[tuple[str, str, int]]:
    if isinstance(outcome, Rejected):
        return []
    r = outcome.routing
    tags = {("crime_type", t) for t in r.crime_types}
    tags |= {("country", t) for t in r.countries}
    tags |= {("recipient", t) for t in r.recipients}
    return [(kind, tag, message_fk) for kind, tag in sorted(tags)]


def _audit_row(seq: int, e: AuditEvent) -> tuple[Any, ...]:
    return (seq, _ts(e.at), e.type, e.actor, e.sender, e.message_id, e.reference, _json(e.details))


_TAG_MATCH = (
    "EXISTS (SELECT 1 FROM message_tags t WHERE t.tag_kind = ? AND t.tag = ? AND t.message_fk = m.id)"
)


def _visible(v: Visibility) -> tuple[str, list[Any]]:
    """Need-to-know on `messages m`: accepted, and sent by one of the senders or to one of the recipients."""
    senders, recipients = sorted(v.senders), sorted(v.recipients)
    by_sender = f"m.sender IN ({', '.join('?' * len(senders))})" if senders else "0"
    to_recipient = (
        "EXISTS (SELECT 1 FROM message_tags v WHERE v.tag_kind = 'recipient'"
        f" AND v.tag IN ({', '.join('?' * len(recipients))}) AND v.message_fk = m.id)"
        if recipients
        else "0"
    )
    return f"(m.status != 'rejected' AND ({by_sender} OR {to_recipient}))", [*senders, *recipients]


def _list_query(q: MessageQuery, visibility: Visibility | None = None) -> tuple[str, list[Any]]:
    """With a tag filter, the scan walks that tag's index newest first (CROSS JOIN fixes the loop
    order) and stops at the limit; without one, it walks the messages newest first."""
    tags = [
        (k, v)
        for k, v in (("crime_type", q.crime_type), ("country", q.country), ("recipient", q.recipient))
        if v
    ]
    where: list[str] = []
    params: list[Any] = []
    if tags:
        source, newest = "message_tags d CROSS JOIN messages m ON m.id = d.message_fk", "d.message_fk"
        where += ["d.tag_kind = ?", "d.tag = ?"]
        params += tags[0]
        for tag in tags[1:]:
            where.append(_TAG_MATCH)
            params += tag
    else:
        source, newest = "messages m", "m.id"
    for condition, value in (
        ("m.status = ?", None if q.status is None else q.status.value),
        ("m.sender = ?", q.sender),
        ("m.received_at >= ?", None if q.since is None else _ts(q.since)),
        ("m.received_at < ?", None if q.until is None else _ts(q.until)),
        (f"{newest} < ?", q.before_id),
    ):
        if value is not None:
            where.append(condition)
            params.append(value)
    if visibility is not None:
        condition, more = _visible(visibility)
        where.append(condition)
        params += more
    sql = f"SELECT {_MESSAGE_COLUMNS} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return f"{sql} ORDER BY {newest} DESC LIMIT ?", [*params, q.limit]


def _stored_message(r: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=r[0], sender=r[1], message_id=r[2], kind=r[3], priority=r[4], reference=r[5], subject=r[6],
        status=Status(r[7]), received_at=datetime.fromisoformat(r[8]),
        crime_types=json.loads(r[9]), countries=json.loads(r[10]), recipients=json.loads(r[11]),
        envelope=None if r[12] is None else json.loads(r[12]),
        routing=None if r[13] is None else json.loads(r[13]),
        error=r[14], handling=handling_of(None if r[12] is None else json.loads(r[12])),
    )  # fmt: skip


def _audit_event(r: Any) -> AuditEvent:
    return AuditEvent(
        seq=r[0], at=datetime.fromisoformat(r[1]), type=r[2], actor=r[3], sender=r[4], message_id=r[5],
        reference=r[6], details=json.loads(r[7]), prev_hash=r[8], hash=r[9],
    )  # fmt: skip


_CASE_COLUMNS = "data, version, ack_overdue_raised_at, warning_raised_at, overdue_raised_at"


def _case_visible(senders: int, recipients: int) -> str:
    """Need-to-know on `cases`: requested by one of `senders` or routed to one of `recipients` (their
    `?` in that order). case_recipients is kept by triggers from each case's data, whoever writes it."""
    by_sender = f"sender IN ({', '.join('?' * senders)})" if senders else "1 = 0"
    to_recipient = (
        "reference IN (SELECT r.reference FROM case_recipients r"
        f" WHERE r.recipient IN ({', '.join('?' * recipients)}))"
        if recipients
        else "1 = 0"
    )
    return f"({by_sender} OR {to_recipient})"


_OPEN = ", ".join(f"'{s.value}'" for s in sorted(AWAITING_ANSWER))
_ACK_OPEN = ", ".join(f"'{s.value}'" for s in sorted(AWAITING_ACK))
_ALERT_DUE = {
    "ack_overdue": f"state IN ({_ACK_OPEN}) AND ack_due_at <= :now AND ack_overdue_raised_at IS NULL",
    "warning": f"state IN ({_OPEN}) AND warn_at <= :now AND due_at > :now AND warning_raised_at IS NULL",
    "overdue": f"state IN ({_OPEN}) AND due_at <= :now AND overdue_raised_at IS NULL",
}
# Operations (issue 18): what /metrics reports on scrape; each count runs on an index (cases_state,
# messages_status, the audit primary key).
_OPS_COUNTS = f"""
SELECT 'state:' || state, count(*) FROM cases WHERE state IN ({_OPEN}) GROUP BY state
UNION ALL SELECT 'ack_overdue:' || json_extract(data, '$.priority'), count(*) FROM cases
    WHERE state IN ({_ACK_OPEN}) AND ack_due_at <= :now GROUP BY json_extract(data, '$.priority')
UNION ALL SELECT 'answer_overdue:' || json_extract(data, '$.priority'), count(*) FROM cases
    WHERE state IN ({_OPEN}) AND due_at <= :now GROUP BY json_extract(data, '$.priority')
UNION ALL SELECT 'warnings_pending', count(*) FROM cases
    WHERE state IN ({_OPEN}) AND warn_at <= :now AND due_at > :now
UNION ALL SELECT 'triage_backlog', count(*) FROM messages WHERE status = 'triage'
UNION ALL SELECT 'audit_head_seq', coalesce(max(seq), 0) FROM audit
"""
_FLAGS = ("ack_overdue_raised_at", "warning_raised_at", "overdue_raised_at")


def _ots(at: datetime | None) -> str | None:
    return None if at is None else _ts(at)


def _case_data(case: Case) -> str:
    return case.model_dump_json(exclude={"version", *_FLAGS})


def _case(r: Any) -> Case:
    flags = {f: None if r[i] is None else datetime.fromisoformat(r[i]) for i, f in enumerate(_FLAGS, start=2)}
    return Case.model_validate_json(r[0]).model_copy(update={"version": r[1], **flags})


def _token(r: Any) -> TokenRecord:
    return TokenRecord(
        id=r[0], name=r[1], role=Role(r[2]), subject=r[3], created_at=datetime.fromisoformat(r[4]),
        expires_at=datetime.fromisoformat(r[5]), revoked_at=None if r[6] is None else datetime.fromisoformat(r[6]),
        hash=r[7],
    )  # fmt: skip
