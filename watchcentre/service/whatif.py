"""What-if and eval: candidate rules tried on history and on labelled truth, before they go live.

`what_if` reads the stored decisions of a period in pages (the next page is read while this one is
decided again) and compares each with what candidate rules decide (core/replay.py). `evaluate_on`
measures rules against labelled items: the corpus, or operators' corrections (core/labels.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from watchcentre.core.evaluation import Evaluation, Truth, evaluate
from watchcentre.core.labels import Label
from watchcentre.core.ports import History
from watchcentre.core.replay import Change, Outcome, purged, replay
from watchcentre.core.rules import Rules

PAGE = 2000


@dataclass
class WhatIfReport:
    messages: int = 0
    """Accepted messages of the period (purged ones included: counted, not replayed)."""
    changed: int = 0
    changes: list[Change] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def contract(self) -> dict[str, Any]:
        """The `--json` answer, exactly: messages, changed, changes."""
        return {
            "messages": self.messages,
            "changed": self.changed,
            "changes": [
                {
                    "message_id": c.message_id,
                    "sender": c.sender,
                    "before": c.before,
                    "after": c.after,
                    "why": c.why,
                }
                for c in self.changes
            ],
        }


async def what_if(
    history: History,
    rules: Rules,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    page: int = PAGE,
    progress: Callable[[int], None] | None = None,
) -> WhatIfReport:
    """Replay the period's messages through `rules`; `progress(n)` after each n messages."""
    started = time.perf_counter()
    report = WhatIfReport()
    after_id = 0
    pending = asyncio.ensure_future(history.decided_page(since, until, after_id, page))
    while True:
        rows = await pending
        if not rows:
            break
        after_id = rows[-1].id
        pending = asyncio.ensure_future(history.decided_page(since, until, after_id, page))
        for decided in rows:
            outcome, change = replay(decided, rules)
            report.outcomes[outcome.value] = report.outcomes.get(outcome.value, 0) + 1
            if change is not None:
                report.changes.append(change)
        report.messages += len(rows)
        if progress is not None:
            progress(len(rows))
    report.changed = len(report.changes)
    report.seconds = time.perf_counter() - started
    return report


def evaluate_on(items: Iterable[Mapping[str, Any]], rules: Rules) -> Evaluation:
    """Rules against labelled texts: {subject, body, crime_types, countries} (the corpus format)."""
    classify = rules.classifier.classify
    truths = []
    for item in items:
        got = classify(item.get("subject", ""), item.get("body", ""))
        truths.append(Truth(item.get("crime_types"), item.get("countries"), got.crime_types, got.countries))
    return evaluate(truths)


def evaluate_labels(labels: Iterable[tuple[Label, dict[str, Any] | None]], rules: Rules) -> Evaluation:
    """Rules against operators' corrections, on the messages' stored texts (with the sender's hints,
    as the pipeline classifies them); a purged message is left out."""
    truths = []
    home = rules.network.home_set
    for label, envelope in labels:
        if envelope is None or purged(envelope):
            continue
        got = rules.classifier.classify(
            str(envelope.get("subject") or ""),
            str(envelope.get("body") or ""),
            [c for c in envelope.get("countries") or [] if isinstance(c, str)],
            [c for c in envelope.get("crime_types") or [] if isinstance(c, str)],
        )
        countries = None if label.countries is None else [c for c in label.countries if c not in home]
        truths.append(Truth(label.crime_types, countries, got.crime_types, got.countries))
    return evaluate(truths)


__all__ = ["Outcome", "WhatIfReport", "evaluate_labels", "evaluate_on", "what_if"]
