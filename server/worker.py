"""The worker pool: takes investigation jobs from the durable queue, investigates, archives, stores the
report and, in its transaction, the deliveries the outbox's planner decides on."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

from agent.investigator import Investigator
from agent.storm import summarize as summarize_storm
from server.archive import render_report, write_files
from server.db import ClaimedJob, FailedJob, LeaseLost, Store
from server.db.storms import StormRule
from server.delivery.outbox import Outbox
from server.leases import LeaseKeeper
from server.metrics import Metrics
from server.poller import Poller

log = logging.getLogger("alertsleuth.worker")

# The longest wait between two tries of an investigation Prometheus did not answer (unless the first
# retry delay is longer): a resolution waits for the retry, so it stays short.
UNAVAILABLE_BACKOFF_CAP_SECONDS = 60.0


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
        heartbeat_seconds: float = 10.0,
        storm: StormRule | None = None,
    ) -> None:
        """`lease_seconds`: the longest an attempt may run (its lease is renewed until then, then left
        to run out: a hung attempt is taken over); `heartbeat_seconds`: how often the leases of running
        attempts are renewed, each for three heartbeats (a worker that died is taken over after that)."""
        self.outbox = outbox
        self.store = store
        self.investigator = investigator
        self.metrics = metrics
        self.reports_dir = reports_dir
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.storm = storm  # alert storms investigated once (server/db/storms.py); None: never
        self.name = f"w-{uuid.uuid4().hex[:8]}"
        self.leases = LeaseKeeper(
            self.name,
            self._renew,
            heartbeat=heartbeat_seconds,
            max_seconds=lease_seconds,
            log=log,
            what="investigation",
        )
        self.poller = Poller(
            self.name,
            workers,
            self._claim,
            self.run_job,
            poll_interval,
            log=log,
            source="the queue",
        )

    @property
    def claim_lease(self) -> float:
        """The lease a claim and each renewal give: three heartbeats, never beyond the attempt's limit."""
        return self.leases.lease

    def start(self) -> None:
        # Nothing is re-queued here: jobs a dead process held are taken over once their leases run out,
        # and jobs other replicas are running keep theirs.
        self.leases.start()
        self.poller.start()

    def _renew(self, keys: Sequence[tuple[str, int]], seconds: float) -> set[tuple[str, int]]:
        """The store's renewal of (worker, job id) leases, one statement per worker name."""
        by_worker: dict[str, list[int]] = {}
        for worker, job_id in keys:
            by_worker.setdefault(worker, []).append(job_id)
        return {(w, j) for w, ids in by_worker.items() for j in self.store.jobs.renew(w, ids, seconds)}

    def wake(self) -> None:
        """New work was queued: wake an idle worker now instead of at the next poll."""
        self.poller.wake()

    def stop(self, timeout: float = 30.0) -> None:
        self.poller.stop(timeout)
        self.leases.stop(timeout)

    def run_job(self, job: ClaimedJob) -> None:
        try:
            with self.leases.holding((job.worker, job.id)):
                self._run(job)
        except LeaseLost as exc:  # another worker took the job over: its attempt writes the outcome
            log.warning(
                "investigation result discarded: the lease was lost", extra={"job": job.id, "why": str(exc)}
            )

    def _run(self, job: ClaimedJob) -> None:
        ctx = {
            "incident": job.incident_id,
            "job": job.id,
            "attempt": job.attempts,
            "alertname": job.alert.name,
        }
        if job.members:
            ctx["storm_alerts"] = len(job.members)
        log.info("investigation started", extra=ctx)
        t0 = time.perf_counter()
        try:
            findings = self.investigator.collect(job.alert)
            # Prometheus unreachable: retried with capped backoff, past max_attempts while the incident
            # fires with a good report (the last good analysis, which a degraded report never replaces).
            if findings.unavailable and (
                job.attempts < self.max_attempts or self.store.jobs.keeps_retrying(job.incident_id)
            ):
                delay = min(
                    self._retry_delay(job.attempts), max(self.retry_backoff, UNAVAILABLE_BACKOFF_CAP_SECONDS)
                )
                self.store.jobs.retry_later(job.id, "; ".join(findings.notes)[-500:], delay, job.worker)
                self.metrics.attempt_ended("retried")
                log.warning(
                    "Prometheus unavailable, investigation re-queued", extra={**ctx, "retry_in": delay}
                )
                return
            # Out of attempts: the report says Prometheus was unreachable (degraded), nothing is lost;
            # `complete` keeps a good report current over it.
            self.investigator.recall(findings, job.incident_id)
            report = self.investigator.write(findings)
            if job.members:  # a storm's lead: the report says which of its alerts the causes hold
                report.storm = summarize_storm(job.members, report.root_causes)
            if findings.unavailable:  # the writer cannot know what the server does next; it says so
                report.notes.append(
                    f"Prometheus did not answer in {job.attempts} attempts; the server does not retry "
                    f"further: POST /api/v1/incidents/{job.incident_id}/investigate investigates again"
                )
        except Exception as exc:  # a bug or an unexpected failure: retry, then mark failed; never lose it
            log.exception("investigation crashed", extra=ctx)
            self._retry_or_fail(job, f"{type(exc).__name__}: {exc}", ctx)
            return
        seconds = time.perf_counter() - t0
        try:
            archived = render_report(report, self.reports_dir)  # files are written after the commit
            # Routed once, here; the store queues what the plan decides in the report's transaction.
            plan = self.outbox.planner.for_report(job.alert.labels, report) if self.outbox else None
            queued = self.store.jobs.complete(
                job.id, report, archived.markdown, archived.html, archived.paths, plan=plan, worker=job.worker
            )
        except LeaseLost:
            raise
        except Exception as exc:
            log.exception("cannot store the report", extra=ctx)
            self._retry_or_fail(job, f"storing the report failed: {exc}", ctx)
            return
        write_files(archived)  # a copy of the committed row; the start-up restores what a crash left out
        if queued and self.outbox:
            self.outbox.wake()
        outcome = "degraded" if report.degraded else "ok"
        self.metrics.attempt_ended(outcome)
        self.metrics.report_stored(report)
        self.metrics.investigation_seconds.observe(seconds)
        log.info(
            "investigation finished",
            extra={
                **ctx,
                "report": report.id,
                "outcome": outcome,
                "seconds": round(seconds, 3),
                "path": archived.paths.get("md"),
            },
        )

    def _claim(self, worker: str) -> ClaimedJob | None:
        """The next job to investigate. A job the queue fails instead of handing out (out of attempts
        after a lost lease, or an unreadable incident) is counted and logged as failed, and the next
        one is taken: each is failed once, so this ends."""
        while True:
            claimed = self.store.jobs.claim(worker, self.claim_lease, self.max_attempts, self.storm)
            if not isinstance(claimed, FailedJob):
                return claimed
            self.metrics.attempt_ended("failed")
            log.error(
                "investigation failed for good",
                extra={
                    "incident": claimed.incident_id,
                    "job": claimed.id,
                    "attempt": claimed.attempts,
                    "error": claimed.error,
                },
            )

    def _retry_delay(self, attempts: int) -> float:
        """Seconds before attempt `attempts + 1`: the first delay, doubled per attempt. The exponent is
        capped: a Prometheus outage retried for hours reaches attempt 1025, and 2.0**1024 overflows."""
        return self.retry_backoff * 2.0 ** min(max(0, attempts - 1), 64)

    def _retry_or_fail(self, job: ClaimedJob, error: str, ctx: dict[str, object]) -> None:
        """Retry with backoff, or fail for good once the attempts are spent. Never raises (the worker
        thread would die): when not even that can be stored, the job keeps its lease, and once the lease
        runs out `claim` hands it out again or, attempts spent, fails it."""
        try:
            if job.attempts < self.max_attempts:
                self.store.jobs.retry_later(job.id, error, self._retry_delay(job.attempts), job.worker)
                self.metrics.attempt_ended("retried")
            else:
                self.store.jobs.fail(job.id, error, job.worker)
                self.metrics.attempt_ended("failed")
                log.error("investigation failed for good", extra={**ctx, "error": error})
        except LeaseLost:
            log.warning("attempt's end not recorded: the lease was lost", extra={**ctx, "error": error})
        except Exception:
            log.exception("cannot record the end of the attempt", extra={**ctx, "error": error})
