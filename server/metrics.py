"""alertsleuth's own metrics, in a registry per app (no global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _QueueCollector(Collector):
    def __init__(self, depth: Callable[[], dict[str, int]]) -> None:
        self._depth = depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("alertsleuth_queue_jobs", "Investigation jobs by state", labels=["state"])
        try:
            depth = self._depth()
        except Exception:  # the database is down: report nothing rather than fail the scrape
            depth = {}
        for state in ("queued", "running", "done", "failed"):
            g.add_metric([state], depth.get(state, 0))
        yield g
        yield GaugeMetricFamily(
            "alertsleuth_queue_depth",
            "Investigations waiting or running",
            value=depth.get("queued", 0) + depth.get("running", 0),
        )


class _OutboxCollector(Collector):
    def __init__(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily(
            "alertsleuth_deliveries",
            "Deliveries in the outbox by sink and state (pending, sending, done, failed)",
            labels=["sink", "state"],
        )
        try:
            counts = self._counts()
        except Exception:  # the database is down: report nothing rather than fail the scrape
            counts = {}
        for (sink, state), n in sorted(counts.items()):
            g.add_metric([sink, state], n)
        yield g


class Metrics:
    def __init__(
        self,
        queue_depth: Callable[[], dict[str, int]],
        delivery_counts: Callable[[], dict[tuple[str, str], int]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.alerts_received = Counter(
            "alertsleuth_alerts_received",
            "Alerts received, by source and status",
            ["source", "status"],
            registry=r,
        )
        self.alerts_deduplicated = Counter(
            "alertsleuth_alerts_deduplicated",
            "Repeated notifications of a known incident (no new investigation)",
            registry=r,
        )
        self.requests_rejected = Counter(
            "alertsleuth_requests_rejected", "Alert requests refused, by reason", ["reason"], registry=r
        )
        self.investigations = Counter(
            "alertsleuth_investigations", "Finished investigations by outcome", ["outcome"], registry=r
        )
        self.investigation_seconds = Histogram(
            "alertsleuth_investigation_seconds",
            "Wall time of one investigation",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
            registry=r,
        )
        self.deliveries = Counter(
            "alertsleuth_delivery_attempts",
            "Delivery attempts by sink and outcome (sent, skipped, retried, failed)",
            ["sink", "outcome"],
            registry=r,
        )
        r.register(_QueueCollector(queue_depth))
        if delivery_counts is not None:
            r.register(_OutboxCollector(delivery_counts))
