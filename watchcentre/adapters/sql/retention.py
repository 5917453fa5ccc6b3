"""The purge (config/retention.yaml, docs/data-protection.md), for both engines.

One pass is one serial write transaction: it marks what is past its limit (`purged_at`), erases the
text of what it marked from every table (`ERASE_WITH_MESSAGE`, the one list of what a message's
erasure touches), and appends its audit records (what rule, how many, which ids) in the same
transaction. The audit records themselves are never touched: they carry no purgeable text. Then the
erased bytes are made to leave the database files: SQLite overwrites freed space (`secure_delete`)
and truncates its write-ahead log; PostgreSQL vacuums the tables the pass changed. Two instances
running a pass at once take turns on the writer lock; the second finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from watchcentre.adapters.sql.dialects import Dialect, Tx
from watchcentre.adapters.sql.store import _insert_events
from watchcentre.core.lifecycle import TERMINAL
from watchcentre.core.records import SYSTEM_ACTOR, AuditEvent
from watchcentre.core.retention import (
    CATEGORIES,
    COMBINATIONS,
    Limit,
    PurgeCount,
    PurgeReport,
    RetentionRules,
    purge_events,
    rule_text,
)

log = structlog.get_logger("watchcentre.retention")

TRUNCATE_ATTEMPTS = 200
HORIZON_WAIT_S = 120.0
CHUNK = 5000
"""Messages erased per transaction: the writer lock (the intake waits on it) is held a second or two
at a time, however large the first pass after enabling retention."""

_ENDED = ", ".join(f"'{s.value}'" for s in sorted(TERMINAL))

# What differs per engine: JSON surgery, and the JSON arrays of a note.
_SQL = {
    "sqlite": {
        "envelope": "json_remove(envelope, '$.subject', '$.body', '$.reason')",
        "routing": "json_set(routing, '$.explanation', json('[]'))",
        "case_data": "json_set(data, '$.subject', '', '$.extension_reason', NULL, '$.reason', NULL,"
        " '$.texts', json('{}'), '$.purged_at', $1)",
        "closed_before": "julianday(json_extract(data, '$.closed_at')) < julianday($2)",
        "elements": "SELECT j.value FROM json_each(notes.{column}) j",
    },
    "postgres": {
        "envelope": "envelope - ARRAY['subject', 'body', 'reason']",
        "routing": "jsonb_set(routing, '{explanation}', '[]'::jsonb)",
        "case_data": "data || jsonb_build_object('subject', '', 'extension_reason', NULL::text,"
        " 'reason', NULL::text, 'texts', '{}'::jsonb, 'purged_at', $1::timestamptz)",
        "closed_before": "(data ->> 'closed_at')::timestamptz < $2",
        "elements": "SELECT jsonb_array_elements_text(notes.{column})",
    },
}

# What erasing a message erases, in every table, for the messages marked with `purged_at = $1` in
# this pass. ONE list: a table that keeps a message's text (a search index, an identifier table)
# adds its statement here. Each statement takes `$1` (the pass's time) and nothing else.
ERASE_WITH_MESSAGE: list[tuple[str, str]] = [
    (
        "messages",
        "UPDATE messages SET subject = NULL, raw = NULL,"
        " envelope = CASE WHEN status = 'rejected' THEN NULL ELSE {envelope} END,"
        " routing = CASE WHEN routing IS NULL THEN NULL ELSE {routing} END"
        " WHERE purged_at = $1",
    ),
    (
        "manual_routes",  # the operator's reason may quote the message
        "UPDATE manual_routes SET reason = '' WHERE reason <> '' AND EXISTS (SELECT 1 FROM messages m"
        " WHERE m.sender = manual_routes.sender AND m.message_id = manual_routes.message_id"
        " AND m.status <> 'rejected' AND m.purged_at = $1)",
    ),
    (
        "cases",  # the case of a purged request (it has ended: an open case keeps its messages)
        "UPDATE cases SET data = {case_data}, purged_at = $1 WHERE purged_at IS NULL AND EXISTS"
        " (SELECT 1 FROM messages m WHERE m.sender = cases.sender AND m.message_id = cases.message_id"
        " AND m.status <> 'rejected' AND m.purged_at = $1)",
    ),
    (
        "notes",  # a shift-log note that names a purged message or case
        "UPDATE notes SET text = '', purged_at = $1 WHERE purged_at IS NULL AND ("
        " EXISTS (SELECT 1 FROM messages m WHERE m.purged_at = $1 AND m.message_id IN ({message_ids}))"
        " OR EXISTS (SELECT 1 FROM cases c WHERE c.purged_at = $1 AND c.reference IN ({refs})))",
    ),
    (
        "labels",  # an operator's correction: its reason may quote the message
        "UPDATE labels SET reason = '' WHERE reason <> '' AND EXISTS (SELECT 1 FROM messages m"
        " WHERE m.sender = labels.sender AND m.message_id = labels.message_id"
        " AND m.status <> 'rejected' AND m.purged_at = $1)",
    ),
    (
        # phone numbers, passports, IBANs found in the text (the search index follows the text
        # through its own triggers: schema step 6)
        "message_identifiers",
        "DELETE FROM message_identifiers WHERE message_fk IN (SELECT id FROM messages WHERE purged_at = $1)",
    ),
    (
        "watch_hits",
        "DELETE FROM watch_hits WHERE message_fk IN (SELECT id FROM messages WHERE purged_at = $1)",
    ),
]

# Tables whose rows the purge may rewrite: vacuumed after a pass on PostgreSQL. The search index
# follows the blanked text through its trigger, leaving the old lexemes in dead row versions.
_TABLES = (*dict.fromkeys(table for table, _ in ERASE_WITH_MESSAGE), "tokens", "message_search")


def _erasures(d: Dialect) -> list[str]:
    sql = _SQL[d.name]
    fill = {
        "envelope": sql["envelope"],
        "routing": sql["routing"],
        "case_data": sql["case_data"],
        "message_ids": sql["elements"].format(column="message_ids"),
        "refs": sql["elements"].format(column="refs"),
    }
    return [statement.format(**fill) for _, statement in ERASE_WITH_MESSAGE]


def _message_groups(rules: RetentionRules) -> list[tuple[Limit, list[tuple[str | None, str]]]]:
    """The (kind, status) combinations that share each limit, in rule order."""
    groups: dict[int, tuple[Limit, list[tuple[str | None, str]]]] = {}
    limits = rules.message_limits()
    for combo in COMBINATIONS:
        limit = limits[combo]
        groups.setdefault(id(limit), (limit, []))[1].append(combo)
    return list(groups.values())


def _combo_sql(combos: Sequence[tuple[str | None, str]]) -> str:
    # Our own enum values, never input: written into the SQL.
    terms = [f"(kind {'IS NULL' if k is None else f'= {_lit(k)}'} AND status = {_lit(s)})" for k, s in combos]
    return "(" + " OR ".join(terms) + ")"


def _lit(value: str) -> str:
    assert value.replace("_", "").isalnum()
    return f"'{value}'"


# A message attached to a case still open is kept until the case ends: the request itself, and
# whatever names the case by its reference.
_NOT_OF_OPEN_CASE = (
    f"NOT EXISTS (SELECT 1 FROM cases c WHERE c.reference = messages.reference AND c.state NOT IN ({_ENDED}))"
    " AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.sender = messages.sender"
    f" AND c.message_id = messages.message_id AND c.state NOT IN ({_ENDED}))"
)


def _message_id(row: Sequence[object]) -> str:
    """`sender/message_id`, or `#<row id>` for a rejected input that named no sender."""
    return f"{row[1]}/{row[2]}" if row[1] is not None and row[2] is not None else f"#{row[0]}"


async def scrub_files(d: Dialect, committed_at: datetime | None = None) -> None:
    """Make the erased text leave the files: old copies are still on disk after COMMIT. SQLite:
    secure_delete zeroed what the purge freed, but a page split long ago leaves its old cells in the
    unused part of a page, and the WAL holds pages as they were; so VACUUM rebuilds the file, and a
    TRUNCATE checkpoint copies it in and empties the WAL. PostgreSQL: VACUUM FULL rewrites each table
    without its dead row versions (a plain VACUUM marks them free but leaves their bytes); it must
    keep a version some open transaction may still see, so it waits (up to HORIZON_WAIT_S) for every
    transaction begun before the purge's commit (`committed_at`) to end: a backup's, a report's."""
    if d.name == "sqlite":
        await d.fetch("VACUUM")
        for _ in range(TRUNCATE_ATTEMPTS):  # busy while another checkpoint (the service's) runs
            busy, _, _ = (await d.fetch("PRAGMA wal_checkpoint(TRUNCATE)"))[0]
            if not busy:
                return
            await asyncio.sleep(0.05)
        log.warning("retention_checkpoint_busy", attempts=TRUNCATE_ATTEMPTS)
        return
    if committed_at is not None:
        await _wait_for_older_transactions(d, committed_at)
    for table in _TABLES:
        await d.fetch(f"VACUUM (FULL) {table}")


