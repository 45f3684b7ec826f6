"""Reports and the tickets opened for their incidents.

A report is stored once, as the worker wrote it (`add_report`, in the job's transaction). Tickets
live in their own table and are joined when a report is read for output (`server/archive.py`
`with_tickets`), so saving a ticket never rewrites a report.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.models import Report, utcnow
from server.db.database import Database
from server.db.models import Incident, ReportRow, Ticket


def add_report(
    s: Session, incident_id: int, report: Report, markdown: str, html: str, paths: dict[str, str]
) -> None:
    """Store a report in the caller's transaction."""
    s.add(
        ReportRow(
            id=report.id,
            incident_id=incident_id,
            body=report.model_dump_json(),
            markdown=markdown,
            html=html,
            paths=paths,
        )
    )


def incident_tickets(s: Session, incident_id: int) -> list[Ticket]:
    """The incident's tickets, oldest first, in the caller's transaction."""
    return list(s.scalars(select(Ticket).where(Ticket.incident_id == incident_id).order_by(Ticket.id)))


class Reports:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, report_id: str) -> tuple[ReportRow, list[Ticket]] | None:
        """A stored report and the tickets of its incident (to join for output)."""
        with self.db.session() as s:
            row = s.get(ReportRow, report_id)
            return (row, incident_tickets(s, row.incident_id)) if row is not None else None

    def latest(self, incident_id: int) -> Report | None:
        """The incident's current report, as stored."""
        with self.db.session() as s:
            inc = s.get(Incident, incident_id)
            if inc is None or not inc.report_id:
                return None
            body = s.scalar(select(ReportRow.body).where(ReportRow.id == inc.report_id))
        return Report.model_validate_json(body) if body else None

    def for_notice(
        self, incident_id: int, report_id: str | None
    ) -> tuple[Incident, ReportRow | None, list[Ticket]]:
        """The incident, the given report (else its latest) and the incident's tickets, for a notice."""
        with self.db.session() as s:
            inc = s.get(Incident, incident_id)
            assert inc is not None
            rid = report_id or inc.report_id
            return inc, (s.get(ReportRow, rid) if rid else None), incident_tickets(s, incident_id)

    # ------------------------------------------------------------------ tickets

    def save_ticket(self, incident_id: int, sink: str, ext_id: str, key: str, url: str) -> None:
        """The one ticket `sink` keeps for the incident: created, or replaced by the one now held."""
        with self.db.session() as s:
            row = s.scalars(
                select(Ticket).where(Ticket.incident_id == incident_id, Ticket.sink == sink)
            ).first()
            if row is None:
                s.add(Ticket(incident_id=incident_id, sink=sink, ext_id=ext_id, key=key, url=url))
            else:
                row.ext_id, row.key, row.url = ext_id, key, url

    def close_ticket(self, incident_id: int, sink: str, comment: str) -> None:
        """Record that `sink` closed the incident's ticket with `comment` (its resolution delivery
        succeeded). Nothing to record when the sink holds no ticket for it."""
        with self.db.session() as s:
            row = s.scalars(
                select(Ticket).where(Ticket.incident_id == incident_id, Ticket.sink == sink)
            ).first()
            if row is not None:
                row.closed_at, row.closing_comment = utcnow(), comment
