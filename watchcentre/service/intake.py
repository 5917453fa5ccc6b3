"""One delivery to the end: handled within its time limit, then acked, or handed back.

* the input is acked only after every routed copy is confirmed by the broker AND its audit
  records are committed (the Pipeline's work);
* a handler failure (an exception, or no result within `handler_timeout_s`) is retried by
  redelivery and dead-lettered after `max_attempts` such failures (counted here, per input bytes:
  redeliveries after a crash, a lost connection or a dependency outage do not count);
* a dependency outage (TransientError) is retried without being counted as the input's fault, and
  `on_unavailable` is told, so intake can pause until the dependency answers again;
* the broker's last delivery of an input (`delivery_limit`) is never handed back, whatever failed:
  the broker would dead-letter it on that return without a reason or an audit record, so it is
  dead-lettered here with both, the attempt repeated until the dead letter and its record are done;
* the sender's receipt, when it asked for one, after the ack.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

import orjson
import structlog

from watchcentre.core.envelope import Envelope, Rejection, decode_envelope
from watchcentre.core.ports import Delivery, Metrics, TransientError
from watchcentre.core.records import body_digest
from watchcentre.service.outbox import Outbox
from watchcentre.service.pipeline import Pipeline
from watchcentre.service.settings import ServiceSettings

log = structlog.get_logger("watchcentre.service")


class HandlerTimeout(Exception):
    """A delivery was not handled within `handler_timeout_s`: counted as a failure of its input."""


class Intake:
    def __init__(
        self,
        *,
        pipeline: Pipeline,
        outbox: Outbox,
        metrics: Metrics,
        settings: ServiceSettings,
        on_unavailable: Callable[[TransientError], None] | None = None,
        remembered: int = 10_000,
    ) -> None:
        self.pipeline = pipeline
        self.outbox = outbox
        self.metrics = metrics
        self.settings = settings
        self.on_unavailable = on_unavailable
        self._failures: OrderedDict[str, int] = OrderedDict()  # input digest → handler failures
        self._remembered = remembered

    async def on_delivery(self, delivery: Delivery) -> None:
        """Handle one input to the end: ack it, or hand it back for another attempt."""
        started = time.perf_counter()
        self.metrics.in_flight(1)
        try:
            status = await self._handle_in_time(delivery)
        except TransientError as exc:
            await self._unavailable(delivery, exc)
            return
        except Exception as exc:
            await self._failed(delivery, exc)
            return
        finally:
            self.metrics.in_flight(-1)
        await delivery.ack()
        if status is not None:
            self.metrics.routed(status, time.perf_counter() - started)
        if delivery.reply_to:
            await self._receipt(delivery.body, delivery.reply_to, delivery.user_id)

    async def _handle_in_time(self, delivery: Delivery) -> str | None:
        limit_s = self.settings.handler_timeout_s
        try:
            async with asyncio.timeout(limit_s):
                return await self.pipeline.handle(delivery.body, delivery.user_id)
        except TimeoutError as exc:
            raise HandlerTimeout(f"not handled within {limit_s:g} s") from exc

    async def _failed(self, delivery: Delivery, exc: Exception) -> None:
        self.metrics.failed()
        failures = self._count_failure(delivery.body)
        if failures < self.settings.max_attempts and not self._last(delivery):
            log.warning("handler_failed", error=repr(exc), failures=failures, attempts=delivery.attempts)
            await delivery.retry()
            return
        log.error("poison_message", error=repr(exc), failures=failures, attempts=delivery.attempts)
        if failures < self.settings.max_attempts:
            await self._dead_at_limit(delivery, exc)
            return
        reason = f"handler failed {failures} times: {type(exc).__name__}: {exc}"
        try:
            await self.outbox.reject(delivery.body, self._rejection("handler", reason, delivery), failures)
        except TransientError as unavailable:
            await self._unavailable(delivery, unavailable)
            return
        self._failures.pop(body_digest(delivery.body), None)
        await delivery.ack()

    def _last(self, delivery: Delivery) -> bool:
        limit = self.settings.delivery_limit
        return limit is not None and delivery.attempts > limit

    @staticmethod
    def _rejection(field: str, problem: str, delivery: Delivery) -> Rejection:
        decoded = decode_envelope(delivery.body)
        ids = (decoded.message_id, decoded.sender) if isinstance(decoded, Envelope) else (None, None)
        return Rejection(field=field, problem=problem, message_id=ids[0], sender=ids[1])

    async def _dead_at_limit(self, delivery: Delivery, exc: Exception) -> None:
        """The broker's last delivery of an input that could not be handled: dead-letter it with its
        reason and record, then ack. While that fails (a dependency out), wait and try again: handing
        it back would have the broker dead-letter it unrecorded. Stopped meanwhile, the channel's
        close returns it and the broker dead-letters it (docs/guarantees.md)."""
        reason = (
            f"delivered {delivery.attempts} times, the broker's limit, without being handled;"
            f" last: {type(exc).__name__}: {exc}"
        )
        rejection = self._rejection("delivery", reason, delivery)
        wait_s = 0.1
        while True:
            try:
                await self.outbox.reject(delivery.body, rejection, delivery.attempts)
                break
            except TransientError as unavailable:
                log.warning("dead_letter_deferred", error=str(unavailable), attempts=delivery.attempts)
                if self.on_unavailable is not None:
                    self.on_unavailable(unavailable)
                await asyncio.sleep(wait_s)
                wait_s = min(wait_s * 2, 2.0)
        self._failures.pop(body_digest(delivery.body), None)
        await delivery.ack()

    async def _receipt(self, raw: bytes, to: str, user: str | None) -> None:
        """Tell the sender what became of its message, on the queue it named (AMQP `reply_to`): the
        status, the case reference (generated for a request that gave none), the recipients, or the
        reason it was refused. Sent after the ack, best effort: the store is the record. Only to a
        queue the publisher owns (`SenderPolicy.may_receive_receipt`): never into another's queue."""
        decoded = decode_envelope(raw)
        if not self.pipeline.rules.current.senders.may_receive_receipt(to, decoded.sender, user):
            log.warning(
                "receipt_refused", to=to, sender=decoded.sender, message_id=decoded.message_id, user=user
            )
            return
        receipt: dict[str, object]
        if isinstance(decoded, Envelope):
            receipt = {"message_id": decoded.message_id, "sender": decoded.sender}
            try:
                stored = await self.outbox.store.get_message(decoded.message_id, decoded.sender)
            except TransientError:
                stored = None
            if stored is not None:
                receipt |= {
                    "status": stored.status.value,
                    "reference": stored.reference,
                    "recipients": stored.recipients,
                    "error": stored.error,
                }
        else:
            receipt = {
                "message_id": decoded.message_id,
                "sender": decoded.sender,
                "status": "rejected",
                "error": f"{decoded.field}: {decoded.problem}",
            }
        try:
            await self.outbox.publisher.publish_reply(to, orjson.dumps(receipt), decoded.message_id)
        except Exception as exc:  # a receipt never fails the message
            log.warning("receipt_not_sent", to=to, error=repr(exc))

    async def _unavailable(self, delivery: Delivery, exc: TransientError) -> None:
        """A dependency is out: hand the input back (not its fault, not counted) and say so; unless
        this is the broker's last delivery of it."""
        log.warning("dependency_unavailable", error=str(exc), attempts=delivery.attempts)
        self.metrics.failed()
        if self.on_unavailable is not None:
            self.on_unavailable(exc)
        if self._last(delivery):
            await self._dead_at_limit(delivery, exc)
            return
        await delivery.retry()

    def _count_failure(self, raw: bytes) -> int:
        digest = body_digest(raw)
        failures = self._failures.pop(digest, 0) + 1
        self._failures[digest] = failures
        while len(self._failures) > self._remembered:
            self._failures.popitem(last=False)
        return failures
