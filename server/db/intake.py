"""Intake: a notification and its alerts persisted in one transaction, deduplicated into incidents.

One incident per (fingerprint, startsAt). A new firing alert queues an investigation; a resolution
marks the incident resolved and queues, in the same transaction, the resolved notices its plan decides
on; a repeat is counted, or re-investigated when its report is stale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent.models import AlertInfo, utcnow
from server.db.database import Database
from server.db.deliveries import Plan, queue_deliveries
from server.db.models import Incident, Job, Notification, ReportRow


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
        on_resolved: Callable[[AlertInfo], Plan] | None = None,
        refresh_after: float = 0.0,
    ) -> IngestResult:
        """Persist a notification and its alerts in one transaction; dedup by (fingerprint, startsAt).

        `on_resolved(alert)` is the plan of the resolved notices for a resolution (the delivery layer
        routes the alert once and decides); they are queued in the same transaction, so a resolution is
        never lost. A repeat of a firing incident whose report is older than `refresh_after` seconds
        (> 0) is re-investigated.

        Two replicas delivering the same group at once race on the unique key: the loser retries and
        finds the winner's incident.
        """
        for attempt in range(3):
            try:
                return self._ingest(source, body, group_key, alerts, on_resolved, refresh_after)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _ingest(
        self,
        source: str,
        body: str,
        group_key: str,
        alerts: list[AlertInfo],
        on_resolved: Callable[[AlertInfo], Plan] | None,
        refresh_after: float,
    ) -> IngestResult:
        with self.db.session() as s:
            note = Notification(source=source, group_key=group_key, alerts=len(alerts), body=body)
            s.add(note)
            s.flush()
            result = IngestResult(note.id)
            for alert in alerts:
                inc = s.scalars(
                    select(Incident).where(
                        Incident.fingerprint == alert.fingerprint, Incident.starts_at == alert.starts_at
                    )
                ).first()
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
                    continue
                inc.notifications += 1
                if alert.status == "resolved":
                    if inc.status != "resolved":
                        inc.status = "resolved"
                        inc.resolved_at = alert.ends_at or utcnow()
                        result.resolved.append(inc.id)
                        if on_resolved is not None:
                            queue_deliveries(s, inc, on_resolved(alert))
                    else:
                        result.deduplicated.append(inc.id)
                elif refresh_after > 0 and _stale(s, inc, refresh_after):
                    s.add(Job(incident_id=inc.id))
                    inc.investigation = "queued"
                    result.refreshed.append(inc.id)
                else:
                    result.deduplicated.append(inc.id)
            return result


def _stale(s: Session, inc: Incident, seconds: float) -> bool:
    """A finished investigation whose report is older than `seconds`."""
    if inc.investigation not in ("done", "degraded", "failed"):
        return False
    made = (
        s.scalar(select(ReportRow.created_at).where(ReportRow.id == inc.report_id)) if inc.report_id else None
    )
    since = made or inc.updated_at
    return since is None or utcnow() - since > timedelta(seconds=seconds)
