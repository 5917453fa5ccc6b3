"""Need-to-know inside the query for every case list, with keyset paging, on SQLite and PostgreSQL.

The attack it replays: lists used to read the 10,000 oldest cases and filter them in Python, so with
10,003 cases the unit and the post owning the three newest saw an empty list. Here 10,003 cases go
straight into the store through its batch method (`open_cases`), then real HTTP requests with real
tokens list them as each party would.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.integration import test_store
from tests.integration.test_http import NETWORK
from tests.integration.test_store import Backend
from watchcentre.adapters.http_app import create_app
from watchcentre.adapters.http_base import HttpDeps
from watchcentre.core.access import Role
from watchcentre.core.lifecycle import Case, DeadlineRules, new_case
from watchcentre.core.ports import ReferenceTaken, SystemClock
from watchcentre.core.references import well_formed
from watchcentre.security import issue_token

backend = test_store.backend  # every test runs on SQLite and on PostgreSQL

T0 = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
RULES = DeadlineRules.eu_default()
OLD = 10_000
WHO = {
    "operator": (Role.OPERATOR, None),
    "post:es": (Role.POST, "es"),
    "post:de": (Role.POST, "de"),
    "post:ma": (Role.POST, "ma"),
    "unit:ocrtis": (Role.UNIT, "ocrtis"),
    "unit:c3n": (Role.UNIT, "c3n"),
}


def request(n: int, sender: str, post: str, at: datetime) -> Case:
    return new_case(
        reference="",
        sender=sender,
        message_id=f"m-{n}",
        priority="normal",
        access=None,
        subject=f"case {n}",
        crime_types=["drug_trafficking"],
        countries=["ES"],
        recipients=[f"post.{post}"],
        triage=False,
        opened_at=at,
        rules=RULES,
    )


@dataclass
class Site:
    client: TestClient[Any, Any]
    tokens: dict[str, str]

    async def get(self, path: str, who: str, **params: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        async with self.client.get(path, params=params, headers=headers) as resp:
            return resp.status, await resp.json()

    async def walk(self, path: str, who: str, limit: int) -> list[list[dict[str, Any]]]:
        """Every page, following `next` until it is null."""
        pages, params = [], {"limit": str(limit)}
        while True:
            status, body = await self.get(path, who, **params)
            assert status == 200, body
            pages.append(body["items"])
            if body["next"] is None:
                return pages
            params["before"] = body["next"]


async def site(backend: Backend) -> AsyncIterator[Site]:
    async def ready() -> dict[str, bool]:
        return {}

    deps = HttpDeps(
        store=backend.store,
        network=NETWORK,
        readiness=ready,
        render_metrics=lambda: (b"", "text/plain"),
        version="t",
        clock=SystemClock(),
    )
    tokens = {}
    for label, (role, subject) in WHO.items():
        tokens[label] = (
            await issue_token(backend.store, SystemClock(), role=role, subject=subject, name=label)
        ).token
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        yield Site(client, tokens)
    finally:
        await client.close()


@pytest.fixture
async def crowded(backend: Backend) -> AsyncIterator[tuple[Site, list[str]]]:
    """10,000 old requests from ocrtis to the post in Spain (four opened in each second: equal times
    are ordered by reference), then the three newest, from c3n to the post in Germany."""
    old = [request(n, "ocrtis", "es", T0 + timedelta(seconds=n // 4)) for n in range(OLD)]
    newest = [request(OLD + n, "c3n", "de", T0 + timedelta(days=1, seconds=n)) for n in range(3)]
    opened = [*await backend.store.open_cases(old), *await backend.store.open_cases(newest)]
    assert not any(isinstance(r, ReferenceTaken) for r in opened)
    refs = [r[0].reference for r in opened if not isinstance(r, ReferenceTaken)]
    assert len(set(refs)) == OLD + 3 and all(well_formed(r) for r in refs)
    async for s in site(backend):
        yield s, refs


def references(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [item["reference"] for page in pages for item in page]


async def test_lists_are_scoped_in_the_query_and_paged_without_gaps(crowded: tuple[Site, list[str]]) -> None:
    s, refs = crowded
    # the parties owning the three newest cases see exactly them, not an empty list
    newest = set(refs[OLD:])
    for who, path in (
        ("unit:c3n", "/api/cases"),
        ("post:de", "/api/cases"),
        ("post:de", "/api/posts/de/inbox"),
        ("operator", "/api/posts/de/inbox"),
    ):
        status, body = await s.get(path, who)
        assert status == 200 and {i["reference"] for i in body["items"]} == newest, (who, path)
        assert body["next"] is None and len(body["items"]) == 3
    for who in ("post:ma", "unit:ocrtis"):  # ocrtis sent only the old ones; nothing goes to Morocco
        status, body = await s.get("/api/cases", who, limit="5")
        assert status == 200 and not newest & {i["reference"] for i in body["items"]}
    assert (await s.get("/api/cases", "post:ma"))[1] == {"items": [], "next": None}
    status, stats = await s.get("/api/stats", "operator")
    assert status == 200 and stats["total"] == OLD + 3 and stats["by_post"] == {"de": 3, "es": OLD}

    # paging walks every case once, newest first
    pages = await s.walk("/api/cases", "operator", limit=1000)
    assert [len(p) for p in pages] == [1000] * 10 + [3]
    walked = references(pages)
    assert len(walked) == len(set(walked)) and set(walked) == set(refs)  # no gap, no duplicate
    assert set(references(pages[:1])) >= set(refs[OLD:])  # the newest come first
    for newer, older in itertools.pairwise(pages):  # pages do not interleave in time
        assert min(i["opened_at"] for i in newer) >= max(i["opened_at"] for i in older)

    mine = references(await s.walk("/api/cases", "post:es", limit=999))  # a post: its own, every one
    assert len(mine) == OLD and set(mine) == set(refs[:OLD])
    inbox = references(await s.walk("/api/posts/es/inbox", "post:es", limit=1000))
    assert len(inbox) == OLD and set(inbox) == set(refs[:OLD])
    units = references(await s.walk("/api/cases", "unit:c3n", limit=1))  # one at a time, ties and all
    assert units == list(reversed(refs[OLD:]))


async def test_limits_and_cursors_are_validated(backend: Backend) -> None:
    opened = await backend.store.open_cases(
        [request(n, "c3n", "de", T0 + timedelta(seconds=n)) for n in range(3)]
    )
    assert len(opened) == 3
    async for s in site(backend):
        for path in ("/api/cases", "/api/posts/de/inbox"):
            for limit in ("0", "1001", "-1", "ten"):
                status, body = await s.get(path, "operator", limit=limit)
                assert status == 400 and body["error"]["field"] == "limit", (path, limit)

            def b64(value: Any) -> str:
                return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")

            bad = [
                "not a cursor",
                "%%%",
                "x" * 401,
                b64({"opened_at": "2026-02-02T08:00:00+00:00"}),
                b64(["2026-02-02T08:00:00", "WC-2026-X"]),  # no offset
                b64(["2026-02-02T08:00:00+00:00", ""]),
                b64(["2026-02-02T08:00:00+00:00", 7]),
                b64(["yesterday", "WC-2026-X"]),
                b64(["9999-12-31T23:59:59-23:59", "WC-2026-X"]),  # past year 9999 in UTC
                b64(["0001-01-01T00:00:00+23:59", "WC-2026-X"]),  # before year 1 in UTC
            ]
            for cursor in bad:
                status, body = await s.get(path, "operator", before=cursor)
                assert status == 400 and body["error"]["field"] == "before", (path, cursor)
            status, body = await s.get(path, "operator", colour="red")
            assert status == 400 and body["error"]["field"] == "colour"

        # a cursor moves along the caller's own list: another party's cursor widens nothing
        status, first = await s.get("/api/cases", "operator", limit="1")
        assert status == 200 and first["next"]
        for who in ("post:es", "unit:ocrtis"):
            assert (await s.get("/api/cases", who, before=first["next"]))[1] == {"items": [], "next": None}
        status, rest = await s.get("/api/cases", "unit:c3n", before=first["next"])
        assert status == 200 and len(rest["items"]) == 2 and rest["next"] is None
