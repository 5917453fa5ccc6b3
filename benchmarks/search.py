"""Scenario `search`: full-text search latency over N stored messages (default 100,000) on each
engine, through the store as GET /api/search calls it (an operator: no filter; a post: need-to-know
in the query), p50/p99 over a mix of queries; and the intake cost of identifier extraction (CPU µs
per input, one CPU, the benchmark corpus)."""

from __future__ import annotations

import random
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import corpus
from benchmarks.common import PG_URL, Figure, err

QUERIES = (
    "cocaïne",
    "cocaine",
    "trafic",
    "saisie",
    "enquête",
    "suspect",
    "passeport",
    "carthagene",
    "smuggling",
    "firearms",
    '"réseau criminel"',
    '"organised crime"',
    "tang*",
    "ident*",
    "suspect cocaine",
    "zzzyxnothing",
)
POSTS = ("post.es", "post.ma", "post.de", "post.it", "post.co", "post.th")
BATCH = 1000


def _outcomes(n: int) -> list[Any]:
    from watchcentre.core.envelope import Envelope, Kind, Routing
    from watchcentre.core.records import Accepted, Status

    rng = random.Random(7)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        _, _, subject, body = corpus.message(rng, rng.choice(corpus.PLACES), size=600)
        at = t0 + timedelta(seconds=i)
        env = Envelope(
            message_id=f"b-{i}", sender="ofast", kind=Kind.INFORMATION, subject=subject, body=body, sent_at=at
        )
        routing = Routing(
            crime_types=["drug_trafficking"],
            countries=[],
            recipients=[rng.choice(POSTS)],
            explanation=["benchmark"],
            confidence=1.0,
        )
        out.append(Accepted(env, routing, Status.ROUTED, at))
    return out


async def _latency(engine: str, n: int, rounds: int) -> tuple[list[Figure], dict[str, Any]]:
    from watchcentre.adapters.sql import SqlStore
    from watchcentre.core.records import Visibility
    from watchcentre.core.search import SearchQuery, parse_query

    schema = f"bench_search_{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as tmp:
        if engine == "sqlite":
            store = await SqlStore.sqlite(str(Path(tmp) / "search.db"))
        else:
            store = await SqlStore.postgres(PG_URL, schema=schema)
        try:
            outcomes = _outcomes(n)
            started = time.perf_counter()
            for i in range(0, n, BATCH):
                await store.save_batch(outcomes[i : i + BATCH])
            load_s = time.perf_counter() - started
            if engine == "postgres":  # what autovacuum does soon after a load: the planner's statistics
                await store._d.fetch("ANALYZE")  # type: ignore[attr-defined]
            err.print(f"search/{engine}: {n} messages stored and indexed in {load_s:.1f} s")
            post = Visibility(senders=frozenset({"es"}), recipients=frozenset({"post.es"}))
            timings: dict[str, list[float]] = {"operator": [], "post": []}
            hits: list[int] = []
            for who, vis in (("operator", None), ("post", post)):
                for q in QUERIES:  # warm-up
                    await store.search(SearchQuery(q=q, limit=21), parse_query(q), vis)
                for _ in range(rounds):
                    for q in QUERIES:
                        t = time.perf_counter()
                        found = await store.search(SearchQuery(q=q, limit=21), parse_query(q), vis)
                        timings[who].append((time.perf_counter() - t) * 1000)
                        hits.append(len(found))
        finally:
            await store.close()
            if engine == "postgres":
                import asyncpg

                conn = await asyncpg.connect(PG_URL)
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                await conn.close()
    figures = []
    detail: dict[str, Any] = {"messages": n, "load_seconds": round(load_s, 1), "queries": list(QUERIES)}
    for who, ms in timings.items():
        ms.sort()
        p50, p99 = statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        figures += [
            Figure("search", f"{engine} {who} p50 ({n:,} msgs)", round(p50, 2), "ms"),
            Figure("search", f"{engine} {who} p99 ({n:,} msgs)", round(p99, 2), "ms"),
        ]
        detail[who] = {
            "calls": len(ms),
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "max_ms": round(ms[-1], 2),
        }
    return figures, detail


def _extraction(n_texts: int = 2000, min_seconds: float = 3.0) -> tuple[list[Figure], dict[str, Any]]:
    from watchcentre.adapters.identifier_checks import LibraryChecks
    from watchcentre.core.identifiers import IdentifierExtractor

    extract = IdentifierExtractor(LibraryChecks()).extract
    texts = corpus.texts(n_texts)
    rich = (
        "Tél. +33 6 12 34 56 78 / 06 12 34 56 78, jean.dupont@example.com, IBAN FR14 2004 1010 0505 0001"
        " 3M02 606, passeport n° 12AB34567, navire IMO 9074729, véhicule immatriculé AB-123-CD, BTC"
        " 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2, ETH 0x52908400098527886E0F7030069857D2E4169EE7."
    )
    found = sum(len(extract(s, b)) for s, b in texts)
    figures, detail = [], {"texts": n_texts, "identifiers_found": found}
    for name, inputs in (("corpus", texts), ("identifier-rich", [("Objet", rich)] * 200)):
        done, cpu0 = 0, time.process_time()
        while time.process_time() - cpu0 < min_seconds:
            for subject, body in inputs:
                extract(subject, body)
            done += len(inputs)
        us = (time.process_time() - cpu0) / done * 1e6
        figures.append(Figure("search", f"extraction CPU per input ({name})", round(us, 1), "µs"))
        detail[name] = {"inputs": done, "cpu_us_per_input": round(us, 1)}
    return figures, detail


async def run(n: int, engines: list[str], rounds: int = 10) -> tuple[list[Figure], dict[str, Any]]:
    figures, detail = _extraction()
    details: dict[str, Any] = {"extraction": detail}
    for engine in engines:
        found, d = await _latency(engine, n, rounds)
        figures += found
        details[engine] = d
    return figures, details
