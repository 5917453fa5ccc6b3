"""Security end to end, through the real RabbitMQ and a real store: handling markings in routing and
wherever a message is shown; no body, token or credential in the logs of a real `watchcentre serve`."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.integration.harness import ROOT, Broker, envelope, running
from tests.integration.processes import WATCHCENTRE, ServeProcess
from tests.integration.service_fixtures import CONFIG_DIR
from watchcentre.core.access import Role
from watchcentre.core.ports import SystemClock
from watchcentre.security import issue_token
from watchcentre.settings import Settings


def settled(events: list[dict[str, Any]], n: int) -> bool:
    return len([e for e in events if e["type"] in ("routed", "triaged", "rejected")]) >= n


@pytest.fixture
def sqlite_settings(amqp_prefix: str, tmp_path: Path) -> Settings:
    return Settings(
        amqp_prefix=amqp_prefix,
        database_url=f"sqlite:///{tmp_path / 'wc.db'}",  # type: ignore[arg-type]
        config_dir=str(CONFIG_DIR),
        http_port=0,
        shutdown_deadline_s=5.0,
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# -- handling markings ------------------------------------------------------------------------------

MOROCCO_AND_SPAIN = "Cocaïne saisie à Tanger (Maroc); le destinataire réside à Madrid (Espagne)."


async def test_handling_markings_are_respected_in_routing_and_shown_wherever_the_message_is(
    sqlite_settings: Settings, broker: Broker, http: aiohttp.ClientSession
) -> None:
    no_onward = envelope(
        message_id="h-no-onward", handling="no-onward", countries=["MA", "ES"], body=MOROCCO_AND_SPAIN
    )
    centre_only = envelope(message_id="h-centre-only", handling="centre-only", countries=["MA"])
    restricted = envelope(
        message_id="h-restricted", handling="restricted", countries=["MA", "ES"], body=MOROCCO_AND_SPAIN
    )
    unmarked = envelope(message_id="h-unmarked", countries=["MA", "ES"], body=MOROCCO_AND_SPAIN)
    async with running(sqlite_settings) as inst:
        for env in (no_onward, centre_only, restricted, unmarked):
            await broker.publish(env)
        await broker.wait_events(lambda ev: settled(ev, 4))
        store, clock = inst.runtime.store, SystemClock()
        tokens = {
            label: (await issue_token(store, clock, role=role, subject=subject, name=label)).token
            for label, role, subject in (
                ("operator", Role.OPERATOR, None),
                ("rabat", Role.POST, "rabat"),
                ("madrid", Role.POST, "madrid"),
            )
        }

        async def get(path: str, who: str) -> tuple[int, Any]:
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            async with http.get(f"{inst.url}{path}", headers=headers) as resp:
                return resp.status, await resp.json()

        status, page = await get("/api/messages", "operator")
        assert status == 200
        shown = {m["message_id"]: m["handling"] for m in page["items"]}
        assert shown == {
            "h-no-onward": "no-onward",
            "h-centre-only": "centre-only",
            "h-restricted": "restricted",
            "h-unmarked": None,
        }
        detail = {}
        for mid in shown:
            status, detail[mid] = await get(f"/api/messages/{mid}", "operator")
            assert status == 200 and detail[mid]["handling"] == shown[mid]
            assert detail[mid]["envelope"].get("handling") == shown[mid]

        # no-onward: never fanned out; the one post that got it sees it, the withheld post does not
        [kept] = detail["h-no-onward"]["recipients"]
        assert kept in ("post.rabat", "post.madrid")
        withheld = "madrid" if kept == "post.rabat" else "rabat"
        assert any(
            f"withheld from post.{withheld}" in line
            for line in detail["h-no-onward"]["routing"]["explanation"]
        )
        assert (await get("/api/messages/h-no-onward", withheld))[0] == 404
        assert "h-no-onward" not in [
            m["message_id"] for m in (await get("/api/messages", withheld))[1]["items"]
        ]
        status, seen = await get("/api/messages/h-no-onward", kept.removeprefix("post."))
        assert status == 200 and seen["handling"] == "no-onward"
        # centre-only: the centre's triage alone, no post
        assert detail["h-centre-only"]["recipients"] == ["centre.triage"]
        assert (await get("/api/messages/h-centre-only", "rabat"))[0] == 404
        # restricted routes as usual
        assert sorted(detail["h-restricted"]["recipients"]) == ["post.madrid", "post.rabat"]
        assert sorted(detail["h-unmarked"]["recipients"]) == ["post.madrid", "post.rabat"]

    queues = {q: await broker.drain(q) for q in ("post.rabat", "post.madrid", "centre.triage")}
    held = {q: sorted(orjson.loads(m.body)["message_id"] for m in ms) for q, ms in queues.items()}
    assert held[kept] == sorted(["h-no-onward", "h-restricted", "h-unmarked"])
    assert held[f"post.{withheld}"] == ["h-restricted", "h-unmarked"]
    assert held["centre.triage"] == ["h-centre-only"]
    # the marking travels in every routed copy: in the body and as a header
    for ms in queues.values():
        for m in ms:
            copy = orjson.loads(m.body)
            marking = {
                "h-no-onward": "no-onward",
                "h-centre-only": "centre-only",
                "h-restricted": "restricted",
                "h-unmarked": None,
            }[copy["message_id"]]
            assert copy.get("handling") == marking
            assert (m.headers or {}).get("x-watchcentre-handling") == marking


# -- logs ------------------------------------------------------------------------------------------

SECRET_BODY = "Le témoin protégé Zéphyrin Quatremer-8841 réside rue des Lilas"
AMQP_PASSWORD = "guest"  # the broker's password; the URL below carries it


def issue_cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [*WATCHCENTRE, "token", "issue", *args],
        capture_output=True,
        env=env,
        timeout=60,
        check=True,
        cwd=str(ROOT),
    )
    return out.stdout.decode().strip()


async def test_logs_hold_no_message_body_no_token_and_no_credentials(
    broker: Broker, amqp_prefix: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    proc = ServeProcess(
        prefix=amqp_prefix,
        database_url=f"sqlite:///{tmp_path / 'wc.db'}",
        name=f"wc-logs-{amqp_prefix}",
        log_dir=tmp_path,
        amqp_url=f"amqp://guest:{AMQP_PASSWORD}@127.0.0.1:5672/",
    )
    env = {**proc.env, "WATCHCENTRE_CONFIG_DIR": str(CONFIG_DIR)}
    token = await asyncio.to_thread(issue_cli, env, "--role", "post:rabat", "--name", "Officer L")
    assert token.startswith("wct_")
    guess = "wct_" + "Q" * 43
    await proc.start()
    try:
        good = envelope(message_id="log-good", countries=["MA"], body=SECRET_BODY, subject="Témoin protégé")
        bad = envelope(message_id="log-bad", kind="gossip", body=SECRET_BODY)
        for env_ in (good, bad):
            await broker.publish(env_)
        await broker.wait_events(lambda ev: settled(ev, 2))

        async with http.post(f"{proc.url}/signin", data={"token": guess}) as resp:
            assert resp.status == 401
        async with http.post(f"{proc.url}/signin", data={"token": token}, allow_redirects=False) as resp:
            assert resp.status == 303
        cookie = {"Cookie": f"wc_session={token}"}
        async with http.get(f"{proc.url}/api/messages/log-good", headers=cookie) as resp:
            assert resp.status == 200
            assert (await resp.json())["envelope"]["body"] == SECRET_BODY  # the body was there to leak
        async with http.get(
            f"{proc.url}/api/messages", headers={"Authorization": f"Bearer {guess}x"}
        ) as resp:
            assert resp.status == 401
    finally:
        code, _ = await proc.terminate()
    assert code == 0
    log = proc.log_path.read_text()
    for event in ("started", "routed", "rejected", "signin_failed", "signed_in", "authentication_failed"):
        assert f'"event": "{event}"' in log, event  # the log did record what happened
    assert "amqp://guest:***@127.0.0.1:5672/" in log
    # (JSON logs escape non-ASCII: look for ASCII parts of the body too)
    for leak in (
        SECRET_BODY,
        "Quatremer-8841",
        "rue des Lilas",
        token,
        token[4:20],
        guess,
        f":{AMQP_PASSWORD}@",
    ):
        assert leak not in log, leak
