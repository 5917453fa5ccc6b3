"""The Store's records on SQL, and the helpers the package's other modules build on.

Raw SQL with numbered parameters (`$1`), not a query builder: the SQLAlchemy Core version cost 2.5x in
`drain` and 13x in latency p99 (docs/performance.md). Crime types, countries and recipients are JSON
arrays on the row and, for indexed filtering, rows of the side table `message_tags`. A write is one
transaction holding the writer lock (`Dialect.write`), so the audit chain is serial across instances and
`seq` order is commit order; `save_batch` costs a constant number of statements whatever the batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence, Sized
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Self, TypeVar

from pydantic_core import to_json

from watchcentre.adapters.sql import dialects, schema
from watchcentre.adapters.sql.dialects import JSON, TS, Columns, Dialect, Tx, columns
from watchcentre.core.access import TokenRecord
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
from watchcentre.core.search import SearchQuery


def _names(columns: Columns, prefix: str = "") -> str:
    return ", ".join(prefix + c for c, _ in columns)


_MESSAGE = columns(
    "sender message_id kind priority reference subject status received_at:ts crime_types:json"
    " countries:json recipients:json envelope:json routing:json error raw:blob digest"
)
_TAGS = columns("tag_kind tag message_fk:int")
_AUDIT = columns("seq:int at:ts type actor sender message_id reference details:json prev_hash hash")
_TOKEN = columns("id name role subject created_at:ts expires_at:ts revoked_at:ts hash")
_MANUAL = columns("sender message_id revision:int at:ts actor reason recipients:json")
_NOTE = columns("id:int at:ts author text message_ids:json refs:json")
_CASE = columns(
    "reference sender message_id state version:int opened_at:ts ack_due_at:ts warn_at:ts due_at:ts data:json"
)

# The raw input and digest: not read.
_MESSAGE_READ = (*columns("id:int"), *_MESSAGE[:-2], *columns("purged_at:ts"))
_MESSAGE_COLUMNS = _names(_MESSAGE_READ, "m.")
_FLAGS = ("ack_overdue_raised_at", "warning_raised_at", "overdue_raised_at")
_CASE_COLUMNS = ", ".join(("data", "version", *_FLAGS))
_OPEN = ", ".join(f"'{s.value}'" for s in sorted(AWAITING_ANSWER))
_ACK_OPEN = ", ".join(f"'{s.value}'" for s in sorted(AWAITING_ACK))
_ALERT_DUE = {  # $1 is now
    "ack_overdue": f"state IN ({_ACK_OPEN}) AND ack_due_at <= $1 AND ack_overdue_raised_at IS NULL",
    "warning": f"state IN ({_OPEN}) AND warn_at <= $1 AND due_at > $1 AND warning_raised_at IS NULL",
    "overdue": f"state IN ({_OPEN}) AND due_at <= $1 AND overdue_raised_at IS NULL",
}
_CLAIM = (
    "INSERT INTO manual_claims (sender, message_id, revision, claim, at) VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (sender, message_id, revision) DO UPDATE SET claim = excluded.claim, at = excluded.at"
    " WHERE manual_claims.at < $6 RETURNING claim"
)
_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
_UNCLAIM = "DELETE FROM manual_claims WHERE sender = $1 AND message_id = $2"
_ROUTE_BY_HAND = (
    "UPDATE messages SET status = 'routed', recipients = $1, routing = $2"
    " WHERE sender = $3 AND message_id = $4 AND status <> 'rejected' RETURNING id"
)
_KEYS_PER_QUERY = 400  # bound parameters per statement are capped (SQLite, PostgreSQL alike)
K = TypeVar("K")
_Fetch = Callable[..., Awaitable[list[Any]]]  # a Dialect's or a Tx's


class SqlRecords:
    """Messages, audit trail, cases, tokens and the console's records. The package's `SqlStore` adds
    the other ports, each from its own module (search.py, history.py, retention.py, ...)."""

    def __init__(self, dialect: Dialect) -> None:
        self._d = dialect

    @classmethod
    async def sqlite(cls, path: str, checkpoint_every: float = 0.25) -> Self:
        return await cls._open(dialects.SqliteDialect(path, checkpoint_every))

    @classmethod
    async def postgres(cls, dsn: str, schema: str = "public", min_size: int = 1, max_size: int = 10) -> Self:
        return await cls._open(dialects.PostgresDialect(dsn, schema, min_size, max_size))

    @classmethod
    async def _open(cls, dialect: Dialect) -> Self:
        await dialect.connect()
        try:
            await dialect.migrate(schema.steps(dialect))
        except BaseException:
            await dialect.close()
            raise
        return cls(dialect)

    # -- messages and the audit trail ------------------------------------------------------------

    async def save_batch(self, outcomes: Sequence[Outcome]) -> list[list[AuditEvent] | None]:
        if not outcomes:
            return []
        d = self._d
        rows = [_message_row(d, o) for o in outcomes]
        firsts = _firsts(_key(r[6], r[0], r[1], r[15]) for r in rows)  # a later duplicate is not even sent

        async def tx(t: Tx) -> list[list[AuditEvent] | None]:
            returning = "id, status, sender, message_id, digest"
            returned = await t.insert("messages", _MESSAGE, [rows[i] for i in firsts.values()], returning)
            inserted = {firsts[_key(r[1], r[2], r[3], r[4])]: int(r[0]) for r in returned}
            tags = [tag for i, fk in inserted.items() for tag in _tag_rows(outcomes[i], fk, d.text)]
            if tags:
                await t.insert("message_tags", _TAGS, tags)
            marks, extra = await search.on_saved(d, t, outcomes, inserted)  # identifiers, matches, watches
            events = [(i, _marked(e, marks.get(i))) for i in sorted(inserted) for e in outcomes[i].events]
            events += extra
            chained = await _insert_events(d, t, [e for _, e in events])
            committed: dict[int, list[AuditEvent]] = {i: [] for i in inserted}  # None: nothing written
            for (i, _), event in zip(events, chained, strict=True):
                committed[i].append(event)
            return [committed.get(i) for i in range(len(outcomes))]

        return await d.write(tx)

    async def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        if not events:
            return []
        return await self._d.write(lambda t: _insert_events(self._d, t, list(events)))

    async def seen_many(self, keys: Sequence[tuple[str, str]]) -> list[bool]:
        clean = [(self._d.text(s), self._d.text(m)) for s, m in keys]
        sql = "SELECT sender, message_id FROM messages WHERE status <> 'rejected' AND"
        found = {(r[0], r[1]) for r in await _fetch_in(self._d.fetch, sql, ("sender", "message_id"), clean)}
        return [key in found for key in clean]

    async def seen_rejection(self, digest: str) -> bool:
        sql = "SELECT 1 FROM messages WHERE digest = $1 AND status = 'rejected' LIMIT 1"
        return bool(await self._d.fetch(sql, digest))

    async def originals(self, message_id: str) -> list[Original]:
        sql = "SELECT sender, message_id, recipients, reference FROM messages WHERE message_id = $1"
        rows = await self._d.fetch(sql + " AND status <> 'rejected' ORDER BY id DESC", message_id)
        return [Original(r[0], r[1], tuple(json.loads(r[2])), r[3]) for r in rows]

    async def get_message(
        self, message_id: str, sender: str | None = None, visibility: Visibility | None = None
    ) -> StoredMessage | None:
        where = _Where()
        where.add("m.message_id = {}", message_id)
        where.add("m.sender = {}", sender)
        _visible(where, visibility, "messages")
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages m {where.sql} ORDER BY m.id DESC LIMIT 1"
        rows = await self._d.fetch(sql, *where.params)
        return _stored_message(self._d, rows[0]) if rows else None

    async def list_messages(
        self, query: MessageQuery, visibility: Visibility | None = None
    ) -> list[StoredMessage]:
        """With a tag filter, the scan walks that tag's index newest first (CROSS JOIN fixes SQLite's
        loop order) and stops at the limit; without one, it walks the messages newest first."""
        q, d, where = query, self._d, _Where()
        tags = _tags(d, q)
        if tags:
            source, newest = "message_tags d CROSS JOIN messages m", "d.message_fk"
            where.conditions.append("m.id = d.message_fk")
            where.add("d.tag_kind = {}", tags[0][0])
            where.add("d.tag = {}", tags[0][1])
        else:
            source, newest = "messages m", "m.id"
        where.add(f"{newest} < {{}}", q.before_id)
        _filter_messages(where, q, visibility, tags[1:])
        limit = where.param(q.limit)
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM {source} {where.sql} ORDER BY {newest} DESC LIMIT {limit}"
        return [_stored_message(d, r) for r in await d.fetch(sql, *where.params)]

    async def audit(
        self,
        *,
        after_seq: int = 0,
        limit: int = 100,
        sender: str | None = None,
        message_id: str | None = None,
        event_type: str | None = None,
        reference: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AuditEvent]:
        where = _Where()
        where.add("seq > {}", after_seq)
        equal = {"sender": sender, "message_id": message_id, "type": event_type, "reference": reference}
        for column, value in {**equal, "actor": actor}.items():
            where.add(f"{column} = {{}}", value)
        where.add("at >= {}", since)
        where.add("at < {}", until)
        sql = f"SELECT {_names(_AUDIT)} FROM audit {where.sql} ORDER BY seq LIMIT {where.param(limit)}"
        return [AuditEvent(**_read(self._d, _AUDIT, r)) for r in await self._d.fetch(sql, *where.params)]

    async def last_seq(self) -> int:
        return int((await self._d.fetch("SELECT coalesce(max(seq), 0) FROM audit"))[0][0])

    async def tallies(self, since: datetime) -> Tallies:
        rows = await self._d.fetch(
            "SELECT t.tag_kind, t.tag, count(*) FROM messages m JOIN message_tags t ON t.message_fk = m.id"
            " WHERE m.received_at >= $1 AND m.status <> 'rejected' AND t.tag_kind IN ('crime_type', 'country')"
            " GROUP BY t.tag_kind, t.tag",
            since,
        )
        sql = "SELECT count(*) FROM messages WHERE received_at >= $1 AND status <> 'rejected'"
        return Tallies(
            since=since,
            total=int((await self._d.fetch(sql, since))[0][0]),
            crime_types={r[1]: int(r[2]) for r in rows if r[0] == "crime_type"},
            countries={r[1]: int(r[2]) for r in rows if r[0] == "country"},
        )

    # -- cases -----------------------------------------------------------------------------------

    async def open_case(self, case: Case, events: Sequence[AuditEvent]) -> tuple[Case, bool]:
        async def tx(t: Tx) -> tuple[Case, bool]:
            result = (await _open_cases(self._d, t, [case]))[0]
            if isinstance(result, ReferenceTaken):
                raise result  # nothing was written
            opened, new = result
            if new:
                named = [e.model_copy(update={"reference": opened.reference}) for e in events]
                await _insert_events(self._d, t, named)
            return opened, new

        # The audit chain's lock when there are events; the case row alone needs none (unique keys).
        return await self._d.write(tx, serial=bool(events))

    async def open_cases(self, cases: Sequence[Case]) -> list[tuple[Case, bool] | ReferenceTaken]:
        if not cases:
            return []
        return await self._d.write(lambda t: _open_cases(self._d, t, list(cases)), serial=False)

    async def get_case(self, reference: str) -> Case | None:
        rows = await self._d.fetch(f"SELECT {_CASE_COLUMNS} FROM cases WHERE reference = $1", reference)
        return _case(self._d, rows[0]) if rows else None

    async def update_case(
        self, case: Case, expected_version: int, events: Sequence[AuditEvent], reset_alerts: bool = False
    ) -> list[AuditEvent] | None:
        reset = ", warning_raised_at = NULL, overdue_raised_at = NULL" if reset_alerts else ""

        async def tx(t: Tx) -> list[AuditEvent] | None:
            if not await _write_case(self._d, t, case, expected_version, reset):
                return None
            return await _insert_events(self._d, t, list(events))

        return await self._d.write(tx)

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
        _visible(where, visibility, "cases")
        if open_only:
            where.conditions.append(f"state IN ({_OPEN})")
        where.add("opened_at >= {}", since)
        where.add("opened_at < {}", until)
        if before is not None:
            at, ref = where.param(before.opened_at), where.param(before.reference)
            where.conditions.append(f"(opened_at, reference) < ({at}, {ref})")
        sql = f"SELECT {_CASE_COLUMNS} FROM cases {where.sql} ORDER BY opened_at DESC, reference DESC"
        sql += f" LIMIT {where.param(limit)}"
        return [_case(self._d, r) for r in await self._d.fetch(sql, *where.params)]

    async def due_alerts(self, now: datetime) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for alert, condition in _ALERT_DUE.items():
            sql = f"SELECT reference FROM cases WHERE {condition} ORDER BY reference"
            out += [(r[0], alert) for r in await self._d.fetch(sql, now)]
        return out

    async def raise_alert(
        self, reference: str, alert: str, now: datetime, event: AuditEvent
    ) -> AuditEvent | None:
        also = ", warning_raised_at = coalesce(warning_raised_at, $1)" if alert == "overdue" else ""
        sql = f"UPDATE cases SET {alert}_raised_at = $1{also} WHERE reference = $2 AND {_ALERT_DUE[alert]}"

        async def tx(t: Tx) -> AuditEvent | None:
            if len(await t.fetch(sql + " RETURNING reference", now, reference)) != 1:
                return None
            return (await _insert_events(self._d, t, [event]))[0]

        return await self._d.write(tx)

    # -- tokens ----------------------------------------------------------------------------------

    async def add_token(self, token: TokenRecord, event: AuditEvent) -> None:
        async def tx(t: Tx) -> None:
            await t.insert("tokens", _TOKEN, [_values(self._d, _TOKEN, token)])
            await _insert_events(self._d, t, [event])

        await self._d.write(tx)

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        rows = await self._d.fetch(f"SELECT {_names(_TOKEN)} FROM tokens WHERE hash = $1", token_hash)
        return TokenRecord(**_read(self._d, _TOKEN, rows[0])) if rows else None

    async def tokens(self) -> list[TokenRecord]:
        rows = await self._d.fetch(f"SELECT {_names(_TOKEN)} FROM tokens ORDER BY created_at DESC, id")
        return [TokenRecord(**_read(self._d, _TOKEN, r)) for r in rows]

    async def revoke_token(self, token_id: str, at: datetime, event: AuditEvent) -> TokenRecord | None:
        ended = await _end(self._d, "tokens", _TOKEN, token_id, {"revoked_at": at}, event)
        return None if ended is None else TokenRecord(**ended)

    # -- the operator console ----------------------------------------------------------------------

    async def apply_manual(self, decision: ManualRouting) -> list[AuditEvent] | None:
        dec, d = decision, self._d

        async def tx(t: Tx) -> list[AuditEvent] | None:
            row = _values(d, _MANUAL, dec, recipients=_json(dec.routing.recipients, d))
            if not await t.insert("manual_routes", _MANUAL, [row], returning="revision"):
                return None
            routed = (_json(dec.recipients, d), _json(dec.routing, d), dec.sender, dec.message_id)
            rows = await t.fetch(_ROUTE_BY_HAND, *routed)
            if not rows:
                raise LookupError(f"no accepted message {dec.sender}/{dec.message_id}")
            if dec.recipients:
                tags = [("recipient", d.text(r), int(rows[0][0])) for r in dec.recipients]
                await t.insert("message_tags", _TAGS, tags, returning="message_fk")
            if dec.case is not None and not await _write_case(d, t, dec.case, dec.case.version):
                raise _CaseChanged  # rolls the decision back: nothing of it is written
            await t.fetch(_UNCLAIM, dec.sender, dec.message_id)
            return await _insert_events(d, t, list(dec.events))

        try:
            return await d.write(tx)
        except _CaseChanged:
            return None

    async def manual_routings(self, sender: str, message_id: str) -> list[ManualRecord]:
        read = _MANUAL[2:]  # the caller names the message
        sql = f"SELECT {_names(read)} FROM manual_routes WHERE sender = $1 AND message_id = $2 ORDER BY revision"
        return [ManualRecord(**_read(self._d, read, r)) for r in await self._d.fetch(sql, sender, message_id)]

    async def claim_manual(
        self, sender: str, message_id: str, revision: int, claim: str, now: datetime, stale_s: float
    ) -> bool:
        stale = now - timedelta(seconds=stale_s)
        params = (sender, message_id, revision, claim, now, stale)
        return bool(await self._d.write(lambda t: t.fetch(_CLAIM, *params), serial=False))

    async def release_manual(self, sender: str, message_id: str, revision: int, claim: str) -> None:
        sql = _UNCLAIM + " AND revision = $3 AND claim = $4"
        await self._d.write(lambda t: t.fetch(sql, sender, message_id, revision, claim), serial=False)

    async def add_note(self, note: Note, event: AuditEvent) -> tuple[Note, list[AuditEvent]]:
        d = self._d

        async def tx(t: Tx) -> tuple[Note, list[AuditEvent]]:
            row = _values(d, _NOTE[1:], note, refs=_json(note.references, d))
            note_id = int((await t.insert("notes", _NOTE[1:], [row], returning="id"))[0][0])
            details = {**event.details, "note_id": note_id}
            events = await _insert_events(d, t, [event.model_copy(update={"details": details})])
            return note.model_copy(update={"id": note_id}), events

        return await d.write(tx)

    async def notes(self, limit: int = 50, before_id: int | None = None) -> list[Note]:
        sql = f"SELECT {_names(_NOTE)} FROM notes WHERE id < $1 ORDER BY id DESC LIMIT $2"
        rows = await self._d.fetch(sql, before_id if before_id is not None else 2**63 - 1, limit)
        return [_note(self._d, r) for r in rows]

    # -- operations: the gauges of /metrics (issue 18) ------------------------------------------------

    async def ops_counts(self, now: datetime) -> OpsCounts:
        """Each count runs on an index (cases_state, messages_status, the audit primary key)."""
        priority = self._d.json_text("data", "priority")
        sql = f"""
