"""A message a post or a unit writes on its screen: the envelope it would have published over AMQP,
handed to the same pipeline as a delivery (the same checks, classification, routing, copies, case
opening and audit). Its sender is the signed-in party, which the adapter takes from the session:
never from what the browser sent. The service publishes it as its own broker user, which may speak
for any sender (core/senders.py), exactly as when it re-injects a dead letter."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import structlog

from watchcentre.core.envelope import Envelope, Rejection, decode_envelope
from watchcentre.core.errors import Invalid
from watchcentre.core.ports import Clock, Store
from watchcentre.core.records import StoredMessage
from watchcentre.service.checks import EnvelopeChecks
from watchcentre.service.pipeline import Pipeline

log = structlog.get_logger("watchcentre.service")


class Submissions:
    def __init__(self, *, pipeline: Pipeline, checks: EnvelopeChecks, store: Store, clock: Clock) -> None:
        self.pipeline = pipeline
        self.checks = checks
        self.store = store
        self.clock = clock

    async def submit(self, fields: dict[str, Any], sender: str) -> StoredMessage:
        """Route `fields` (an envelope without sender, message_id and sent_at) as sent by `sender`.
        A refusal is Invalid naming the field, before anything is published or recorded."""
        message_id = f"web-{uuid.uuid4().hex}"
        raw = orjson.dumps(
            {**fields, "sender": sender, "message_id": message_id, "sent_at": self.clock.now().isoformat()}
        )
        decoded: Envelope | Rejection = decode_envelope(raw)
        user = self.checks.senders.service_user
        if isinstance(decoded, Envelope):
            decoded = self.checks.refusal(decoded, user) or decoded
        if isinstance(decoded, Rejection):
            raise Invalid(decoded.field, decoded.problem)
        await self.pipeline.handle(raw, user)
        stored = await self.store.get_message(message_id, sender)
        if stored is None:  # refused inside the pipeline (recorded there as rejected)
            raise Invalid("body", "the message was not accepted")
        log.info(
            "submitted", sender=sender, message_id=message_id, kind=decoded.kind.value, status=stored.status
        )
        return stored
