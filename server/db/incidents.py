"""Reading incidents: a page of them, one alone, or one with its notifications, jobs, report files,
deliveries and tickets.

An incident's notifications are bounded: the first FIRST_NOTIFICATIONS and the last LAST_NOTIFICATIONS
(a long incident in a busy group is notified every few minutes), with how many were left out between."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import false, func, select
from sqlalchemy.orm import Session

from server.db.database import Database
from server.db.history import search_filter
from server.db.models import (
    Delivery,
    Incident,
    Job,
    Notification,
    NotificationIncident,
    ReportRow,
    Ticket,
)
from server.db.reports import incident_tickets

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # Prometheus's label names
FIRST_NOTIFICATIONS = 10  # of an incident's notifications, the first ones read
LAST_NOTIFICATIONS = 90  # and the last ones


@dataclass
class NotificationSeen:
    """A notification that touched an incident (a `notification_incidents` row, with its notification's
    columns but the body)."""

    id: int
    received_at: datetime
    source: str  # alertmanager | prometheus
    receiver: str  # Alertmanager's receiver; "" from Prometheus
    group_key: str
    alerts: int  # alerts in the whole notification
    status: str  # the incident's alert in it: firing | resolved
    outcome: str  # what it did to the incident: created | deduplicated | resolved | refreshed


@dataclass
class IncidentRecord:
    incident: Incident
    jobs: list[Job]
    report_files: dict[str, str]  # the archive paths of its current report
    deliveries: list[Delivery]
    tickets: list[Ticket]
    notifications: list[NotificationSeen] = field(default_factory=list)  # oldest first, bounded
    notifications_left_out: int = 0  # linked to it but not read (between the first and the last ones)


class Incidents:
    def __init__(self, db: Database) -> None:
        self.db = db

    def page(
        self,
        status: str | None = None,
        alertname: str | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        text: str | None = None,
        labels: Sequence[tuple[str, str]] = (),
    ) -> tuple[list[Incident], int]:
        """A page of incidents, newest first, and how many match. `text`: whose current good report
        matches it (server/db/history.py; blank: no filter); `labels`: whose alert has each label."""
        with self.db.snapshot() as s:
            q = select(Incident)
            if status:
                q = q.where(Incident.status == status)
            if alertname:
                q = q.where(Incident.alertname == alertname)
            if text and text.strip():
                q = q.where(search_filter(s, text))
            for name, value in labels:
                # A name that no label can have matches nothing (and never reaches a JSON path).
                known = LABEL_NAME.fullmatch(name) is not None
                q = q.where(Incident.labels[name].as_string() == value if known else false())
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = list(s.scalars(q.order_by(Incident.id.desc()).limit(limit).offset(offset)))
            return rows, int(total)

    def get(self, incident_id: int) -> Incident | None:
        """The incident's row alone, detached from its session."""
        with self.db.session() as s:
            inc = s.get(Incident, incident_id)
            if inc is not None:
                s.expunge(inc)
            return inc

    def exists(self, incident_id: int) -> bool:
        with self.db.session() as s:
            return s.get(Incident, incident_id) is not None

    def detail(self, incident_id: int) -> IncidentRecord | None:
        """Everything the API shows about one incident.

        Read in one snapshot: the incident, its jobs, deliveries and tickets as one moment left them (an
        incident read as "running" while its job, read a moment later, was "done" was seen before)."""
        with self.db.snapshot() as s:
            inc = s.get(Incident, incident_id)
            if inc is None:
                return None
            jobs = list(s.scalars(select(Job).where(Job.incident_id == incident_id).order_by(Job.id)))
            paths = (
                s.scalar(select(ReportRow.paths).where(ReportRow.id == inc.report_id))
                if inc.report_id
                else None
            )
            deliveries = list(
                s.scalars(select(Delivery).where(Delivery.incident_id == incident_id).order_by(Delivery.id))
            )
            tickets = incident_tickets(s, incident_id)
            seen, left_out = _notifications(s, incident_id)
            return IncidentRecord(inc, jobs, dict(paths or {}), deliveries, tickets, seen, left_out)


def _notifications(s: Session, incident_id: int) -> tuple[list[NotificationSeen], int]:
    """The incident's first and last notifications, oldest first, and how many are left out."""
    q = (
        select(
            Notification.id,
            Notification.received_at,
            Notification.source,
            NotificationIncident.receiver,
            Notification.group_key,
            Notification.alerts,
            NotificationIncident.status,
            NotificationIncident.outcome,
        )
        .join(NotificationIncident, NotificationIncident.notification_id == Notification.id)
        .where(NotificationIncident.incident_id == incident_id)
    )
    first = s.execute(q.order_by(Notification.id).limit(FIRST_NOTIFICATIONS)).all()
    last = s.execute(q.order_by(Notification.id.desc()).limit(LAST_NOTIFICATIONS)).all()
    rows = {r.id: NotificationSeen(*r) for r in [*first, *reversed(last)]}
    total = s.scalar(
        select(func.count())
        .select_from(NotificationIncident)
        .where(NotificationIncident.incident_id == incident_id)
    )
    return sorted(rows.values(), key=lambda n: n.id), int(total or 0) - len(rows)
