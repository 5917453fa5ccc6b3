"""Full-text search on both engines, each with its own machinery, behind the store's Dialect seam.

SQLite: an FTS5 table over the view `message_text` (external content: the text stays in
`messages`), tokenizer `unicode61 remove_diacritics 2`, kept in step by triggers on `messages`. FTS5
has no French stemmer, so a word is searched as itself OR the prefix of its French and English
Snowball stems ("enquête" → `enquet*` finds "enquêteurs", "enquêtes").
PostgreSQL: `message_search(message_fk, doc tsvector)`, GIN-indexed, kept in step by a trigger;
`doc` holds the French and the English lexemes of subject (weight A) and body through the text
search configurations `wc_french` and `wc_english` (their word mappings go through `unaccent`).

Both: need-to-know inside the query (`store._visible`, as for lists); best first (bm25 /
ts_rank_cd), then newest; keyset pages on (score, id); the page's fragments highlighted by the
engine with private-use markers, cut into segments in Python (`core.search.fragments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from watchcentre.adapters.sql.dialects import INT, TEXT, TS, Dialect, Tx
from watchcentre.adapters.sql.store import (
    _KEYS_PER_QUERY,
    _MESSAGE_COLUMNS,
    _in,
    _insert_events,
    _pairs,
    _read,
    _stored_message,
    _visible,
    _Where,
)
from watchcentre.core.identifiers import Identifier
from watchcentre.core.records import SYSTEM_ACTOR, Accepted, AuditEvent, EventType, Outcome, Visibility
from watchcentre.core.search import (
    HIT_END,
    HIT_START,
    Clause,
    SearchCursor,
    SearchHit,
    SearchQuery,
    fragments,
    stems,
)
from watchcentre.core.text import fold
from watchcentre.core.watches import Watch, WatchInput, hits

_SNIPPET_TOKENS = 24
RANK_WINDOW = 2000
_HEADLINE = (
    f"StartSel={HIT_START}, StopSel={HIT_END}, MaxFragments=2, MaxWords=24, MinWords=8,"
    " FragmentDelimiter=' … '"
)


def fts5_match(clauses: tuple[Clause, ...]) -> str:
    """The FTS5 MATCH expression: every piece a double-quoted string of letters and digits, so no
    user input can be FTS5 syntax."""
    parts = []
    for c in clauses:
        words = [fold(w) for w in c.words]
        if c.kind == "phrase":
            parts.append('"' + " ".join(words) + '"')
        elif c.kind == "prefix":
            parts.append(f'"{words[0]}"*')
        else:
            alternatives = [f'"{words[0]}"'] + [f'"{fold(s)}"*' for s in stems(c.words[0])]
            parts.append("(" + " OR ".join(dict.fromkeys(alternatives)) + ")")
    return " AND ".join(parts)


def _pg_query(where: _Where, clauses: tuple[Clause, ...]) -> str:
    """The tsquery: per clause its French OR its English reading, the clauses ANDed. Words and
    phrases go through plainto/phraseto_tsquery (no syntax at all); a prefix is one word of letters
    and digits followed by `:*`."""
    parts = []
    for c in clauses:
        if c.kind == "prefix":
            p = where.param(c.words[0] + ":*")
            fn = "to_tsquery"
        else:
            p = where.param(" ".join(c.words))
            fn = "phraseto_tsquery" if c.kind == "phrase" else "plainto_tsquery"
        parts.append(f"({fn}('wc_french', {p}) || {fn}('wc_english', {p}))")
    return " && ".join(parts)


def _filters(d: Dialect, where: _Where, q: SearchQuery, visibility: Visibility | None) -> None:
    for kind, tag in (("crime_type", q.crime_type), ("country", q.country), ("recipient", q.recipient)):
        if tag:
            where.conditions.append(
                "EXISTS (SELECT 1 FROM message_tags t WHERE t.tag_kind = "
                f"{where.param(kind)} AND t.tag = {where.param(d.text(tag))} AND t.message_fk = m.id)"
            )
    where.add("m.status = {}", None if q.status is None else q.status.value)
    where.add("m.sender = {}", None if q.sender is None else d.text(q.sender))
    where.add("m.received_at >= {}", None if q.since is None else d.ts(q.since))
    where.add("m.received_at < {}", None if q.until is None else d.ts(q.until))
    _visible(where, visibility, "messages")


async def search(
    d: Dialect, q: SearchQuery, clauses: tuple[Clause, ...], visibility: Visibility | None
) -> list[SearchHit]:
    """One page of hits, best first: the messages matching every clause that `visibility` lets the
    caller see, after the cursor `q.after`, at most `q.limit`."""
    where = _Where()
    if d.name == "sqlite":
        where.conditions.append(f"message_search MATCH {where.param(fts5_match(clauses))}")
        score, query_cte = "-bm25(message_search, 2.0, 1.0)", ""
    else:
        query_cte = f"WITH wq AS (SELECT {_pg_query(where, clauses)} AS query) "
        score = "ts_rank_cd(s.doc, wq.query)::float8"
        where.conditions.append("s.doc @@ wq.query")
    matching = len(where.conditions)
    _filters(d, where, q, visibility)
    # Only rejected messages are left out of the index: without a filter the index alone answers.
    joined = len(where.conditions) > matching
    if d.name == "sqlite":
        select_from = "message_search s CROSS JOIN messages m" if joined else "message_search s"
        if joined:
            where.conditions.append("m.id = s.rowid")
        key = "s.rowid"
    else:
        select_from = "wq, message_search s" + (" JOIN messages m ON m.id = s.message_fk" if joined else "")
        key = "s.message_fk"
    # Ranking scores every candidate: without a filter, a query matching more than RANK_WINDOW
    # messages (a common word) ranks the newest RANK_WINDOW of them, found first from the index
    # alone in id order (no scoring). With filters (a post's need-to-know) that look-up would cost a
    # join over every match, as much as the ranking it saves (docs/performance.md).
    edge = (
        []
        if joined
        else await d.fetch(
            f"{query_cte}SELECT {key} FROM {select_from} {where.sql} ORDER BY {key} DESC"
            f" LIMIT 1 OFFSET {RANK_WINDOW - 1}",
            *where.params,
        )
    )
    if edge:
        where.add(f"{key} >= {{}}", int(edge[0][0]))
    # Narrow first (ids and scores: what the sort carries), then the page's rows by id.
    body = f"SELECT {key} AS id, {score} AS score FROM {select_from} {where.sql}"
    page = _Where()
    page.params = where.params
    if q.after is not None:
        cursor = SearchCursor.parse(q.after)
        s, i = page.param(cursor.score), page.param(cursor.id)
        page.conditions.append(f"(x.score < {s} OR (x.score = {s} AND x.id < {i}))")
    n = page.param(q.limit)
    sql = f"{query_cte}SELECT x.id, x.score FROM ({body}) x {page.sql} ORDER BY x.score DESC, x.id DESC LIMIT {n}"
    ranked = [(int(r[0]), float(r[1])) for r in await d.fetch(sql, *page.params)]
    if not ranked:
        return []
    rows = await d.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.id IN ({_in([i for i, _ in ranked])})",
        *[i for i, _ in ranked],
    )
    by_id = {int(r[0]): _stored_message(d, r) for r in rows}
    messages = [(by_id[i], score_) for i, score_ in ranked if i in by_id]
    marked = await _highlights(d, clauses, [m.id for m, _ in messages])
    return [
        SearchHit(
            message=m,
            score=score_,
            subject=fragments(marked.get(m.id, (m.subject, ""))[0]),
            body=fragments(marked.get(m.id, ("", ""))[1]),
        )
        for m, score_ in messages
    ]


async def _highlights(d: Dialect, clauses: tuple[Clause, ...], ids: list[int]) -> dict[int, tuple[Any, Any]]:
    """{id: (subject marked whole, body's best fragments marked)} for one page's messages."""
    if not ids:
        return {}
    where = _Where()
    if d.name == "sqlite":
        match = where.param(fts5_match(clauses))
        a, b = where.param(HIT_START), where.param(HIT_END)
        rows = await d.fetch(
            f"SELECT rowid, highlight(message_search, 0, {a}, {b}),"
            f" snippet(message_search, 1, {a}, {b}, ' … ', {_SNIPPET_TOKENS})"
            f" FROM message_search WHERE message_search MATCH {match} AND rowid IN ({where.params_for(ids)})"
            # a rowid range FTS5 seeks to; it walks the whole match for IN alone
            f" AND rowid BETWEEN {where.param(min(ids))} AND {where.param(max(ids))}",
            *where.params,
        )
    else:
        query = _pg_query(where, clauses)
        whole = where.param(f"StartSel={HIT_START}, StopSel={HIT_END}, HighlightAll=true")
        best = where.param(_HEADLINE)
        rows = await d.fetch(
            f"WITH wq AS (SELECT {query} AS query)"
            f" SELECT t.id, ts_headline('wc_french', t.subject, wq.query, {whole}),"
            f" ts_headline('wc_french', t.body, wq.query, {best})"
            f" FROM wq, message_text t WHERE t.id IN ({where.params_for(ids)})",
            *where.params,
        )
    return {int(r[0]): (r[1], r[2]) for r in rows}


# -- identifiers, cross-matching and watch hits, in the intake's own write transaction ----------------

_IDENTIFIER = (("kind", TEXT), ("value", TEXT), ("message_fk", INT))
_HIT = (("watch_id", INT), ("message_fk", INT), ("at", TS))
_WATCH = (
    ("id", INT),
    ("kind", TEXT),
    ("id_kind", TEXT),
    ("value", TEXT),
    ("label", TEXT),
    ("reason", TEXT),
    ("created_by", TEXT),
    ("created_at", TS),
    ("expires_at", TS),
    ("ended_at", TS),
    ("ended_by", TEXT),
)
_WATCH_COLUMNS = ", ".join(c for c, _ in _WATCH)
MAX_MATCHES_RECORDED = 20  # per new message, in its `matched` record (the detail lists them all)


async def on_saved(
    d: Dialect, t: Tx, outcomes: Sequence[Outcome], inserted: dict[int, int]
) -> tuple[dict[int, dict[str, Any]], list[tuple[int, AuditEvent]]]:
    """For the messages just inserted (outcome index → row id): store their identifiers, find the
    earlier messages sharing one (cross-matching: a `matched` record, and a mark for the message's
    feed event), and the live watches they match (a `watch_hit` each, once per message and watch).
    Returns ({index: details to add to its routed/triaged event}, [(index, extra event)])."""
    new = {i: fk for i, fk in inserted.items() if isinstance(outcomes[i], Accepted)}
    accepted: dict[int, Accepted] = {
        i: o for i, o in enumerate(outcomes) if i in new and isinstance(o, Accepted)
    }
    marks: dict[int, dict[str, Any]] = {}
    extra: list[tuple[int, AuditEvent]] = []
    rows = sorted({(x.kind, d.text(x.value), new[i]) for i, a in accepted.items() for x in a.identifiers})
    if rows:
        await t.insert("message_identifiers", _IDENTIFIER, rows)
        sharing = await _sharing(t, sorted({(k, v) for k, v, _ in rows}))
        for i, a in sorted(accepted.items()):
            found = _earlier(a.identifiers, new[i], sharing, d)
            if found:
                marks[i] = {"cross_matches": len(found)}
                extra.append(
                    (
                        i,
                        _event(
                            a,
                            EventType.MATCHED,
                            {"count": len(found), "matches": found[:MAX_MATCHES_RECORDED]},
                        ),
                    )
                )
    if accepted:
        extra += await _watch_hits(d, t, accepted, new)
    return marks, extra


async def _sharing(t: Tx, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[tuple[int, str, str]]]:
    """{(kind, value): [(message id, sender, message_id)]} of every message holding one of `keys`."""
    out: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    for n in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[n : n + _KEYS_PER_QUERY]
        where, params = _pairs("i.kind", "i.value", chunk)
        found = await t.fetch(
            "SELECT i.kind, i.value, m.id, m.sender, m.message_id FROM message_identifiers i"
            f" JOIN messages m ON m.id = i.message_fk WHERE {where}",
            *params,
        )
        for r in found:
            out.setdefault((r[0], r[1]), []).append((int(r[2]), r[3], r[4]))
    wanted = set(keys)
    return {key: hits for key, hits in out.items() if key in wanted}


def _earlier(
    identifiers: Sequence[Identifier],
    fk: int,
    sharing: dict[tuple[str, str], list[tuple[int, str, str]]],
    d: Dialect,
) -> list[dict[str, Any]]:
    """The earlier messages sharing an identifier with message `fk`, newest first, with what they share."""
    by_message: dict[int, dict[str, Any]] = {}
    for x in identifiers:
        for other, sender, message_id in sharing.get((x.kind, d.text(x.value)), []):
            if other < fk:
                entry = by_message.setdefault(
                    other, {"id": other, "sender": sender, "message_id": message_id, "shared": []}
                )
                entry["shared"].append({"kind": x.kind, "value": x.value})
    return [by_message[k] for k in sorted(by_message, reverse=True)]


def _event(a: Accepted, type_: str, details: dict[str, Any]) -> AuditEvent:
    reference = next((e.reference for e in a.events if e.reference), a.envelope.reference)
    return AuditEvent(
        at=a.received_at,
        type=type_,
        actor=SYSTEM_ACTOR,
        sender=a.envelope.sender,
        message_id=a.envelope.message_id,
        reference=reference,
        details=details,
    )


async def _watch_hits(
    d: Dialect, t: Tx, accepted: dict[int, Accepted], new: dict[int, int]
) -> list[tuple[int, AuditEvent]]:
    now = max(a.received_at for a in accepted.values())
    rows = await t.fetch(
        f"SELECT {_WATCH_COLUMNS} FROM watches WHERE ended_at IS NULL AND expires_at > $1", d.ts(now)
    )
    live = [Watch(**_read(d, _WATCH, r)) for r in rows]
    if not live:
        return []
    matched = [
        (i, w)
        for i, a in sorted(accepted.items())
        for w in hits(live, a.identifiers, [a.envelope.subject, a.envelope.body])
        if w.expires_at > a.received_at
    ]
    if not matched:
        return []
    done = await t.insert(
        "watch_hits",
        _HIT,
        [(w.id, new[i], d.ts(accepted[i].received_at)) for i, w in matched],
        returning="watch_id, message_fk",
    )
    fresh = {(int(r[0]), int(r[1])) for r in done}  # a hit already recorded is not raised again
    return [
        (
            i,
            _event(
                accepted[i],
                EventType.WATCH_HIT,
                {
                    "watch_id": w.id,
                    "label": w.label,
                    "watch_kind": w.kind,
                    "id_kind": w.id_kind,
                    "value": w.value,
                    "id": new[i],
                },
            ),
        )
        for i, w in matched
        if (w.id, new[i]) in fresh
    ]


# -- reads: a message's identifiers and the messages sharing them ---------------------------------------


async def identifiers_of(d: Dialect, message_pk: int) -> list[Identifier]:
    rows = await d.fetch(
        "SELECT kind, value FROM message_identifiers WHERE message_fk = $1 ORDER BY kind, value", message_pk
    )
    return [Identifier(r[0], r[1]) for r in rows]


async def related(
    d: Dialect, message_pk: int, visibility: Visibility | None, limit: int = 100
) -> list[tuple[Any, list[Identifier]]]:
    """The other messages the caller may see that share an identifier with message `message_pk`,
    newest first, each with the identifiers shared (need-to-know in the query)."""
    where = _Where()
    where.conditions.append(f"mine.message_fk = {where.param(message_pk)}")
    where.conditions.append("i.message_fk <> mine.message_fk")
    _visible(where, visibility, "messages")
    n = where.param(limit * 8)
    rows = await d.fetch(
        f"SELECT {_MESSAGE_COLUMNS}, i.kind, i.value FROM message_identifiers mine"
        " JOIN message_identifiers i ON i.kind = mine.kind AND i.value = mine.value"
        f" JOIN messages m ON m.id = i.message_fk {where.sql} ORDER BY m.id DESC, i.kind, i.value LIMIT {n}",
        *where.params,
    )
    out: dict[int, tuple[Any, list[Identifier]]] = {}
    for r in rows:
        message = out.get(int(r[0]))
        if message is None:
            if len(out) == limit:
                break
            message = out[int(r[0])] = (_stored_message(d, r[:-2]), [])
        message[1].append(Identifier(r[-2], r[-1]))
    return list(out.values())


# -- watch lists --------------------------------------------------------------------------------------


async def add_watch(
    d: Dialect, watch: WatchInput, value: str, actor: str, at: datetime, event: AuditEvent
) -> Watch:
    async def tx(t: Tx) -> Watch:
        rows = await t.fetch(
            "INSERT INTO watches (kind, id_kind, value, label, reason, created_by, created_at, expires_at)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_WATCH_COLUMNS}",
            watch.kind,
            watch.id_kind,
            d.text(value),
            d.text(watch.label),
            d.text(watch.reason),
            d.text(actor),
            d.ts(at),
            d.ts(watch.expires_at),
        )
        stored = Watch(**_read(d, _WATCH, rows[0]))
        details = {**event.details, "watch_id": stored.id}
        await _insert_events(d, t, [event.model_copy(update={"details": details})])
        return stored

    return await d.write(tx)


async def watches(d: Dialect, live_at: datetime | None = None) -> list[Watch]:
    where = "WHERE ended_at IS NULL AND expires_at > $1" if live_at is not None else ""
    rows = await d.fetch(
        f"SELECT {_WATCH_COLUMNS} FROM watches {where} ORDER BY id DESC",
        *([d.ts(live_at)] if live_at is not None else []),
    )
    return [Watch(**_read(d, _WATCH, r)) for r in rows]


async def end_watch(d: Dialect, watch_id: int, actor: str, at: datetime, event: AuditEvent) -> Watch | None:
    async def tx(t: Tx) -> Watch | None:
        done = await t.fetch(
            "UPDATE watches SET ended_at = $1, ended_by = $2 WHERE id = $3 AND ended_at IS NULL RETURNING id",
            d.ts(at),
            d.text(actor),
            watch_id,
        )
        if done:
            await _insert_events(d, t, [event])
        rows = await t.fetch(f"SELECT {_WATCH_COLUMNS} FROM watches WHERE id = $1", watch_id)
        return Watch(**_read(d, _WATCH, rows[0])) if rows else None

    return await d.write(tx)


# -- the data-protection purge (issue 15) ---------------------------------------------------------------
