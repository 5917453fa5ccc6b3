"""Who is a party to a case or a message, and so who may act on it, answer it, or link to it. Pure.

One rule for AMQP (the routing service) and HTTP (the case routes):

* the parties to a case are the post(s) it is routed to (its recipients), the unit (or centre) that
  sent the request, and the centre, which oversees every case;
* the parties to a message are its sender, its recipients and the centre;
* a message may link to a case or a message (`reference`, `in_reply_to`) only as a party to it. A
  link from a non-party is treated exactly as a link to nothing: the case is not touched, the message
  goes to centre triage, and what the sender hears back is the same whether or not it exists.
"""

from __future__ import annotations

from watchcentre.core.access import Principal, Role
from watchcentre.core.lifecycle import ACTIONS_BY_SIDE, Action, Case, Side
from watchcentre.core.network import CENTRE, Network
from watchcentre.core.routing import CENTRE_INBOX, TRIAGE, Original, post_key, sender_key, unit_key


def side_of(case: Case, sender: str, network: Network) -> Side | None:
    """A sender's side in this case: a post it was routed to, the unit that sent it, the centre;
    None for anyone else (another post, another unit)."""
    kind = network.sender_kind(sender)
    if kind == CENTRE:
        return Side.CENTRE
    if kind == "post" and post_key(sender) in case.recipients:
        return Side.POST
    if sender == case.sender:
        return Side.UNIT
    return None


def principal_side(who: Principal, case: Case) -> Side | None:
    """The same rule for a person over HTTP: an operator speaks for the centre, a post or unit token
    for its post or unit; None when not a party (the case is then as if it did not exist)."""
    if who.role is Role.OPERATOR:
        return Side.CENTRE
    if who.role is Role.POST and who.subject and post_key(who.subject) in case.recipients:
        return Side.POST
    if who.role is Role.UNIT and who.subject and who.subject == case.sender:
        return Side.UNIT
    return None


def may(side: Side | None, action: Action) -> bool:
    """Whether a side may take this action at all (the case's state decides the rest)."""
    return side is not None and action in ACTIONS_BY_SIDE[side]


def may_answer(case: Case, sender: str, network: Network) -> bool:
    """Whether a reply from `sender` answers the case: a post it is routed to, or the centre."""
    return may(side_of(case, sender, network), Action.ANSWER)


def party_to(original: Original, sender: str, network: Network) -> bool:
    """Whether `sender` may link to this message (or case, when `original` is its request)."""
    if network.sender_kind(sender) == CENTRE or sender == original.sender:
        return True
    key = sender_key(network, sender)
    return key is not None and key in original.recipients


def case_original(case: Case) -> Original:
    """A case as the message a follow-up links to: its request, held by the case's recipients."""
    return Original(case.sender, case.message_id, tuple(case.recipients), case.reference)


def counterparts(case: Case, side: Side, network: Network) -> list[str]:
    """Who hears of an action: the other side (the centre sees all post traffic)."""
    requester = unit_key(case.sender) if network.sender_kind(case.sender) == "unit" else CENTRE_INBOX
    posts = [r for r in case.recipients if r.startswith("post.")] or [TRIAGE]
    if side is Side.POST:
        return list(dict.fromkeys([requester, CENTRE_INBOX]))
    if side is Side.UNIT:
        return posts
    return list(dict.fromkeys([requester, *posts]))