SELECT 'state:' || state, count(*) FROM cases WHERE state IN ({_OPEN}) GROUP BY state
UNION ALL SELECT 'ack_overdue:' || {priority}, count(*) FROM cases
    WHERE state IN ({_ACK_OPEN}) AND ack_due_at <= $1 GROUP BY {priority}
UNION ALL SELECT 'answer_overdue:' || {priority}, count(*) FROM cases
    WHERE state IN ({_OPEN}) AND due_at <= $1 GROUP BY {priority}
UNION ALL SELECT 'warnings_pending', count(*) FROM cases WHERE state IN ({_OPEN}) AND warn_at <= $1 AND due_at > $1
UNION ALL SELECT 'triage_backlog', count(*) FROM messages WHERE status = 'triage'
UNION ALL SELECT 'audit_head_seq', coalesce(max(seq), 0) FROM audit
"""
        return OpsCounts.of_rows((r[0], r[1]) for r in await self._d.fetch(sql, now))

    async def ping(self) -> None:
        await self._d.ping()

    async def close(self) -> None:
        await self._d.close()


class _CaseChanged(Exception):
    """Inside a write transaction: the case was changed by another writer (the transaction is undone)."""


class _Where:
    """A WHERE clause with numbered parameters: add("sender = {}", value) → "sender = $1"."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def params_for(self, values: Iterable[Any]) -> str:
        return ", ".join(self.param(v) for v in values)

    def add(self, condition: str, value: Any) -> None:
        """The condition on `value`; none when `value` is None (no filter)."""
        if value is not None:
            self.conditions.append(condition.format(self.param(value)))

    @property
    def sql(self) -> str:
        return "WHERE " + " AND ".join(self.conditions) if self.conditions else ""


