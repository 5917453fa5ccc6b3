"""What the service layer is told by bootstrap (from the environment and config/)."""

from __future__ import annotations

from dataclasses import dataclass, field

from watchcentre.core.senders import SenderPolicy


@dataclass(frozen=True)
class ServiceSettings:
    max_attempts: int = 5
    """A message whose handling fails this many times is dead-lettered with the failure."""
    handler_timeout_s: float = 60.0
    """A delivery not handled within this time counts as a handler failure (retried, then dead-lettered)."""
    delivery_limit: int | None = None
    """The broker's delivery limit (`x-delivery-limit` of the intake queue): a delivery that has
    been returned this many times is its last, and the broker dead-letters it on the next return,
    without our reason or audit record. The service never hands such a delivery back."""
    senders: SenderPolicy = field(default_factory=SenderPolicy)
    """Which broker user may speak for which sender, and where receipts may go."""
