"""The durable investigation queue: claim with a lease, renew it while the work runs, retry, fail,
requeue, and complete (the report and its deliveries in one transaction).

Jobs are claimed by priority, then age: an alert's `severity` label gives the priority (`priority_of`),
so a critical alert's investigation is not queued behind a storm of warnings.

Many processes share the queue (replicas and `alertsleuth worker`s on one PostgreSQL). A claim takes the
oldest due job with `FOR UPDATE SKIP LOCKED` (other claimers pass over it instead of waiting), then
marks it running with a lease: the worker's name and a deadline it renews while the attempt runs
(`renew`). A worker that dies stops renewing, the lease runs out, and another claims the job: nothing
re-queues running jobs at start-up, which would take work from replicas still doing it. Every write that
ends an attempt is fenced by the lease: when the job is no longer held by that worker (its lease ran
out and another took it), `LeaseLost` is raised and nothing is written, so one attempt's result, one
report and one set of deliveries come out of each job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from agent.models import AlertInfo, Report, utcnow
from agent.storm import shared_alert
from server.db.database import Database
from server.db.deliveries import Plan, queue_deliveries
from server.db.history import index_report
from server.db.models import Incident, Job, ReportRow
from server.db.reports import add_report
from server.db.storms import StormRule, gather, join_lead, mirror


@dataclass
class ClaimedJob:
    id: int
    incident_id: int
    attempts: int
    alert: AlertInfo  # a storm's lead: the labels its members share (agent/storm.py `shared_alert`)
    worker: str = ""  # the lease holder's name: what renews and ends the attempt
    # A storm's lead: every alert of the storm, its own first, as (incident id, labels); else empty.
    members: list[tuple[int, dict[str, str]]] = field(default_factory=list)


# An alert's severity label (case folded) -> its investigation's priority, most urgent first; others get
# DEFAULT_PRIORITY, with the warnings.
SEVERITY_PRIORITY = {
    **dict.fromkeys(("critical", "emergency", "fatal", "page", "p0", "p1", "sev1"), 0),
    **dict.fromkeys(("high", "error", "major", "p2", "sev2"), 1),
    **dict.fromkeys(("warning", "warn", "medium", "p3", "sev3"), 2),
    **dict.fromkeys(("minor", "low", "p4", "sev4"), 3),
    **dict.fromkeys(("info", "informational", "notice", "p5", "sev5"), 4),
    **dict.fromkeys(("none", "debug", "test"), 5),
}
DEFAULT_PRIORITY = 2


def priority_of(labels: object) -> int:
    """The priority of an investigation of an alert with `labels` (0 first): its severity's."""
    severity = labels.get("severity") if isinstance(labels, dict) else None
    if not isinstance(severity, str):
        return DEFAULT_PRIORITY
    return SEVERITY_PRIORITY.get(severity.strip().casefold(), DEFAULT_PRIORITY)


LOST_WORKER_TRIES = 2  # attempts beyond max_attempts for jobs whose worker was lost mid-attempt


class LeaseLost(Exception):
    """The job is no longer held by this worker: its lease ran out and another worker took it."""


@dataclass
class FailedJob:
    """A due job the queue failed instead of handing out: out of attempts, or its incident unreadable."""

    id: int
    incident_id: int
    attempts: int
    error: str


def _storable(error: str) -> str:
    """An error text any database takes (a lone surrogate in an exception message would not be)."""
    return error.encode("utf-8", "backslashreplace").decode("utf-8")[:4000]


def _end(s: Session, job: Job, state: str, error: str, not_before: datetime | None = None) -> None:
    """The job's attempt ended without a report: queued again (`not_before`) or failed for good; the
    incident says so, with the error."""
    error = _storable(error)
    job.state = state
    job.lease_until = None
    job.last_error = error
    if not_before is not None:
        job.not_before = not_before
    inc = s.get(Incident, job.incident_id)
    assert inc is not None
    inc.investigation = state
    inc.error = error
    s.flush()
    mirror(s, job, inc)  # a storm's members follow their lead


def _held(s: Session, job_id: int, worker: str | None) -> Job:
    """The job, locked for this transaction, when `worker` still holds its lease (None: whoever does,
    for callers outside the worker pool); else `LeaseLost`."""
    job = s.get(Job, job_id, with_for_update=True)
    assert job is not None
    if worker is not None and (job.worker != worker or job.state != "running"):
        raise LeaseLost(f"job {job_id} is held by {job.worker or 'nobody'} ({job.state}), not {worker}")
    return job


