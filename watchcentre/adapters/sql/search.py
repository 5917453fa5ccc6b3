"""Full-text search on both engines, each with its own machinery, behind the store's Dialect seam.

SQLite: an FTS5 table over the view `message_text` (external content: the text stays in
`messages`), tokenizer `unicode61 remove_diacritics 2`, kept in step by triggers on `messages`. FTS5
has no French stemmer, so a word is searched as itself OR the prefix of its French and English
Snowball stems ("enquête" → `enquet*` finds "enquêteurs", "enquêtes").
PostgreSQL: `message_search(message_fk, doc tsvector)`, GIN-indexed, kept in step by a trigger;
`doc` holds the French and the English lexemes of subject (weight A) and body through the text
search configurations `wc_french` and `wc_english` (their word mappings go through `unaccent`).

Both: need-to-know inside the query (`store._visible`'s rule, as sets of ids); best first (bm25 /
ts_rank_cd), then newest; keyset pages on (score, id); the page's fragments highlighted by the
engine with private-use markers, cut into segments in Python (`core.search.fragments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from watchcentre.adapters.sql.dialects import Dialect, Tx, columns
from watchcentre.adapters.sql.store import (
    _MESSAGE_COLUMNS,
    _end,
    _fetch_in,
    _filter_messages,
    _in,
    _insert_events,
    _read,
    _stored_message,
    _tags,
    _values,
    _visible,
    _Where,
)
from watchcentre.core.identifiers import Identifier
from watchcentre.core.records import (
    SYSTEM_ACTOR,
    Accepted,
    AuditEvent,
    EventType,
    Outcome,
    StoredMessage,
    Visibility,
)
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
from watchcentre.core.watches import Watch, WatchHit, WatchInput, hits

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
            f" FROM message_search WHERE message_search MATCH {match}"
            # one walk of the match over the page's rowid range, the page's rows picked by SQLite
            # (`+rowid`: not offered to FTS5, which would evaluate the whole match again per value)
            f" AND rowid BETWEEN {where.param(min(ids))} AND {where.param(max(ids))}"
            f" AND +rowid IN ({where.params_for(ids)})",
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

_IDENTIFIER = columns("kind value message_fk:int")
_HIT = columns("watch_id:int message_fk:int at:ts")
_WATCH = columns(
    "id:int kind id_kind value label reason created_by created_at:ts expires_at:ts ended_at:ts ended_by"
)
_WATCH_NEW = _WATCH[1:-2]  # what a new watch is given
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
    sql = (
        "SELECT i.kind, i.value, m.id, m.sender, m.message_id FROM message_identifiers i"
        " JOIN messages m ON m.id = i.message_fk WHERE"
    )
    for r in await _fetch_in(t.fetch, sql, ("i.kind", "i.value"), keys):
        out.setdefault((r[0], r[1]), []).append((int(r[2]), r[3], r[4]))
    return out


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


# -- watch lists --------------------------------------------------------------------------------------


# -- watch hits as the console's alerts ------------------------------------------------------------------

_HIT_COLUMNS = (
    ", ".join(f"w.{c}" for c, _ in _WATCH) + ", h.message_fk, h.at, h.acknowledged_at, h.acknowledged_by"
)


def _watch_hit(d: Dialect, r: Any) -> WatchHit:
    n = len(_WATCH)
    acked = r[n + 2]
    return WatchHit(
        watch=Watch(**_read(d, _WATCH, r[:n])),
        message_pk=int(r[n]),
        at=d.at(r[n + 1]),
        acknowledged_at=None if acked is None else d.at(acked),
        acknowledged_by=r[n + 3],
    )


# -- the data-protection purge (issue 15) ---------------------------------------------------------------


class SqlSearch:
    """Search, identifiers and watch lists (core/ports.SearchStore) on the store's database."""

    _d: Dialect

    async def search(
        self, query: SearchQuery, clauses: tuple[Clause, ...], visibility: Visibility | None = None
    ) -> list[SearchHit]:
        """One page of hits, best first: the messages matching every clause that `visibility` lets the
        caller see, after the cursor `q.after`, at most `q.limit`."""
        d, q = self._d, query
        where = _Where()
        if d.name == "sqlite":
            where.conditions.append(f"message_search MATCH {where.param(fts5_match(clauses))}")
            score, query_cte = "-bm25(message_search, 2.0, 1.0)", ""
        else:
            query_cte = f"WITH wq AS (SELECT {_pg_query(where, clauses)} AS query) "
            score = "ts_rank_cd(s.doc, wq.query)::float8"
            where.conditions.append("s.doc @@ wq.query")
        matching = len(where.conditions)
        _filter_messages(where, q, None, _tags(d, q))  # need-to-know below, on the index
        # Only rejected messages are left out of the index: the message's row is read for a filter on
        # its own columns only; need-to-know is id sets (`+`: SQLite must not offer them to FTS5, which
        # would run the whole match again per id).
        joined = len(where.conditions) > matching
        key = "s.rowid" if d.name == "sqlite" else "s.message_fk"
        _visible(where, visibility, "message_search", ("+" if d.name == "sqlite" else "") + key)
        filtered = len(where.conditions) > matching
        if d.name == "sqlite":
            select_from = "message_search s CROSS JOIN messages m" if joined else "message_search s"
            if joined:
                where.conditions.append("m.id = s.rowid")
        else:
            select_from = "wq, message_search s" + (
                " JOIN messages m ON m.id = s.message_fk" if joined else ""
            )
        # Ranking scores every candidate: without a filter, a query matching more than RANK_WINDOW
        # messages (a common word) ranks the newest RANK_WINDOW of them, found first from the index
        # alone in id order (no scoring). With filters (a post's need-to-know) that look-up would test
        # the matches one by one, newest first, as much as the ranking it saves (docs/performance.md).
        edge = (
            []
            if filtered
            else await d.fetch_replanned(
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
        ranked = [(int(r[0]), float(r[1])) for r in await d.fetch_replanned(sql, *page.params)]
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

    async def identifiers(self, message_pk: int) -> list[Identifier]:
        d = self._d
        rows = await d.fetch(
            "SELECT kind, value FROM message_identifiers WHERE message_fk = $1 ORDER BY kind, value",
            message_pk,
        )
        return [Identifier(r[0], r[1]) for r in rows]

    async def related(
        self, message_pk: int, visibility: Visibility | None = None, limit: int = 100
    ) -> list[tuple[StoredMessage, list[Identifier]]]:
        """The other messages the caller may see that share an identifier with message `message_pk`,
        newest first, each with the identifiers shared (need-to-know in the query)."""
        d = self._d
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
        out: dict[int, tuple[StoredMessage, list[Identifier]]] = {}
        for r in rows:
            message = out.get(int(r[0]))
            if message is None:
                if len(out) == limit:
                    break
                message = out[int(r[0])] = (_stored_message(d, r[:-2]), [])
            message[1].append(Identifier(r[-2], r[-1]))
        return list(out.values())

    async def cross_match_counts(self, message_pks: Sequence[int]) -> dict[int, int]:
        """{id: how many earlier messages share an identifier with it} (the feed's mark), for those with any."""
        d = self._d
        rows = await _fetch_in(
            d.fetch,
            "SELECT mine.message_fk, COUNT(DISTINCT other.message_fk) FROM message_identifiers mine"
            " JOIN message_identifiers other ON other.kind = mine.kind AND other.value = mine.value"
            " AND other.message_fk < mine.message_fk WHERE",
            "mine.message_fk",
            list(message_pks),
            tail=" GROUP BY mine.message_fk",
        )
        return {int(r[0]): int(r[1]) for r in rows}

    async def add_watch(
        self, watch: WatchInput, value: str, actor: str, at: datetime, event: AuditEvent
    ) -> Watch:
        d = self._d

        async def tx(t: Tx) -> Watch:
            row = _values(
                d, _WATCH_NEW, watch, value=d.text(value), created_by=d.text(actor), created_at=d.ts(at)
            )
            rows = await t.insert("watches", _WATCH_NEW, [row], returning=_WATCH_COLUMNS)
            stored = Watch(**_read(d, _WATCH, rows[0]))
            details = {**event.details, "watch_id": stored.id}
            await _insert_events(d, t, [event.model_copy(update={"details": details})])
            return stored

        return await d.write(tx)

    async def watches(self, live_at: datetime | None = None) -> list[Watch]:
        d = self._d
        where = "WHERE ended_at IS NULL AND expires_at > $1" if live_at is not None else ""
        rows = await d.fetch(
            f"SELECT {_WATCH_COLUMNS} FROM watches {where} ORDER BY id DESC",
            *([d.ts(live_at)] if live_at is not None else []),
        )
        return [Watch(**_read(d, _WATCH, r)) for r in rows]

    async def end_watch(self, watch_id: int, actor: str, at: datetime, event: AuditEvent) -> Watch | None:
        d = self._d
        ended = await _end(d, "watches", _WATCH, watch_id, {"ended_at": at, "ended_by": actor}, event)
        return None if ended is None else Watch(**ended)

    async def pending_watch_hits(self, limit: int = 200) -> list[tuple[WatchHit, StoredMessage]]:
        d = self._d
        n = len(_WATCH) + 4
        rows = await d.fetch(
            f"SELECT {_HIT_COLUMNS}, {_MESSAGE_COLUMNS} FROM watch_hits h JOIN watches w ON w.id = h.watch_id"
            " JOIN messages m ON m.id = h.message_fk"
            " WHERE h.acknowledged_at IS NULL ORDER BY h.at, h.message_fk, h.watch_id LIMIT $1",
            limit,
        )
        return [(_watch_hit(d, r[:n]), _stored_message(d, r[n:])) for r in rows]

    async def acknowledge_watch_hit(
        self, watch_id: int, message_pk: int, actor: str, at: datetime, event: AuditEvent
    ) -> tuple[WatchHit | None, AuditEvent | None]:
        """(the hit, the event recorded, about the hit's message): no hit when there is none; no event
        when it was acknowledged already (the hit says by whom)."""
        d = self._d

        async def tx(t: Tx) -> tuple[WatchHit | None, AuditEvent | None]:
            done = await t.fetch(
                "UPDATE watch_hits SET acknowledged_at = $1, acknowledged_by = $2"
                " WHERE watch_id = $3 AND message_fk = $4 AND acknowledged_at IS NULL RETURNING watch_id",
                d.ts(at),
                d.text(actor),
                watch_id,
                message_pk,
            )
            rows = await t.fetch(
                f"SELECT {_HIT_COLUMNS}, m.sender, m.message_id, m.reference FROM watch_hits h"
                " JOIN watches w ON w.id = h.watch_id JOIN messages m ON m.id = h.message_fk"
                " WHERE h.watch_id = $1 AND h.message_fk = $2",
                watch_id,
                message_pk,
            )
            if not rows:
                return None, None
            hit = _watch_hit(d, rows[0][:-3])
            if not done:
                return hit, None
            sender, message_id, reference = rows[0][-3:]
            about = {"sender": sender, "message_id": message_id, "reference": reference}
            details = {**event.details, "raised_at": hit.at.isoformat(), "label": hit.watch.label}
            stored = await _insert_events(d, t, [event.model_copy(update={**about, "details": details})])
            return hit, stored[0]

        return await d.write(tx)
