"""What posts and units do from their screens, tried from the attacker's side, on real RabbitMQ and
the database: the live feed (GET /api/feed) tells a post or a unit of its own messages and cases
the moment they change, and of nothing else, live or in the back-fill; sending from a screen
(POST /api/send) goes through the pipeline as the session's party, whatever the body claims."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from tests.integration.harness import Broker, Instance, envelope, running
from watchcentre.core.access import Role
from watchcentre.core.ports import SystemClock
from watchcentre.security import issue_token
from watchcentre.settings import Settings

pytestmark = pytest.mark.integration

PARTIES = {
    "madrid": (Role.POST, "madrid"),
    "rome": (Role.POST, "rome"),
    "ofast": (Role.UNIT, "ofast"),
    "oclco": (Role.UNIT, "oclco"),
    "auditor": (Role.AUDITOR, None),
    "operator": (Role.OPERATOR, None),
}


class Party:
    def __init__(self, instance: Instance, token: str) -> None:
        self.instance = instance
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})

    @property
    def feed_url(self) -> str:
        return self.instance.url.replace("http", "ws") + "/api/feed"


@pytest.fixture
async def parties(
    service_settings: Settings, broker: Broker
) -> AsyncIterator[tuple[Instance, dict[str, Party]]]:
    async with running(service_settings) as inst:
        rt = inst.runtime
        out = {}
        for name, (role, subject) in PARTIES.items():
            issued = await issue_token(
                rt.store, SystemClock(), role=role, subject=subject, name=name, network=rt.config.network
            )
            out[name] = Party(inst, issued.token)
        try:
            yield inst, out
        finally:
            for p in out.values():
                await p.session.close()


async def next_items(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    frame = await ws.receive_json(timeout=20)
    assert frame["type"] == "events", frame
    items: list[dict[str, Any]] = frame["items"]
    return items


async def until(
    ws: aiohttp.ClientWebSocketResponse, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Every item received until `done` holds of them (awaited frames, no sleep)."""
    got: list[dict[str, Any]] = []
    while not done(got):
        got += await next_items(ws)
    return got


def has(kind: str, reference: str | None = None) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda got: any(
        i["type"] == kind and (reference is None or i["reference"] == reference) for i in got
    )


