"""The Store on PostgreSQL (asyncpg, PostgreSQL >= 14): for several instances sharing one database.

`save_batch` costs a constant number of round-trips whatever the batch size: BEGIN, an advisory lock,
one `INSERT … SELECT FROM unnest(…)` for all messages, one for all audit events, COMMIT. Crime types,
countries and recipients are jsonb arrays with GIN indexes. The audit table refuses UPDATE, DELETE
and TRUNCATE (a trigger), and its `seq` follows commit order because writers take a lock.
PostgreSQL text cannot hold NUL characters: they are stored as U+FFFD.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel
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
    Status,
    StoredMessage,
    Visibility,
    handling_of,
)
from watchcentre.core.references import new_reference
from watchcentre.core.routing import Original

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id          bigserial PRIMARY KEY,
    sender      text,
    message_id  text,
    kind        text,
    priority    text,
    reference   text,
    subject     text,
    status      text NOT NULL CHECK (status IN ('routed', 'triage', 'rejected')),
    received_at timestamptz NOT NULL,
    crime_types jsonb NOT NULL DEFAULT '[]',
    countries   jsonb NOT NULL DEFAULT '[]',
    recipients  jsonb NOT NULL DEFAULT '[]',
    envelope    jsonb,
    routing     jsonb,
    error       text,
    raw         bytea,
    digest      text
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_accepted_key ON messages (sender, message_id)
    WHERE status <> 'rejected';
CREATE UNIQUE INDEX IF NOT EXISTS messages_rejected_digest ON messages (digest) WHERE status = 'rejected';
CREATE INDEX IF NOT EXISTS messages_received ON messages (received_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS messages_status ON messages (status, id DESC);
CREATE INDEX IF NOT EXISTS messages_sender ON messages (sender, id DESC);
CREATE INDEX IF NOT EXISTS messages_reference ON messages (reference, id DESC);
CREATE INDEX IF NOT EXISTS messages_message_id ON messages (message_id, id DESC);
CREATE INDEX IF NOT EXISTS messages_crime_types ON messages USING gin (crime_types jsonb_path_ops);
CREATE INDEX IF NOT EXISTS messages_countries ON messages USING gin (countries jsonb_path_ops);
CREATE INDEX IF NOT EXISTS messages_recipients ON messages USING gin (recipients jsonb_path_ops);

CREATE TABLE IF NOT EXISTS audit (
    seq        bigserial PRIMARY KEY,
    at         timestamptz NOT NULL,
    type       text NOT NULL,
    actor      text NOT NULL,
    sender     text,
    message_id text,
    reference  text,
    details    jsonb NOT NULL DEFAULT '{}',
    prev_hash  text,
    hash       text
);
ALTER TABLE audit ADD COLUMN IF NOT EXISTS prev_hash text;
ALTER TABLE audit ADD COLUMN IF NOT EXISTS hash text;
CREATE INDEX IF NOT EXISTS audit_message_id ON audit (message_id, seq);
CREATE INDEX IF NOT EXISTS audit_sender ON audit (sender, seq);
CREATE INDEX IF NOT EXISTS audit_type ON audit (type, seq);
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit is append-only: % refused', TG_OP;
END
$$;
CREATE OR REPLACE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TABLE IF NOT EXISTS tokens (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    role       text NOT NULL,
    subject    text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    hash       text NOT NULL UNIQUE
);

CREATE INDEX IF NOT EXISTS audit_reference ON audit (reference, seq);
CREATE TABLE IF NOT EXISTS cases (
    reference             text PRIMARY KEY,
    sender                text NOT NULL,
    message_id            text NOT NULL,
    state                 text NOT NULL,
    version               integer NOT NULL DEFAULT 0,
    opened_at             timestamptz NOT NULL,
    ack_due_at            timestamptz,
    warn_at               timestamptz,
    due_at                timestamptz,
    ack_overdue_raised_at timestamptz,
    warning_raised_at     timestamptz,
    overdue_raised_at     timestamptz,
    data                  jsonb NOT NULL,
    UNIQUE (sender, message_id)
);
CREATE INDEX IF NOT EXISTS cases_state ON cases (state, due_at);
DROP INDEX IF EXISTS cases_opened;
CREATE INDEX IF NOT EXISTS cases_newest ON cases (opened_at, reference);
CREATE INDEX IF NOT EXISTS cases_sender_newest ON cases (sender, opened_at, reference);
CREATE TABLE IF NOT EXISTS case_recipients (
    recipient text NOT NULL,
    reference text NOT NULL,
    PRIMARY KEY (recipient, reference)
);
CREATE INDEX IF NOT EXISTS case_recipients_reference ON case_recipients (reference);
CREATE OR REPLACE FUNCTION cases_recipients_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM case_recipients WHERE reference = OLD.reference;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO case_recipients (recipient, reference)
            SELECT r, NEW.reference FROM jsonb_array_elements_text(NEW.data -> 'recipients') AS r
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER cases_recipients AFTER INSERT OR UPDATE OF data OR DELETE ON cases
    FOR EACH ROW EXECUTE FUNCTION cases_recipients_sync();
INSERT INTO case_recipients (recipient, reference)
    SELECT r, c.reference FROM cases c, jsonb_array_elements_text(c.data -> 'recipients') AS r
    WHERE NOT EXISTS (SELECT 1 FROM case_recipients)
    ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS manual_routes (
    sender     text NOT NULL,
    message_id text NOT NULL,
    revision   integer NOT NULL,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    reason     text NOT NULL,
    recipients jsonb NOT NULL,
    PRIMARY KEY (sender, message_id, revision)
);
CREATE TABLE IF NOT EXISTS notes (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    author      text NOT NULL,
    text        text NOT NULL,
    message_ids jsonb NOT NULL DEFAULT '[]',
    refs        jsonb NOT NULL DEFAULT '[]'
);
-- a case from before markings followed cases takes its request's marking (once: a case written
-- since then has the key, null or not)
UPDATE cases SET data = jsonb_set(data, '{handling}', coalesce((
    SELECT m.envelope -> 'handling' FROM messages m
    WHERE m.sender = cases.sender AND m.message_id = cases.message_id AND m.status <> 'rejected'), 'null'))
WHERE NOT data ? 'handling';
"""

