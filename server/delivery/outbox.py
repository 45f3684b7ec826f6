"""The outbox dispatcher: takes due deliveries from the database and hands them to their sinks.

Deliveries are written in the same transaction as the report (or the resolution) that causes them,
so none is lost; here they are attempted, retried with exponential backoff and jitter, and marked done
or failed. A slow or broken sink never blocks or fails an investigation: it runs on its own threads.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from agent.models import Report, TicketLink
from server.archive import archive_report
from server.delivery.base import DeliveryError, Notice, NoticeCause, Sink, TicketRef, TicketSlot
from server.delivery.config import DeliveryConfig
from server.delivery.message import label_set
from server.delivery.registry import SINKS
from server.delivery.routing import route
from server.metrics import Metrics
from server.store import ClaimedDelivery, Incident, ReportRow, Store

log = logging.getLogger("alertsleuth.delivery")


def build_sinks(config: DeliveryConfig, http: httpx.Client) -> dict[str, Sink]:
    return {name: SINKS[cfg.type](name, cfg, http) for name, cfg in config.sinks.items()}


def backoff(attempts: int, base: float, cap: float, retry_after: float | None, rand: float) -> float:
    """Seconds before attempt `attempts + 1`: base·2^(attempts-1) capped, with "equal jitter" (half
    fixed, half random, so retries of many deliveries spread out), and never before the server's
    Retry-After. `rand` is uniform in [0, 1)."""
    delay = min(cap, base * 2.0 ** min(max(0, attempts - 1), 64))  # 2**1024 would overflow a float
    delay = delay / 2 + delay / 2 * rand
    return max(delay, min(cap, retry_after or 0.0))


def marker(inc: Incident) -> str:
    return f"alertsleuth-{inc.fingerprint[:16]}-{int(inc.starts_at.timestamp())}"


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z") if dt else None


def build_notice(
    event: str, inc: Incident, row: ReportRow | None, *, change: str | None, external_url: str | None
) -> Notice:
    report = Report.model_validate_json(row.body) if row is not None else None
    causes = [
        NoticeCause(dict(rc.labels), rc.statement, rc.score) for rc in (report.root_causes if report else [])
    ]
    where = label_set(causes[0].labels) if causes and report and report.localized else None
    status = "RESOLVED" if event == "resolved" else "FIRING"
    title = f"[{status}] {inc.alertname}" + (f": {where}" if where else "")
    base = external_url.rstrip("/") if external_url else None
    ends = inc.resolved_at if event == "resolved" else None
    return Notice(
        event=event,  # type: ignore[arg-type]
        incident_id=inc.id,
        marker=marker(inc),
        alertname=inc.alertname,
        status=inc.status,
        severity=inc.labels.get("severity"),
        labels=dict(inc.labels),
        title=title,
        summary=report.summary if report else "No report was written for this incident.",
        root_causes=causes,
        localized=bool(report and report.localized),
        degraded=bool(report and report.degraded),
        starts_at=iso(inc.starts_at) or "",
        ends_at=iso(ends),
        duration_seconds=(ends - inc.starts_at).total_seconds() if ends else None,
        report_id=row.id if row else None,
        markdown=row.markdown if row else None,
        html=row.html if row else None,
        report_json=row.body if row else None,
        report_url=f"{base}/api/v1/reports/{row.id}?format=html" if base and row else None,
        incident_url=f"{base}/api/v1/incidents/{inc.id}" if base else None,
        change=change,
    )


def probe_notice(sink: str) -> Notice:
    """What `alertsleuth sinks test NAME` sends."""
    now = datetime.now(UTC)
    return Notice(
        event="test",
        incident_id=0,
        marker=f"alertsleuth-test-{int(now.timestamp())}",
        alertname="AlertsleuthTest",
        status="firing",
        severity="info",
        labels={"alertname": "AlertsleuthTest"},
        title=f"[TEST] alertsleuth test message from sink {sink}",
        summary=f"alertsleuth test message from sink {sink}: if you can read this, delivery works.",
        starts_at=iso(now) or "",
    )


class Outbox:
    def __init__(
        self,
        store: Store,
        config: DeliveryConfig,
        metrics: Metrics,
        *,
        external_url: str | None,
        reports_dir: str,
        workers: int = 2,
        max_attempts: int = 8,
        backoff_seconds: float = 5.0,
        backoff_max_seconds: float = 900.0,
        lease_seconds: float = 300.0,
        poll_interval: float = 1.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.config = config
        self.tree = config.tree()
        self.metrics = metrics
        self.external_url = external_url
        self.reports_dir = reports_dir
        self.size = workers
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.rand = rand
        self.http = httpx.Client(follow_redirects=False, headers={"User-Agent": "alertsleuth/0.1"})
        self.sinks = build_sinks(config, self.http)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._report_lock = threading.Lock()
        self.name = f"d-{uuid.uuid4().hex[:8]}"

    # ------------------------------------------------------------- routing (pure)

    def notify_sinks(self, labels: dict[str, str]) -> list[tuple[str, bool]]:
        """(sink, whether it hears about a changed analysis) for a new report."""
        return [(t.sink, t.send_updates) for t in route(self.tree, labels)] if self.sinks else []

    def resolved_sinks(self, labels: dict[str, str]) -> list[str]:
        return [t.sink for t in route(self.tree, labels) if t.send_resolved] if self.sinks else []

    # ------------------------------------------------------------- threads

    def start(self) -> None:
        if not self.sinks:
            return
        recovered = self.store.recover_deliveries()
        if recovered:
            log.info("resuming interrupted deliveries", extra={"deliveries": recovered})
        for i in range(self.size):
            t = threading.Thread(target=self._run, name=f"{self.name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        self.http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.store.claim_delivery(self.lease_seconds)
            except Exception:
                log.exception("cannot read the outbox")
                claimed = None
            if claimed is None:
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            self.deliver(claimed)

    # ------------------------------------------------------------- one delivery

    def deliver(self, d: ClaimedDelivery) -> None:
        ctx = {
            "incident": d.incident_id,
            "delivery": d.id,
            "sink": d.sink,
            "event": d.event,
            "attempt": d.attempts,
        }
        sink = self.sinks.get(d.sink)
        if sink is None:
            self.store.delivery_failed(d.id, f"sink {d.sink!r} is no longer configured")
            self.metrics.deliveries.labels(d.sink, "failed").inc()
            log.error("delivery failed: sink not configured", extra=ctx)
            return
        if d.event == "resolved" and not self.store.was_told(d.incident_id, d.sink):
            # Its report never reached this sink (the investigation failed, or the firing notice did).
            self.store.delivery_done(d.id, "skipped: this sink was never told the incident was firing")
            self.metrics.deliveries.labels(d.sink, "skipped").inc()
            log.info("resolved notice skipped: sink never told", extra=ctx)
            return
        try:
            inc, row = self.store.incident_and_report(d.incident_id, d.report_id)
            notice = build_notice(d.event, inc, row, change=d.change, external_url=self.external_url)
            held = self.store.ticket(d.incident_id, d.sink)
            slot = TicketSlot(
                TicketRef(held.ext_id, held.key, held.url) if held else None,
                lambda ref: self._save_ticket(d.incident_id, d.sink, ref),
            )
            outcome = sink.send(notice, slot)
        except DeliveryError as exc:
            self._failed(d, str(exc), exc.retryable, exc.retry_after, ctx)
            return
        except Exception as exc:  # a bug in a sink: retried like a transient failure, and logged loudly
            log.exception("sink crashed", extra=ctx)
            self._failed(d, f"{type(exc).__name__}: {exc}", True, None, ctx)
            return
        self.store.delivery_done(d.id, outcome.detail)
        self.metrics.deliveries.labels(d.sink, "skipped" if outcome.skipped else "sent").inc()
        log.info("delivered", extra={**ctx, "detail": outcome.detail})

    def _failed(
        self,
        d: ClaimedDelivery,
        error: str,
        retryable: bool,
        retry_after: float | None,
        ctx: dict[str, object],
    ) -> None:
        if retryable and d.attempts < self.max_attempts:
            delay = backoff(
                d.attempts, self.backoff_seconds, self.backoff_max_seconds, retry_after, self.rand()
            )
            self.store.delivery_later(d.id, error, delay)
            self.metrics.deliveries.labels(d.sink, "retried").inc()
            log.warning(
                "delivery failed, will retry", extra={**ctx, "error": error, "retry_in": round(delay, 1)}
            )
        else:
            self.store.delivery_failed(d.id, error)
            self.metrics.deliveries.labels(d.sink, "failed").inc()
            log.error("delivery failed for good", extra={**ctx, "error": error})

    def _save_ticket(self, incident_id: int, sink: str, ref: TicketRef) -> None:
        """Persist the ticket at once, then show it in the incident's report (JSON, Markdown, HTML)."""
        self.store.save_ticket(incident_id, sink, ref.id, ref.key, ref.url)
        try:
            with self._report_lock:
                _, row = self.store.incident_and_report(incident_id, None)
                if row is None:
                    return
                report = Report.model_validate_json(row.body)
                report.tickets = [
                    TicketLink(sink=t.sink, key=t.key, url=t.url) for t in self.store.tickets(incident_id)
                ]
                markdown, html, paths = archive_report(report, self.reports_dir)
                self.store.replace_report_files(report, markdown, html, paths)
        except Exception:  # the ticket is saved; showing it in the report is a nicety
            log.exception(
                "cannot add the ticket to the report", extra={"incident": incident_id, "sink": sink}
            )