# Need-to-know, per table: (sent or requested by one of the senders, to one of the recipients), `{}`
# their parameters. case_recipients is kept by triggers from each case's data, whoever writes it.
_NEED_TO_KNOW = {
    "messages": (
        "m.sender IN ({})",
        "EXISTS (SELECT 1 FROM message_tags v WHERE v.tag_kind = 'recipient' AND v.tag IN ({})"
        " AND v.message_fk = m.id)",
    ),
    "cases": (
        "sender IN ({})",
        "reference IN (SELECT r.reference FROM case_recipients r WHERE r.recipient IN ({}))",
    ),
    # The search index by its message id `{key}`: the same rule as sets of ids, each read once from
    # its index and probed per match (a join per match read every matching message's row: the
    # search's slowest part). The index holds no rejected message.
    "message_search": (
        "{key} IN (SELECT id FROM messages WHERE sender IN ({}))",
        "{key} IN (SELECT message_fk FROM message_tags WHERE tag_kind = 'recipient' AND tag IN ({}))",
    ),
}


def _tags(d: Dialect, q: MessageQuery | SearchQuery) -> list[tuple[str, str]]:
    tags = (("crime_type", q.crime_type), ("country", q.country), ("recipient", q.recipient))
    return [(kind, d.text(tag)) for kind, tag in tags if tag]


