"""Hot reload of config/ on a real `watchcentre serve` process: SIGHUP with a valid and then an
invalid configuration while messages flow. None is lost, the valid one is in force for the messages
after it (a new unit gets its queue and its copies), the invalid one is refused with every problem,
recorded and logged, and the service stays up on the configuration it had."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.integration.harness import ROOT, Broker, envelope
from tests.integration.processes import ServeProcess, poll_until
from watchcentre.adapters.sql import SqlStore
from watchcentre.core.access import Role
from watchcentre.core.ports import SystemClock
from watchcentre.security import issue_token

NEW_UNIT = """
  - id: ofast-sud
    name: "OFAST antenne sud"
    crime_areas: [drug_trafficking]
"""
N = 400


def events(broker: Broker, kind: str) -> list[dict[str, Any]]:
    return broker.events_of(kind)


async def test_sighup_reloads_a_valid_config_and_refuses_an_invalid_one_while_messages_flow(
    amqp_prefix: str, broker: Broker, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    proc = ServeProcess(
        prefix=amqp_prefix,
        database_url=f"sqlite:///{tmp_path / 'wc.db'}",
        name=f"wc-reload-{amqp_prefix}",
        log_dir=tmp_path,
        config_dir=config,
    )
    await proc.start()
    try:
        _, health = await proc.health()
        before = health["config"]
        assert len(before) == 64

        inputs = [envelope(message_id=f"flow-{i:04d}", countries=["ES"]) for i in range(N)]

        async def flow() -> None:
            for i, env in enumerate(inputs):
                await broker.publish(env)
                if i % 20 == 0:
                    await asyncio.sleep(0.01)  # a stream, not one burst

        publishing = asyncio.create_task(flow())

        # a valid change: a new unit for drugs
        network = config / "network.yaml"
        network.write_text(network.read_text(encoding="utf-8") + NEW_UNIT, encoding="utf-8")
        proc.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        await broker.wait_events(lambda _: bool(events(broker, "config_changed")), within=60)
        [changed] = events(broker, "config_changed")
        assert changed["actor"] == "signal:SIGHUP"
        assert changed["details"]["previous"] == before
        after = changed["details"]["digest"]
        assert after != before and set(changed["details"]["files"]) >= {"network.yaml", "taxonomy.yaml"}
        _, health = await proc.health()
        assert health["config"] == after

        # an invalid one: two problems, both reported; the running configuration is kept
        valid_text = network.read_text(encoding="utf-8")
        network.write_text(valid_text.replace("countries: [PT]", "countries: [PT, ZZ]"), encoding="utf-8")
        taxonomy = config / "taxonomy.yaml"
        taxonomy.write_text(
            taxonomy.read_text(encoding="utf-8").replace("patterns: []", "patterns: ['(unclosed']", 1),
            encoding="utf-8",
        )
        proc.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        await broker.wait_events(lambda _: bool(events(broker, "config_rejected")), within=60)
        [rejected] = events(broker, "config_rejected")
        problems = rejected["details"]["problems"]
        assert any("'ZZ'" in p for p in problems) and any("invalid regex" in p for p in problems), problems
        assert rejected["details"]["in_force"] == after
        [logged] = proc.log_lines("config_rejected")
        assert "ZZ" in logged and "invalid regex" in logged

        await publishing
        # none lost: every request routed to Madrid, whichever configuration decided it
        await poll_until(
            lambda: _count(broker, "post.madrid", N), within=120, what=f"{N} copies to post.madrid"
        )
        status, health = await proc.health()
        assert status == 200 and health["config"] == after
        exposition = await _metrics(proc)
        assert f'digest="{after}"' in exposition and f'digest="{before}"' not in exposition
        assert "watchcentre_config_reload_failures_total 1.0" in exposition

        # the configuration in force is the valid new one: a post's drug alert reaches the new unit
        alert = envelope(
            sender="madrid",
            kind="alert",
            subject="Saisie de cocaïne au port d'Algésiras",
            body="Saisie de 2 tonnes de cocaïne dans un conteneur; trafic de stupéfiants vers Marseille.",
        )
        await broker.publish(alert)
        await poll_until(
            lambda: _count(broker, "unit.ofast-sud", 1), within=30, what="a copy to the new unit"
        )
        [copy] = await broker.drain("unit.ofast-sud")
        routing = orjson.loads(copy.body)["routing"]
        assert "unit.ofast" in routing["recipients"] and "unit.ofast-sud" in routing["recipients"]

        # over HTTP: an operator may ask (audited with their name), a post may not
        network.write_text(valid_text, encoding="utf-8")
        shutil.copy(ROOT / "config" / "taxonomy.yaml", taxonomy)
        store = await SqlStore.sqlite(str(tmp_path / "wc.db"))
        try:
            op = (
                await issue_token(store, SystemClock(), role=Role.OPERATOR, subject=None, name="Jane")
            ).token
            post = (
                await issue_token(store, SystemClock(), role=Role.POST, subject="madrid", name="es")
            ).token
        finally:
            await store.close()
        async with aiohttp.ClientSession() as http:
            url = f"{proc.url}/api/console/config/reload"
            async with http.post(url, headers={"Authorization": f"Bearer {post}"}) as resp:
                assert resp.status == 403
            async with http.post(url, headers={"Authorization": f"Bearer {op}"}) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["outcome"] == "unchanged"
    finally:
        code, _ = await proc.terminate()
        with contextlib.suppress(Exception):
            assert broker.channel is not None
            await broker.channel.queue_delete(f"{amqp_prefix}.unit.ofast-sud")
    assert code == 0


async def _count(broker: Broker, suffix: str, n: int) -> bool:
    return await broker.count(suffix) >= n


async def _metrics(proc: ServeProcess) -> str:
    headers = {"Authorization": f"Bearer {proc.metrics_token}"}
    async with aiohttp.ClientSession() as http, http.get(f"{proc.url}/metrics", headers=headers) as resp:
        return await resp.text()
