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

from typing import Any

from watchcentre.adapters.sql.dialects import Dialect
from watchcentre.adapters.sql.store import _MESSAGE_COLUMNS, _stored_message, _visible, _Where
from watchcentre.core.records import Visibility
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

_SNIPPET_TOKENS = 24
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
        score = "-bm25(message_search, 2.0, 1.0)"
        source = "message_search s CROSS JOIN messages m"
        where.conditions.append("m.id = s.rowid")
        query_cte, select_from = "", source
    else:
        query_cte = f"WITH wq AS (SELECT {_pg_query(where, clauses)} AS query) "
        score = "ts_rank_cd(s.doc, wq.query)::float8"
        select_from = "wq, message_search s JOIN messages m ON m.id = s.message_fk"
        where.conditions.append("s.doc @@ wq.query")
    _filters(d, where, q, visibility)
    body = f"SELECT {_MESSAGE_COLUMNS}, {score} AS score FROM {select_from} {where.sql}"
    page = _Where()
    page.params = where.params
    if q.after is not None:
        cursor = SearchCursor.parse(q.after)
        s, i = page.param(cursor.score), page.param(cursor.id)
        page.conditions.append(f"(x.score < {s} OR (x.score = {s} AND x.id < {i}))")
    n = page.param(q.limit)
    sql = f"{query_cte}SELECT * FROM ({body}) x {page.sql} ORDER BY x.score DESC, x.id DESC LIMIT {n}"
    rows = await d.fetch(sql, *page.params)
    messages = [(_stored_message(d, r[:-1]), float(r[-1])) for r in rows]
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
            f" FROM message_search WHERE message_search MATCH {match} AND rowid IN ({where.params_for(ids)})",
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


async def erase_search(t: Any, message_fks: list[int]) -> None:
    """Purge: remove these messages' index entries and identifiers. Call it inside the purge's
    write transaction BEFORE the message's text is blanked or its row deleted (SQLite's external-
    content index must be told the old text to forget it; the triggers do this too when the purge
    changes `subject`/`envelope` or deletes the row, so this is the explicit, engine-proof path)."""
    raise NotImplementedError
