"""Prometheus metrics: the `Metrics` port, on a registry of its own (never the process-global one),
and the operations gauges that /metrics refreshes on scrape (watchcentre/ops.py).

Labels take a few fixed values only (status, field, kind, state, queue): nothing per sender, per
post or per message, so the number of series does not grow with the traffic.
docs/operations.md lists every metric and the alerts (deploy/prometheus/alerts.yml) built on them."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest

from watchcentre.core.lifecycle import AWAITING_ANSWER
from watchcentre.core.ports import OpsCounts, OutboundCopy, Publisher
from watchcentre.core.records import AuditEvent

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which `generate_latest` writes and every Prometheus scrapes."""

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Receipt-to-ack latency, 1 ms to 5 s (slower lands in +Inf)."""

IO_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""A broker confirm or a database commit: 0.5 ms to 30 s (the publish timeout)."""

QUEUES = ("inbound", "dead", "centre_inbox", "centre_triage")
"""The queues whose depth /metrics reports (label values; P.<name> with '.' for '_')."""

RECIPIENT_KINDS = ("post", "unit", "centre_inbox", "triage")


def recipient_kind(routing_key: str) -> str:
    """post.ES → post, unit.X → unit, centre.inbox → centre_inbox, centre.triage → triage."""
    if routing_key == "centre.triage":
        return "triage"
    if routing_key == "centre.inbox":
        return "centre_inbox"
    return routing_key.split(".", 1)[0] if routing_key.startswith(("post.", "unit.")) else "other"


class PrometheusMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._received = Counter(
            "watchcentre_messages_received", "Inputs taken from the intake queue.", registry=r
        )
        self._routed = Counter(
            "watchcentre_messages_routed",
            "Inputs acked after routing, by status (routed or triage).",
            ["status"],
            registry=r,
        )
        self._rejected = Counter(
            "watchcentre_messages_rejected",
            "Inputs dead-lettered, by the field at fault.",
            ["field"],
            registry=r,
        )
        self._duplicate = Counter(
            "watchcentre_messages_duplicate", "Inputs already handled, ignored.", registry=r
        )
        self._failures = Counter("watchcentre_handler_failures", "Handling attempts that raised.", registry=r)
        self._latency = Histogram(
            "watchcentre_routing_latency_seconds",
            "Time from receipt to ack of a routed input.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._in_flight = Gauge("watchcentre_in_flight", "Inputs being handled now.", registry=r)
        for status in ("routed", "triage"):
            self._routed.labels(status=status)
        self._commit = Histogram(
            "watchcentre_commit_seconds",
            "Time of one group commit to the database.",
            buckets=IO_BUCKETS,
            registry=r,
        )
        self._commit_items = Counter(
            "watchcentre_committed_outcomes", "Outcomes written by the group commits.", registry=r
        )
        self._confirm = Histogram(
            "watchcentre_publish_confirm_seconds",
            "Time from publishing an input's routed copies to the broker's confirm of all of them.",
            buckets=IO_BUCKETS,
            registry=r,
        )
        self._copies = Counter(
            "watchcentre_copies_published",
            "Routed copies confirmed by the broker, by recipient kind.",
            ["kind"],
            registry=r,
        )
        for kind in (*RECIPIENT_KINDS, "other"):
            self._copies.labels(kind=kind)
        self._reconnects = Counter(
            "watchcentre_amqp_reconnects", "Times the broker connection was re-established.", registry=r
        )
        self._intake_pauses = Counter(
            "watchcentre_intake_pauses",
            "Times intake paused because the broker or database was out.",
            registry=r,
        )
        self._build = Info("watchcentre_build", "The running version.", registry=r)
        self._config = Info(
            "watchcentre_config", "The configuration in force (SHA-256 of its files).", registry=r
        )
        self._reload_failures = Counter(
            "watchcentre_config_reload_failures",
            "Configuration reloads refused (invalid files): the old configuration stays in force.",
            registry=r,
        )
        self._anchor_failures = Counter(
            "watchcentre_audit_anchor_failures", "Audit checkpoints that could not be written.", registry=r
        )
        self._chain_breaks = Counter(
            "watchcentre_audit_chain_breaks",
            "Audit chain problems seen by the anchor writer (a broken link, or the head went back).",
            registry=r,
        )
        # -- gauges refreshed on scrape (watchcentre/ops.py) --
        self._cases_open = Gauge(
            "watchcentre_cases_open", "Open cases (an answer is awaited), by state.", ["state"], registry=r
        )
        for state in sorted(AWAITING_ANSWER):
            self._cases_open.labels(state=state.value)
        self._overdue = Gauge(
            "watchcentre_cases_overdue",
            "Open cases past a deadline (ack: not acknowledged in time; answer), by priority.",
            ["deadline", "priority"],
            registry=r,
        )
        self._warnings = Gauge(
            "watchcentre_deadline_warnings_pending",
            "Open cases inside the warning window: warned, the answer not yet due.",
            registry=r,
        )
        self._triage = Gauge(
            "watchcentre_triage_backlog", "Accepted messages in triage, not yet routed by hand.", registry=r
        )
        self._queue = Gauge(
            "watchcentre_queue_messages",
            "Messages ready in a broker queue (inbound, dead, centre_inbox, centre_triage).",
            ["queue"],
            registry=r,
        )
        self._lag = Gauge(
            "watchcentre_intake_lag_seconds",
            "Estimated age of the oldest input waiting in the intake queue (0 when it is empty).",
            registry=r,
        )
        self._head_seq = Gauge("watchcentre_audit_head_seq", "Seq of the newest audit record.", registry=r)
        self._anchor_age = Gauge(
            "watchcentre_audit_anchor_age_seconds",
            "Seconds since a signed checkpoint was last known to cover the audit head (-1: never).",
            registry=r,
        )
        self._source_up = Gauge(
            "watchcentre_ops_source_up",
            "Whether the last scrape-time query answered (database, broker); else the gauges are stale.",
            ["source"],
            registry=r,
        )
        self._ready = Gauge(
            "watchcentre_ready",
            "1 when the instance is ready (what GET /ready answers: broker, database, consumer), else 0.",
            registry=r,
        )
        self._refreshed = Gauge(
            "watchcentre_ops_refreshed_timestamp_seconds",
            "When the scrape-time gauges were computed.",
            registry=r,
        )

    def received(self) -> None:
        self._received.inc()

    def routed(self, status: str, seconds: float) -> None:
        self._routed.labels(status=status).inc()
        self._latency.observe(max(seconds, 0.0))

    def rejected(self, field: str) -> None:
        self._rejected.labels(field=field).inc()

    def duplicate(self) -> None:
        self._duplicate.inc()

    def failed(self) -> None:
        self._failures.inc()

    def in_flight(self, delta: int) -> None:
        self._in_flight.inc(delta)

    def committed(self, seconds: float, items: int) -> None:
        self._commit.observe(max(seconds, 0.0))
        self._commit_items.inc(items)

    def published(self, seconds: float, routing_keys: Sequence[str]) -> None:
        self._confirm.observe(max(seconds, 0.0))
        for key in routing_keys:
            self._copies.labels(kind=recipient_kind(key)).inc()

    def reconnected(self) -> None:
        self._reconnects.inc()

    def intake_paused(self) -> None:
        self._intake_pauses.inc()

    def running(self, version: str, config_digest: str) -> None:
        self._build.info({"version": version})
        self._config.info({"digest": config_digest})

    def config_reload_refused(self) -> None:
        self._reload_failures.inc()

    # the audit anchor writer's events (anchoring.AnchorEvents)
    def anchor_failed(self) -> None:
        self._anchor_failures.inc()

    def audit_chain_broken(self) -> None:
        self._chain_breaks.inc()

    # the scrape-time gauges (ops.OpsSink)
    def set_counts(self, counts: OpsCounts) -> None:
        for state in sorted(AWAITING_ANSWER):
            self._cases_open.labels(state=state.value).set(counts.open_by_state.get(state.value, 0))
        for priority in ("urgent", "normal"):
            self._overdue.labels(deadline="ack", priority=priority).set(counts.ack_overdue.get(priority, 0))
            self._overdue.labels(deadline="answer", priority=priority).set(
                counts.answer_overdue.get(priority, 0)
            )
        self._warnings.set(counts.warnings_pending)
        self._triage.set(counts.triage_backlog)
        self._head_seq.set(counts.audit_head_seq)

    def set_queues(self, depths: Mapping[str, int | None], lag_s: float) -> None:
        for queue, depth in depths.items():
            if depth is not None:
                self._queue.labels(queue=queue).set(depth)
        self._lag.set(max(lag_s, 0.0))

    def set_anchor_age(self, seconds: float | None) -> None:
        self._anchor_age.set(-1 if seconds is None else max(seconds, 0.0))

    def source_up(self, source: str, up: bool) -> None:
        self._source_up.labels(source=source).set(1 if up else 0)
        if up:
            self._refreshed.set(time.time())

    def set_ready(self, checks: Mapping[str, bool]) -> None:
        self._ready.set(1 if checks and all(checks.values()) else 0)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for GET /metrics."""
        return generate_latest(self.registry), CONTENT_TYPE


class MeteredPublisher:
    """The Publisher port, timing each confirmed publish of routed copies and counting the copies by
    recipient kind; everything else passes through."""

    def __init__(self, inner: Publisher, metrics: PrometheusMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def publish_routed(self, copies: Sequence[OutboundCopy]) -> None:
        started = time.perf_counter()
        await self._inner.publish_routed(copies)
        self._metrics.published(
            time.perf_counter() - started, [key for c in copies for key in c.routing_keys]
        )

    async def publish_dead(self, body: bytes, reason: str, headers: Mapping[str, str]) -> None:
        await self._inner.publish_dead(body, reason, headers)

    async def publish_events(self, events: Sequence[AuditEvent]) -> None:
        await self._inner.publish_events(events)

    async def publish_reply(self, to: str, body: bytes, correlation_id: str | None) -> None:
        await self._inner.publish_reply(to, body, correlation_id)
