"""Full-text search on both engines (SQLite FTS5, PostgreSQL tsvector + unaccent): what an operator or
a post types, what it finds, what it never finds; then GET /api/search over HTTP with the access
matrix, on both engines."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.integration import test_store
from tests.integration.test_access import ALL, ROLES, Clock
from tests.integration.test_http import NETWORK, OUTCOMES
from tests.integration.test_store import POSTGRES_URL, Backend, accepted, rejected
from watchcentre.adapters.http_app import create_app
from watchcentre.adapters.http_base import HttpDeps
from watchcentre.adapters.metrics import PrometheusMetrics
from watchcentre.adapters.sql import SqlStore
from watchcentre.core.errors import Invalid
from watchcentre.core.ports import Store
from watchcentre.core.records import Visibility
from watchcentre.core.search import HIT_END, HIT_START, SearchQuery, parse_query
from watchcentre.security import issue_token

backend = test_store.backend  # the same two-engine fixture


def with_text(message_id: str, subject: str, body: str, **kw: Any) -> Any:
    a = accepted(message_id, subject=subject, **kw)
    env = a.envelope.model_copy(update={"body": body})
    return type(a)(env, a.routing, a.status, a.received_at, a.events)


async def find(store: Store, q: str, vis: Visibility | None = None, **filters: Any) -> list[str]:
    hits = await store.search(SearchQuery(q=q, **filters), parse_query(q), vis)
    return [h.message.message_id or "" for h in hits]


CORPUS = [
    ("m1", "Trafic à Carthagène", "Les enquêteurs signalent un conteneur suspect."),
    ("m2", "Saisies de cocaïne", "Deux saisies au port du Havre, une enquête est ouverte."),
    ("m3", "Demande d'identification", "Un suspect a été saisi par la douane; les enquêtes continuent."),
    ("m4", "Firearms seizure", "Officers seized three rifles near the border."),
    ("m5", "Réunion", "Rien à signaler."),
]


@pytest.fixture
async def corpus(backend: Backend) -> Store:
    await backend.store.save_batch([with_text(m, s, b) for m, s, b in CORPUS])
    return backend.store


async def test_accents_and_case_do_not_matter(corpus: Store) -> None:
    assert await find(corpus, "carthagene") == ["m1"]
    assert await find(corpus, "CARTHAGÈNE") == ["m1"]
    assert await find(corpus, "Cocaine") == ["m2"]


async def test_a_french_word_finds_its_inflections(corpus: Store) -> None:
    assert sorted(await find(corpus, "saisie")) == ["m2", "m3"]  # saisies, saisi
    assert sorted(await find(corpus, "enquête")) == ["m2", "m3"] or "m1" in await find(corpus, "enquête")
    assert set(await find(corpus, "enquêtes")) >= {"m2", "m3"}


async def test_an_english_word_finds_its_inflections(corpus: Store) -> None:
    assert await find(corpus, "seize") == ["m4"]  # seizure, seized
    assert await find(corpus, "rifle") == ["m4"]


async def test_phrases_and_prefixes(corpus: Store) -> None:
    assert await find(corpus, '"port du havre"') == ["m2"]
    assert await find(corpus, '"havre du port"') == []
    assert await find(corpus, "carth*") == ["m1"]
    assert sorted(await find(corpus, "conten* suspect")) == ["m1"]


async def test_every_word_must_match(corpus: Store) -> None:
    assert await find(corpus, "suspect douane") == ["m3"]
    assert await find(corpus, "suspect rifles") == []


async def test_the_subject_counts_more_than_the_body(backend: Backend) -> None:
    store = backend.store
    await store.save_batch(
        [
            with_text(
                "body", "Réunion", "Il sera question de contrebande et de bien d'autres choses encore."
            ),
            with_text("subject", "Contrebande", "Il sera question de bien d'autres choses encore."),
        ]
    )
    assert await find(store, "contrebande") == ["subject", "body"]


@pytest.mark.parametrize(
    "q",
    [
        '"unclosed',
        "a:b",
        "NEAR(x y)",
        "((( x",
        "x OR",
        "-x",
        "^x",
        "col:x",
        "'; DROP TABLE messages; --",
        "x**",
        "é*",
    ],
)
async def test_hostile_syntax_is_read_as_words_and_never_fails(corpus: Store, q: str) -> None:
    assert isinstance(await find(corpus, q), list)


@pytest.mark.parametrize("q", ["", "   ", "***", '""', "-- ;", "x" * 201])
def test_a_query_with_nothing_to_search_for_is_invalid_naming_q(q: str) -> None:
    with pytest.raises(Invalid) as e:
        parse_query(q)
    assert e.value.field == "q"


async def test_hits_are_highlighted_as_segments(corpus: Store) -> None:
    [hit] = await corpus.search(SearchQuery(q="carthagene"), parse_query("carthagene"))
    assert [(f.text, f.hit) for f in hit.subject] == [("Trafic à ", False), ("Carthagène", True)]
    [hit] = await corpus.search(SearchQuery(q="douane"), parse_query("douane"))
    assert [f.text for f in hit.body if f.hit] == ["douane"]
    assert "".join(f.text for f in hit.body).strip() in CORPUS[2][2]


async def test_a_message_cannot_forge_a_highlight(backend: Backend) -> None:
    await backend.store.save_batch([with_text("m", f"{HIT_START}faux{HIT_END} titre", "contrebande")])
    [hit] = await backend.store.search(SearchQuery(q="contrebande"), parse_query("contrebande"))
    assert [f.hit for f in hit.subject] == [False] and hit.subject[0].text == "faux titre"


async def test_pages_follow_the_cursor_without_gaps_or_repeats(backend: Backend) -> None:
    store = backend.store
    await store.save_batch([with_text(f"m{i}", "Contrebande", "x " * i) for i in range(7)])
    seen: list[str] = []
    after = None
    for _ in range(10):
        q = SearchQuery(q="contrebande", limit=3, after=after)
        hits = await store.search(q, parse_query("contrebande"))
        seen += [h.message.message_id or "" for h in hits]
        if len(hits) < 3:
            break
        after = f"{hits[-1].score!r}_{hits[-1].message.id}"
    assert sorted(seen) == [f"m{i}" for i in range(7)]


async def test_filters_apply(backend: Backend) -> None:
    store = backend.store
    await store.save_batch(
        [
            with_text("es", "Contrebande", "-", countries=("ES",), recipients=("post.es",)),
            with_text("ma", "Contrebande", "-", countries=("MA",), recipients=("post.ma",), sender="ocrtis"),
        ]
    )
    assert await find(store, "contrebande", country="ES") == ["es"]
    assert await find(store, "contrebande", recipient="post.ma") == ["ma"]
    assert await find(store, "contrebande", sender="ocrtis") == ["ma"]


async def test_rejected_inputs_are_not_indexed(backend: Backend) -> None:
    await backend.store.save_batch(
        [rejected(b'{"subject": "contrebande", "body": "contrebande"}', "r1", "x")]
    )
    assert await find(backend.store, "contrebande") == []


async def test_need_to_know_applies_inside_the_search(backend: Backend) -> None:
    store = backend.store
    await store.save_batch(
        [
            with_text("to-es", "Contrebande", "-", recipients=("post.es",)),
            with_text("to-ma", "Contrebande", "-", recipients=("post.ma",)),
            with_text("from-es", "Contrebande", "-", recipients=("unit.c3n",), sender="es"),
        ]
    )
    es = Visibility(senders=frozenset({"es"}), recipients=frozenset({"post.es"}))
    de = Visibility(senders=frozenset({"de"}), recipients=frozenset({"post.de"}))
    assert sorted(await find(store, "contrebande", es)) == ["from-es", "to-es"]
    assert await find(store, "contrebande", de) == []
    # one hit per page: the limit counts only what the caller may see
    q = SearchQuery(q="contrebande", limit=1)
    assert len(await store.search(q, parse_query("contrebande"), es)) == 1


async def test_the_index_follows_a_purge_that_blanks_or_deletes(backend: Backend) -> None:
    """What the data-protection purge (issue 15) does to a row, the index follows (triggers)."""
    store = backend.store
    await store.save_batch([with_text("a", "Contrebande", "un"), with_text("b", "Contrebande", "deux")])
    ids = {m.message_id: m.id for m in await store.list_messages(_all())}
    if backend.engine == "sqlite":
        await backend.sql(
            f"UPDATE messages SET subject = '', envelope = json_set(envelope, '$.body', '') WHERE id = {ids['a']}"
        )
    else:
        await backend.sql(
            f"UPDATE messages SET subject = '', envelope = jsonb_set(envelope, '{{body}}', '\"\"') WHERE id = {ids['a']}"
        )
    assert await find(store, "contrebande") == ["b"]


def _all() -> Any:
    from watchcentre.core.records import MessageQuery

    return MessageQuery(limit=500)


# -- over HTTP, on both engines: the access matrix of /api/search -----------------------------------
# test_http.OUTCOMES: 1 m-1 ocrtis → post.es · 2 m-2 es → unit.c3n · 3 m-3 c3n → triage ·
# 4 rejected · 5 m-1 ma → post.ma, post.es. Bodies: "secret body of <id> from <sender>".

SEARCH_MATRIX: dict[str, dict[str, Any]] = {
    "/api/search?q=secret": {
        "anonymous": 401,
        "operator": [1, 2, 3, 5],
        "auditor": 403,
        "post:es": [1, 2, 5],
        "post:de": [],
        "unit:c3n": [2, 3],
        "unit:ocrtis": [1],
    },
    "/api/search?q=ocrtis": {
        "anonymous": 401,
        "operator": [1],
        "auditor": 403,
        "post:es": [1],
        "post:de": [],
        "unit:c3n": [],
        "unit:ocrtis": [1],
    },
    "/api/search?q=secret&crime_type=drug_trafficking": {
        "anonymous": 401,
        "operator": [1, 5],
        "auditor": 403,
        "post:es": [1, 5],
        "post:de": [],
        "unit:c3n": [],
        "unit:ocrtis": [1],
    },
    "/api/search?q=secret&sender=ma": {
        "anonymous": 401,
        "operator": [5],
        "auditor": 403,
        "post:es": [5],
        "post:de": [],
        "unit:c3n": [],
        "unit:ocrtis": [],
    },
    "/api/search?q=c3n": {
        "anonymous": 401,
        "operator": [3],
        "auditor": 403,
        "post:es": [],
        "post:de": [],
        "unit:c3n": [3],
        "unit:ocrtis": [],
    },
}


class Api:
    def __init__(self, client: TestClient[Any, Any], store: SqlStore, tokens: dict[str, str]) -> None:
        self.client, self.store, self.tokens = client, store, tokens

    async def get(self, path: str, who: str = "operator") -> tuple[int, Any]:
        headers = {} if who == "anonymous" else {"Authorization": f"Bearer {self.tokens[who]}"}
        resp = await self.client.get(path, headers=headers)
        return resp.status, await resp.json()


@pytest.fixture(params=["sqlite", "postgres"])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    schema = f"wc_test_{secrets.token_hex(4)}"
    if request.param == "sqlite":
        store = await SqlStore.sqlite(str(tmp_path / "wc.db"))
    else:
        store = await SqlStore.postgres(POSTGRES_URL, schema=schema)
    await store.save_batch(OUTCOMES)
    tokens = {}
    for label, (role, subject) in ALL.items():
        tokens[label] = (await issue_token(store, Clock(), role=role, subject=subject, name=label)).token

    async def ready() -> dict[str, bool]:
        return {"database": True}

    deps = HttpDeps(
        store=store, network=NETWORK, readiness=ready, render_metrics=PrometheusMetrics().render, version="t"
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        yield Api(client, store, tokens)
    finally:
        await client.close()
        await store.close()
        if request.param == "postgres":
            conn = await asyncpg.connect(POSTGRES_URL)
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await conn.close()


async def test_search_access_matrix(api: Api) -> None:
    """Every cell on one store per engine: a post never finds another post's message."""
    for path, by_role in SEARCH_MATRIX.items():
        for role in ROLES:
            expected = by_role[role]
            status, body = await api.get(path, role)
            if isinstance(expected, int):
                assert status == expected, (path, role, body)
                assert body["error"]["status"] == expected
            else:
                assert status == 200, (path, role, body)
                assert sorted(i["id"] for i in body["items"]) == expected, (path, role)