# One row per outcome, one array per column; ORDER BY ord gives ids in batch order. ON CONFLICT DO
# NOTHING (no target) skips a row that hits either partial unique index: the accepted
# (sender, message_id), or the digest of a rejection. Only the inserted rows come back.
_INSERT_MESSAGES = """
INSERT INTO messages (sender, message_id, kind, priority, reference, subject, status, received_at,
                      crime_types, countries, recipients, envelope, routing, error, raw, digest)
SELECT sender, message_id, kind, priority, reference, subject, status, received_at,
       crime_types::jsonb, countries::jsonb, recipients::jsonb, envelope::jsonb, routing::jsonb,
       error, raw, digest
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
            $14::text[], $15::bytea[], $16::text[])
     WITH ORDINALITY AS u(sender, message_id, kind, priority, reference, subject, status, received_at,
                          crime_types, countries, recipients, envelope, routing, error, raw, digest, ord)
ORDER BY ord
ON CONFLICT DO NOTHING
RETURNING status, sender, message_id, digest
"""

# seq numbers are drawn first (under the writer lock), so that each record's hash covers its seq.
_NEXT_SEQS = "SELECT nextval(pg_get_serial_sequence('audit', 'seq')) AS seq FROM generate_series(1, $1)"
_LAST_HASH = "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1"
_INSERT_AUDIT = """
INSERT INTO audit (seq, at, type, actor, sender, message_id, reference, details, prev_hash, hash)
SELECT seq, at, type, actor, sender, message_id, reference, details::jsonb, prev_hash, hash
FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::text[])
     AS e(seq, at, type, actor, sender, message_id, reference, details, prev_hash, hash)
"""

# Held until COMMIT by each writer: transactions commit one at a time, so a reader paging the audit
# by `after_seq` never sees seq N+1 committed before seq N. One lock per schema.
_WRITER_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.watchcentre.writer'))"

_MESSAGE_COLUMNS = (
    "id, sender, message_id, kind, priority, reference, subject, status, received_at,"
    " crime_types, countries, recipients, envelope, routing, error"
)
_AUDIT_COLUMNS = "seq, at, type, actor, sender, message_id, reference, details, prev_hash, hash"
_TOKEN_COLUMNS = "id, name, role, subject, created_at, expires_at, revoked_at, hash"

_TRANSIENT = (
    OSError,  # refused, reset, unreachable
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, ConnectionDoesNotExistError
    asyncpg.InterfaceError,  # the connection was closed under us
    asyncpg.exceptions.OperatorInterventionError,  # 57: CannotConnectNow, AdminShutdown
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # 40: serialization failure, deadlock
)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_Key = tuple[str | None, ...]


