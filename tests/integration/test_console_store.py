"""The console's store methods on both engines (the `backend` fixture of test_store.py): manual
decisions, the shift log, counts by crime type and country, the last audit seq."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.integration.test_store import T0, Backend, accepted, backend, event, rejected, save_one  # noqa: F401
from watchcentre.core.envelope import Envelope, Routing
from watchcentre.core.lifecycle import CaseState, DeadlineRules, new_case, reassign
from watchcentre.core.manual import ManualRouting, Note
from watchcentre.core.records import Accepted, MessageQuery, Status, Visibility


def decision(
    revision: int, recipients: list[str], holders: list[str], message_id: str = "m1"
) -> ManualRouting:
    routing = Routing(
        crime_types=["drug_trafficking"],
        countries=[],
        recipients=recipients,
        explanation=[f"manual by operator:A: r{revision}"],
        confidence=1.0,
    )
    return ManualRouting(
        sender="ofast",
        message_id=message_id,
        revision=revision,
        routing=routing,
        recipients=holders,
        actor="operator:A",
        reason=f"r{revision}",
        at=T0 + timedelta(minutes=revision),
        events=[event("routed", "ofast", message_id, T0, manual=True, revision=revision)],
    )


async def test_a_manual_decision_updates_the_message_once_per_revision(backend: Backend) -> None:  # noqa: F811
    store = backend.store
    await save_one(store, accepted("m1", status=Status.TRIAGE, countries=(), recipients=("centre.triage",)))
    assert await store.last_seq() == 2
    committed = await store.apply_manual(decision(1, ["post.madrid"], ["post.madrid"]))
    assert committed is not None and [e.seq for e in committed] == [3]
    assert committed[0].prev_hash is not None and committed[0].hash is not None
    assert await store.apply_manual(decision(1, ["post.rome"], ["post.rome"])) is None  # revision taken
    msg = await store.get_message("m1", "ofast")
    assert msg is not None
    assert (msg.status, msg.recipients) == (Status.ROUTED, ["post.madrid"])
    assert msg.routing is not None and msg.routing["explanation"] == ["manual by operator:A: r1"]
    # need-to-know follows the copies: the new recipient sees it, through lists too
    vis = Visibility(senders=frozenset(), recipients=frozenset({"post.madrid"}))
    assert await store.get_message("m1", visibility=vis) is not None
    assert [m.message_id for m in await store.list_messages(MessageQuery(), vis)] == ["m1"]
    assert await store.list_messages(MessageQuery(status=Status.TRIAGE)) == []
    await store.apply_manual(decision(2, ["post.rome"], ["post.rome", "post.madrid"]))
    records = await store.manual_routings("ofast", "m1")
    assert [(r.revision, r.recipients, r.reason) for r in records] == [
        (1, ["post.madrid"], "r1"),
        (2, ["post.rome"], "r2"),
    ]
    assert await store.get_message("m1", visibility=vis) is not None  # Madrid keeps seeing it
    assert await store.last_seq() == 4


async def test_notes_are_stored_audited_and_paged_newest_first(backend: Backend) -> None:  # noqa: F811
    store = backend.store
    ids = []
    for i in range(3):
        note = Note(
            at=T0 + timedelta(hours=i),
            author="operator:A",
            text=f"note {i} <b>",
            message_ids=["m1"],
            references=["FR-1"] if i else [],
        )
        stored, events = await store.add_note(note, event("note_added", None, None, T0))
        assert stored.id is not None and events[0].details["note_id"] == stored.id
        ids.append(stored.id)
    notes = await store.notes(limit=2)
    assert [n.text for n in notes] == ["note 2 <b>", "note 1 <b>"]
    assert notes[0].references == ["FR-1"] and notes[0].message_ids == ["m1"]
    older = await store.notes(limit=5, before_id=notes[-1].id)
    assert [n.id for n in older] == [ids[0]] and older[0].references == []
    assert [e.type for e in await store.audit(event_type="note_added")] == ["note_added"] * 3


async def test_tallies_count_accepted_messages_since_a_time(backend: Backend) -> None:  # noqa: F811
    store = backend.store
    await save_one(store, accepted("old", countries=("ES",), at=T0 - timedelta(days=2)))
    await save_one(store, accepted("a", countries=("ES", "MA"), at=T0))
    await save_one(
        store, accepted("b", countries=("ES",), crime_types=("cybercrime", "financial_crime"), at=T0)
    )
    await save_one(store, rejected(b"{}", at=T0))
    t = await store.tallies(T0 - timedelta(hours=24))
    assert t.total == 2
    assert t.countries == {"ES": 2, "MA": 1}
    assert t.crime_types == {"drug_trafficking": 1, "cybercrime": 1, "financial_crime": 1}


async def test_a_manual_decision_on_a_request_moves_its_case_in_the_same_transaction(
    backend: Backend,  # noqa: F811
) -> None:
    store = backend.store
    await save_one(store, accepted("m1", status=Status.TRIAGE, countries=(), recipients=("centre.triage",)))
    triaged = new_case(
        reference="WC-2026-000001",
        sender="ofast",
        message_id="m1",
        priority="urgent",
        access=None,
        subject="s",
        crime_types=[],
        countries=[],
        recipients=["centre.triage"],
        triage=True,
        opened_at=T0,
        rules=DeadlineRules.eu_default(),
    )
    case, _ = await store.open_case(triaged, [])
    moved, _ = reassign(case, ["post.rome"], T0)
    # the case changed meanwhile (version 0 is stale): nothing of the decision is written
    bumped = case.model_copy(update={"subject": "changed"})
    assert await store.update_case(bumped, 0, []) is not None
    assert await store.apply_manual(replace(decision(1, ["post.rome"], ["post.rome"]), case=moved)) is None
    assert await store.manual_routings("ofast", "m1") == []
    msg = await store.get_message("m1", "ofast")
    assert msg is not None and msg.status is Status.TRIAGE
    # on the current case: decision, message and case together
    fresh = await store.get_case(case.reference)
    assert fresh is not None
    moved, _ = reassign(fresh, ["post.rome"], T0)
    assert (
        await store.apply_manual(replace(decision(1, ["post.rome"], ["post.rome"]), case=moved)) is not None
    )
    after = await store.get_case(case.reference)
    assert after is not None and after.state is CaseState.ROUTED and after.recipients == ["post.rome"]
    assert after.version == fresh.version + 1


async def test_a_case_from_before_markings_takes_its_requests_marking(backend: Backend) -> None:  # noqa: F811
    store = backend.store
    plain = accepted("m1")
    marked = Accepted(
        plain.envelope.model_copy(update={"handling": "centre-only"}),
        plain.routing,
        plain.status,
        plain.received_at,
        plain.events,
    )
    assert isinstance(marked.envelope, Envelope)
    await save_one(store, marked)
    await save_one(store, accepted("m2"))
    for message_id in ("m1", "m2"):
        old = new_case(
            reference="",
            sender="ofast",
            message_id=message_id,
            priority="urgent",
            access=None,
            subject="s",
            crime_types=[],
            countries=["MA"],
            recipients=["post.rabat"],
            triage=False,
            opened_at=T0,
            rules=DeadlineRules.eu_default(),
        )
        await store.open_case(old, [])
    # as a database written before cases kept their marking: no `handling` in the case data
    if backend.engine == "sqlite":
        await backend.sql("UPDATE cases SET data = json_remove(data, '$.handling')")
    else:
        await backend.sql("UPDATE cases SET data = data - 'handling'")
    await backend.sql("DROP TABLE schema_version")  # and from before schema versions
    again = await backend.reopen()
    try:
        by_request = {c.message_id: c for c in await again.list_cases()}
    finally:
        await again.close()
    assert by_request["m1"].handling == "centre-only"
    assert by_request["m2"].handling is None


async def test_one_claim_per_revision_until_recorded_released_or_stale(backend: Backend) -> None:  # noqa: F811
    store = backend.store
    await save_one(store, accepted("m1", status=Status.TRIAGE, countries=(), recipients=("centre.triage",)))
    assert await store.claim_manual("ofast", "m1", 1, "a", T0, 120.0)
    # a second instance deciding at the same moment publishes nothing
    assert not await store.claim_manual("ofast", "m1", 1, "b", T0 + timedelta(seconds=5), 120.0)
    await store.release_manual("ofast", "m1", 1, "b")  # not its claim: nothing changes
    assert not await store.claim_manual("ofast", "m1", 1, "b", T0 + timedelta(seconds=6), 120.0)
    await store.release_manual("ofast", "m1", 1, "a")  # a's publish failed: the revision is free again
    assert await store.claim_manual("ofast", "m1", 1, "b", T0 + timedelta(seconds=7), 120.0)
    # b's holder died: after the stale time another may take the revision over
    assert await store.claim_manual("ofast", "m1", 1, "c", T0 + timedelta(seconds=200), 120.0)
    assert await store.apply_manual(decision(1, ["post.madrid"], ["post.madrid"])) is not None
    # recorded: the message's claims are gone with it
    assert await store.claim_manual("ofast", "m1", 1, "d", T0 + timedelta(seconds=201), 120.0)