def _filter_messages(
    where: _Where, q: MessageQuery | SearchQuery, visibility: Visibility | None, tags: list[tuple[str, str]]
) -> None:
    """The query's filters on messages `m`, with `tags` (those not already joined) and need-to-know."""
    for kind, tag in tags:
        where.conditions.append(
            "EXISTS (SELECT 1 FROM message_tags t WHERE t.tag_kind = "
            f"{where.param(kind)} AND t.tag = {where.param(tag)} AND t.message_fk = m.id)"
        )
    where.add("m.status = {}", None if q.status is None else q.status.value)
    where.add("m.sender = {}", q.sender)
    where.add("m.received_at >= {}", q.since)
    where.add("m.received_at < {}", q.until)
    _visible(where, visibility, "messages")


def _visible(where: _Where, v: Visibility | None, table: str, key: str = "") -> None:
    if v is None:  # the caller sees everything
        return
    either = [
        rule.replace("{key}", key).format(where.params_for(sorted(parties))) if parties else "1 = 0"
        for rule, parties in zip(_NEED_TO_KNOW[table], (v.senders, v.recipients), strict=True)
    ]
    if table == "messages":
        where.conditions.append("m.status <> 'rejected'")  # a rejected message is nobody's
    where.conditions.append(f"({' OR '.join(either)})")


