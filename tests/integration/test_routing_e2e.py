"""End to end through the real RabbitMQ and each database: publish an envelope on P.inbound and
look at what recipients, the dead-letter queue and the audit trail hold."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.integration.harness import Broker, envelope, running
from tests.integration.store_totals import totals
from watchcentre.core.routing import copy_id
from watchcentre.settings import Settings


def settled(events: list[dict[str, Any]], n: int) -> bool:
    return len([e for e in events if e["type"] in ("routed", "triaged", "rejected")]) >= n


async def test_a_request_about_one_country_lands_in_that_posts_queue(
    service_settings: Settings, broker: Broker
) -> None:
    env = envelope(
        subject="Demande d'identification — trafic de cocaïne",
        body="Ressortissant marocain interpellé; son complice réside à Tanger (+212 6 12 34 56 78).",
    )
    async with running(service_settings):
        await broker.publish(env)
        await broker.wait_events(lambda ev: settled(ev, 1))

    copies = await broker.drain("post.rabat")
    assert len(copies) == 1
    copy = orjson.loads(copies[0].body)
    assert copy["message_id"] == env["message_id"]
    assert copy["routing"]["recipients"] == ["post.rabat"]
    assert copy["routing"]["countries"] == ["MA"]
    assert copy["routing"]["crime_types"][0] == "drug_trafficking"
    assert any("Tanger" in line for line in copy["routing"]["explanation"])
    assert copies[0].message_id == copy_id("ofast", env["message_id"])
    assert copies[0].delivery_mode == 2  # persistent
    types = [e["type"] for e in broker.events if e["message_id"] == env["message_id"]]
    assert types == ["received", "classified", "routed"]


async def test_several_countries_fan_out_to_each_post(service_settings: Settings, broker: Broker) -> None:
    env = envelope(
        sender="oltim",
        subject="Filière de passeurs",
        body="Les migrants arrivent de Turquie et transitent par la Grèce puis l'Italie.",
        countries=["AL"],
    )
    async with running(service_settings):
        await broker.publish(env)
        await broker.wait_events(lambda ev: settled(ev, 1))
    posts = ("ankara", "athens", "rome", "tirana")
    copies = {post: await broker.drain(f"post.{post}") for post in posts}
    for post, got in copies.items():
        # exactly one copy each, the same AMQP id in every queue, a body naming every recipient,
        # and the other recipients' keys (BCC) stripped by the broker
        assert [orjson.loads(m.body)["message_id"] for m in got] == [env["message_id"]], post
        assert got[0].message_id == copy_id("oltim", env["message_id"]), post
        assert {f"post.{p}" for p in posts} <= set(orjson.loads(got[0].body)["routing"]["recipients"])
        assert "BCC" not in (got[0].headers or {}) and "CC" not in (got[0].headers or {}), post


async def test_a_posts_reply_goes_back_to_the_requesting_unit_and_the_centre(
    service_settings: Settings, broker: Broker
) -> None:
    request = envelope(sender="bnrf", subject="Fugitive in Thailand", body="Please locate him in Bangkok.")
    reply = envelope(
        sender="bangkok",
        kind="reply",
        subject="Re: fugitive",
        body="The Royal Thai Police located the person.",
        in_reply_to=request["message_id"],
        reference="WC-2026-000001",
    )
    async with running(service_settings):
        await broker.publish(request)
        await broker.wait_events(lambda ev: settled(ev, 1))
        await broker.publish(reply)
        await broker.wait_events(lambda ev: settled(ev, 2))
    to_unit = await broker.drain("unit.bnrf")
    to_centre = await broker.drain("centre.inbox")
    assert [orjson.loads(m.body)["message_id"] for m in to_unit] == [reply["message_id"]]
    assert [orjson.loads(m.body)["message_id"] for m in to_centre] == [reply["message_id"]]
    assert len(await broker.drain("post.bangkok")) == 1  # the request itself


async def test_a_message_with_no_foreign_country_goes_to_triage(
    service_settings: Settings, broker: Broker
) -> None:
    env = envelope(subject="Cambriolages en série", body="Une série de cambriolages à Lyon et Villeurbanne.")
    async with running(service_settings) as inst:
        await broker.publish(env)
        await broker.wait_events(lambda ev: settled(ev, 1))
        stored = await inst.runtime.store.get_message(env["message_id"])
    got = await broker.drain("centre.triage")
    assert len(got) == 1
    assert orjson.loads(got[0].body)["routing"]["recipients"] == ["centre.triage"]
    assert stored is not None and stored.status == "triage"
    assert broker.events_of("triaged")[0]["message_id"] == env["message_id"]


BAD_INPUTS: list[tuple[str, bytes, str]] = [
    ("not json", b"{not json", "envelope: not valid JSON"),
    ("not utf-8", b'{"subject": "\xff\xfe"}', "envelope: not valid UTF-8"),
    ("a JSON array", b"[1, 2]", "envelope: expected a JSON object"),
    (
        "missing field",
        orjson.dumps({k: v for k, v in envelope().items() if k != "subject"}),
        "subject: Field required",
    ),
    ("invalid kind", orjson.dumps(envelope(kind="gossip")), "kind: Input should be"),
    (
        "naive time",
        orjson.dumps(envelope(sent_at="2026-11-23T10:00:00")),
        "sent_at: Input should have timezone",
    ),
    ("unknown sender", orjson.dumps(envelope(sender="nobody")), "sender: unknown sender 'nobody'"),
    ("oversize body", orjson.dumps(envelope(body="x" * (256 * 1024 + 1))), "body: "),
    (
        "unreal country",
        orjson.dumps(envelope(countries=["XX"])),
        "countries: not a real ISO 3166-1 country code: XX",
    ),
    (
        "malformed country",
        orjson.dumps(envelope(countries=["Maroc"])),
        "countries: not an ISO 3166-1 alpha-2 code",
    ),
    (
        "unknown crime type",
        orjson.dumps(envelope(crime_types=["jaywalking"])),
        "crime_types: unknown crime type",
    ),
    ("unknown field", orjson.dumps(envelope(colour="red")), "colour: unknown field"),
]


async def test_every_kind_of_bad_input_is_dead_lettered_with_its_reason_and_audited(
    service_settings: Settings, broker: Broker
) -> None:
    async with running(service_settings) as inst:
        for _, raw, _ in BAD_INPUTS:
            await broker.publish(raw)
        good = envelope(countries=["MA"])
        await broker.publish(good)  # the consumer keeps going after bad input
        await broker.wait_events(lambda ev: settled(ev, len(BAD_INPUTS) + 1))
        counts = await totals(inst.runtime.store)
    dead = await broker.drain("dead")
    reasons = {m.body: m.headers["x-watchcentre-error"] for m in dead}
    assert len(dead) == len(BAD_INPUTS)
    for name, raw, expected in BAD_INPUTS:
        assert raw in reasons, f"{name} not dead-lettered"
        assert str(reasons[raw]).startswith(expected), (name, reasons[raw])
    assert len(broker.events_of("rejected")) == len(BAD_INPUTS)
    assert counts["rejected"] == len(BAD_INPUTS)
    assert len(await broker.drain("post.rabat")) == 1


async def test_a_duplicate_message_id_is_routed_and_audited_once(
    service_settings: Settings, broker: Broker
) -> None:
    env = envelope(countries=["MA"])
    other = envelope(countries=["DZ"])
    await broker.declare_topology()
    for _ in range(3):
        await broker.publish(env)
    await broker.publish(other)
    # one at a time, so once `other` is settled every copy of `env` before it has been handled
    async with running(service_settings.model_copy(update={"prefetch": 1})) as inst:
        await broker.wait_events(
            lambda ev: any(e["message_id"] == other["message_id"] for e in ev if e["type"] == "routed")
        )
        audit = await inst.runtime.store.audit(message_id=env["message_id"])
    assert len(await broker.drain("post.rabat")) == 1
    assert [e.type for e in audit] == ["received", "classified", "routed"]
    assert await broker.count("inbound") == 0


async def test_concurrent_copies_of_one_message_are_routed_once(
    service_settings: Settings, broker: Broker
) -> None:
    env = envelope(countries=["MA"])
    await broker.declare_topology()
    for _ in range(5):
        await broker.publish(env)
    last = envelope(countries=["DZ"])
    await broker.publish(last)
    async with running(service_settings):  # prefetch 200: all six in flight together
        await broker.wait_events(lambda ev: settled(ev, 2))
    # stopped gracefully: whatever was in flight has finished, and its events are out
    assert [e["type"] for e in broker.events if e["message_id"] == env["message_id"]] == [
        "received",
        "classified",
        "routed",
    ]
    assert await broker.count("inbound") == 0
    assert len(await broker.drain("post.rabat")) == 1


async def test_a_handler_that_keeps_failing_is_dead_lettered_after_the_limit(
    service_settings: Settings, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = envelope(subject="POISON", countries=["MA"])
    fine = envelope(countries=["DZ"])
    async with running(service_settings) as inst:
        classifier = inst.runtime.service.pipeline.classifier
        real = classifier.classify

        def explode(subject: str, *args: Any, **kwargs: Any) -> Any:
            if subject == "POISON":
                raise RuntimeError("rule engine exploded")
            return real(subject, *args, **kwargs)

        monkeypatch.setattr(classifier, "classify", explode)
        await broker.publish(poison)
        await broker.publish(fine)
        await broker.wait_events(lambda ev: settled(ev, 2))
    dead = await broker.drain("dead")
    assert len(dead) == 1
    reason = str(dead[0].headers["x-watchcentre-error"])
    assert reason.startswith("handler: handler failed 5 times: RuntimeError: rule engine exploded")
    assert len(await broker.drain("post.algiers")) == 1
    rejected = broker.events_of("rejected")
    assert rejected[0]["message_id"] == poison["message_id"]


async def test_stopping_mid_stream_and_restarting_loses_nothing_and_doubles_nothing(
    service_settings: Settings, broker: Broker
) -> None:
    total = 400
    envs = [envelope(message_id=f"restart-{i:04d}", countries=["MA"]) for i in range(total)]
    await broker.declare_topology()
    for env in envs:
        await broker.publish(env)
    settings = service_settings.model_copy(update={"prefetch": 10})
    async with running(settings):
        await broker.wait_events(lambda ev: settled(ev, 50))
    handled_by_first = len(broker.events_of("routed"))
    assert handled_by_first < total, "the first instance was stopped mid-stream"
    # stopped with part of the stream handled; a new instance takes the rest
    async with running(settings) as inst:
        await broker.wait_events(
            lambda ev: len({e["message_id"] for e in ev if e["type"] == "routed"}) >= total, 60
        )
        counts = await totals(inst.runtime.store)
        audit = await inst.runtime.store.audit(event_type="routed", limit=10_000)
    assert counts["routed"] == total
    assert sorted(e.message_id for e in audit if e.message_id) == sorted(e["message_id"] for e in envs)
    copies = await broker.drain("post.rabat")
    ids = {orjson.loads(m.body)["message_id"] for m in copies}
    assert ids == {e["message_id"] for e in envs}  # every message delivered at least once
    assert len(copies) - len(ids) <= 200  # re-sent copies only for in-flight work, droppable by id
    assert len({m.message_id for m in copies}) == total


async def test_a_recipient_queue_deleted_by_hand_is_declared_again_and_nothing_is_retried(
    service_settings: Settings, broker: Broker
) -> None:
    first = envelope(body="Un ressortissant marocain interpellé à Tanger avec 3 kg de cocaïne.")
    second = envelope(body="Deuxième saisie de cocaïne à Casablanca, même réseau marocain.")
    async with running(service_settings) as inst:
        await broker.publish(first)
        await broker.wait_events(lambda ev: settled(ev, 1))
        assert broker.channel is not None
        await broker.channel.queue_delete(f"{broker.prefix}.post.rabat")  # an operator's mistake
        await broker.publish(second)
        await broker.wait_events(lambda ev: settled(ev, 2))
        unavailable = inst.runtime.guard.pauses
    got = await broker.drain("post.rabat")
    assert [orjson.loads(m.body)["message_id"] for m in got] == [second["message_id"]]
    assert unavailable == 0  # handled on its first attempt: not handed back, no delivery count burnt
