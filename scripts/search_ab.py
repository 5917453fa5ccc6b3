"""Search latency before and after a change, in one run: the search module of another checkout
(before) and this one's (after), call by call alternated over the same stored messages (so both see
the same machine load), on each engine, as an operator and as a post (benchmarks/search.py's store
and queries). For docs/performance.md.

    git worktree add /tmp/before <commit>   # or git archive <commit> | tar -x -C /tmp/before
    PYTHONPATH=. .venv/bin/python scripts/search_ab.py /tmp/before 100000 10 [sqlite|postgres ...]
"""

import asyncio
import functools
import importlib.util
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import PG_URL
from benchmarks.search import BATCH, QUERIES, _outcomes
from watchcentre.adapters.sql import SqlStore
from watchcentre.adapters.sql import search as after
from watchcentre.core.records import Visibility
from watchcentre.core.search import SearchQuery, parse_query


def _before(checkout: str):
    """The other checkout's search module (its imports resolve to this checkout's store helpers)."""
    spec = importlib.util.spec_from_file_location(
        "before_search", f"{checkout}/watchcentre/adapters/sql/search.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _search(module, d):
    """The module's search on dialect `d`: its `SqlSearch`'s method, or (a checkout from before
    SqlSearch) its function of the dialect."""
    if not hasattr(module, "SqlSearch"):
        return functools.partial(module.search, d)
    searcher = object.__new__(module.SqlSearch)
    searcher._d = d
    return searcher.search


async def run(before, engine, n, rounds):
    schema = f"bench_ab_{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as tmp:
        store = await (
            SqlStore.sqlite(str(Path(tmp) / "s.db"))
            if engine == "sqlite"
            else SqlStore.postgres(PG_URL, schema=schema)
        )
        try:
            outs = _outcomes(n)
            for i in range(0, n, BATCH):
                await store.save_batch(outs[i : i + BATCH])
            d = store._d
            if engine == "postgres":
                await d.fetch("ANALYZE")
            post = Visibility(senders=frozenset({"es"}), recipients=frozenset({"post.es"}))
            for who, vis in (("operator", None), ("post", post)):
                ms = {"before": [], "after": []}
                worst = {}
                for r in range(rounds + 1):
                    for q in QUERIES:
                        order = (
                            (("before", before), ("after", after))
                            if r % 2
                            else (("after", after), ("before", before))
                        )
                        for name, mod in order:
                            t = time.perf_counter()
                            await _search(mod, d)(SearchQuery(q=q, limit=21), parse_query(q), vis)
                            dt = (time.perf_counter() - t) * 1000
                            if r:  # round 0 warms up
                                ms[name].append(dt)
                                worst[(name, q)] = max(worst.get((name, q), 0), dt)
                for name, xs in ms.items():
                    xs.sort()
                    p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
                    slow = sorted(((v, q) for (nm, q), v in worst.items() if nm == name), reverse=True)[:2]
                    print(
                        f"{engine:8} {who:8} {name:6} p50 {statistics.median(xs):7.1f} ms  p99 {p99:7.1f} ms  max {xs[-1]:7.1f} ms  slowest {[(q, round(v)) for v, q in slow]}",
                        flush=True,
                    )
        finally:
            await store.close()
            if engine == "postgres":
                import asyncpg

                c = await asyncpg.connect(PG_URL)
                await c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                await c.close()


async def main():
    before, n, rounds = _before(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for e in sys.argv[4:] or ("sqlite", "postgres"):
        await run(before, e, n, rounds)


if __name__ == "__main__":
    asyncio.run(main())