def _good_report(s: Session, inc: Incident) -> str | None:
    """The incident's current report when it is not degraded (the last good analysis), else None."""
    if not inc.report_id:
        return None
    body = s.scalar(select(ReportRow.body).where(ReportRow.id == inc.report_id))
    return inc.report_id if body and not json.loads(body).get("degraded", False) else None


def _most_urgent(s: Session, now: datetime) -> Job | None:
    """The due job to take next: the queued one first by priority, then age, or, where it comes before,
    a running one whose lease ran out. Two queries, each walking `ix_jobs_due` (state, priority, id) from
    its start, so a claim reads a few rows however long the queue (one query with an OR of the two read
    and sorted every queued row). On PostgreSQL others claiming pass over a row it takes, not wait."""
    candidates = []
    for due in (
        (Job.state == "queued") & (Job.not_before <= now),
        (Job.state == "running") & (Job.lease_until < now),
    ):
        first = select(Job).where(due).order_by(Job.priority, Job.id).limit(1)
        if s.get_bind().dialect.name == "postgresql":
            first = first.with_for_update(skip_locked=True)
        job = s.scalars(first).first()
        if job is not None:
            candidates.append(job)
    return min(candidates, key=lambda j: (j.priority, j.id), default=None)


class JobQueue:
    def __init__(self, db: Database) -> None:
        self.db = db

    def renew(self, worker: str, job_ids: Sequence[int], lease_seconds: float) -> set[int]:
        """Extend the leases `worker` holds on `job_ids` by `lease_seconds` from now; the ids it still
        holds (a job missing was taken over after its lease ran out, or ended)."""
        held: set[int] = set()
        if not job_ids:
            return held
        until = utcnow() + timedelta(seconds=lease_seconds)
        with self.db.session() as s:
            for job_id in job_ids:
                res = s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.worker == worker, Job.state == "running")
                    .values(lease_until=until)
                    .execution_options(synchronize_session=False)
                )
                if (res.rowcount or 0) == 1:  # type: ignore[attr-defined]
                    held.add(job_id)
        return held

    def claim(
        self,
        worker: str,
        lease_seconds: float,
        max_attempts: int | None = None,
        storm: StormRule | None = None,
    ) -> ClaimedJob | FailedJob | None:
        """Take the most urgent due job, the oldest first (or one whose lease expired). Safe with several
        workers/processes.

        A job whose lease ran out lost its worker (killed, restarted: its heartbeats stopped) or hung
        past `lease_seconds`: it is tried again, the lost attempt not held against the investigation
        for LOST_WORKER_TRIES more attempts beyond `max_attempts`. Past those it is failed instead (a
        `FailedJob`, with the reason: a job that kills or hangs every worker would be tried forever),
        as is a job whose incident cannot be read (it would fail every claim and block the queue). A
        queued job runs whatever its attempts: the worker re-queued it past them on purpose
        (`keeps_retrying`).

        With `storm`, a job of a storm whose lead is at work is attached to it and the next one is
        taken; a job with enough of its storm waiting becomes the lead, its members attached
        (server/db/storms.py)."""
        now = utcnow()
        for _ in range(100):  # another worker took the job, or it joined a storm's lead: the next one
            with self.db.session() as s:
                job = _most_urgent(s, now)
                if job is None:
                    return None
                job_id, state, attempts = job.id, job.state, job.attempts
                # Spent: its lease ran out on its last allowed attempt (see the docstring).
                spent = (
                    max_attempts is not None
                    and state == "running"
                    and attempts >= max_attempts + LOST_WORKER_TRIES
                )
                res = s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == state, Job.attempts == attempts)
                    .values(
                        state="running",
                        attempts=attempts if spent else attempts + 1,
                        worker=worker,
                        lease_until=now + timedelta(seconds=lease_seconds),
                    )
                    .execution_options(synchronize_session=False)
                )
                if (res.rowcount or 0) != 1:  # type: ignore[attr-defined]
                    continue  # another worker took it
                s.expire(job)  # updated above, behind the session's back
                inc = s.get(Incident, job.incident_id)
                assert inc is not None
                if spent:
                    error = (
                        f"out of attempts ({attempts}: {max_attempts} and {LOST_WORKER_TRIES} more for "
                        "workers lost): the last one's lease ran out without a result (it hung, or its "
                        "worker stopped)"
                    )
                else:
                    try:
                        alert = inc.alert()
                    except Exception as exc:  # a row no investigation can start from
                        error = f"cannot read the incident to investigate it: {type(exc).__name__}: {exc}"
                    else:
                        # (a job taken over after its lease ran out keeps its own part: it may lead)
                        joined = storm is not None and state == "queued" and join_lead(s, job, inc, storm)
                        if joined:
                            continue
                        members = gather(s, job, inc, storm) if storm is not None else []
                        inc.investigation = "running"
                        storm_alerts = [(inc.id, alert.labels), *((m.id, m.labels) for m in members)]
                        if members:
                            alert = shared_alert(alert, [m.labels for m in members])
                        return ClaimedJob(
                            job_id, inc.id, attempts + 1, alert, worker, storm_alerts if members else []
                        )
                _end(s, job, "failed", error)
                return FailedJob(job_id, inc.id, job.attempts, _storable(error))
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
        worker: str | None = None,
    ) -> list[int]:
        """Store the report and, in the same transaction, queue the deliveries `plan` decides on (given
        what each sink was told before). Returns the ids queued.

        A degraded report never replaces a good one: when the incident's current report is not
        degraded, the degraded one is stored (readable by its id) but the good one stays current, the
        job's `last_error` records the attempt, and nobody is told (it is not a change of analysis). Only
        a good report is indexed for incidents seen before and the search (server/db/history.py)."""
        with self.db.session() as s:
            job = _held(s, job_id, worker)
            job.state = "done"
            job.lease_until = None
            add_report(s, job.incident_id, report, markdown, html, paths)
            inc = s.get(Incident, job.incident_id)
            assert inc is not None
            kept = _good_report(s, inc) if report.degraded else None
            if kept is not None:
                why = "; ".join(dict.fromkeys(report.notes)) or "part of the investigation could not run"
                job.last_error = inc.error = (
                    f"degraded ({why[-400:]}): its report {report.id} was stored, "
                    f"the last good report {kept} stays current"
                )
                inc.investigation = "done"
                mirror(s, job, inc)
                return []
            inc.report_id = report.id
            inc.investigation = "degraded" if report.degraded else "done"
            inc.error = None
            mirror(s, job, inc)
            if not report.degraded:  # what incidents seen before are compared with, and searched in
                index_report(s, inc, report, markdown)
            return [d.id for d in queue_deliveries(s, inc, plan, report.id)]

    def keeps_retrying(self, incident_id: int) -> bool:
        """Whether an investigation that cannot reach Prometheus is retried past its attempts: while the
        incident is firing and holds a good report (which a degraded one would not replace anyway)."""
        with self.db.session() as s:
            inc = s.get(Incident, incident_id)
            return inc is not None and inc.status != "resolved" and _good_report(s, inc) is not None

    def retry_later(self, job_id: int, error: str, delay_seconds: float, worker: str | None = None) -> None:
        until = utcnow() + timedelta(seconds=delay_seconds)
        self._end_attempt(job_id, "queued", error, not_before=until, worker=worker)

    def fail(self, job_id: int, error: str, worker: str | None = None) -> None:
        self._end_attempt(job_id, "failed", error, worker=worker)

    def _end_attempt(
        self,
        job_id: int,
        state: str,
        error: str,
        not_before: datetime | None = None,
        worker: str | None = None,
    ) -> None:
        """The job's attempt ended without a report (see `_end`)."""
        with self.db.session() as s:
            _end(s, _held(s, job_id, worker), state, error, not_before)

    def requeue(self, incident_id: int) -> bool:
        """Start a new investigation of an incident (API: re-investigate)."""
        with self.db.session() as s:
            inc = s.get(Incident, incident_id, with_for_update=True)  # two requests queue one job
            if inc is None:
                return False
            busy = s.scalars(
                select(Job).where(Job.incident_id == incident_id, Job.state.in_(("queued", "running")))
            ).first()
            if busy is None:
                s.add(Job(incident_id=incident_id, priority=priority_of(inc.labels)))
            inc.investigation = "queued"
            return True

    def depth(self) -> dict[str, int]:
        """state -> count, for /metrics."""
        with self.db.session() as s:
            rows = s.execute(select(Job.state, func.count()).group_by(Job.state)).all()
            return {state: int(n) for state, n in rows}