async def backfill(party: Party, after: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    async with party.session.ws_connect(f"{party.feed_url}?after={after}") as ws:
        while (frame := await ws.receive_json(timeout=20))["type"] != "live":
            if frame["type"] == "backfill":
                items += frame["items"]
    return items


async def test_a_post_and_a_unit_hear_only_of_their_own_cases_live_and_in_the_backfill(
    parties: tuple[Instance, dict[str, Party]], broker: Broker
) -> None:
    inst, p = parties
    async with p["auditor"].session.get(p["auditor"].feed_url) as r:
        assert r.status == 403
    names = ("madrid", "rome", "ofast", "oclco")
    sockets = {name: await p[name].session.ws_connect(p[name].feed_url) for name in names}
    try:
        for ws in sockets.values():
            snapshot = await ws.receive_json()
            assert snapshot["type"] == "snapshot" and snapshot["messages"] == []  # lists come from the API
            assert (await ws.receive_json())["type"] == "live"
        start = snapshot["cursor"]
        operator = await p["operator"].session.ws_connect(p["operator"].feed_url)
        assert (await operator.receive_json())["type"] == "snapshot"
        assert (await operator.receive_json())["type"] == "live"

        # ofast asks Madrid: Madrid and ofast hear of it at once, and of nothing more than that it happened
        first = envelope(sender="ofast", countries=["ES"], subject="Go-fast Algeciras")
        await broker.publish(first)
        madrid = await until(sockets["madrid"], lambda got: has("case_opened")(got) and has("routed")(got))
        ref = next(i["reference"] for i in madrid if i["type"] == "case_opened")
        routed = next(i for i in madrid if i["type"] == "routed")
        assert routed["message"]["message_id"] == first["message_id"] and routed["reference"] == ref
        assert all("actor" not in i and "details" not in i for i in madrid)
        await until(sockets["ofast"], has("case_opened", ref))

        # Madrid acknowledges on its screen (HTTP): both sides hear of it the moment it is committed
        async with p["madrid"].session.post(f"{inst.url}/api/cases/{ref}/ack") as r:
            assert r.status == 200
        await until(sockets["madrid"], has("case_acknowledged", ref))
        await until(sockets["ofast"], has("case_acknowledged", ref))
        await until(operator, has("case_acknowledged", ref))  # an operator's tracking page follows too
        await operator.close()

        # then oclco asks Rome: what Rome and oclco hear first is that one; nothing of Madrid's case came before
        second = envelope(sender="oclco", countries=["IT"], subject="Armes Naples")
        await broker.publish(second)
        rome = await until(sockets["rome"], has("case_opened"))
        ref2 = next(i["reference"] for i in rome if i["type"] == "case_opened")
        oclco = await until(sockets["oclco"], has("case_opened", ref2))
        for got in (rome, oclco):
            assert ref2 != ref and {i["reference"] for i in got} == {ref2}
            assert first["message_id"] not in {i.get("message_id") for i in got}
    finally:
        for ws in sockets.values():
            await ws.close()

    # a reconnect back-fills from the audit store with the same rule
    assert {i["reference"] for i in await backfill(p["rome"], start)} == {ref2}
    assert {i["reference"] for i in await backfill(p["oclco"], start)} == {ref2}
    madrid_again = await backfill(p["madrid"], start)
    assert {i["reference"] for i in madrid_again} == {ref} and has("case_acknowledged", ref)(madrid_again)
    assert {i["reference"] for i in await backfill(p["ofast"], start)} == {ref}


async def test_sending_from_a_screen_is_routed_as_the_sessions_party(
    parties: tuple[Instance, dict[str, Party]], broker: Broker
) -> None:
    inst, p = parties
    info = {"kind": "information", "subject": "Saisie de cocaïne au port d'Algésiras", "body": "2 t saisies."}
    async with p["madrid"].session.post(f"{inst.url}/api/send", json=info) as r:
        assert r.status == 200, await r.text()
        sent = (await r.json())["message"]
    assert sent["sender"] == "madrid" and "centre.inbox" in sent["recipients"]
    # the copy the centre receives, as if Madrid had published it over AMQP
    await broker.wait_events(
        lambda evs: any(e["message_id"] == sent["message_id"] and e["type"] == "routed" for e in evs)
    )
    copies = [
        m
        for m in await broker.drain("centre.inbox")
        if m.headers.get("x-watchcentre-message-id") == sent["message_id"]
    ]
    assert len(copies) == 1 and copies[0].headers["x-watchcentre-sender"] == "madrid"

    # a unit's request opens a case it then sees in its list
    ask = {
        "kind": "request",
        "subject": "Identification",
        "body": "Qui est ce suspect ?",
        "countries": ["ES"],
    }
    async with p["ofast"].session.post(f"{inst.url}/api/send", json=ask) as r:
        assert r.status == 200, await r.text()
        reference = (await r.json())["message"]["reference"]
    async with p["ofast"].session.get(f"{inst.url}/api/cases") as r:
        assert reference in {c["reference"] for c in (await r.json())["items"]}

    # the body cannot name another sender; only posts and units send; refusals name the field
    async with p["madrid"].session.post(f"{inst.url}/api/send", json={**info, "sender": "rome"}) as r:
        assert r.status == 400 and (await r.json())["error"]["field"] == "sender"
    async with p["madrid"].session.post(f"{inst.url}/api/send", json={**info, "countries": ["ZZ"]}) as r:
        assert r.status == 400 and (await r.json())["error"]["field"] == "countries"
    async with p["auditor"].session.post(f"{inst.url}/api/send", json=info) as r:
        assert r.status == 403
    async with p["madrid"].session.post(
        f"{inst.url}/api/send", json=info, headers={"Origin": "https://evil.example"}
    ) as r:
        assert r.status == 403
