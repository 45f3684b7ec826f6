"""Reading incidents: a page of them, or one with its jobs, report files, deliveries and tickets."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import false, func, select

from server.db.database import Database
from server.db.history import search_filter
from server.db.models import Delivery, Incident, Job, ReportRow, Ticket
from server.db.reports import incident_tickets

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # Prometheus's label names


@dataclass
class IncidentRecord:
    incident: Incident
    jobs: list[Job]
    report_files: dict[str, str]  # the archive paths of its current report
    deliveries: list[Delivery]
    tickets: list[Ticket]


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
        with self.db.session() as s:
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

    def exists(self, incident_id: int) -> bool:
        with self.db.session() as s:
            return s.get(Incident, incident_id) is not None

    def detail(self, incident_id: int) -> IncidentRecord | None:
        """Everything the API shows about one incident.

        The deliveries are read before the tickets: a sink saves its ticket before its delivery is
        marked done, so once a delivery reads as done its ticket is visible too (read the other way
        round, a ticket saved in between was missing from an incident whose deliveries were done)."""
        with self.db.session() as s:
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
            return IncidentRecord(inc, jobs, dict(paths or {}), deliveries, tickets)
