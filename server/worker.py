"""The worker pool: takes investigation jobs from the durable queue, investigates, archives, stores."""

from __future__ import annotations

import logging
import threading
import time
import uuid

from agent.investigate import Investigator
from agent.models import TicketLink
from server.archive import archive_report
from server.delivery.change import analysis_of
from server.delivery.outbox import Outbox
from server.metrics import Metrics
from server.store import ClaimedJob, Store

log = logging.getLogger("alertsleuth.worker")


class WorkerPool:
    def __init__(
        self,
        store: Store,
        investigator: Investigator,
        metrics: Metrics,
        *,
        workers: int,
        reports_dir: str,
        max_attempts: int,
        retry_backoff: float,
        lease_seconds: float,
        poll_interval: float,
        outbox: Outbox | None = None,
    ) -> None:
        self.outbox = outbox
        self.store = store
        self.investigator = investigator
        self.metrics = metrics
        self.size = workers
        self.reports_dir = reports_dir
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.name = f"w-{uuid.uuid4().hex[:8]}"

    def start(self) -> None:
        recovered = self.store.recover()
        if recovered:
            log.info("re-queued interrupted investigations", extra={"jobs": recovered})
        for i in range(self.size):
            t = threading.Thread(target=self._run, name=f"{self.name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def notify(self) -> None:
        """New work was queued: wake an idle worker now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def _run(self) -> None:
        worker = threading.current_thread().name
        while not self._stop.is_set():
            try:
                job = self.store.claim(worker, self.lease_seconds)
            except Exception:
                log.exception("cannot read the queue")
                job = None
            if job is None:
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            self.run_job(job)

    def run_job(self, job: ClaimedJob) -> None:
        ctx = {
            "incident": job.incident_id,
            "job": job.id,
            "attempt": job.attempts,
            "alertname": job.alert.name,
        }
        log.info("investigation started", extra=ctx)
        t0 = time.perf_counter()
        try:
            findings = self.investigator.collect(job.alert)
            if findings.unavailable and job.attempts < self.max_attempts:
                delay = self.retry_backoff * 2 ** (job.attempts - 1)
                self.store.retry_later(job.id, "; ".join(findings.notes)[-500:], delay)
                self.metrics.investigations.labels("retried").inc()
                log.warning(
                    "Prometheus unavailable, investigation re-queued", extra={**ctx, "retry_in": delay}
                )
                return
            # Out of attempts: the report says Prometheus was unreachable (degraded), nothing is lost.
            report = self.investigator.write(findings)
        except Exception as exc:  # a bug or an unexpected failure: retry, then mark failed; never lose it
            log.exception("investigation crashed", extra=ctx)
            self._retry_or_fail(job, f"{type(exc).__name__}: {exc}", ctx)
            return
        seconds = time.perf_counter() - t0
        try:
            # Tickets opened for earlier reports of this incident show in this one too.
            report.tickets = [
                TicketLink(sink=t.sink, key=t.key, url=t.url) for t in self.store.tickets(job.incident_id)
            ]
            markdown, html, paths = archive_report(report, self.reports_dir)
            notify = self.outbox.notify_sinks(job.alert.labels) if self.outbox else []
            queued = self.store.complete(
                job.id, report, markdown, html, paths, notify=notify, analysis=analysis_of(report)
            )
        except Exception as exc:
            log.exception("cannot store the report", extra=ctx)
            self._retry_or_fail(job, f"storing the report failed: {exc}", ctx)
            return
        if queued and self.outbox:
            self.outbox.wake()
        outcome = "degraded" if report.degraded else "ok"
        self.metrics.investigations.labels(outcome).inc()
        self.metrics.investigation_seconds.observe(seconds)
        log.info(
            "investigation finished",
            extra={
                **ctx,
                "report": report.id,
                "outcome": outcome,
                "seconds": round(seconds, 3),
                "path": paths.get("md"),
            },
        )

    def _retry_or_fail(self, job: ClaimedJob, error: str, ctx: dict[str, object]) -> None:
        if job.attempts < self.max_attempts:
            self.store.retry_later(job.id, error, self.retry_backoff * 2 ** (job.attempts - 1))
            self.metrics.investigations.labels("retried").inc()
        else:
            self.store.fail(job.id, error)
            self.metrics.investigations.labels("failed").inc()
            log.error("investigation failed for good", extra={**ctx, "error": error})
