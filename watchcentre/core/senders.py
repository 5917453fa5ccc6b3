"""Who may speak for whom on AMQP: the broker user that published an envelope against its `sender`.

RabbitMQ checks the `user_id` message property against the publishing connection's user, so a
validated `user_id` is the one fact about a message's origin the service can trust; `sender` is
only what the message claims. The mapping between the two is data (config/broker.yaml); this module
is its shape, its consistency rules and the decisions, with no I/O. It also says which broker
permissions each user needs (`grants`), so that `watchcentre broker provision` applies the same map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from watchcentre.core.network import CENTRE, Network
from watchcentre.core.routing import CENTRE_INBOX, TRIAGE, post_key, unit_key

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to."
"""The broker rewrites `reply_to: amq.rabbitmq.reply-to` into this prefix plus a name bound to the
publishing channel: a receipt there reaches only the connection that published the message."""

INTAKE = "intake"
"""`P.intake`: the exchange provisioned users publish to (bound to `P.inbound`). They get no write
on the default exchange, which would let them publish into any queue by its name."""

_USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,100}$"


def reply_queue(prefix: str, sender: str) -> str:
    """`P.reply.<sender>`: the receipt queue of one sender, readable only by the users speaking for it."""
    return f"{prefix}.reply.{sender}"


class BrokerUsers(BaseModel):
    """config/broker.yaml: the RabbitMQ users and the senders each may speak for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_prefix: str = Field(
        default="wc-",
        pattern=r"^[A-Za-z0-9_.@-]{0,40}$",
        description="Each post and unit X speaks through its own broker user, named user_prefix + X.",
    )
    service_user: str = Field(
        default="watchcentre",
        pattern=_USER_PATTERN,
        description="The user `broker provision` creates for the service itself.",
    )
    centre: list[str] = Field(default_factory=list, description="Users that speak as the centre.")
    gateways: dict[str, list[str]] = Field(
        default_factory=dict, description="A trusted gateway user → the senders it may speak for."
    )

    def user_of(self, sender: str) -> str:
        return f"{self.user_prefix}{sender}"

    def problems(self, network: Network) -> list[str]:
        """Every inconsistency against the network; empty when the map is sound."""
        out: list[str] = []
        own = {self.user_of(s) for s in _post_and_unit_ids(network)}
        named = [*self.centre, *self.gateways, self.service_user]
        for user in named:
            if not re.fullmatch(_USER_PATTERN, user):
                out.append(f"'{user}' is not a valid broker user name")
            if user in own:
                out.append(f"user '{user}' is already the own user of a post or unit (user_prefix + id)")
        dupes = sorted({u for u in named if named.count(u) > 1})
        if dupes:
            out.append(f"users listed more than once (centre, gateways, service_user): {', '.join(dupes)}")
        for user, senders in sorted(self.gateways.items()):
            if not senders:
                out.append(f"gateways.{user}: lists no sender")
            unknown = sorted(s for s in senders if network.sender_kind(s) is None)
            if unknown:
                out.append(f"gateways.{user}: unknown sender(s): {', '.join(unknown)}")
        return out


def _post_and_unit_ids(network: Network) -> list[str]:
    return [*(p.id for p in network.posts), *(u.id for u in network.units)]


@dataclass(frozen=True)
class SenderPolicy:
    """The decisions the service takes on each input's broker identity.

    `development` trusts every user (guest included) for every sender, and a message without
    `user_id`: the demo and the tests. `service_user` is the service's own broker user: it
    re-publishes dead letters (audited), and can write to `P.routed` anyway."""

    users: BrokerUsers = field(default_factory=BrokerUsers)
    development: bool = False
    service_user: str | None = None
    prefix: str = "watchcentre"

    def may_speak_for(self, user: str | None, sender: str) -> bool:
        if self.development:
            return True
        if user is None:
            return False
        if user == self.service_user:
            return True
        if sender == CENTRE:
            return user in self.users.centre
        return user == self.users.user_of(sender) or sender in self.users.gateways.get(user, ())

    def refusal(self, user: str | None, sender: str) -> str | None:
        """Why `user` may not send as `sender` (the dead letter's reason), or None when it may."""
        if self.may_speak_for(user, sender):
            return None
        if user is None:
            return "no user_id: the broker cannot vouch for the sender (set user_id to your broker user)"
        return f"broker user '{user}' may not speak for '{sender}'"

    def may_receive_receipt(self, reply_to: str, sender: str | None, user: str | None) -> bool:
        """A receipt goes only to a queue the publisher owns: a direct reply-to (bound to its own
        channel by the broker), or the reply queue of a sender it may speak for. Any other name would
        make the service a deputy writing into somebody else's queue."""
        if reply_to.startswith(DIRECT_REPLY_TO):
            return True
        return (
            sender is not None
            and reply_to == reply_queue(self.prefix, sender)
            and self.may_speak_for(user, sender)
        )


@dataclass(frozen=True)
class Grant:
    """One broker user's permissions on the vhost (regular expressions, RabbitMQ's three kinds)."""

    user: str
    senders: tuple[str, ...]
    configure: str
    write: str
    read: str


def _any_of(names: list[str]) -> str:
    return "^(" + "|".join(re.escape(n) for n in sorted(set(names))) + ")$" if names else "^$"


def grants(users: BrokerUsers, network: Network, prefix: str) -> list[Grant]:
    """The least each user needs. A post, unit, centre or gateway user: write on `P.intake` only;
    read on its senders' own queues and reply queues; configure (declare) its reply queues. The
    service user: everything under the prefix, and the default exchange (dead letters, receipts,
    replays)."""

    def queues(senders: list[str]) -> list[str]:
        out: list[str] = []
        for s in senders:
            kind = network.sender_kind(s)
            keys = (
                [post_key(s)]
                if kind == "post"
                else [unit_key(s)]
                if kind == "unit"
                else [CENTRE_INBOX, TRIAGE]
            )
            out += [f"{prefix}.{k}" for k in keys]
        return out

    def grant(user: str, senders: list[str]) -> Grant:
        replies = [reply_queue(prefix, s) for s in senders]
        return Grant(
            user=user,
            senders=tuple(senders),
            configure=_any_of(replies),
            write=_any_of([f"{prefix}.{INTAKE}"]),
            read=_any_of([*queues(senders), *replies]),
        )

    out = [grant(users.user_of(s), [s]) for s in _post_and_unit_ids(network)]
    out += [grant(u, [CENTRE]) for u in users.centre]
    out += [grant(u, list(senders)) for u, senders in sorted(users.gateways.items())]
    mine = f"^{re.escape(prefix)}\\..*$"
    out.append(Grant(users.service_user, ("*",), mine, f"^({re.escape(prefix)}\\..*|amq\\.default)$", mine))
    return out