# -- inside a write transaction ----------------------------------------------------------------------


async def _insert_events(d: Dialect, t: Tx, events: list[AuditEvent]) -> list[AuditEvent]:
    """Insert events after the last one, each chained to its predecessor; the caller holds the writer
    lock, so the chain is serial across instances. Returns the events as stored."""
    if not events:
        return []
    seqs = await t.next_seqs(len(events))
    last = await t.fetch("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")
    prev = (last[0][0] if last else None) or GENESIS
    rows, stored = [], []
    for seq, e in zip(seqs, events, strict=True):
        row = _values(d, _AUDIT, e, seq=seq, prev_hash=prev, hash=None)
        event = AuditEvent(**_read(d, _AUDIT, row))  # as it will read back: the hash covers what is stored
        prev = event_hash(prev, event)
        rows.append((*row[:-1], prev))
        stored.append(event.model_copy(update={"hash": prev}))
    await t.insert("audit", _AUDIT, rows)
    return stored


async def _write_case(d: Dialect, t: Tx, case: Case, expected_version: int, also: str = "") -> bool:
    sql = (
        "UPDATE cases SET state = $1, version = version + 1, ack_due_at = $2, warn_at = $3, due_at = $4,"
        f" data = $5{also} WHERE reference = $6 AND version = $7 RETURNING reference"
    )
    values = (case.state.value, case.ack_due_at, case.warn_at, case.due_at, _case_data(case, d))
    return len(await t.fetch(sql, *values, case.reference, expected_version)) == 1


