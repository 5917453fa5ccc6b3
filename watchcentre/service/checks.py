"""What the envelope model cannot check alone, for intake and for an operator's correction."""

from __future__ import annotations

from watchcentre.core.envelope import Envelope, Rejection
from watchcentre.core.handling import HandlingRules
from watchcentre.core.network import Network
from watchcentre.core.rules import Rules, RulesRef
from watchcentre.core.senders import SenderPolicy


class EnvelopeChecks:
    def __init__(self, *, rules: RulesRef, known_countries: frozenset[str]) -> None:
        self.rules = rules
        self.known_countries = known_countries

    @property
    def network(self) -> Network:
        return self.rules.current.network

    @property
    def senders(self) -> SenderPolicy:
        return self.rules.current.senders

    @property
    def handling(self) -> HandlingRules:
        return self.rules.current.handling

    def refusal(self, env: Envelope, user: str | None, rules: Rules | None = None) -> Rejection | None:
        """The network, whether broker user `user` (who published it) may speak for its sender, the
        real country codes, the handling marking: the first problem, or None. With the rules the
        caller decides the message with (default: those in force)."""
        rules = rules or self.rules.current
        ids = {"message_id": env.message_id, "sender": env.sender}
        if rules.network.sender_kind(env.sender) is None:
            return Rejection(field="sender", problem=f"unknown sender '{env.sender}'", **ids)
        if (refused := rules.senders.refusal(user, env.sender)) is not None:
            return Rejection(field="sender", problem=refused, **ids)
        unreal = [c for c in env.countries if c not in self.known_countries]
        if unreal:
            return Rejection(
                field="countries", problem=f"not a real ISO 3166-1 country code: {', '.join(unreal)}", **ids
            )
        if (problem := rules.handling.check(env.handling)) is not None:
            return Rejection(field="handling", problem=problem, **ids)
        return None
