"""Prometheus metrics: the `Metrics` port, on a registry of its own (never the process-global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which `generate_latest` writes and every Prometheus scrapes."""

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
"""Receipt-to-ack latency, 1 ms to 5 s (slower lands in +Inf)."""


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

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for GET /metrics."""
        return generate_latest(self.registry), CONTENT_TYPE