async def _end(
    d: Dialect, table: str, columns: Columns, key: Any, changes: dict[str, Any], event: AuditEvent
) -> dict[str, Any] | None:
    """Row `key` of `table` ended (`changes`, whose first column is still null until then), `event`
    recorded only if this call ended it: the row as it stands after, or None when there is none."""
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=2))
    values = [_value(d, dict(columns)[c], v) for c, v in changes.items()]

    async def tx(t: Tx) -> dict[str, Any] | None:
        sql = f"UPDATE {table} SET {sets} WHERE id = $1 AND {next(iter(changes))} IS NULL RETURNING id"
        if await t.fetch(sql, key, *values):
            await _insert_events(d, t, [event])
        rows = await t.fetch(f"SELECT {_names(columns)} FROM {table} WHERE id = $1", key)
        return _read(d, columns, rows[0]) if rows else None

    return await d.write(tx)


async def _open_cases(d: Dialect, t: Tx, cases: list[Case]) -> list[tuple[Case, bool] | ReferenceTaken]:
    """Open cases in the caller's transaction, a constant number of statements per round whatever the
    batch size. Decided in batch order as one `open_case` after another would; inserted with ON CONFLICT
    DO NOTHING in (sender, message_id) order (the same lock order in every instance): a case another
    instance inserted meanwhile (or a reference generated meanwhile) is not written twice but looked up
    (or drawn) again in the next round."""
    keys = [(d.text(c.sender), d.text(c.message_id)) for c in cases]
    first = _firsts(keys)
    results: list[tuple[Case, bool] | ReferenceTaken | None] = [None] * len(cases)
    pending = sorted(first.values())
    for _ in range(5):
        if not pending:
            break
        found = await _cases_where(d, t, ("sender", "message_id"), sorted({keys[i] for i in pending}))
        explicit = sorted(
            {cases[i].reference for i in pending if cases[i].reference and keys[i] not in found}
        )
        taken = await _cases_where(d, t, "reference", [d.text(r) for r in explicit]) if explicit else {}
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
            numbered = await _with_references(t, [cases[i] for i in generate], avoid=set(taken))
            inserts += zip(generate, numbered, strict=True)
        inserts.sort(key=lambda ic: keys[ic[0]])
        rows = [_values(d, _CASE, c, data=_case_data(c, d)) for _, c in inserts]
        returned = await t.insert("cases", _CASE, rows, "sender, message_id") if rows else []
        inserted = {(r[0], r[1]) for r in returned}
        for i, case in inserts:
            if keys[i] in inserted:
                results[i] = (case, True)
        pending = sorted(i for i, _ in inserts if keys[i] not in inserted)
    if pending:
        raise TransientError(f"{d.name}: cases kept conflicting with concurrent writers")
    out: list[tuple[Case, bool] | ReferenceTaken] = []
    for i, k in enumerate(keys):
        r = results[i] if results[i] is not None else results[first[k]]  # the same request twice
        assert r is not None
        out.append(r if i == first[k] or isinstance(r, ReferenceTaken) else (r[0], False))
    return out