class PostgresStore:
    """Messages and the audit trail in one PostgreSQL schema."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(
        cls, dsn: str, schema: str = "public", min_size: int = 1, max_size: int = 10
    ) -> PostgresStore:
        if not _IDENTIFIER.match(schema):
            raise ValueError(f"schema {schema!r}: use lower-case letters, digits and '_'")
        with _transient():
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, server_settings={"search_path": schema}
            )
        store = cls(pool)
        try:
            await store._create_schema(schema)
        except BaseException:
            await pool.close()
            raise
        return store

    async def _create_schema(self, schema: str) -> None:
        """Idempotent; the advisory lock keeps two instances starting together from racing."""
        with _transient():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{schema}.watchcentre.ddl")
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                await conn.execute(_SCHEMA)

    # -- writes ------------------------------------------------------------------------------------

    async def save_batch(self, outcomes: Sequence[Outcome]) -> list[list[AuditEvent] | None]:
        if not outcomes:
            return []
        rows = [_message_row(o) for o in outcomes]
        firsts = _first_by_key(rows)  # a later duplicate in the batch is not even sent
        with _transient():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_WRITER_LOCK)
                returned = await conn.fetch(
                    _INSERT_MESSAGES, *_columns([rows[i] for i in firsts.values()], 16)
                )
                inserted = sorted(firsts[_key(*r)] for r in returned)
                events = [(i, e) for i in inserted for e in outcomes[i].events]
                chained = await _insert_events(conn, [e for _, e in events])
        return _committed(len(outcomes), inserted, events, chained)

    async def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        if not events:
            return []
        with _transient():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_WRITER_LOCK)
                return await _insert_events(conn, list(events))

    # -- tokens ------------------------------------------------------------------------------------

    async def add_token(self, token: TokenRecord, event: AuditEvent) -> None:
        with _transient():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_WRITER_LOCK)
                await conn.execute(
                    f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    token.id, _clean(token.name), token.role.value, token.subject, _utc(token.created_at),
                    _utc(token.expires_at), None if token.revoked_at is None else _utc(token.revoked_at),
                    token.hash,
                )  # fmt: skip
                await _insert_events(conn, [event])

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        rows = await self._fetch(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE hash = $1", _clean(token_hash))
        return _token(rows[0]) if rows else None

    async def tokens(self) -> list[TokenRecord]:
        rows = await self._fetch(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC, id")
        return [_token(r) for r in rows]

    async def revoke_token(self, token_id: str, at: datetime, event: AuditEvent) -> TokenRecord | None:
        with _transient():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_WRITER_LOCK)
                done = await conn.fetch(
                    "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING id",
                    _utc(at),
                    _clean(token_id),
                )
                if done:
                    await _insert_events(conn, [event])
                rows = await conn.fetch(
                    f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = $1", _clean(token_id)
                )
        return _token(rows[0]) if rows else None

    # -- reads -------------------------------------------------------------------------------------

    async def seen(self, sender: str, message_id: str) -> bool:
        found = await self._fetchval(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE sender = $1 AND message_id = $2 AND status <> 'rejected')",
            _clean(sender),
            _clean(message_id),
        )
        return bool(found)

    async def seen_many(self, keys: Sequence[tuple[str, str]]) -> list[bool]:
        rows = await self._fetch(
            "SELECT m.sender, m.message_id FROM messages m"
            " JOIN unnest($1::text[], $2::text[]) AS k(sender, message_id)"
            " ON m.sender = k.sender AND m.message_id = k.message_id WHERE m.status <> 'rejected'",
            [_clean(k[0]) for k in keys],
            [_clean(k[1]) for k in keys],
        )
        found = {(r[0], r[1]) for r in rows}
        return [(_clean(k[0]), _clean(k[1])) in found for k in keys]

    async def seen_rejection(self, digest: str) -> bool:
        found = await self._fetchval(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE digest = $1 AND status = 'rejected')", digest
        )
        return bool(found)

    async def originals(self, message_id: str) -> list[Original]:
        rows = await self._fetch(
            "SELECT sender, message_id, recipients, reference FROM messages"
            " WHERE message_id = $1 AND status <> 'rejected' ORDER BY id DESC",
            _clean(message_id),
        )
        return [Original(r[0], r[1], tuple(json.loads(r[2])), r[3]) for r in rows]

    async def get_message(
        self, message_id: str, sender: str | None = None, visibility: Visibility | None = None
    ) -> StoredMessage | None:
        where = _Where()
        where.add("message_id = {}", _clean(message_id))
        if sender is not None:
            where.add("sender = {}", _clean(sender))
        if visibility is not None:
            _visible(where, visibility)
        rows = await self._fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages {where.sql} ORDER BY id DESC LIMIT 1", *where.params
        )
        return _stored_message(rows[0]) if rows else None

    async def list_messages(
        self, query: MessageQuery, visibility: Visibility | None = None
    ) -> list[StoredMessage]:
        where = _message_filters(query)
        if visibility is not None:
            _visible(where, visibility)
        limit = where.param(query.limit)
        rows = await self._fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages {where.sql} ORDER BY id DESC LIMIT {limit}",
            *where.params,
        )
        return [_stored_message(r) for r in rows]

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
        where = _Where()
        where.add("seq > {}", after_seq)
        for column, value in (
            ("sender", sender),
            ("message_id", message_id),
            ("type", event_type),
            ("reference", reference),
        ):
            if value is not None:
                where.add(f"{column} = {{}}", _clean(value))
        n = where.param(limit)
        rows = await self._fetch(
            f"SELECT {_AUDIT_COLUMNS} FROM audit {where.sql} ORDER BY seq LIMIT {n}", *where.params
        )
        return [_audit_event(r) for r in rows]

    # -- cases -------------------------------------------------------------------------------------

    async def open_case(self, case: Case, events: Sequence[AuditEvent]) -> tuple[Case, bool]:
        try:
            return await self._open_case(case, events)
        except asyncpg.UniqueViolationError:  # the same request, or reference, inserted meanwhile
            return await self._open_case(case, events)  # finds it now

    async def _open_case(self, case: Case, events: Sequence[AuditEvent]) -> tuple[Case, bool]:
        with _transient():
            async with self._pool.acquire() as conn, conn.transaction():
                if events:  # the audit chain's lock; the case row alone needs none (unique keys, row locks)
                    await conn.execute(_WRITER_LOCK)
                rows = await conn.fetch(
                    f"SELECT {_CASE_COLUMNS} FROM cases WHERE sender = $1 AND message_id = $2",
                    _clean(case.sender), _clean(case.message_id),
                )  # fmt: skip
                if rows:
                    return _case(rows[0]), False
                reference = case.reference
                if reference:
                    taken = await conn.fetch(
                        f"SELECT {_CASE_COLUMNS} FROM cases WHERE reference = $1", reference
                    )
                    if taken:
                        raise ReferenceTaken(_case(taken[0]))
                else:  # a concurrent INSERT of the same one is a UniqueViolation: open_case draws again
                    year = case.opened_at.astimezone(UTC).year
                    reference = new_reference(year)
                    while await conn.fetchval(
                        "SELECT EXISTS (SELECT 1 FROM cases WHERE reference = $1)", reference
                    ):
                        reference = new_reference(year)
                    case = case.model_copy(update={"reference": reference})
                await conn.execute(
                    "INSERT INTO cases (reference, sender, message_id, state, version, opened_at, ack_due_at,"
                    " warn_at, due_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)",
                    reference, _clean(case.sender), _clean(case.message_id), case.state.value, case.version,
                    _utc(case.opened_at), _outc(case.ack_due_at), _outc(case.warn_at), _outc(case.due_at),
                    _case_data(case),
                )  # fmt: skip
                await _insert_events(conn, [e.model_copy(update={"reference": reference}) for e in events])
        return case, True

    async def open_cases(self, cases: Sequence[Case]) -> list[tuple[Case, bool] | ReferenceTaken]:
        if not cases:
            return []
        with _transient():
            async with self._pool.acquire() as conn, conn.transaction():
                return await _open_cases(conn, list(cases))

    async def get_case(self, reference: str) -> Case | None:
        rows = await self._fetch(f"SELECT {_CASE_COLUMNS} FROM cases WHERE reference = $1", _clean(reference))
        return _case(rows[0]) if rows else None

    async def update_case(
        self, case: Case, expected_version: int, events: Sequence[AuditEvent], reset_alerts: bool = False
    ) -> list[AuditEvent] | None:
        reset = ", warning_raised_at = NULL, overdue_raised_at = NULL" if reset_alerts else ""
        with _transient():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_WRITER_LOCK)
                if not await _write_case(conn, case, expected_version, reset):
                    return None
                return await _insert_events(conn, list(events))

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
        where = _Where()
        if visibility is not None:
            _case_visible(where, visibility)
        if open_only:
            where.conditions.append(f"state IN ({_OPEN})")
        if since is not None:
            where.add("opened_at >= {}", _utc(since))
        if until is not None:
            where.add("opened_at < {}", _utc(until))
        if before is not None:
            at, ref = where.param(_utc(before.opened_at)), where.param(_clean(before.reference))
            where.conditions.append(f"(opened_at, reference) < ({at}, {ref})")
        n = where.param(limit)
        rows = await self._fetch(
            f"SELECT {_CASE_COLUMNS} FROM cases {where.sql} ORDER BY opened_at DESC, reference DESC LIMIT {n}",
            *where.params,
        )
        return [_case(r) for r in rows]

    async def due_alerts(self, now: datetime) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for alert, condition in _ALERT_DUE.items():
            rows = await self._fetch(
                f"SELECT reference FROM cases WHERE {condition} ORDER BY reference", _utc(now)
            )
            out += [(r[0], alert) for r in rows]
        return out

    async def raise_alert(
        self, reference: str, alert: str, now: datetime, event: AuditEvent
    ) -> AuditEvent | None:
        also = ", warning_raised_at = coalesce(warning_raised_at, $1)" if alert == "overdue" else ""
        with _transient():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_WRITER_LOCK)
                done = await conn.fetch(
                    f"UPDATE cases SET {alert}_raised_at = $1{also} WHERE reference = $2 AND {_ALERT_DUE[alert]}"
                    " RETURNING reference",
                    _utc(now), _clean(reference),
                )  # fmt: skip
                if not done:
                    return None
                return (await _insert_events(conn, [event]))[0]

    async def counts(self) -> dict[str, Any]:
        rows = await self._fetch(
            "SELECT status, count(*) FROM messages GROUP BY status"
            " UNION ALL SELECT 'audit_events', count(*) FROM audit"
        )
        totals: dict[str, Any] = {s.value: 0 for s in Status} | {"audit_events": 0}
        totals.update({r[0]: r[1] for r in rows})
        return totals

    # -- operations: the gauges of /metrics (issue 18) ------------------------------------------------

    async def ops_counts(self, now: datetime) -> OpsCounts:
        return OpsCounts.of_rows((r[0], r[1]) for r in await self._fetch(_OPS_COUNTS, _utc(now)))

    async def ping(self) -> None:
        with _transient():
            async with asyncio.timeout(5.0), self._pool.acquire() as conn:
                await conn.fetchval("SELECT 1")

    # -- the operator console ------------------------------------------------------------------------

    async def last_seq(self) -> int:
        return int(await self._fetchval("SELECT coalesce(max(seq), 0) FROM audit"))

    async def apply_manual(self, decision: ManualRouting) -> list[AuditEvent] | None:
        try:
            return await self._apply_manual(decision)
        except _CaseChanged:
            return None

    async def _apply_manual(self, decision: ManualRouting) -> list[AuditEvent] | None:
        d = decision
        with _transient():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_WRITER_LOCK)
                done = await conn.fetch(
                    "INSERT INTO manual_routes (sender, message_id, revision, at, actor, reason, recipients)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) ON CONFLICT DO NOTHING RETURNING revision",
                    _clean(d.sender), _clean(d.message_id), d.revision, _utc(d.at), _clean(d.actor),
                    _clean(d.reason), _json(d.routing.recipients),
                )  # fmt: skip
                if not done:
                    return None
                updated = await conn.fetch(
                    "UPDATE messages SET status = 'routed', recipients = $1::jsonb, routing = $2::jsonb"
                    " WHERE sender = $3 AND message_id = $4 AND status <> 'rejected' RETURNING id",
                    _json(d.recipients), _json(d.routing), _clean(d.sender), _clean(d.message_id),
                )  # fmt: skip
                if not updated:
                    raise LookupError(f"no accepted message {d.sender}/{d.message_id}")
                if d.case is not None and not await _write_case(conn, d.case, d.case.version):
                    raise _CaseChanged  # rolls the decision back: nothing of it is written
                return await _insert_events(conn, list(d.events))

    async def manual_routings(self, sender: str, message_id: str) -> list[ManualRecord]:
        rows = await self._fetch(
            "SELECT revision, at, actor, reason, recipients FROM manual_routes"
            " WHERE sender = $1 AND message_id = $2 ORDER BY revision",
            _clean(sender), _clean(message_id),
        )  # fmt: skip
        return [
            ManualRecord(revision=r["revision"], at=r["at"], actor=r["actor"], reason=r["reason"],
                         recipients=json.loads(r["recipients"]))
            for r in rows
        ]  # fmt: skip

    async def add_note(self, note: Note, event: AuditEvent) -> tuple[Note, list[AuditEvent]]:
        with _transient():
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_WRITER_LOCK)
                note_id = await conn.fetchval(
                    "INSERT INTO notes (at, author, text, message_ids, refs)"
                    " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb) RETURNING id",
                    _utc(note.at), _clean(note.author), _clean(note.text), _json(note.message_ids),
                    _json(note.references),
                )  # fmt: skip
                details = {**event.details, "note_id": int(note_id)}
                events = await _insert_events(conn, [event.model_copy(update={"details": details})])
        return note.model_copy(update={"id": int(note_id)}), events

    async def notes(self, limit: int = 50, before_id: int | None = None) -> list[Note]:
        rows = await self._fetch(
            "SELECT id, at, author, text, message_ids, refs FROM notes WHERE id < $1 ORDER BY id DESC LIMIT $2",
            before_id if before_id is not None else 2**63 - 1, limit,
        )  # fmt: skip
        return [
            Note(id=r["id"], at=r["at"], author=r["author"], text=r["text"],
                 message_ids=json.loads(r["message_ids"]), references=json.loads(r["refs"]))
            for r in rows
        ]  # fmt: skip

    async def tallies(self, since: datetime) -> Tallies:
        rows = await self._fetch(
            "SELECT 'crime_type' AS kind, c AS tag, count(*) AS n FROM messages, jsonb_array_elements_text(crime_types) c"
            " WHERE received_at >= $1 AND status <> 'rejected' GROUP BY c"
            " UNION ALL SELECT 'country', c, count(*) FROM messages, jsonb_array_elements_text(countries) c"
            " WHERE received_at >= $1 AND status <> 'rejected' GROUP BY c",
            _utc(since),
        )
        total = await self._fetchval(
            "SELECT count(*) FROM messages WHERE received_at >= $1 AND status <> 'rejected'", _utc(since)
        )
        return Tallies(
            since=since,
            total=int(total),
            crime_types={r["tag"]: int(r["n"]) for r in rows if r["kind"] == "crime_type"},
            countries={r["tag"]: int(r["n"]) for r in rows if r["kind"] == "country"},
        )

    async def close(self) -> None:
        await self._pool.close()

    # -- plumbing ----------------------------------------------------------------------------------

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        with _transient():
            async with self._pool.acquire() as conn:
                return list(await conn.fetch(sql, *params))

    async def _fetchval(self, sql: str, *params: Any) -> Any:
        with _transient():
            async with self._pool.acquire() as conn:
                return await conn.fetchval(sql, *params)


async def _insert_events(conn: Any, events: list[AuditEvent]) -> list[AuditEvent]:
    """Insert events after the last one, each chained to its predecessor; the caller holds the writer
    lock, so the chain is serial across instances. Returns the events as stored."""
    if not events:
        return []
    seqs = sorted(int(r["seq"]) for r in await conn.fetch(_NEXT_SEQS, len(events)))
    prev = (await conn.fetchval(_LAST_HASH)) or GENESIS
    rows, stored = [], []
    for seq, e in zip(seqs, events, strict=True):
        row = _audit_row(e)
        event = AuditEvent(
            seq=seq, at=row[0], type=row[1], actor=row[2], sender=row[3], message_id=row[4],
            reference=row[5], details=json.loads(row[6]), prev_hash=prev,
        )  # fmt: skip
        digest = event_hash(prev, event)
        rows.append((seq, *row, prev, digest))
        stored.append(event.model_copy(update={"hash": digest}))
        prev = digest
    await conn.execute(_INSERT_AUDIT, *_columns(rows, 10))
    return stored


async def _open_cases(conn: Any, cases: list[Case]) -> list[tuple[Case, bool] | ReferenceTaken]:
    """`open_cases` in the caller's transaction, a constant number of statements per round whatever the
    batch size. Decided in batch order as one `open_case` after another would; inserted with ON CONFLICT
    DO NOTHING in (sender, message_id) order (the same lock order in every instance): a case another
    instance inserted meanwhile is not written twice but looked up again in the next round."""
    keys = [(_clean(c.sender), _clean(c.message_id)) for c in cases]
    first: dict[tuple[str, str], int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    results: list[tuple[Case, bool] | ReferenceTaken | None] = [None] * len(cases)
    pending = sorted(first.values())
    for _ in range(5):
        if not pending:
            break
        pending = await _open_round(conn, cases, keys, pending, results)
    if pending:
        raise TransientError("postgresql: cases kept conflicting with concurrent writers")
    out: list[tuple[Case, bool] | ReferenceTaken] = []
    for i, k in enumerate(keys):
        r = results[i] if results[i] is not None else results[first[k]]  # the same request twice
        assert r is not None
        out.append(r if i == first[k] or isinstance(r, ReferenceTaken) else (r[0], False))
    return out


async def _open_round(
    conn: Any,
    cases: list[Case],
    keys: list[tuple[str, str]],
    pending: list[int],
    results: list[tuple[Case, bool] | ReferenceTaken | None],
) -> list[int]:
    """One round of `_open_cases`: the indexes still to settle (their insert met a concurrent one, or
    a generated reference met one inserted meanwhile: drawn again next round)."""
    rows = await conn.fetch(
        f"SELECT c.sender AS k_sender, c.message_id AS k_message_id, {_CASE_COLUMNS} FROM cases c"
        " JOIN unnest($1::text[], $2::text[]) AS k(sender, message_id)"
        " ON c.sender = k.sender AND c.message_id = k.message_id",
        [keys[i][0] for i in pending], [keys[i][1] for i in pending],
    )  # fmt: skip
    found = {(r["k_sender"], r["k_message_id"]): _case(r) for r in rows}
    explicit = [cases[i].reference for i in pending if cases[i].reference and keys[i] not in found]
    taken: dict[str, Case] = {}
    if explicit:
        rows = await conn.fetch(
            f"SELECT reference AS k_reference, {_CASE_COLUMNS} FROM cases WHERE reference = ANY($1::text[])",
            explicit,
        )
        taken = {r["k_reference"]: _case(r) for r in rows}
    inserts: list[tuple[int, Case]] = []
    generate: list[int] = []
    for i in pending:
        case = cases[i]
        if keys[i] in found:
            results[i] = (found[keys[i]], False)
        elif not case.reference:
            generate.append(i)
        elif case.reference in taken:
            results[i] = ReferenceTaken(taken[case.reference])
        else:
            taken[case.reference] = case  # a later request of the batch naming it is refused
            inserts.append((i, case))
    if generate:
        numbered = await _with_references(conn, [cases[i] for i in generate], avoid=set(taken))
        inserts += zip(generate, numbered, strict=True)
    if not inserts:
        return []
    inserts.sort(key=lambda ic: keys[ic[0]])
    rows = await conn.fetch(
        "INSERT INTO cases (reference, sender, message_id, state, version, opened_at, ack_due_at, warn_at,"
        " due_at, data)"
        " SELECT reference, sender, message_id, state, version, opened_at, ack_due_at, warn_at, due_at,"
        " data::jsonb"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::integer[], $6::timestamptz[],"
        " $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[]) WITH ORDINALITY"
        " AS u(reference, sender, message_id, state, version, opened_at, ack_due_at, warn_at, due_at, data, ord)"
        " ORDER BY ord ON CONFLICT DO NOTHING RETURNING sender, message_id",
        *_columns([_case_row(keys[i], c) for i, c in inserts], 10),
    )
    inserted = {(r[0], r[1]) for r in rows}
    again = []
    for i, case in inserts:
        if keys[i] in inserted:
            results[i] = (case, True)
        else:
            again.append(i)
    return sorted(again)


async def _with_references(conn: Any, cases: list[Case], avoid: set[str]) -> list[Case]:
    """The cases with generated references, none already used (one query per draw)."""
    out, used = list(cases), set(avoid)
    todo = list(range(len(cases)))
    while todo:
        drawn = {j: new_reference(cases[j].opened_at.astimezone(UTC).year) for j in todo}
        rows = await conn.fetch(
            "SELECT reference FROM cases WHERE reference = ANY($1::text[])", list(drawn.values())
        )
        used |= {r[0] for r in rows}
        todo = []
        for j, ref in drawn.items():
            if ref in used:
                todo.append(j)
            else:
                used.add(ref)  # two alike in one batch: the second draws again
                out[j] = cases[j].model_copy(update={"reference": ref})
    return out


def _committed(
    n: int, inserted: Iterable[int], events: list[tuple[int, AuditEvent]], stored: list[AuditEvent]
) -> list[list[AuditEvent] | None]:
    """Per outcome: its events as stored (seq, hash), or None when nothing was written for it."""
    committed: dict[int, list[AuditEvent]] = {i: [] for i in inserted}
    for (i, _), event in zip(events, stored, strict=True):
        committed[i].append(event)
    return [committed.get(i) for i in range(n)]


def _visible(where: _Where, v: Visibility) -> None:
    """Need-to-know: accepted, and sent by one of the senders or to one of the recipients."""
    senders = where.param(sorted(v.senders))
    recipients = where.param(sorted(v.recipients))
    where.conditions.append(
        f"(status <> 'rejected' AND (sender = ANY({senders}::text[]) OR recipients ?| {recipients}::text[]))"
    )


def _case_visible(where: _Where, v: Visibility) -> None:
    """Need-to-know on `cases`: requested by one of the senders or routed to one of the recipients.
    case_recipients is kept by a trigger from each case's data, whoever writes it."""
    senders = [where.param(s) for s in sorted(v.senders)]
    recipients = [where.param(r) for r in sorted(v.recipients)]
    by_sender = f"sender IN ({', '.join(senders)})" if senders else "1 = 0"
    to_recipient = (
        f"reference IN (SELECT r.reference FROM case_recipients r WHERE r.recipient IN ({', '.join(recipients)}))"
        if recipients
        else "1 = 0"
    )
    where.conditions.append(f"({by_sender} OR {to_recipient})")


