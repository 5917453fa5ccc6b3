"""The FakeStore keeps the promises of the Store port, checked side by side with a real store (SQLite in
memory, opened as bootstrap opens it): a fast test against the fake means what it would against a
database. Only the promises the service relies on (tests/unit/test_service_fast.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from tests.unit.fakes import START, FakeStore, a_case
from watchcentre.core.audit_chain import GENESIS, verify_links
from watchcentre.core.envelope import Envelope, Rejection, Routing
from watchcentre.core.lifecycle import Action, Side, apply
from watchcentre.core.manual import ManualRouting
from watchcentre.core.ports import ReferenceTaken
from watchcentre.core.records import Accepted, AuditEvent, Rejected, Status, body_digest
from watchcentre.core.references import well_formed
from watchcentre.settings import Settings


@pytest.fixture(params=["fake", "sqlite"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "fake":
        yield FakeStore()
        return
    from watchcentre.bootstrap import open_store

    real = await open_store(Settings(database_url=SecretStr("sqlite:///:memory:")))
    yield real
    await real.close()


def accepted(message_id: str, recipients: tuple[str, ...] = ("post.madrid",)) -> Accepted:
    env = Envelope.model_validate(
        {
            "message_id": message_id,
            "sender": "ofast",
            "kind": "information",
            "subject": "s",
            "body": "b",
            "sent_at": START,
        }
    )
    routing = Routing(
        crime_types=[], countries=["ES"], recipients=list(recipients), explanation=[], confidence=1
    )
    event = AuditEvent(at=START, type="received", actor="ofast", sender="ofast", message_id=message_id)
    return Accepted(env, routing, Status.ROUTED, START, [event])


def rejected(raw: bytes) -> Rejected:
    why = Rejection(field="envelope", problem="not valid JSON")
    return Rejected(raw, why, START, [AuditEvent(at=START, type="rejected", actor="watchcentre")])


async def test_an_accepted_key_or_rejected_digest_is_recorded_once(store: Any) -> None:
    first = await store.save_batch([accepted("m1"), accepted("m1"), rejected(b"{x"), rejected(b"{x")])
    assert [r is not None for r in first] == [True, False, True, False]  # a duplicate within the batch
    assert await store.save_batch([accepted("m1"), rejected(b"{x")]) == [None, None]  # and across batches
    assert await store.seen_many([("ofast", "m1"), ("ofast", "m2")]) == [True, False]
    assert await store.seen_rejection(body_digest(b"{x")) and not await store.seen_rejection(
        body_digest(b"{y")
    )


async def test_events_are_numbered_and_chained_in_commit_order(store: Any) -> None:
    await store.save_batch([accepted("m1"), rejected(b"{x")])
    await store.append_audit([AuditEvent(at=START, type="listed", actor="operator:Alice")])
    trail = await store.audit()
    assert [e.seq for e in trail] == [1, 2, 3]
    assert verify_links(trail, GENESIS)[0] is None
    assert [e.type for e in await store.audit(message_id="m1")] == ["received"]


async def test_a_rejected_input_reads_back_with_its_reason(store: Any) -> None:
    raw = b'{"message_id": "m9", "sender": "ofast"}'
    why = Rejection(field="subject", problem="Field required", message_id="m9", sender="ofast")
    await store.save_batch([Rejected(raw, why, START, [])])
    stored = await store.get_message("m9", "ofast")
    assert stored is not None and (stored.status, stored.error) == ("rejected", "subject: Field required")
    assert await store.originals("m9") == []  # never an original to answer


async def test_a_request_opens_one_case_and_a_reference_belongs_to_one_request(store: Any) -> None:
    [(opened, new)] = await store.open_cases([a_case("r1")])
    assert new and well_formed(opened.reference) and opened.reference.startswith("WC-2026-")
    [again, taken] = await store.open_cases([a_case("r1"), a_case("r2", reference=opened.reference)])
    assert again == (opened, False)
    assert isinstance(taken, ReferenceTaken) and taken.existing.message_id == "r1"


async def test_a_case_write_is_conditional_on_its_version(store: Any) -> None:
    [(opened, _)] = await store.open_cases([a_case("r1")])
    acked, details = apply(opened, Action.ACK, Side.POST, START)
    event = AuditEvent(
        at=START, type="case_acknowledged", actor="madrid", reference=opened.reference, details=details
    )
    assert await store.update_case(acked, 0, [event]) is not None
    assert await store.update_case(acked, 0, [event]) is None  # a writer that read version 0 lost the race
    stored = await store.get_case(opened.reference)
    assert (stored.state, stored.version) == ("acknowledged", 1)


async def test_a_manual_revision_is_recorded_once(store: Any) -> None:
    await store.save_batch([accepted("m1", ("centre.triage",))])
    routing = Routing(crime_types=[], countries=[], recipients=["post.lisbon"], explanation=[], confidence=1)
    event = AuditEvent(at=START, type="routed", actor="operator:Alice", sender="ofast", message_id="m1")
    decision = ManualRouting(
        sender="ofast",
        message_id="m1",
        revision=1,
        routing=routing,
        recipients=["post.lisbon"],
        actor="operator:Alice",
        reason="why",
        at=START,
        events=[event],
    )
    assert await store.apply_manual(decision) is not None
    assert await store.apply_manual(decision) is None
    assert [r.revision for r in await store.manual_routings("ofast", "m1")] == [1]
    stored = await store.get_message("m1", "ofast")
    assert (stored.status, stored.recipients) == ("routed", ["post.lisbon"])


async def test_a_due_alert_is_raised_once(store: Any) -> None:
    [(opened, _)] = await store.open_cases([a_case("r1")])
    later = START + timedelta(hours=25)  # normal priority: acknowledge within 24 h
    assert (opened.reference, "ack_overdue") in await store.due_alerts(later)
    event = AuditEvent(at=later, type="overdue", actor="watchcentre", reference=opened.reference)
    assert await store.raise_alert(opened.reference, "ack_overdue", later, event) is not None
    assert await store.raise_alert(opened.reference, "ack_overdue", later, event) is None
    assert (opened.reference, "ack_overdue") not in await store.due_alerts(later)
