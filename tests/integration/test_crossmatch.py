"""Identifiers, cross-matching and watch lists on both engines: in the store (intake's transaction),
over HTTP (the detail, the watch list API and who may use it), and through the running service
(P.events, once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_search, test_store
from tests.integration.harness import Broker, envelope, running
from tests.integration.test_search import Api
from tests.integration.test_store import T0, Backend, accepted
from watchcentre.adapters.config_files import load_config
from watchcentre.adapters.identifier_checks import LibraryChecks
from watchcentre.core.identifiers import IdentifierExtractor
from watchcentre.core.records import AuditEvent, Visibility
from watchcentre.core.watches import WatchInput
from watchcentre.settings import Settings

backend = test_store.backend  # the same two-engine fixtures
api = test_search.api
EXTRACT = IdentifierExtractor(LibraryChecks()).extract
IBAN = "FR14 2004 1010 0505 0001 3M02 606"


def message(message_id: str, body: str, **kw: Any) -> Any:
    a = accepted(message_id, **kw)
    env = a.envelope.model_copy(update={"body": body})
    return type(a)(env, a.routing, a.status, a.received_at, a.events, EXTRACT(env.subject, env.body))


async def save(b: Backend, *outcomes: Any) -> list[list[AuditEvent] | None]:
    return await b.store.save_batch(list(outcomes))


async def pk(b: Backend, message_id: str) -> int:
    m = await b.store.get_message(message_id)
    assert m is not None
    return m.id


async def test_two_messages_sharing_an_iban_are_cross_matched(backend: Backend) -> None:
    [first] = await save(backend, message("a", f"Virement sur {IBAN}."))
    assert first is not None and "matched" not in [e.type for e in first]
    [second] = await save(
        backend, message("b", "Compte fr1420041010050500013m02606 encore.", at=T0 + timedelta(days=3))
    )
    assert second is not None
    [matched] = [e for e in second if e.type == "matched"]
    assert matched.message_id == "b" and matched.details["count"] == 1
    assert matched.details["matches"] == [
        {"id": await pk(backend, "a"), "sender": "ofast", "message_id": "a",
         "shared": [{"kind": "iban", "value": "FR1420041010050500013M02606"}]}
    ]  # fmt: skip
    [routed] = [e for e in second if e.type == "routed"]
    assert routed.details["cross_matches"] == 1  # the feed's mark
    b = await pk(backend, "b")
    assert [i.value for i in await backend.store.identifiers(b)] == ["FR1420041010050500013M02606"]
    [(other, shared)] = await backend.store.related(b)
    assert other.message_id == "a" and [s.kind for s in shared] == ["iban"]


async def test_cross_matching_within_one_batch(backend: Backend) -> None:
    results = await save(backend, message("a", "+33 6 12 34 56 78"), message("b", "06 12 34 56 78"))
    assert [e.type for e in results[0] or [] if e.type == "matched"] == []
    assert [e.type for e in results[1] or [] if e.type == "matched"] == ["matched"]


async def test_related_messages_are_only_those_the_reader_may_see(backend: Backend) -> None:
    await save(
        backend,
        message("to-es", f"IBAN {IBAN}", recipients=("post.es",)),
        message("to-ma", f"IBAN {IBAN}", recipients=("post.ma",)),
        message("mine", f"IBAN {IBAN}", recipients=("post.es",)),
    )
    es = Visibility(senders=frozenset({"es"}), recipients=frozenset({"post.es"}))
    related = await backend.store.related(await pk(backend, "mine"), es)
    assert [m.message_id for m, _ in related] == ["to-es"]
    assert [m.message_id for m, _ in await backend.store.related(await pk(backend, "mine"))] == [
        "to-ma",
        "to-es",
    ]


async def watch(backend: Backend, kind: str, value: str, id_kind: str | None = None, days: int = 30) -> int:
    ask = WatchInput(
        kind=kind,  # type: ignore[arg-type]
        id_kind=id_kind,  # type: ignore[arg-type]
        value=value,
        label=f"watch {value}",
        reason="enquête OFAST",
        expires_at=T0 + timedelta(days=days),
    )
    event = AuditEvent(at=T0, type="watch_added", actor="op")
    stored = await backend.store.add_watch(ask, value, "op", T0 - timedelta(days=1), event)
    return stored.id


def hits_of(events: list[AuditEvent] | None) -> list[AuditEvent]:
    return [e for e in events or [] if e.type == "watch_hit"]


async def test_a_watch_hit_raises_its_alert_once(backend: Backend) -> None:
    w = await watch(backend, "identifier", "+33612345678", "phone")
    [saved] = await save(backend, message("a", "Joindre le 06 12 34 56 78 ou le +33 6 12 34 56 78."))
    [hit] = hits_of(saved)
    assert hit.details["watch_id"] == w and hit.details["label"] == "watch +33612345678"
    assert (hit.sender, hit.message_id) == ("ofast", "a")
    assert await save(backend, message("a", "06 12 34 56 78")) == [None]  # redelivered: nothing again
    audit = await backend.store.audit(event_type="watch_hit")
    assert len(audit) == 1
    [other] = await save(backend, message("b", "06 12 34 56 78"))
    assert len(hits_of(other)) == 1  # another message: its own alert


async def test_phrase_watches_and_expiry_and_ending(backend: Backend) -> None:
    await watch(backend, "phrase", "port de carthagene")
    expired = await watch(backend, "phrase", "saisie", days=-1)
    ended = await watch(backend, "phrase", "conteneur")
    await backend.store.end_watch(ended, "op", T0, AuditEvent(at=T0, type="watch_ended", actor="op"))
    [saved] = await save(backend, message("a", "Au PORT DE CARTHAGÈNE: saisie d'un conteneur."))
    assert [h.details["value"] for h in hits_of(saved)] == ["port de carthagene"]
    assert [w.id for w in await backend.store.watches(T0)] == [1]
    assert len(await backend.store.watches()) == 3 and expired == 2


async def test_a_purge_forgets_identifiers_and_the_index(backend: Backend) -> None:
    await save(backend, message("a", f"Contrebande, IBAN {IBAN}"), message("b", f"IBAN {IBAN}"))
    a, b = await pk(backend, "a"), await pk(backend, "b")
    assert await backend.store.identifiers(a) != []
    rules = load_config(Path("config")).retention
    assert rules is not None
    report = await backend.store.purge(rules, T0 + timedelta(days=20 * 365))  # long past every limit
    assert report.counts["messages"].erased >= 2
    assert await backend.store.identifiers(a) == [] and await backend.store.identifiers(b) == []
    assert await backend.store.related(b) == []
    assert await test_search.find(backend.store, "contrebande") == []
    if backend.engine == "sqlite":
        await backend.sql("INSERT INTO message_search (message_search) VALUES ('integrity-check')")


# -- over HTTP -----------------------------------------------------------------------------------------


async def test_the_detail_shows_identifiers_and_related_messages(api: Api) -> None:
    await api.store.save_batch([message("x1", f"IBAN {IBAN}", sender="es", recipients=("unit.c3n",))])
    await api.store.save_batch([message("x2", f"compte {IBAN}", sender="es", recipients=("post.ma",))])
    status, body = await api.get("/api/messages/x2?sender=es", "operator")
    assert status == 200
    assert body["identifiers"] == [{"kind": "iban", "value": "FR1420041010050500013M02606"}]
    assert [(r["message_id"], r["shared"][0]["kind"]) for r in body["related"]] == [("x1", "iban")]
    # post:es sent both; unit:c3n sees x1 only, so x1 has no related message it may see
    status, body = await api.get("/api/messages/x1?sender=es", "unit:c3n")
    assert status == 200 and body["related"] == []
    status, body = await api.get("/api/messages/x1?sender=es", "post:es")
    assert [r["message_id"] for r in body["related"]] == ["x2"]


WATCH = {
    "kind": "identifier",
    "id_kind": "phone",
    "value": "06 12 34 56 78",
    "label": "Suspect Tanger",
    "reason": "OFAST 2026/114",
    "expires_at": "2090-01-01T00:00:00Z",
}


async def post(api: Api, path: str, body: Any, who: str = "operator") -> tuple[int, Any]:
    resp = await api.client.post(path, json=body, headers={"Authorization": f"Bearer {api.tokens[who]}"})
    return resp.status, await resp.json()


async def test_operators_keep_the_watch_list(api: Api) -> None:
    status, made = await post(api, "/api/watches", WATCH)
    assert status == 201, made
    assert made["value"] == "+33612345678" and made["created_by"]
    status, listed = await api.get("/api/watches")
    assert [w["id"] for w in listed["items"]] == [made["id"]]
    resp = await api.client.delete(
        f"/api/watches/{made['id']}", headers={"Authorization": f"Bearer {api.tokens['operator']}"}
    )
    assert resp.status == 200 and (await resp.json())["ended_at"]
    assert (await api.get("/api/watches"))[1]["items"] == []
    assert len((await api.get("/api/watches?live=false"))[1]["items"]) == 1
    _, audit = await api.get("/api/audit?type=watch_added", "auditor")
    assert len(audit["items"]) == 1


@pytest.mark.parametrize("who", ["auditor", "post:es", "post:de", "unit:c3n", "unit:ocrtis"])
async def test_only_operators_may_use_the_watch_list(api: Api, who: str) -> None:
    assert (await api.get("/api/watches", who))[0] == 403
    assert (await post(api, "/api/watches", WATCH, who))[0] == 403
    resp = await api.client.delete("/api/watches/1", headers={"Authorization": f"Bearer {api.tokens[who]}"})
    assert resp.status == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"value": "not a phone"}, "value"),
        ({"id_kind": None}, "id_kind"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"kind": "phrase", "id_kind": None, "value": "!!!"}, "value"),
        ({"id_kind": "iban", "value": "FR00 1234"}, "value"),
    ],
)
async def test_a_bad_watch_is_400_naming_the_field(api: Api, change: dict[str, Any], field: str) -> None:
    status, body = await post(api, "/api/watches", {**WATCH, **change})
    assert status == 400, body
    assert body["error"]["field"] == field


async def test_ending_an_unknown_watch_is_404(api: Api) -> None:
    resp = await api.client.delete(
        "/api/watches/999", headers={"Authorization": f"Bearer {api.tokens['operator']}"}
    )
    assert resp.status == 404


# -- through the running service: intake extracts, the alert reaches P.events once -----------------------


async def test_a_watch_hit_reaches_p_events_once(service_settings: Settings, broker: Broker) -> None:
    first = envelope(subject="Demande", body="Le suspect utilise le 06 12 34 56 78.")
    second = envelope(subject="Suite", body="Nouveau contact: +33 6 12 34 56 78.")
    async with running(service_settings) as inst:
        store = inst.runtime.store
        ask = WatchInput(**{**WATCH, "expires_at": "2090-01-01T00:00:00Z"})  # type: ignore[arg-type]
        now = datetime.now(UTC)
        await store.add_watch(
            ask, "+33612345678", "op", now, AuditEvent(at=now, type="watch_added", actor="op")
        )
        await broker.publish(first)
        await broker.publish(first)  # a duplicate delivery: no second alert
        await broker.publish(second)
        await broker.wait_events(lambda ev: sum(e["type"] == "watch_hit" for e in ev) >= 2)
        await broker.wait_events(lambda ev: sum(e["type"] == "matched" for e in ev) >= 1)
        ids = {first["message_id"], second["message_id"]}
        await broker.wait_events(
            lambda ev: {e["message_id"] for e in ev if e["type"] in ("routed", "triaged")} >= ids
        )
    events = broker.events
    hits = [e for e in events if e["type"] == "watch_hit"]
    assert sorted(h["message_id"] for h in hits) == sorted([first["message_id"], second["message_id"]])
    assert all(h["details"]["label"] == "Suspect Tanger" for h in hits)
    [final] = [
        e for e in events if e["type"] in ("routed", "triaged") and e["message_id"] == second["message_id"]
    ]
    assert final["details"]["cross_matches"] == 1
    assert any(e["type"] == "matched" and e["message_id"] == second["message_id"] for e in events)
