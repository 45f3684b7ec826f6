"""Intake: a notification and its alerts persisted in one transaction, deduplicated into incidents.

An alert belongs to the incident with its fingerprint and startsAt; failing that, to the one with its
fingerprint whose startsAt is within `window` seconds of the alert's and which was still firing when
the alert started (firing, or resolved after the alert's startsAt). The second rule is for HA replicas
of one Prometheus posting directly: each evaluates the rule at its own moment, so their startsAt are up
to an evaluation interval apart, and one may see the resolution before the other. A new firing after a
resolution starts after it, so it is a new incident however soon it comes.

A new firing alert queues an investigation; a resolution marks the incident resolved and queues, in the
same transaction, the resolved notices its plan decides on; a repeat is counted, or re-investigated when
its report is stale. Each incident the notification touched gets a `notification_incidents` row (the
alert's status, what the notification did, the receiver), in the same transaction: the incident's
timeline. Two alerts of one notification in one incident (HA replicas posting directly) make one row:
the last alert's status, and what the first alert that changed something did.

Concurrent ingests: the notification's INSERT comes first in the transaction, so on SQLite the write
lock orders ingests and each lookup sees every incident committed before it. On PostgreSQL, where
ingests run side by side, a transaction-scoped advisory lock per alert fingerprint orders the ingests
that share one (`serialize`), so the lookup of each sees the incidents the others committed, the HA
replicas' near startsAt included. The unique key (fingerprint, startsAt) catches two inserts of the
same key on any backend (the loser retries).

The wait for the write lock (or, on PostgreSQL, for a fingerprint's lock) is bounded (`lock_timeout`):
past it the transaction is rolled back, nothing is stored, and `StoreBusy` tells the sender to retry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from agent.models import AlertInfo, utcnow
from server.db.database import Database, is_lock_timeout, serialize
from server.db.deliveries import Plan, queue_deliveries
from server.db.models import Incident, Job, Notification, NotificationIncident, ReportRow
from tools.errors import StoreBusy

MAX_RECEIVER = 255  # characters of a receiver's name kept with each incident it notified
FINGERPRINT_LOCKS = 0x696E  # `serialize`'s scope for the alerts' fingerprints ("in")


@dataclass
class IngestResult:
    notification_id: int
    created: list[int] = field(default_factory=list)  # new incidents, investigation queued
    deduplicated: list[int] = field(default_factory=list)  # repeats of known firing incidents
    resolved: list[int] = field(default_factory=list)  # incidents marked resolved
    refreshed: list[int] = field(default_factory=list)  # repeats that queued a new investigation


class Intake:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ingest(
        self,
        source: str,
        body: str,
        group_key: str,
        alerts: list[AlertInfo],
        *,
        receiver: str = "",
        on_resolved: Callable[[AlertInfo], Plan] | None = None,
        refresh_after: float = 0.0,
        window: float = 0.0,
        lock_timeout: float | None = None,
    ) -> IngestResult:
        """Persist a notification and its alerts in one transaction; dedup by fingerprint and startsAt
        (within `window` seconds, for HA replicas: see the module's docstring). `receiver`: the
        Alertmanager receiver that sent it, kept with each incident it touched.

        `on_resolved(alert)` is the plan of the resolved notices for a resolution (the delivery layer
        routes the alert once and decides); they are queued in the same transaction, so a resolution is
        never lost. A repeat of a firing incident whose report is older than `refresh_after` seconds
        (> 0) is re-investigated.

        Two replicas delivering the same group at once race on the unique key: the loser retries and
        finds the winner's incident. Waiting longer than `lock_timeout` seconds for the store's write
        lock raises `StoreBusy`, with nothing stored.
        """
        for attempt in range(3):
            try:
                return self._ingest(
                    source,
                    body,
                    group_key,
                    alerts,
                    receiver[:MAX_RECEIVER],
                    on_resolved,
                    refresh_after,
                    window,
                    lock_timeout,
                )
            except IntegrityError:
                if attempt == 2:
                    raise
            except OperationalError as exc:
                if lock_timeout is None or not is_lock_timeout(exc):
                    raise
                raise StoreBusy(
                    f"the store is busy (its write lock was not free within {lock_timeout:g} s); "
                    "nothing was stored, retry later",
                    retry_after=lock_timeout,
                ) from exc
        raise AssertionError("unreachable")

    def _ingest(
        self,
        source: str,
        body: str,
        group_key: str,
        alerts: list[AlertInfo],
        receiver: str,
        on_resolved: Callable[[AlertInfo], Plan] | None,
        refresh_after: float,
        window: float,
        lock_timeout: float | None,
    ) -> IngestResult:
        with self.db.session(lock_timeout=lock_timeout) as s:
            note = Notification(source=source, group_key=group_key, alerts=len(alerts), body=body)
            s.add(note)
            s.flush()
            serialize(s, FINGERPRINT_LOCKS, (alert.fingerprint for alert in alerts))
            result = IngestResult(note.id)
            touched: dict[int, NotificationIncident] = {}
            for alert in alerts:
                inc, outcome = self._one(s, alert, result, on_resolved, refresh_after, window)
                link = touched.get(inc.id)
                if link is None:
                    link = touched[inc.id] = NotificationIncident(
                        notification_id=note.id, incident_id=inc.id, outcome=outcome, receiver=receiver
                    )
                elif link.outcome == "deduplicated":
                    link.outcome = outcome
                link.status = alert.status
            s.add_all(touched.values())
            return result

    def _one(
        self,
        s: Session,
        alert: AlertInfo,
        result: IngestResult,
        on_resolved: Callable[[AlertInfo], Plan] | None,
        refresh_after: float,
        window: float,
    ) -> tuple[Incident, str]:
        """One alert of the notification into its incident (found, or created); the incident and what
        the alert did to it: created | deduplicated | resolved | refreshed (noted in `result` too)."""
        inc = _incident_of(s, alert, window)
        if inc is None:
            inc = Incident(
                fingerprint=alert.fingerprint,
                alertname=alert.name,
                status=alert.status,
                starts_at=alert.starts_at,
                labels=alert.labels,
                annotations=alert.annotations,
                generator_url=alert.generator_url,
            )
            if alert.status == "resolved":
                inc.resolved_at = alert.ends_at or utcnow()
                inc.investigation = "none"
                s.add(inc)
                s.flush()
                result.resolved.append(inc.id)
            else:
                s.add(inc)
                s.flush()
                s.add(Job(incident_id=inc.id))
                result.created.append(inc.id)
            return inc, "created"
        inc.notifications += 1
        if alert.status == "resolved":
            if inc.status != "resolved":
                inc.status = "resolved"
                inc.resolved_at = alert.ends_at or utcnow()
                result.resolved.append(inc.id)
                if on_resolved is not None:
                    queue_deliveries(s, inc, on_resolved(alert))
                return inc, "resolved"
            result.deduplicated.append(inc.id)
            return inc, "deduplicated"
        if refresh_after > 0 and _stale(s, inc, refresh_after):
            s.add(Job(incident_id=inc.id))
            inc.investigation = "queued"
            result.refreshed.append(inc.id)
            return inc, "refreshed"
        result.deduplicated.append(inc.id)
        return inc, "deduplicated"


def _incident_of(s: Session, alert: AlertInfo, window: float) -> Incident | None:
    """The incident `alert` belongs to, if any (the rules are in the module's docstring)."""
    same = Incident.fingerprint == alert.fingerprint
    exact = s.scalars(select(Incident).where(same, Incident.starts_at == alert.starts_at)).first()
    if exact is not None or window <= 0:
        return exact
    span = timedelta(seconds=window)
    near = s.scalars(
        select(Incident).where(
            same, Incident.starts_at.between(alert.starts_at - span, alert.starts_at + span)
        )
    )
    was_firing = [
        inc
        for inc in near
        if inc.status != "resolved" or inc.resolved_at is None or alert.starts_at < inc.resolved_at
    ]
    return min(was_firing, key=lambda inc: abs(inc.starts_at - alert.starts_at), default=None)


def _stale(s: Session, inc: Incident, seconds: float) -> bool:
    """A finished investigation whose report is older than `seconds`."""
    if inc.investigation not in ("done", "degraded", "failed"):
        return False
    made = (
        s.scalar(select(ReportRow.created_at).where(ReportRow.id == inc.report_id)) if inc.report_id else None
    )
    since = made or inc.updated_at
    return since is None or utcnow() - since > timedelta(seconds=seconds)
