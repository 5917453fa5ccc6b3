"""Cases in the store, against SQLite and PostgreSQL alike: opening (idempotent, generated references),
optimistic updates, and deadline alerts raised once through a conditional UPDATE."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration import test_store
from tests.integration.test_store import Backend
from watchcentre.adapters.sql import store as sql_store
from watchcentre.core.lifecycle import Action, CaseState, DeadlineRules, Side, apply, new_case
from watchcentre.core.ports import ReferenceTaken
from watchcentre.core.records import SYSTEM_ACTOR, AuditEvent, Visibility
from watchcentre.core.references import check_char, well_formed

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
RULES = DeadlineRules.eu_default()
backend = test_store.backend  # the same fixture: every test runs on SQLite and on PostgreSQL


def case(message_id: str = "m-1", reference: str = "", priority: str = "normal", at: datetime = T0):  # type: ignore[no-untyped-def]
    return new_case(
        reference=reference,
        sender="ocrtis",
        message_id=message_id,
        priority=priority,
        access=None,
        subject="Cocaïne",
        crime_types=["drug_trafficking"],
        countries=["ES"],
        recipients=["post.es"],
        triage=False,
        opened_at=at,
        rules=RULES,
    )


def opened(at: datetime = T0) -> AuditEvent:
    return AuditEvent(at=at, type="case_opened", actor=SYSTEM_ACTOR, sender="ocrtis", message_id="m-1")


async def test_open_generates_unguessable_references_and_is_idempotent(backend: Backend) -> None:
    store = backend.store
    first, new = await store.open_case(case("m-1"), [opened()])
    assert new and well_formed(first.reference) and first.reference.startswith("WC-2026-")
    second, new2 = await store.open_case(case("m-2"), [])
    assert new2 and well_formed(second.reference) and second.reference != first.reference
    again, new3 = await store.open_case(case("m-1"), [opened()])
    assert not new3 and again.reference == first.reference
    events = await store.audit(reference=first.reference)
    assert [e.type for e in events] == ["case_opened"]  # not twice
    loaded = await store.get_case(first.reference)
    assert loaded is not None and loaded.state is CaseState.ROUTED and loaded.due_at == T0 + timedelta(days=7)
    assert await store.get_case("WC-nope") is None


async def test_a_generated_reference_never_takes_one_already_used(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's own reference in the generated form, or a collision of random draws, is drawn again."""
    store = backend.store
    squatted = "WC-2026-0000000000" + check_char("0000000000")
    await store.open_case(case("m-0", reference=squatted), [])
    draws = iter([squatted, squatted, "WC-2026-SECOND"])
    monkeypatch.setattr(sql_store, "new_reference", lambda year: next(draws))
    fresh, new = await store.open_case(case("m-1"), [])
    assert new and fresh.reference == "WC-2026-SECOND"
    draws = iter([squatted, "WC-2026-THIRD", "WC-2026-THIRD", "WC-2026-FOURTH"])
    out = await store.open_cases([case("m-2"), case("m-3")])
    assert sorted(r[0].reference for r in out if not isinstance(r, ReferenceTaken)) == [
        "WC-2026-FOURTH",
        "WC-2026-THIRD",
    ]


async def test_a_given_reference_is_kept_and_cannot_be_taken_twice(backend: Backend) -> None:
    store = backend.store
    mine, _ = await store.open_case(case("m-1", reference="OFAST/2026/17"), [])
    assert mine.reference == "OFAST/2026/17"
    with pytest.raises(ReferenceTaken):
        await store.open_case(case("m-2", reference="OFAST/2026/17"), [])


