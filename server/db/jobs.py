"""The durable investigation queue: claim with a lease, recover after a crash, retry, fail, requeue, and
complete (the report and its deliveries in one transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from agent.models import AlertInfo, Report, utcnow
from server.db.database import Database
from server.db.deliveries import Plan, queue_deliveries
from server.db.models import Incident, Job
from server.db.reports import add_report


@dataclass
class ClaimedJob:
    id: int
    incident_id: int
    attempts: int
    alert: AlertInfo


class JobQueue:
    def __init__(self, db: Database) -> None:
        self.db = db

    def recover(self) -> int:
        """Re-queue jobs left running by a previous process (call once at start, before workers)."""
        with self.db.session() as s:
            res = s.execute(
                update(Job).where(Job.state == "running").values(state="queued", lease_until=None)
            )
            s.execute(
                update(Incident).where(Incident.investigation == "running").values(investigation="queued")
            )
            return int(res.rowcount or 0)  # type: ignore[attr-defined]

    def claim(self, worker: str, lease_seconds: float) -> ClaimedJob | None:
        """Take the oldest due job (or one whose lease expired). Safe with several workers/processes."""
        now = utcnow()
        due = ((Job.state == "queued") & (Job.not_before <= now)) | (
            (Job.state == "running") & (Job.lease_until < now)
        )
        for _ in range(5):
            with self.db.session() as s:
                job = s.scalars(select(Job).where(due).order_by(Job.not_before, Job.id).limit(1)).first()
                if job is None:
                    return None
                job_id, state, attempts = job.id, job.state, job.attempts
                res = s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == state, Job.attempts == attempts)
                    .values(
                        state="running",
                        attempts=attempts + 1,
                        worker=worker,
                        lease_until=now + timedelta(seconds=lease_seconds),
                    )
                    .execution_options(synchronize_session=False)
                )
                if (res.rowcount or 0) != 1:  # type: ignore[attr-defined]
                    continue  # another worker took it
                inc = s.get(Incident, job.incident_id)
                assert inc is not None
                inc.investigation = "running"
                return ClaimedJob(job_id, inc.id, attempts + 1, inc.alert())
        return None

    def complete(
        self,
        job_id: int,
        report: Report,
        markdown: str,
        html: str,
        paths: dict[str, str],
        *,
        plan: Plan | None = None,
    ) -> list[int]:
        """Store the report and, in the same transaction, queue the deliveries `plan` decides on (given
        what each sink was told before). Returns the ids queued."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            job.state = "done"
            job.lease_until = None
            add_report(s, job.incident_id, report, markdown, html, paths)
            inc = s.get(Incident, job.incident_id)
            assert inc is not None
            inc.report_id = report.id
            inc.investigation = "degraded" if report.degraded else "done"
            inc.error = None
            return [d.id for d in queue_deliveries(s, inc, plan, report.id)]

    def retry_later(self, job_id: int, error: str, delay_seconds: float) -> None:
        self._end_attempt(job_id, "queued", error, not_before=utcnow() + timedelta(seconds=delay_seconds))

    def fail(self, job_id: int, error: str) -> None:
        self._end_attempt(job_id, "failed", error)

    def _end_attempt(self, job_id: int, state: str, error: str, not_before: datetime | None = None) -> None:
        """The job's attempt ended without a report: queued again (`not_before`) or failed for good; the
        incident says so, with the error."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            job.state = state
            job.lease_until = None
            job.last_error = error
            if not_before is not None:
                job.not_before = not_before
            inc = s.get(Incident, job.incident_id)
            assert inc is not None
            inc.investigation = state
            inc.error = error

    def requeue(self, incident_id: int) -> bool:
        """Start a new investigation of an incident (API: re-investigate)."""
        with self.db.session() as s:
            inc = s.get(Incident, incident_id)
            if inc is None:
                return False
            busy = s.scalars(
                select(Job).where(Job.incident_id == incident_id, Job.state.in_(("queued", "running")))
            ).first()
            if busy is None:
                s.add(Job(incident_id=incident_id))
            inc.investigation = "queued"
            return True

    def depth(self) -> dict[str, int]:
        """state -> count, for /metrics."""
        with self.db.session() as s:
            rows = s.execute(select(Job.state, func.count()).group_by(Job.state)).all()
            return {state: int(n) for state, n in rows}