async def _with_references(t: Tx, cases: list[Case], avoid: set[str]) -> list[Case]:
    """The cases with generated references, none already used (one query per draw)."""
    out, used, todo = list(cases), set(avoid), list(range(len(cases)))
    while todo:
        drawn = {j: new_reference(cases[j].opened_at.astimezone(UTC).year) for j in todo}
        sql = f"SELECT reference FROM cases WHERE reference IN ({_in(drawn)})"
        used |= {r[0] for r in await t.fetch(sql, *drawn.values())}
        todo = []
        for j, ref in drawn.items():
            if ref in used:
                todo.append(j)
            else:
                used.add(ref)  # two alike in one batch: the second draws again
                out[j] = cases[j].model_copy(update={"reference": ref})
    return out


async def _cases_where(d: Dialect, t: Tx, on: str | tuple[str, str], values: list[Any]) -> dict[Any, Case]:
    """{key: case} for the cases whose `on` (`reference`, or `(sender, message_id)`) is one of `values`."""
    column, width = (on, 1) if isinstance(on, str) else (", ".join(on), 2)
    rows = await _fetch_in(t.fetch, f"SELECT {column}, {_CASE_COLUMNS} FROM cases WHERE", on, values)
    return {r[0] if width == 1 else (r[0], r[1]): _case(d, r, width) for r in rows}


def _in(values: Sized, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + len(values)))


async def _fetch_in(
    fetch: _Fetch, sql: str, on: str | tuple[str, str], keys: Sequence[Any], tail: str = ""
) -> list[Any]:
    """The rows of `sql` (it ends with WHERE or AND) whose column `on` is one of `keys`, a chunk of
    keys per query; `tail` (a GROUP BY) follows. With two columns `a, b` (a composite index) the keys
    are pairs, each row starts with its pair, and the condition is `a IN (…) AND b IN (…)`, which both
    engines answer from the index (not `(a, b) IN ((…), …)`: SQLite 3.40 scans the whole table for
    it); it may hold for mixed pairs too, whose rows are left out here."""
    rows: list[Any] = []
    for i in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[i : i + _KEYS_PER_QUERY]
        if isinstance(on, str):
            rows += await fetch(f"{sql} {on} IN ({_in(chunk)}){tail}", *chunk)
        else:
            a, b = sorted({k[0] for k in chunk}), sorted({k[1] for k in chunk})
            where = f"{on[0]} IN ({_in(a)}) AND {on[1]} IN ({_in(b, len(a) + 1)})"
            rows += await fetch(f"{sql} {where}{tail}", *a, *b)
    wanted = set(keys)
    return rows if isinstance(on, str) else [r for r in rows if (r[0], r[1]) in wanted]


# -- rows --------------------------------------------------------------------------------------------


def _json(value: Any, d: Dialect) -> str:
    """Compact JSON text (pydantic-core: fast); NaN and infinities as null. NUL characters, which
    PostgreSQL's jsonb refuses, become U+FFFD there (each `\\u0000` after an even run of backslashes)."""
    text = to_json(value, inf_nan_mode="null", fallback=str).decode()
    return _NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text and d.text("\x00") != "\x00" else text