@contextmanager
def _transient() -> Iterator[None]:
    try:
        yield
    except _TRANSIENT as exc:
        raise TransientError(f"postgresql: {type(exc).__name__}: {exc}") from exc


class _Where:
    """A WHERE clause with numbered parameters: add("sender = {}", value) → "sender = $1"."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, condition: str, value: Any) -> None:
        self.conditions.append(condition.format(self.param(value)))

    @property
    def sql(self) -> str:
        return "WHERE " + " AND ".join(self.conditions) if self.conditions else ""


# -- rows ------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def _scrub(value: Any) -> Any:
    """NUL characters out of every string of a JSON value (jsonb refuses \\u0000)."""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _scrub(v) for k, v in value.items()}
    return value


def _json(value: Any) -> str:
    """Compact JSON text for a jsonb column (pydantic-core: fast). NaN and infinities become null;
    NUL characters, which jsonb refuses, U+FFFD (the rare slow path)."""
    text = to_json(value, inf_nan_mode="null", fallback=str).decode()
    if "\\u0000" in text:
        plain = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        text = to_json(_scrub(plain), inf_nan_mode="null", fallback=str).decode()
    return text


def _opt(text: str | None) -> str | None:
    return None if text is None else _clean(text)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _raw_envelope(raw: bytes) -> str | None:
    """The rejected input as a JSON object, when it is one; None otherwise."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse)  # NaN: not JSON
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # lone surrogates ("\\ud800") are not text
    except (ValueError, RecursionError):
        return None
    if too_deep(data):  # kept as raw bytes only: too deep to serialise for display
        return None
    return _json(data) if isinstance(data, dict) else None


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _message_row(outcome: Outcome) -> tuple[Any, ...]:
    if isinstance(outcome, Accepted):
        env, routing = outcome.envelope, outcome.routing
        return (
            _clean(env.sender), _clean(env.message_id), env.kind.value, env.priority.value,
            _opt(env.reference), _clean(env.subject), outcome.status.value, _utc(outcome.received_at),
            _json(routing.crime_types), _json(routing.countries), _json(routing.recipients),
            _json(env), _json(routing), None, None, None,
        )  # fmt: skip
    rejection = outcome.rejection
    return (
        _opt(rejection.sender), _opt(rejection.message_id), None, None, None, None,
        Status.REJECTED.value, _utc(outcome.received_at), "[]", "[]", "[]",
        _raw_envelope(outcome.raw), None, _clean(rejection.reason), outcome.raw, outcome.digest,
    )  # fmt: skip


