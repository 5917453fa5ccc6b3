"""What-if and eval on a real store (SQLite and PostgreSQL) with a known history: a country moved from
one post to another shows exactly the messages about it as changed, nothing else; an operator's
override is not what the rules are compared with; a purged message is counted and skipped; operators'
corrections are kept as labels, validated, and used by eval. The command's `--json` answer is checked
for its exact shape."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from tests.integration.harness import ROOT
from tests.integration.service_fixtures import POSTGRES_URL
from watchcentre.adapters.config_files import load_config
from watchcentre.adapters.metrics import PrometheusMetrics
from watchcentre.adapters.sql import SqlStore
from watchcentre.bootstrap import Service, build_classifier, build_rules, build_service
from watchcentre.core.errors import Invalid
from watchcentre.core.ports import OutboundCopy, SystemClock
from watchcentre.core.records import AuditEvent
from watchcentre.core.rules import Rules
from watchcentre.core.senders import SenderPolicy
from watchcentre.service import ServiceSettings
from watchcentre.service.whatif import evaluate_labels, what_if


class Confirmed:
    """A Publisher whose broker confirms everything at once (what-if does not read the broker)."""

    async def publish_routed(self, copies: Sequence[OutboundCopy]) -> None:
        return None

    async def publish_dead(self, body: bytes, reason: str, headers: Mapping[str, str]) -> None:
        return None

    async def publish_events(self, events: Sequence[AuditEvent]) -> None:
        return None

    async def publish_reply(self, to: str, body: bytes, correlation_id: str | None) -> None:
        return None


def env(message_id: str, countries: list[str], **kw: Any) -> bytes:
    base = {
        "message_id": message_id,
        "sender": "ofast",
        "kind": "request",
        "subject": "Trafic de cocaïne",
        "body": "Demande d'identification d'un suspect.",
        "countries": countries,
        "sent_at": datetime.now(UTC).isoformat(),
    }
    return orjson.dumps(base | kw)


HISTORY = {  # message_id → the countries its sender named
    "es-1": ["ES"],
    "es-2": ["ES"],
    "ad-1": ["AD"],
    "es-ad": ["ES", "AD"],
    "ma-1": ["MA"],
    "pt-1": ["PT"],
    "manual-es": ["ES"],
    "purged-ad": ["AD"],
}


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[SqlStore, str]]:
    if request.param == "sqlite":
        path = tmp_path / "wc.db"
        s = await SqlStore.sqlite(str(path))
        yield s, f"sqlite:///{path}"
        await s.close()
        return
    schema = f"wc_test_{secrets.token_hex(4)}"
    s = await SqlStore.postgres(POSTGRES_URL, schema=schema)
    yield s, schema
    await s.close()
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def candidate(tmp_path: Path, move: str = "AD", to: str = "lisbon") -> tuple[Path, Rules]:
    """config/ with one country moved from its post to another."""
    directory = tmp_path / "candidate"
    shutil.copytree(ROOT / "config", directory)
    network = directory / "network.yaml"
    text = network.read_text(encoding="utf-8")
    text = text.replace("countries: [ES, AD]", "countries: [ES]").replace(
        "countries: [PT]", f"countries: [PT, {move}]" if to == "lisbon" else "countries: [PT]"
    )
    network.write_text(text, encoding="utf-8")
    config = load_config(directory)
    return directory, build_rules(config, build_classifier(config), SenderPolicy())


async def fill(store: SqlStore) -> Service:
    config = load_config(ROOT / "config")
    service = build_service(
        config=config,
        classifier=build_classifier(config),
        store=store,
        publisher=Confirmed(),
        metrics=PrometheusMetrics(),
        clock=SystemClock(),
        settings=ServiceSettings(senders=SenderPolicy(development=True)),
        labels=store,
    )
    await service.start()
    for message_id, countries in HISTORY.items():
        assert await service.pipeline.handle(env(message_id, countries)) == "routed"
    # a case action follows its case, not the rules: not replayed
    await service.pipeline.handle(
        orjson.dumps(
            {
                "message_id": "ack-1",
                "sender": "madrid",
                "kind": "ack",
                "subject": "Accusé de réception",
                "body": "Bien reçu.",
                "in_reply_to": "es-1",
                "sent_at": datetime.now(UTC).isoformat(),
            }
        )
    )
    return service


async def test_a_moved_country_changes_exactly_its_messages(
    store: tuple[SqlStore, str], tmp_path: Path
) -> None:
    s, where = store
    service = await fill(s)
    try:
        # an operator overrode one message: the rules are compared with the rules' own decision
        await service.operator.route_manually(
            sender="ofast",
            message_id="manual-es",
            recipients=["post.rome"],
            reason="suspect moved",
            actor="op:Jane",
        )
        # a purged message: no text left
        await _purge(s, where, "purged-ad")
        _, rules = candidate(tmp_path)
        seen: list[int] = []
        report = await what_if(s, rules, page=3, progress=seen.append)
    finally:
        await service.stop()
    assert report.messages == len(HISTORY) + 1 == sum(seen)
    assert report.outcomes == {"same": 5, "changed": 2, "purged": 1, "case_action": 1}
    by_id = {c.message_id: c for c in report.changes}
    assert set(by_id) == {"ad-1", "es-ad"}
    assert (by_id["ad-1"].before, by_id["ad-1"].after) == (["post.madrid"], ["post.lisbon"])
    assert (by_id["es-ad"].before, set(by_id["es-ad"].after)) == (
        ["post.madrid"],
        {"post.madrid", "post.lisbon"},
    )
    assert by_id["ad-1"].sender == "ofast"
    assert "to post.lisbon: country AD (1.00) is covered by lisbon" in by_id["ad-1"].why
    assert any(line.startswith("no longer to post.madrid: country AD") for line in by_id["ad-1"].why)

    # the same configuration changes nothing, the override included
    same = load_config(ROOT / "config")
    unchanged = await what_if(s, build_rules(same, build_classifier(same), SenderPolicy()))
    assert unchanged.changed == 0

    # a period: only what was received in it
    later = await what_if(s, rules, since=datetime.now(UTC) + timedelta(hours=1))
    assert (later.messages, later.changed) == (0, 0)


async def test_whatif_command_answers_the_contract_shape(store: tuple[SqlStore, str], tmp_path: Path) -> None:
    s, where = store
    if not where.startswith("sqlite"):
        pytest.skip("the command's output does not depend on the engine")
    service = await fill(s)
    await service.stop()
    directory, _ = candidate(tmp_path)
    environ = {**os.environ, "WATCHCENTRE_DATABASE_URL": where, "PYTHONPATH": str(ROOT)}
    code, out, err = await whatif_json(directory, environ)
    assert code == 0, err
    answer = orjson.loads(out)
    assert set(answer) == {"messages", "changed", "changes"}
    assert (answer["messages"], answer["changed"]) == (len(HISTORY) + 1, 3)
    assert all(set(c) == {"message_id", "sender", "before", "after", "why"} for c in answer["changes"])
    assert b"labelling quality" in err and b"held out" in err
    # an invalid candidate: every problem listed, nothing replayed
    network = directory / "network.yaml"
    network.write_text(
        network.read_text(encoding="utf-8").replace("countries: [PT, AD]", "countries: [PT, ZZ]"),
        encoding="utf-8",
    )
    code, out, err = await whatif_json(directory, environ)
    assert code == 2 and out == b""
    assert b"'ZZ'" in err and b"covered by no post: AD" in err


async def whatif_json(directory: Path, environ: dict[str, str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "watchcentre", "whatif", "--config", str(directory), "--json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out, err


async def test_corrections_are_validated_kept_as_labels_and_used_by_eval(store: tuple[SqlStore, str]) -> None:
    s, _ = store
    service = await fill(s)
    try:
        with pytest.raises(Invalid) as bad_type:
            await service.operator.route_manually(
                sender="ofast",
                message_id="es-2",
                recipients=["post.madrid"],
                reason="r",
                actor="op:Jane",
                crime_types=["drug_trafficking", "jaywalking"],
            )
        assert bad_type.value.field == "crime_types"
        with pytest.raises(Invalid) as bad_country:
            await service.operator.route_manually(
                sender="ofast",
                message_id="es-2",
                recipients=["post.madrid"],
                reason="r",
                actor="op:Jane",
                countries=["ES", "XX"],
            )
        assert bad_country.value.field == "countries"
        assert await s.labels() == []  # nothing kept from a refused correction
        _, events = await service.operator.route_manually(
            sender="ofast",
            message_id="es-2",
            recipients=["post.madrid", "unit.oclco"],
            reason="it is a gang, not only drugs",
            actor="op:Jane",
            crime_types=["organised_crime", "drug_trafficking"],
            countries=["es"],
        )
        assert events[-1].details["corrections"] == {
            "crime_types": ["organised_crime", "drug_trafficking"],
            "countries": ["ES"],
        }
        [(label, envelope)] = await s.labels()
        assert (label.actor, label.reason) == ("op:Jane", "it is a gang, not only drugs")
        assert label.crime_types == ["organised_crime", "drug_trafficking"] and label.countries == ["ES"]
        assert label.predicted_crime_types == ["drug_trafficking"]
        assert "organised_crime: missed" in label.blamed
        assert envelope is not None and envelope["message_id"] == "es-2"
        corrected, rules = await service.operator.most_corrected()
        assert corrected == 1 and ("organised_crime: missed", 1) in rules

        ev = evaluate_labels(await s.labels(), service.rules.current)
        assert ev.items == 1 and ev.primary_accuracy == 0.0  # the rules said drugs first
        assert ev.as_dict()["per_crime_type"]["organised_crime"]["recall"] == 0.0
        assert ev.as_dict()["countries"]["precision"] == 1.0
    finally:
        await service.stop()


async def _purge(s: SqlStore, where: str, message_id: str) -> None:
    """What data protection leaves of a purged message: its ids and decision, no text."""
    rows = await s._d.fetch("SELECT envelope FROM messages WHERE message_id = $1", message_id)
    envelope = orjson.loads(rows[0][0]) | {"subject": "", "body": ""}
    await s._d.write(
        lambda t: t.fetch(
            "UPDATE messages SET envelope = $1 WHERE message_id = $2",
            orjson.dumps(envelope).decode(),
            message_id,
        )
    )