async def _wait_for_older_transactions(d: Dialect, committed_at: datetime) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HORIZON_WAIT_S
    while True:
        rows = await d.fetch(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND xact_start < $1",
            committed_at,
        )
        if int(rows[0][0]) == 0:
            return
        if loop.time() > deadline:  # erased from the tables; the files at the next pass that erases
            log.warning("retention_old_transactions", waited_s=HORIZON_WAIT_S, open=int(rows[0][0]))
            return
        await asyncio.sleep(0.2)


def _add(a: dict[str, PurgeCount], b: dict[str, PurgeCount]) -> dict[str, PurgeCount]:
    out = dict(a)
    for category, n in b.items():
        m = out.get(category, PurgeCount())
        out[category] = PurgeCount(m.erased + n.erased, m.review_due + n.review_due, [*m.ids, *n.ids])
    return out


def _flat(report: PurgeReport) -> dict[str, int]:
    return {f"{c}_{k}": v for c, kv in report.summary().items() for k, v in kv.items()}


async def _pass(
    d: Dialect, t: Tx, rules: RetentionRules, now: datetime, when: datetime, dry_run: bool, budget: int
) -> tuple[dict[str, PurgeCount], bool]:
    """One transaction of a pass: at most `budget` messages erased; True when more may be left
    (then only messages were looked at: the other categories come in the last transaction)."""
    at = d.ts(when)
    counts: dict[str, PurgeCount] = {}

    # Messages, by the limit of their (kind, status).
    erased, review = 0, 0
    ids: list[str] = []
    groups = _message_groups(rules)
    for limit, combos in groups:
        where = f"purged_at IS NULL AND received_at < $1 AND {_combo_sql(combos)} AND {_NOT_OF_OPEN_CASE}"
        cutoff = d.ts(now - limit.span)
        if not limit.erases:
            continue
        if dry_run:
            erased += int((await t.fetch(f"SELECT count(*) FROM messages WHERE {where}", cutoff))[0][0])
            continue
        if erased >= budget:
            break
        rows = await t.fetch(
            f"UPDATE messages SET purged_at = $2 WHERE id IN (SELECT id FROM messages WHERE {where} LIMIT $3)"
            " RETURNING id, sender, message_id",
            cutoff,
            at,
            budget - erased,
        )
        erased += len(rows)
        ids += sorted(_message_id(r) for r in rows)
    more = not dry_run and erased >= budget
    if not more:
        for limit, combos in groups:
            if not limit.erases:
                where = (
                    f"purged_at IS NULL AND received_at < $1 AND {_combo_sql(combos)} AND {_NOT_OF_OPEN_CASE}"
                )
                cutoff = d.ts(now - limit.span)
                review += int((await t.fetch(f"SELECT count(*) FROM messages WHERE {where}", cutoff))[0][0])
    counts["messages"] = PurgeCount(erased=erased, review_due=review, ids=ids)

    cases_before = len(await t.fetch("SELECT reference FROM cases WHERE purged_at = $1", at))
    notes_before = len(await t.fetch("SELECT id FROM notes WHERE purged_at = $1", at))
    if not dry_run and erased:
        for statement in _erasures(d):
            await t.fetch(statement, at)
    if more:  # the cases and notes erased with these messages (the last transaction counts its own)
        for category, table, key in (("cases", "cases", "reference"), ("notes", "notes", "id")):
            rows = await t.fetch(f"SELECT {key} FROM {table} WHERE purged_at = $1 ORDER BY {key}", at)
            counts[category] = PurgeCount(erased=len(rows), ids=[str(r[0]) for r in rows])
        return counts, True

    # Cases, from the day they ended.
    sql = _SQL[d.name]
    limit = rules.cases_after_end
    where = f"purged_at IS NULL AND state IN ({_ENDED}) AND {sql['closed_before']}"
    if dry_run or not limit.erases:
        count_sql = f"SELECT count(*) FROM cases WHERE {where.replace('$2', '$1')}"
        n = int((await t.fetch(count_sql, d.ts(now - limit.span)))[0][0])
        counts["cases"] = PurgeCount(erased=n if limit.erases else 0, review_due=0 if limit.erases else n)
    else:
        await t.fetch(
            f"UPDATE cases SET data = {sql['case_data']}, purged_at = $1 WHERE {where}",
            at,
            d.ts(now - limit.span),
        )
        refs = await t.fetch("SELECT reference FROM cases WHERE purged_at = $1 ORDER BY reference", at)
        counts["cases"] = PurgeCount(erased=len(refs) - cases_before, ids=[r[0] for r in refs])

    # Shift-log notes, from when they were written.
    limit = rules.notes
    if dry_run or not limit.erases:
        n = int(
            (
                await t.fetch(
                    "SELECT count(*) FROM notes WHERE purged_at IS NULL AND at < $1", d.ts(now - limit.span)
                )
            )[0][0]
        )
        counts["notes"] = PurgeCount(erased=n if limit.erases else 0, review_due=0 if limit.erases else n)
    else:
        await t.fetch(
            "UPDATE notes SET text = '', purged_at = $1 WHERE purged_at IS NULL AND at < $2",
            at,
            d.ts(now - limit.span),
        )
        rows = await t.fetch("SELECT id FROM notes WHERE purged_at = $1 ORDER BY id", at)
        counts["notes"] = PurgeCount(erased=len(rows) - notes_before, ids=[str(r[0]) for r in rows])

    # The raw bytes of rejected inputs, kept to diagnose and re-inject; tokens: the record (the
    # holder's name) once expired or revoked long enough.
    for category, table, erase, where, label in (
        (
            "raw_envelopes",
            "messages",
            "UPDATE messages SET raw = NULL, envelope = NULL",
            "status = 'rejected' AND (raw IS NOT NULL OR envelope IS NOT NULL) AND received_at < $1",
            "#{}",
        ),
        ("expired_tokens", "tokens", "DELETE FROM tokens", "coalesce(revoked_at, expires_at) < $1", "{}"),
    ):
        cutoff = d.ts(now - getattr(rules, category).delta)
        if dry_run:
            n = int((await t.fetch(f"SELECT count(*) FROM {table} WHERE {where}", cutoff))[0][0])
            counts[category] = PurgeCount(erased=n)
        else:
            rows = await t.fetch(f"{erase} WHERE {where} RETURNING id", cutoff)
            counts[category] = PurgeCount(erased=len(rows), ids=sorted(label.format(r[0]) for r in rows))
    return counts, False


