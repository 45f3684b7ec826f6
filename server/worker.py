"""The worker pool: takes investigation jobs from the durable queue, investigates, archives, stores the
report and, in its transaction, the deliveries the outbox's planner decides on."""

from __future__ import annotations

import logging
import time
import uuid

from agent.investigator import Investigator
from server.archive import archive_report
from server.db import ClaimedJob, Store
from server.delivery.outbox import Outbox
from server.metrics import Metrics
from server.poller import Poller

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
        self.reports_dir = reports_dir
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.name = f"w-{uuid.uuid4().hex[:8]}"
        self.poller = Poller(
            self.name,
            workers,
            lambda worker: store.jobs.claim(worker, lease_seconds),
            self.run_job,
            poll_interval,
            log=log,
            source="the queue",
        )

    def start(self) -> None:
        recovered = self.store.jobs.recover()
        if recovered:
            log.info("re-queued interrupted investigations", extra={"jobs": recovered})
        self.poller.start()

    def wake(self) -> None:
        """New work was queued: wake an idle worker now instead of at the next poll."""
        self.poller.wake()

    def stop(self, timeout: float = 30.0) -> None:
        self.poller.stop(timeout)

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
                self.store.jobs.retry_later(job.id, "; ".join(findings.notes)[-500:], delay)
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
            markdown, html, paths = archive_report(report, self.reports_dir)
            # Routed once, here; the store queues what the plan decides in the report's transaction.
            plan = self.outbox.planner.for_report(job.alert.labels, report) if self.outbox else None
            queued = self.store.jobs.complete(job.id, report, markdown, html, paths, plan=plan)
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
            self.store.jobs.retry_later(job.id, error, self.retry_backoff * 2 ** (job.attempts - 1))
            self.metrics.investigations.labels("retried").inc()
        else:
            self.store.jobs.fail(job.id, error)
            self.metrics.investigations.labels("failed").inc()
            log.error("investigation failed for good", extra={**ctx, "error": error})
