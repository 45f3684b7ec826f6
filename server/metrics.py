"""alertsleuth's own metrics, in a registry per app (no global state).

Gauges say what is there now (work waiting or running, deliveries that need a person); what finished is
a counter. An investigation job ends each attempt once (`investigation_attempts_total`) and finishes
once (`investigations_total`): a retried attempt is not a finished investigation.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from agent.models import Report
from server import version

# How an investigation attempt ends; the last three also end the investigation.
ATTEMPT_OUTCOMES = ("retried", "ok", "degraded", "failed")
FINISHED_OUTCOMES = ("ok", "degraded", "failed")
# How a call to Prometheus ends (see `Metrics.prometheus_query`).
QUERY_OUTCOMES = ("ok", "error", "unavailable")
JOB_STATES = ("queued", "running")  # done and failed jobs are counted by investigations_total
DELIVERY_STATES = ("pending", "sending", "failed")  # done ones by delivery_attempts_total


class _Registry(CollectorRegistry):
    """A registry whose counters and histograms carry no `*_created` series, without touching
    prometheus_client's global switch (`disable_created_metrics`), which other registries share."""

    def collect(self) -> Iterable[Metric]:
        for metric in super().collect():
            if metric.type in ("counter", "histogram", "summary"):
                created = metric.name + "_created"
                metric.samples = [s for s in metric.samples if s.name != created]
            yield metric


class _QueueCollector(Collector):
    def __init__(self, depth: Callable[[], dict[str, int]]) -> None:
        self._depth = depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily(
            "alertsleuth_queue_jobs", "Investigation jobs waiting or running, by state", labels=["state"]
        )
        try:
            depth = self._depth()
        except Exception:  # the database is down: report nothing rather than fail the scrape
            depth = {}
        for state in JOB_STATES:
            g.add_metric([state], depth.get(state, 0))
        yield g
        yield GaugeMetricFamily(
            "alertsleuth_queue_depth",
            "Investigations waiting or running",
            value=sum(depth.get(state, 0) for state in JOB_STATES),
        )


class _OutboxCollector(Collector):
    def __init__(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily(
            "alertsleuth_deliveries",
            "Deliveries in the outbox not done, by sink and state (pending, sending, failed)",
            labels=["sink", "state"],
        )
        try:
            counts = self._counts()
        except Exception:  # the database is down: report nothing rather than fail the scrape
            counts = {}
        for sink in sorted({sink for sink, _ in counts}):
            for state in DELIVERY_STATES:
                g.add_metric([sink, state], counts.get((sink, state), 0))
        yield g


class Metrics:
    def __init__(
        self,
        queue_depth: Callable[[], dict[str, int]],
        delivery_counts: Callable[[], dict[tuple[str, str], int]] | None = None,
    ) -> None:
        self.registry = _Registry()
        r = self.registry
        self.build_info = Gauge(
            "alertsleuth_build_info",
            "alertsleuth's version and the Python it runs on (always 1)",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(version(), platform.python_version()).set(1)
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
        self.intake_batch = Histogram(
            "alertsleuth_intake_batch_notifications",
            "Notifications written per intake transaction (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.requests_rejected = Counter(
            "alertsleuth_requests_rejected", "Alert requests refused, by reason", ["reason"], registry=r
        )
        self.investigations = Counter(
            "alertsleuth_investigations",
            "Finished investigations by outcome (ok, degraded, failed)",
            ["outcome"],
            registry=r,
        )
        self.investigation_attempts = Counter(
            "alertsleuth_investigation_attempts",
            "Ended investigation attempts by outcome (retried, ok, degraded, failed)",
            ["outcome"],
            registry=r,
        )
        for outcome in ATTEMPT_OUTCOMES:
            self.investigation_attempts.labels(outcome)
        for outcome in FINISHED_OUTCOMES:
            self.investigations.labels(outcome)
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
        self.llm_calls = Counter("alertsleuth_llm_calls", "LLM calls made for stored reports", registry=r)
        self.llm_tokens = Counter(
            "alertsleuth_llm_tokens",
            "LLM tokens used for stored reports, by kind (prompt, completion)",
            ["kind"],
            registry=r,
        )
        for kind in ("prompt", "completion"):
            self.llm_tokens.labels(kind)
        self.llm_fallbacks = Counter(
            "alertsleuth_llm_fallbacks",
            "Stored reports written by the offline writer because the LLM could not be used",
            registry=r,
        )
        self.prometheus_queries = Counter(
            "alertsleuth_prometheus_queries",
            "Calls to Prometheus by outcome (ok, error: the query was refused, unavailable)",
            ["outcome"],
            registry=r,
        )
        for outcome in QUERY_OUTCOMES:
            self.prometheus_queries.labels(outcome)
        self.prometheus_query_seconds = Histogram(
            "alertsleuth_prometheus_query_seconds",
            "Wall time of one call to Prometheus",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        r.register(_QueueCollector(queue_depth))
        if delivery_counts is not None:
            r.register(_OutboxCollector(delivery_counts))

    def attempt_ended(self, outcome: str) -> None:
        """One investigation attempt ended: `retried`, or the investigation finished (ok, degraded,
        failed)."""
        self.investigation_attempts.labels(outcome).inc()
        if outcome in FINISHED_OUTCOMES:
            self.investigations.labels(outcome).inc()

    def report_stored(self, report: Report) -> None:
        """Count what the LLM did for a report that was stored."""
        usage = report.llm
        if usage is None:
            return
        self.llm_calls.inc(usage.calls)
        self.llm_tokens.labels("prompt").inc(usage.prompt_tokens)
        self.llm_tokens.labels("completion").inc(usage.completion_tokens)
        if usage.fallback_reason is not None:
            self.llm_fallbacks.inc()

    def prometheus_query(self, outcome: str, seconds: float) -> None:
        """The observer `tools.prom.Prometheus` calls after each call to Prometheus."""
        self.prometheus_queries.labels(outcome).inc()
        self.prometheus_query_seconds.observe(seconds)