def _key(status: str, sender: str | None, message_id: str | None, digest: str | None) -> _Key:
    """What makes a row a duplicate: the digest of a rejection, the (sender, message_id) otherwise."""
    return ("rejected", digest) if status == Status.REJECTED else ("accepted", sender, message_id)


def _first_by_key(rows: list[tuple[Any, ...]]) -> dict[_Key, int]:
    firsts: dict[_Key, int] = {}
    for i, row in enumerate(rows):
        firsts.setdefault(_key(row[6], row[0], row[1], row[15]), i)
    return firsts


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to one list per column, the shape `unnest($1::…[], $2::…[], …)` takes."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _audit_row(e: AuditEvent) -> tuple[Any, ...]:
    return (
        _utc(e.at), _clean(e.type), _clean(e.actor), _opt(e.sender), _opt(e.message_id), _opt(e.reference),
        _json(e.details),
    )  # fmt: skip


def _message_filters(q: MessageQuery) -> _Where:
    where = _Where()
    for column, tag in (("crime_types", q.crime_type), ("countries", q.country), ("recipients", q.recipient)):
        if tag is not None:  # jsonb containment, served by the GIN index
            where.add(f"{column} @> jsonb_build_array({{}}::text)", _clean(tag))
    if q.status is not None:
        where.add("status = {}", q.status.value)
    if q.sender is not None:
        where.add("sender = {}", _clean(q.sender))
    if q.since is not None:
        where.add("received_at >= {}", _utc(q.since))
    if q.until is not None:
        where.add("received_at < {}", _utc(q.until))
    if q.before_id is not None:
        where.add("id < {}", q.before_id)
    return where


