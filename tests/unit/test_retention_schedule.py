"""The retention pass as the service and `retention apply` run it (watchcentre/retention.py): the
store's purge with the limits as of `now`, recorded at `at`, and the dead letters' count merged in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watchcentre.adapters.config_files import load_config
from watchcentre.core.retention import PurgeCount, PurgeReport, RetentionRules
from watchcentre.retention import apply_once

RULES = load_config(Path(__file__).resolve().parents[2] / "config").retention
NOW = datetime(2031, 1, 1, tzinfo=UTC)
AT = datetime(2026, 1, 1, tzinfo=UTC)


class Store:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def purge(
        self,
        rules: RetentionRules,
        now: datetime,
        *,
        at: datetime | None = None,
        dry_run: bool = False,
        actor: str = "watchcentre",
    ) -> PurgeReport:
        self.calls.append({"now": now, "at": at, "dry_run": dry_run, "actor": actor})
        return PurgeReport(now=now, dry_run=dry_run, counts={"messages": PurgeCount(erased=3)})


async def test_a_pass_purges_the_store_then_the_dead_letters_past_their_limit() -> None:
    assert RULES is not None
    store, seen = Store(), []

    async def dead(
        now: datetime, at: datetime, rules: RetentionRules, dry_run: bool, actor: str
    ) -> PurgeCount:
        seen.append((now - rules.dead_letters.delta, at, dry_run, actor))
        return PurgeCount(erased=2, review_due=1, ids=["a", "b"])

    report = await apply_once(store, RULES, NOW, at=AT, dry_run=True, actor="operator:dpo", dead_letters=dead)
    assert store.calls == [{"now": NOW, "at": AT, "dry_run": True, "actor": "operator:dpo"}]
    assert seen == [(NOW - timedelta(days=30), AT, True, "operator:dpo")]
    assert report.summary() == {
        "messages": {"erased": 3, "review_due": 0},
        "dead_letters": {"erased": 2, "review_due": 1},
    }


async def test_without_a_broker_the_store_is_purged_all_the_same() -> None:
    assert RULES is not None
    report = await apply_once(Store(), RULES, NOW)
    assert "dead_letters" not in report.counts and report.counts["messages"].erased == 3