async def test_search_answers_fragments_and_is_an_audited_read(api: Api) -> None:
    status, body = await api.get("/api/search?q=ocrtis", "post:es")
    assert status == 200
    [item] = body["items"]
    assert [f for f in item["body_fragments"] if f["hit"]] == [{"text": "ocrtis", "hit": True}]
    assert item["subject_fragments"] == [{"text": "subject of m-1", "hit": False}]
    assert "envelope" not in item and body["next"] is None
    status, audit = await api.get("/api/audit?type=listed", "auditor")
    [listed] = audit["items"]
    assert listed["actor"] == "post:es"
    assert listed["details"]["route"] == "/api/search" and listed["details"]["ids"] == [1]
    assert listed["details"]["query"]["q"] == "ocrtis"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/search", "q"),
        ("/api/search?q=", "q"),
        ("/api/search?q=***", "q"),
        ("/api/search?q=%22%22", "q"),
        ("/api/search?q=x&after=nope", "after"),
        ("/api/search?q=x&country=ESP", "country"),
        ("/api/search?q=x&crime_type=jaywalking", "crime_type"),
        ("/api/search?q=x&limit=0", "limit"),
    ],
)
async def test_bad_search_is_400_naming_the_field(api: Api, path: str, field: str) -> None:
    status, body = await api.get(path)
    assert status == 400, body
    assert body["error"]["field"] == field


async def test_search_pages_over_http(api: Api) -> None:
    status, first = await api.get("/api/search?q=secret&limit=2")
    assert status == 200 and len(first["items"]) == 2 and first["next"]
    status, second = await api.get(f"/api/search?q=secret&limit=2&after={first['next']}")
    assert status == 200
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert sorted(ids) == [1, 2, 3, 5] and second["next"] is None