def _stored_message(r: Any) -> StoredMessage:
    return StoredMessage(
        id=r["id"], sender=r["sender"], message_id=r["message_id"], kind=r["kind"], priority=r["priority"],
        reference=r["reference"], subject=r["subject"], status=Status(r["status"]), received_at=r["received_at"],
        crime_types=json.loads(r["crime_types"]), countries=json.loads(r["countries"]),
        recipients=json.loads(r["recipients"]),
        envelope=None if r["envelope"] is None else json.loads(r["envelope"]),
        routing=None if r["routing"] is None else json.loads(r["routing"]),
        error=r["error"], handling=handling_of(None if r["envelope"] is None else json.loads(r["envelope"])),
    )  # fmt: skip


def _audit_event(r: Any) -> AuditEvent:
    return AuditEvent(
        seq=r["seq"], at=r["at"], type=r["type"], actor=r["actor"], sender=r["sender"],
        message_id=r["message_id"], reference=r["reference"], details=json.loads(r["details"]),
        prev_hash=r["prev_hash"], hash=r["hash"],
    )  # fmt: skip


_CASE_COLUMNS = "data, version, ack_overdue_raised_at, warning_raised_at, overdue_raised_at"
_OPEN = ", ".join(f"'{s.value}'" for s in sorted(AWAITING_ANSWER))
_ACK_OPEN = ", ".join(f"'{s.value}'" for s in sorted(AWAITING_ACK))
_ALERT_DUE = {  # $1 is now
    "ack_overdue": f"state IN ({_ACK_OPEN}) AND ack_due_at <= $1 AND ack_overdue_raised_at IS NULL",
    "warning": f"state IN ({_OPEN}) AND warn_at <= $1 AND due_at > $1 AND warning_raised_at IS NULL",
    "overdue": f"state IN ({_OPEN}) AND due_at <= $1 AND overdue_raised_at IS NULL",
}
# Operations (issue 18): what /metrics reports on scrape; each count runs on an index (cases_state,
# messages_status, the audit primary key).
_OPS_COUNTS = f"""
SELECT 'state:' || state, count(*) FROM cases WHERE state IN ({_OPEN}) GROUP BY state
UNION ALL SELECT 'ack_overdue:' || (data ->> 'priority'), count(*) FROM cases
    WHERE state IN ({_ACK_OPEN}) AND ack_due_at <= $1 GROUP BY (data ->> 'priority')
UNION ALL SELECT 'answer_overdue:' || (data ->> 'priority'), count(*) FROM cases
    WHERE state IN ({_OPEN}) AND due_at <= $1 GROUP BY (data ->> 'priority')
UNION ALL SELECT 'warnings_pending', count(*) FROM cases
    WHERE state IN ({_OPEN}) AND warn_at <= $1 AND due_at > $1
UNION ALL SELECT 'triage_backlog', count(*) FROM messages WHERE status = 'triage'
UNION ALL SELECT 'audit_head_seq', coalesce(max(seq), 0) FROM audit
"""
_FLAGS = ("ack_overdue_raised_at", "warning_raised_at", "overdue_raised_at")