def _events(
    rules: RetentionRules, now: datetime, at: datetime, actor: str, counts: dict[str, PurgeCount]
) -> list[AuditEvent]:
    out: list[AuditEvent] = []
    for category in CATEGORIES:
        count = counts.get(category)
        if count is not None and count.erased:
            out += purge_events(at, now, actor, category, rule_text(rules, category), count)
    return out


class SqlRetention:
    """The purge (core/ports.RetentionStore) on the store's database."""

    _d: Dialect

    async def purge(
        self,
        rules: RetentionRules,
        now: datetime,
        *,
        at: datetime | None = None,
        dry_run: bool = False,
        actor: str = SYSTEM_ACTOR,
    ) -> PurgeReport:
        """One pass as of `now` (the limits' clock), at `at` (the wall clock: `purged_at` and the audit
        records): erase what is past its limit (or, `dry_run`, count it), audit it, and scrub the freed
        bytes from the database files."""
        d, at = self._d, at or now
        sqlite = d.name == "sqlite"
        if sqlite and not dry_run:
            await d.fetch("PRAGMA secure_delete = ON")  # freed cells and pages are overwritten with zeros
        counts: dict[str, PurgeCount] = {}
        try:
            for chunk in itertools.count():
                # Each chunk's rows carry a time of their own, so that its erasures touch only them.
                when = at + timedelta(microseconds=chunk)

                async def tx(t: Tx, when: datetime = when) -> tuple[dict[str, PurgeCount], bool]:
                    done, more = await _pass(d, t, rules, now, when, dry_run, CHUNK)
                    if not dry_run:
                        await _insert_events(d, t, _events(rules, now, when, actor, done))
                    return done, more

                done, more = await d.write(tx)
                counts = _add(counts, done)
                if not more:
                    break
        finally:
            if sqlite and not dry_run:
                await d.fetch("PRAGMA secure_delete = OFF")
        erased = sum(c.erased for c in counts.values())
        if erased and not dry_run:
            committed_at = (await d.fetch("SELECT current_timestamp"))[0][0] if not sqlite else None
            await scrub_files(d, committed_at)
        report = PurgeReport(now=now, dry_run=dry_run, counts=counts)
        log.info("retention_pass", now=now.isoformat(), dry_run=dry_run, **_flat(report))
        return report