async def test_open_cases_batches_as_one_open_case_after_another(backend: Backend) -> None:
    store = backend.store
    await store.open_case(case("m-0", reference="OFAST/2026/1"), [])
    batch = [
        case("m-1"),
        case("m-2", reference="OFAST/2026/2"),
        case("m-3", reference="OFAST/2026/1"),  # another request's reference: refused
        case("m-4", reference="OFAST/2026/2"),  # taken by m-2, earlier in this batch: refused
        case("m-1"),  # the same request twice in one batch: opened once
        case("m-0", reference="OFAST/2026/1"),  # already open
        case("m-5", at=T0 + timedelta(days=365)),  # another year: its year in the reference
        case("m-6"),
    ]
    out = await store.open_cases(batch)
    assert len(out) == len(batch)
    ok = [r for r in out if not isinstance(r, ReferenceTaken)]
    generated = {c.message_id: c.reference for c, new in ok if new and c.message_id in ("m-1", "m-5", "m-6")}
    assert [(c.reference, c.message_id, new) for c, new in ok] == [
        (generated["m-1"], "m-1", True),
        ("OFAST/2026/2", "m-2", True),
        (generated["m-1"], "m-1", False),
        ("OFAST/2026/1", "m-0", False),
        (generated["m-5"], "m-5", True),
        (generated["m-6"], "m-6", True),
    ]
    assert all(well_formed(r) for r in generated.values()) and len(set(generated.values())) == 3
    assert generated["m-5"].startswith("WC-2027-") and generated["m-6"].startswith("WC-2026-")
    refused = [(i, r.existing.message_id) for i, r in enumerate(out) if isinstance(r, ReferenceTaken)]
    assert refused == [(2, "m-0"), (3, "m-2")]
    assert (
        await store.get_case(generated["m-6"]) is not None
        and await store.get_case(generated["m-5"]) is not None
    )
    again = await store.open_cases([case("m-6"), case("m-7")])
    [(six, six_new), (seven, seven_new)] = [r for r in again if not isinstance(r, ReferenceTaken)]
    assert (six.reference, six_new, seven_new) == (generated["m-6"], False, True) and well_formed(
        seven.reference
    )
    assert await store.open_cases([]) == []


async def test_concurrent_open_cases_open_each_request_once(backend: Backend) -> None:
    store = backend.store
    batches = [[case(f"m-{(i * 7 + j) % 40}") for j in range(25)] for i in range(6)]
    results = await asyncio.gather(*(store.open_cases(b) for b in batches))
    by_request: dict[str, set[str]] = {}
    for out in results:
        for r in out:
            assert not isinstance(r, ReferenceTaken)
            by_request.setdefault(r[0].message_id, set()).add(r[0].reference)
    assert len(by_request) == 40 and all(len(refs) == 1 for refs in by_request.values())
    refs = {ref for refs in by_request.values() for ref in refs}
    assert len(refs) == 40 and all(well_formed(r) for r in refs)  # no reference used twice
    assert len(await store.list_cases()) == 40


async def test_updates_are_optimistic(backend: Backend) -> None:
    store = backend.store
    c, _ = await store.open_case(case(), [])
    acked, details = apply(c, Action.ACK, Side.POST, T0 + timedelta(minutes=5))
    event = AuditEvent(
        at=T0, type="case_acknowledged", actor="post:es", reference=c.reference, details=details
    )
    assert await store.update_case(acked, c.version, [event]) is not None
    assert await store.update_case(acked, c.version, [event]) is None  # stale version: refused
    now = await store.get_case(c.reference)
    assert now is not None and now.state is CaseState.ACKNOWLEDGED and now.version == 1
    assert [e.type for e in await store.audit(reference=c.reference)] == ["case_acknowledged"]


async def test_alerts_are_due_once_and_raised_once(backend: Backend) -> None:
    store = backend.store
    c, _ = await store.open_case(case(priority="urgent"), [])  # ack 1 h, answer 3 days, warning at 54 h
    assert await store.due_alerts(T0 + timedelta(minutes=59)) == []
    late_ack = T0 + timedelta(hours=2)
    assert await store.due_alerts(late_ack) == [(c.reference, "ack_overdue")]

    def ev(kind: str) -> AuditEvent:
        return AuditEvent(at=late_ack, type=kind, actor=SYSTEM_ACTOR, reference=c.reference)

    # two instances race for the same alert: one wins
    results = await asyncio.gather(
        store.raise_alert(c.reference, "ack_overdue", late_ack, ev("overdue")),
        store.raise_alert(c.reference, "ack_overdue", late_ack, ev("overdue")),
    )
    assert sum(r is not None for r in results) == 1
    assert await store.due_alerts(late_ack) == []

    warn = T0 + timedelta(hours=55)
    assert await store.due_alerts(warn) == [(c.reference, "warning")]
    assert await store.raise_alert(c.reference, "warning", warn, ev("deadline_warning")) is not None
    late = T0 + timedelta(days=3, seconds=1)
    assert await store.due_alerts(late) == [(c.reference, "overdue")]
    assert await store.raise_alert(c.reference, "overdue", late, ev("overdue")) is not None
    assert await store.raise_alert(c.reference, "overdue", late, ev("overdue")) is None
    assert await store.due_alerts(late + timedelta(days=30)) == []
    flags = await store.get_case(c.reference)
    assert flags is not None and flags.overdue_raised_at == late and flags.ack_overdue_raised_at == late_ack


