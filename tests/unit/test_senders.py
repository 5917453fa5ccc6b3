"""Who may speak for whom (core/senders.py): table-driven, no I/O."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from watchcentre.adapters.config_files import load_config
from watchcentre.core.senders import BrokerUsers, SenderPolicy, grants

NETWORK = load_config(Path(__file__).resolve().parents[2] / "config").network
USERS = BrokerUsers(centre=["wc-centre"], gateways={"gw-south": ["madrid", "rabat"]})
STRICT = SenderPolicy(users=USERS, service_user="svc", prefix="P")


@pytest.mark.parametrize(
    ("user", "sender", "allowed"),
    [
        ("wc-rome", "rome", True),
        ("wc-rome", "madrid", False),  # another post
        ("wc-rome", "centre", False),  # the centre
        ("wc-ofast", "ofast", True),  # a unit, its own user
        ("wc-centre", "centre", True),
        ("wc-centre", "madrid", False),  # the centre's user speaks as the centre only
        ("gw-south", "madrid", True),
        ("gw-south", "rabat", True),
        ("gw-south", "rome", False),  # beyond the gateway's list
        ("gw-south", "centre", False),
        ("svc", "madrid", True),  # the service itself (replays)
        ("guest", "madrid", False),  # guest is nobody's user in strict trust
        (None, "madrid", False),  # no user_id
    ],
)
def test_who_may_speak_for_whom(user: str | None, sender: str, allowed: bool) -> None:
    assert STRICT.may_speak_for(user, sender) is allowed
    assert (STRICT.refusal(user, sender) is None) is allowed
    assert SenderPolicy(development=True).may_speak_for(user, sender)  # development trusts everyone


@pytest.mark.parametrize(
    ("reply_to", "sender", "user", "allowed"),
    [
        ("amq.rabbitmq.reply-to.g1h2AA==.xyz", "rome", "wc-rome", True),  # the publisher's own channel
        ("amq.rabbitmq.reply-to.g1h2AA==.xyz", None, None, True),  # even for an undecodable input
        ("P.reply.rome", "rome", "wc-rome", True),
        ("P.reply.madrid", "madrid", "wc-rome", False),  # rome claiming madrid: no receipt to madrid
        ("P.reply.madrid", "rome", "wc-rome", False),
        ("P.post.madrid", "rome", "wc-rome", False),  # another post's queue
        ("P.post.rome", "rome", "wc-rome", False),  # not a receipt queue
        ("P.reply.madrid", "madrid", "gw-south", True),
        ("amq.rabbitmq.reply-to", "rome", "wc-rome", False),  # never rewritten by the broker: forged
        ("P.reply.rome", None, "wc-rome", False),
    ],
)
def test_receipts_only_to_a_queue_the_publisher_owns(
    reply_to: str, sender: str | None, user: str | None, allowed: bool
) -> None:
    assert STRICT.may_receive_receipt(reply_to, sender, user) is allowed


def test_the_broker_map_lists_every_problem_at_once() -> None:
    bad = BrokerUsers(
        centre=["wc-madrid", "gw"],
        gateways={"gw": ["madrid", "atlantis"], "empty": []},
        service_user="wc-ofast",
    )
    problems = bad.problems(NETWORK)
    assert any("'wc-madrid' is already the own user" in p for p in problems)
    assert any("'wc-ofast' is already the own user" in p for p in problems)
    assert any("more than once" in p and "gw" in p for p in problems)
    assert any("gateways.gw: unknown sender(s): atlantis" in p for p in problems)
    assert any("gateways.empty: lists no sender" in p for p in problems)
    assert USERS.problems(NETWORK) == []


def test_grants_are_the_least_each_user_needs() -> None:
    by_user = {g.user: g for g in grants(USERS, NETWORK, "wc.x")}
    rome = by_user["wc-rome"]
    assert re.fullmatch(rome.write, "wc.x.intake") and not re.fullmatch(rome.write, "amq.default")
    assert not re.fullmatch(rome.write, "wc.x.routed") and not re.fullmatch(rome.write, "wc.x.inbound")
    assert re.fullmatch(rome.read, "wc.x.post.rome") and re.fullmatch(rome.read, "wc.x.reply.rome")
    assert not re.fullmatch(rome.read, "wc.x.post.madrid") and not re.fullmatch(rome.read, "wc.x.events")
    assert not re.fullmatch(rome.read, "wcXx.post.rome")  # the prefix's dots are literal
    assert re.fullmatch(rome.configure, "wc.x.reply.rome") and not re.fullmatch(rome.configure, "amq.gen-1")
    gateway = by_user["gw-south"]
    assert re.fullmatch(gateway.read, "wc.x.post.madrid") and re.fullmatch(gateway.read, "wc.x.post.rabat")
    assert not re.fullmatch(gateway.read, "wc.x.post.rome")
    centre = by_user["wc-centre"]
    assert re.fullmatch(centre.read, "wc.x.centre.triage") and re.fullmatch(centre.read, "wc.x.centre.inbox")
    assert len(by_user) == len(NETWORK.posts) + len(NETWORK.units) + 3
