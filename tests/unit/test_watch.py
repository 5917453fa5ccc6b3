"""The console's watch on the service layer's fakes: deadline alerts derived from the cases' flags
and the acknowledgements in the audit (nothing kept elsewhere), acknowledged once each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.unit.fakes import START, Wired, wired_service
from watchcentre.core.errors import Conflict, NotFound


@pytest.fixture
async def w() -> AsyncIterator[Wired]:
    async with wired_service() as wired:
        yield wired


def request(**overrides: Any) -> bytes:
    env = {
        "message_id": "m-1",
        "sender": "ofast",
        "kind": "request",
        "priority": "urgent",
        "access": "direct",
        "subject": "Go-fast",
        "body": "Go-fast vers l'Espagne.",
        "countries": ["ES"],
        "sent_at": START.isoformat(),
    }
    return orjson.dumps(env | overrides)


async def test_alerts_are_listed_until_acknowledged_each_once(w: Wired) -> None:
    await w.deliver(request())
    [reference] = w.store.cases
    watch = w.service.watch
    assert await watch.alerts() == []
    await w.service.desk.raise_due(w.clock.advance(hours=2))  # 1 h to acknowledge an urgent request
    await w.service.desk.raise_due(w.clock.advance(hours=7))  # 8 h to answer: warned, then overdue
    pending = await watch.alerts()
    assert [(a.case.reference, a.alert, a.deadline) for a in pending] == [
        (reference, "ack_overdue", "acknowledgement"),
        (reference, "overdue", "answer"),
        (reference, "warning", "answer"),
    ]
    event = await watch.acknowledge_alert(reference=reference, alert="ack_overdue", actor="operator:Alice")
    assert (event.type, event.actor, event.details["deadline"]) == (
        "alert_acknowledged",
        "operator:Alice",
        "acknowledgement",
    )
    assert [a.alert for a in await watch.alerts()] == ["overdue", "warning"]
    with pytest.raises(Conflict, match="operator:Alice"):
        await watch.acknowledge_alert(reference=reference, alert="ack_overdue", actor="operator:Carol")
    with pytest.raises(NotFound):
        await watch.acknowledge_alert(reference="WC-nope", alert="overdue", actor="operator:Alice")
    assert [e.type for e in w.publisher.events if e.type == "alert_acknowledged"] == ["alert_acknowledged"]


async def test_an_alert_on_a_case_no_longer_open_is_not_listed(w: Wired) -> None:
    await w.deliver(request())
    [reference] = w.store.cases
    await w.service.desk.raise_due(w.clock.advance(hours=2))
    assert len(await w.service.watch.alerts()) == 1
    answer = request(message_id="m-2", sender="madrid", kind="status", state="answered", reference=reference)
    await w.deliver(answer)
    assert await w.service.watch.alerts() == []