def _raw_envelope(raw: bytes, d: Dialect) -> str | None:
    """The rejected input as a JSON object, when it is one (for display); None otherwise."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse)  # NaN: not JSON
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # lone surrogates ("\\ud800") are not text
    except (ValueError, RecursionError):
        return None
    # too deep to serialise for display: kept as raw bytes only
    return _json(data, d) if isinstance(data, dict) and not too_deep(data) else None


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _message_row(d: Dialect, outcome: Outcome) -> tuple[Any, ...]:
    if isinstance(outcome, Accepted):
        env, routing = outcome.envelope, outcome.routing
        fields = {
            c: getattr(env, c) for c in ("sender", "message_id", "kind", "priority", "reference", "subject")
        }
        fields |= {c: getattr(routing, c) for c in ("crime_types", "countries", "recipients")}
        fields |= {"status": outcome.status, "envelope": env, "routing": routing}
        return _values(d, _MESSAGE, fields, received_at=d.ts(outcome.received_at))
    r = outcome.rejection
    fields = {"sender": r.sender, "message_id": r.message_id, "error": r.reason, "raw": outcome.raw}
    fields |= {"status": Status.REJECTED, "crime_types": [], "countries": [], "recipients": []}
    fields |= {"received_at": outcome.received_at, "digest": outcome.digest}
    return _values(d, _MESSAGE, fields, envelope=_raw_envelope(outcome.raw, d))


def _marked(event: AuditEvent, mark: dict[str, Any] | None) -> AuditEvent:
    """A message's final-state event (routed, triaged) with its cross-matching mark, for the feed."""
    if not mark or event.type not in ("routed", "triaged"):
        return event
    return event.model_copy(update={"details": {**event.details, **mark}})


def _key(
    status: str, sender: str | None, message_id: str | None, digest: str | None
) -> tuple[str | None, ...]:
    """What makes a row a duplicate: the digest of a rejection, the (sender, message_id) otherwise."""
    return ("rejected", digest) if status == Status.REJECTED else ("accepted", sender, message_id)


def _firsts(keys: Iterable[K]) -> dict[K, int]:
    firsts: dict[K, int] = {}
    for i, k in enumerate(keys):
        firsts.setdefault(k, i)
    return firsts


def _tag_rows(outcome: Outcome, message_fk: int, text: Any) -> list[tuple[str, str, int]]:
    if isinstance(outcome, Rejected):
        return []
    r = outcome.routing
    by_kind = (("crime_type", r.crime_types), ("country", r.countries), ("recipient", r.recipients))
    return [(kind, tag, message_fk) for kind, tag in sorted({(k, text(t)) for k, ts in by_kind for t in ts})]


def _value(d: Dialect, kind: str, v: Any) -> Any:
    """A value as the engine takes it, by its column's kind."""
    if v is None:
        return None
    if kind == TS:
        return d.ts(v)
    if kind == JSON:
        return _json(v, d)
    if isinstance(v, Enum):
        return v.value
    return d.text(v) if isinstance(v, str) else v


def _values(d: Dialect, columns: Columns, source: Any, **given: Any) -> tuple[Any, ...]:
    """A row of `columns`: the `given` values as they are, the others read from `source` (its
    attributes, or its keys: None when missing) and made ready by `_value`."""
    read = source.get if isinstance(source, dict) else source.__getattribute__
    return tuple([given[c] if c in given else _value(d, kind, read(c)) for c, kind in columns])


def _read(d: Dialect, columns: Columns, r: Any) -> dict[str, Any]:
    return {
        name: v if v is None else d.at(v) if kind == TS else json.loads(v) if kind == JSON else v
        for (name, kind), v in zip(columns, r, strict=True)
    }


def _note(d: Dialect, r: Any) -> Note:
    fields = _read(d, _NOTE, r)
    fields["references"] = fields.pop("refs")
    return Note(**fields)


def _stored_message(d: Dialect, r: Any) -> StoredMessage:
    fields = _read(d, _MESSAGE_READ, r)
    return StoredMessage(**fields, handling=handling_of(fields["envelope"]))


def _case_data(case: Case, d: Dialect) -> str:
    if d.name == "sqlite":  # the common case, and the fast path
        return case.model_dump_json(exclude={"version", *_FLAGS})
    return _json(case.model_dump(mode="json", exclude={"version", *_FLAGS}), d)


def _case(d: Dialect, r: Any, offset: int = 0) -> Case:
    flags = {f: None if r[i] is None else d.at(r[i]) for i, f in enumerate(_FLAGS, start=offset + 2)}
    return Case.model_validate_json(r[offset]).model_copy(update={"version": r[offset + 1], **flags})


# Last: search.py builds on the helpers above (the need-to-know builder, the row readers).
from watchcentre.adapters.sql import search  # noqa: E402