class _CaseChanged(Exception):
    """Inside a transaction: the case was changed by another writer (the transaction is undone)."""


async def _write_case(conn: Any, case: Case, expected_version: int, also: str = "") -> bool:
    """Store the case (version + 1) if its stored version is still `expected_version`."""
    done = await conn.fetch(
        "UPDATE cases SET state = $1, version = version + 1, ack_due_at = $2, warn_at = $3, due_at = $4,"
        f" data = $5::jsonb{also} WHERE reference = $6 AND version = $7 RETURNING reference",
        case.state.value, _outc(case.ack_due_at), _outc(case.warn_at), _outc(case.due_at),
        _case_data(case), _clean(case.reference), expected_version,
    )  # fmt: skip
    return bool(done)


def _outc(at: datetime | None) -> datetime | None:
    return None if at is None else _utc(at)


def _case_data(case: Case) -> str:
    return _json(case.model_dump(mode="json", exclude={"version", *_FLAGS}))


def _case_row(key: tuple[str, str], c: Case) -> tuple[Any, ...]:
    return (
        c.reference, key[0], key[1], c.state.value, c.version, _utc(c.opened_at), _outc(c.ack_due_at),
        _outc(c.warn_at), _outc(c.due_at), _case_data(c),
    )  # fmt: skip


def _case(r: Any) -> Case:
    data = json.loads(r["data"]) if isinstance(r["data"], str) else r["data"]
    return Case.model_validate(data).model_copy(update={"version": r["version"], **{f: r[f] for f in _FLAGS}})


def _token(r: Any) -> TokenRecord:
    return TokenRecord(
        id=r["id"], name=r["name"], role=Role(r["role"]), subject=r["subject"], created_at=r["created_at"],
        expires_at=r["expires_at"], revoked_at=r["revoked_at"], hash=r["hash"],
    )  # fmt: skip
