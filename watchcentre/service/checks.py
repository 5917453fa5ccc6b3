"""What the envelope model cannot check alone, for intake and for an operator's correction."""

from __future__ import annotations

from watchcentre.core.envelope import Envelope, Rejection
from watchcentre.core.handling import HandlingRules
from watchcentre.core.network import Network
from watchcentre.core.senders import SenderPolicy


class EnvelopeChecks:
    def __init__(
        self,
        *,
        network: Network,
        known_countries: frozenset[str],
        senders: SenderPolicy,
        handling: HandlingRules,
    ) -> None:
        self.network = network
        self.known_countries = known_countries
        self.senders = senders
        self.handling = handling

    def refusal(self, env: Envelope, user: str | None) -> Rejection | None:
        """The network, whether broker user `user` (who published it) may speak for its sender, the
        real country codes, the handling marking: the first problem, or None."""
        ids = {"message_id": env.message_id, "sender": env.sender}
        if self.network.sender_kind(env.sender) is None:
            return Rejection(field="sender", problem=f"unknown sender '{env.sender}'", **ids)
        if (refused := self.senders.refusal(user, env.sender)) is not None:
            return Rejection(field="sender", problem=refused, **ids)
        unreal = [c for c in env.countries if c not in self.known_countries]
        if unreal:
            return Rejection(
                field="countries", problem=f"not a real ISO 3166-1 country code: {', '.join(unreal)}", **ids
            )
        if (problem := self.handling.check(env.handling)) is not None:
            return Rejection(field="handling", problem=problem, **ids)
        return None
