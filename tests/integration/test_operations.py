"""What the on-call engineer reads on /metrics, after a known history, on both engines: open and
overdue cases, warnings, the triage backlog, queue depths and the intake lag, copies by recipient
kind, the audit head and its anchor, the configuration in force; and `promtool check metrics`
accepts the output (Debian's `prometheus` package provides promtool)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.integration.harness import ROOT, Broker, envelope, running
from tests.integration.service_fixtures import CONFIG_DIR
from watchcentre.adapters.config_files import config_digest
from watchcentre.bootstrap import open_store
from watchcentre.core.lifecycle import Action, DeadlineRules, Side, apply, new_case
from watchcentre.core.records import SYSTEM_ACTOR, AuditEvent
from watchcentre.settings import Settings

TOKEN = "scrape-token-for-the-operations-test"
RULES = DeadlineRules.eu_default()
ALERTS = ("overdue", "deadline_warning")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as http:
        resp = await http.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 200
        return await resp.text()


def alert_metrics() -> set[str]:
    """Every watchcentre_* metric name the shipped alert rules and the dashboard use."""
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "watchcentre.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    names = {n for e in exprs for n in re.findall(r"\bwatchcentre_[a-z_]+", e)}
    assert len(names) >= 8, names
    return names


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; scripts/test does it)")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode() + done.stdout.decode()


async def seed_cases(settings: Settings, now: datetime) -> None:
    """Four requests' cases, opened before the service starts, with deadlines that put them where
    the on-call engineer must see them."""

    def case(message_id: str, priority: str, opened_at: datetime):  # type: ignore[no-untyped-def]
        return new_case(
            reference="",
            sender="ocrtis",
            message_id=message_id,
            priority=priority,
            access=None,
            subject="Cocaïne",
            crime_types=["drug_trafficking"],
            countries=["ES"],
            recipients=["post.madrid"],
            triage=False,
            opened_at=opened_at,
            rules=RULES,
        )

    def opened(message_id: str, at: datetime) -> list[AuditEvent]:
        return [
            AuditEvent(at=at, type="case_opened", actor=SYSTEM_ACTOR, sender="ocrtis", message_id=message_id)
        ]

    store = await open_store(settings)
    try:
        # urgent, 3 h old: its 1 h acknowledgement is missed; the answer (3 days) is not yet due
        await store.open_case(case("urgent-late", "urgent", now - timedelta(hours=3)), opened("u", now))
        # normal, 8 days old: acknowledgement (24 h) and answer (7 days) both missed
        await store.open_case(case("old", "normal", now - timedelta(days=8)), opened("old", now))
        # normal, 6 days old: unacknowledged, inside the warning window (75 % of 7 days), not yet due
        await store.open_case(case("warned", "normal", now - timedelta(days=6)), opened("warned", now))
        # normal, 6 days old, acknowledged: in the warning window, its acknowledgement not missed
        acked, _ = await store.open_case(
            case("acked", "normal", now - timedelta(days=6)), opened("acked", now)
        )
        moved, _ = apply(acked, Action.ACK, Side.POST, now - timedelta(days=6) + timedelta(hours=1))
        assert await store.update_case(moved, acked.version, []) is not None
    finally:
        await store.close()


async def test_metrics_answer_the_on_call_questions(service_settings: Settings, broker: Broker) -> None:
    settings = service_settings.model_copy(
        update={"metrics_token": SecretStr(TOKEN), "metrics_cache_s": 0.0, "deadline_tick": 3600.0}
    )
    await seed_cases(settings, datetime.now(UTC))
    async with running(settings) as inst:
        # the history: 3 reports for Spain, 2 with no foreign country (triage), 2 unreadable inputs
        for i in range(3):
            await broker.publish(envelope(kind="information", countries=["ES"], message_id=f"es-{i}"))
        for i in range(2):
            await broker.publish(
                envelope(
                    kind="information",
                    subject="Cambriolages",
                    body="Une série de cambriolages à Lyon.",
                    message_id=f"tri-{i}",
                )
            )
        for i in range(2):
            await broker.publish(b"{not json " + str(i).encode())
        await broker.wait_events(
            lambda ev: len([e for e in ev if e["type"] in ("routed", "triaged", "rejected")]) >= 7, within=30
        )
        # and the deadline alerts the seeded cases raise, each a copy to centre.triage: three missed
        # acknowledgements, two warnings, one missed answer
        await broker.wait_events(lambda ev: len([e for e in ev if e["type"] in ALERTS]) >= 6, within=30)

        text = await scrape(inst.url)
        promtool_check(text)
        m = parse(text)
        exported = {name for name, _ in m}
        for name in alert_metrics():  # a renamed metric fails here, not silently in production
            assert {name, f"{name}_total", f"{name}_count"} & exported, (
                f"alerts or dashboard use {name}, not exported"
            )
        store = inst.runtime.store

        assert value(m, "watchcentre_cases_open", state="routed") == 3
        assert value(m, "watchcentre_cases_open", state="acknowledged") == 1
        assert value(m, "watchcentre_cases_open", state="triage") == 0
        assert value(m, "watchcentre_cases_overdue", deadline="ack", priority="urgent") == 1
        assert value(m, "watchcentre_cases_overdue", deadline="ack", priority="normal") == 2
        assert value(m, "watchcentre_cases_overdue", deadline="answer", priority="normal") == 1
        assert value(m, "watchcentre_cases_overdue", deadline="answer", priority="urgent") == 0
        assert value(m, "watchcentre_deadline_warnings_pending") == 2
        assert value(m, "watchcentre_triage_backlog") == 2
        assert value(m, "watchcentre_queue_messages", queue="dead") == 2
        assert value(m, "watchcentre_queue_messages", queue="centre_triage") == 2 + 6
        assert value(m, "watchcentre_queue_messages", queue="centre_inbox") == await broker.count(
            "centre.inbox"
        )
        assert value(m, "watchcentre_queue_messages", queue="inbound") == 0
        assert value(m, "watchcentre_intake_lag_seconds") == 0
        assert value(m, "watchcentre_messages_rejected_total", field="envelope") == 2
        assert value(m, "watchcentre_copies_published_total", kind="post") == 3
        assert value(m, "watchcentre_copies_published_total", kind="triage") == 2 + 6
        assert value(m, "watchcentre_publish_confirm_seconds_count") == 5 + 6
        assert value(m, "watchcentre_commit_seconds_count") >= 1
        assert value(m, "watchcentre_committed_outcomes_total") == 7
        assert value(m, "watchcentre_audit_head_seq") == await store.last_seq() > 0
        assert 0 <= value(m, "watchcentre_audit_anchor_age_seconds") < 60
        assert value(m, "watchcentre_config_info", digest=config_digest(CONFIG_DIR)) == 1
        assert value(m, "watchcentre_config_reload_failures_total") == 0
        assert value(m, "watchcentre_audit_chain_breaks_total") == 0
        assert value(m, "watchcentre_ops_source_up", source="database") == 1
        assert value(m, "watchcentre_ops_source_up", source="broker") == 1
        assert value(m, "watchcentre_ready") == 1

        # intake falls behind: nobody consumes, inputs wait; the lag grows from the last empty sighting
        await inst.runtime.consumer.stop(5.0)
        seen_empty = time.monotonic()
        assert value(parse(await scrape(inst.url)), "watchcentre_queue_messages", queue="inbound") == 0
        for i in range(4):
            await broker.publish(envelope(kind="information", countries=["ES"], message_id=f"late-{i}"))
        await asyncio.sleep(0.2)  # the lag is a duration: let one pass
        m = parse(await scrape(inst.url))
        assert value(m, "watchcentre_queue_messages", queue="inbound") == 4
        assert value(m, "watchcentre_ready") == 0  # not consuming: GET /ready says 503 too
        assert 0.2 <= value(m, "watchcentre_intake_lag_seconds") <= time.monotonic() - seen_empty + 0.5


async def test_scrapes_share_the_cache_and_a_database_outage_does_not_fail_them(
    service_settings: Settings, broker: Broker
) -> None:
    """Scrapes within the cache's life ask the database once; when the database does not answer,
    the scrape still answers 200, with source_up 0 and the last values."""
    from watchcentre.core.ports import TransientError

    settings = service_settings.model_copy(
        update={"metrics_token": SecretStr(TOKEN), "metrics_cache_s": 3600.0}
    )
    async with running(settings) as inst:
        store = inst.runtime.store
        real = store.ops_counts
        calls = 0
        down = False

        async def watched(now: datetime):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if down:
                raise TransientError("database unreachable")
            return await real(now)

        store.ops_counts = watched  # type: ignore[method-assign]
        for _ in range(5):
            m = parse(await scrape(inst.url))
        assert calls == 1 and value(m, "watchcentre_ops_source_up", source="database") == 1

    settings = settings.model_copy(update={"metrics_cache_s": 0.0})
    async with running(settings) as inst:
        store = inst.runtime.store
        real = store.ops_counts
        down = True
        store.ops_counts = watched  # type: ignore[method-assign]
        m = parse(await scrape(inst.url))
        assert value(m, "watchcentre_ops_source_up", source="database") == 0
        assert value(m, "watchcentre_ops_source_up", source="broker") == 1