async def test_overdue_without_warning_sets_both_and_paused_cases_raise_nothing(backend: Backend) -> None:
    store = backend.store
    c, _ = await store.open_case(case(), [])
    late = T0 + timedelta(days=8)
    assert (c.reference, "overdue") in await store.due_alerts(late)
    assert (c.reference, "warning") not in await store.due_alerts(late)  # past due: an overdue, not a warning
    await store.raise_alert(c.reference, "overdue", late, AuditEvent(at=late, type="overdue", actor="x"))
    assert await store.due_alerts(late) == [(c.reference, "ack_overdue")]  # that one is separate

    d, _ = await store.open_case(case("m-2"), [])
    acked, _ = apply(d, Action.ACK, Side.POST, T0)
    await store.update_case(acked, d.version, [])
    paused, _ = apply(acked, Action.CLARIFY_REQUEST, Side.POST, T0 + timedelta(hours=1))
    await store.update_case(paused, acked.version + 1, [])
    assert [a for a in await store.due_alerts(T0 + timedelta(days=30)) if a[0] == d.reference] == []


async def test_an_extension_rearms_the_alerts(backend: Backend) -> None:
    store = backend.store
    c, _ = await store.open_case(case(), [])
    late = T0 + timedelta(days=8)
    await store.raise_alert(c.reference, "overdue", late, AuditEvent(at=late, type="overdue", actor="x"))
    stored = await store.get_case(c.reference)
    assert stored is not None
    extended, _ = apply(
        stored,
        Action.EXTEND,
        Side.POST,
        late,
        expected_at=late + timedelta(days=2),
        reason="awaiting court order",
    )
    assert await store.update_case(extended, stored.version, [], reset_alerts=True) is not None
    assert [a for a in await store.due_alerts(late) if a[1] != "ack_overdue"] == []
    assert (c.reference, "overdue") in await store.due_alerts(late + timedelta(days=3))


async def test_list_cases_filters_open_and_period(backend: Backend) -> None:
    store = backend.store
    a, _ = await store.open_case(case("m-1", at=T0), [])
    b, _ = await store.open_case(case("m-2", at=T0 + timedelta(days=1)), [])
    closed, _ = apply(b, Action.WITHDRAW, Side.UNIT, T0 + timedelta(days=1))
    await store.update_case(closed, b.version, [])
    assert [c.reference for c in await store.list_cases()] == [b.reference, a.reference]  # newest first
    assert [c.reference for c in await store.list_cases(open_only=True)] == [a.reference]
    assert [c.reference for c in await store.list_cases(since=T0 + timedelta(hours=1))] == [b.reference]
    assert [c.reference for c in await store.list_cases(until=T0 + timedelta(hours=1))] == [a.reference]


async def test_need_to_know_follows_the_case_data_and_older_databases_are_filled_in(backend: Backend) -> None:
    """The recipients the list query filters on are kept from each case's data by the database
    itself (whoever rewrites the case), and filled in once for a database from before them."""
    store = backend.store
    c, _ = await store.open_case(case("m-1"), [])
    spain = Visibility(senders=frozenset(), recipients=frozenset({"post.es"}))
    germany = Visibility(senders=frozenset(), recipients=frozenset({"post.de"}))
    assert [x.reference for x in await store.list_cases(visibility=spain)] == [c.reference]
    moved = c.model_copy(update={"recipients": ["post.de"]})
    assert await store.update_case(moved, c.version, []) is not None
    assert await store.list_cases(visibility=spain) == []
    assert [x.reference for x in await store.list_cases(visibility=germany)] == [c.reference]
    unit = Visibility(senders=frozenset({"ocrtis"}), recipients=frozenset())
    assert [x.reference for x in await store.list_cases(visibility=unit)] == [c.reference]
    nobody = Visibility(senders=frozenset(), recipients=frozenset())
    assert await store.list_cases(visibility=nobody) == []

    await backend.sql("DELETE FROM case_recipients")  # as a database from before the table...
    await backend.sql("DROP TABLE schema_version")  # ...and before schema versions
    again = await backend.reopen()
    try:
        assert [x.reference for x in await again.list_cases(visibility=germany)] == [c.reference]
    finally:
        await again.close()
