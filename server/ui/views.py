"""What the UI's pages show, read from the store (blocking: call from a worker thread).

The list reads a page of incidents (`store.incidents.page`, its count and its rows), then in one more
transaction the current reports' bodies and the tickets of just that page's incidents: four queries
for any page size. Of a body, only its first root cause's labels are kept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy import select

from agent.markup import safe_url
from server.archive import report_output
from server.db import Delivery, Incident, Job, ReportRow, Store, Ticket
from server.db.models import IncidentFinding
from server.ui.timeline import Event, earlier_unlisted, timeline
from tools.format import fmt_duration, fmt_labels, fmt_time, to_utc


@dataclass
class Row:
    """One line of the incidents table."""

    id: int
    status: str
    severity: str
    alertname: str
    root_cause: str
    started: str
    duration: str
    investigation: str
    ticket_key: str | None
    ticket_href: str | None


@dataclass
class ReportParts:
    """A stored report's page cut into the parts the UI embeds: its stylesheet and its `<main>`."""

    style: Markup
    body: Markup


@dataclass
class Detail:
    incident: Incident
    severity: str
    started: str
    duration: str
    first_seen: str
    last_seen: str
    labels: list[tuple[str, str]]
    generator_href: str | None
    jobs: list[Job]
    deliveries: list[Delivery]
    tickets: list[tuple[Ticket, str | None]]  # the ticket and its link, when it is a safe URL
    report: ReportParts | None
    busy: bool  # an investigation is queued or running
    failed_deliveries: int = field(default=0)
    events: list[Event] = field(default_factory=list)  # the timeline, oldest first (server/ui/timeline.py)
    earlier_notifications: bool = False  # some were stored before they were listed per incident


def duration(inc: Incident, now: datetime | None = None) -> str:
    if inc.resolved_at is not None:
        return fmt_duration((to_utc(inc.resolved_at) - to_utc(inc.starts_at)).total_seconds())
    now = now or datetime.now(UTC)
    return "firing for " + fmt_duration(max(0.0, (now - to_utc(inc.starts_at)).total_seconds()))


def first_root_cause(body: str | None) -> str:
    """The labels of a report's first root cause as `name=value, …`, or "" (none, or unreadable)."""
    if not body:
        return ""
    try:
        causes = json.loads(body).get("root_causes") or []
        labels = causes[0].get("labels") if causes and isinstance(causes[0], dict) else None
    except (ValueError, AttributeError):
        return ""
    return _labels(labels)


def _labels(labels: Any) -> str:
    return fmt_labels(labels, plain=True, limit=4) if isinstance(labels, dict) and labels else ""


def incident_rows(
    store: Store,
    status: str | None,
    alertname: str | None,
    limit: int,
    offset: int,
    text: str | None,
    labels: Sequence[tuple[str, str]],
) -> tuple[list[Row], int]:
    incidents, total = store.incidents.page(status, alertname, limit, offset, text=text, labels=labels)
    ids = [i.id for i in incidents]
    causes: dict[int, str] = {}
    first_ticket: dict[int, Ticket] = {}
    if ids:
        with store.session() as s:
            # The root cause from the findings of the current good report (a small row), else from the
            # current report's body (a degraded one: not indexed).
            found = s.execute(
                select(IncidentFinding.incident_id, IncidentFinding.report_id, IncidentFinding.causes).where(
                    IncidentFinding.incident_id.in_(ids)
                )
            )
            current = {i.id: i.report_id for i in incidents}
            for iid, rid, listed in found:
                if rid == current[iid]:
                    causes[iid] = _labels(listed[0] if listed else None)
            rest = [i.report_id for i in incidents if i.report_id and i.id not in causes]
            if rest:
                read = s.execute(select(ReportRow.id, ReportRow.body).where(ReportRow.id.in_(rest)))
                bodies = {rid: body for rid, body in read}  # not dict(read): it has keys(), not items
                for i in incidents:
                    if i.id not in causes:
                        causes[i.id] = first_root_cause(bodies.get(i.report_id or ""))
            for t in s.scalars(select(Ticket).where(Ticket.incident_id.in_(ids)).order_by(Ticket.id)):
                first_ticket.setdefault(t.incident_id, t)
    now = datetime.now(UTC)
    rows = []
    for inc in incidents:
        ticket = first_ticket.get(inc.id)
        rows.append(
            Row(
                id=inc.id,
                status=inc.status,
                severity=str(inc.labels.get("severity", "")),
                alertname=inc.alertname,
                root_cause=causes.get(inc.id, ""),
                started=fmt_time(inc.starts_at),
                duration=duration(inc, now),
                investigation=inc.investigation,
                ticket_key=ticket.key if ticket else None,
                ticket_href=safe_url(ticket.url) if ticket else None,
            )
        )
    return rows, total


def report_parts(html: str) -> ReportParts | None:
    """The stylesheet and `<main>` of a page rendered by agent/render.py (report.html.j2): the first
    `<style>` of its head and what its one `<main>` holds. Both are that template's autoescaped output
    (inline SVG charts included), so they are placed as markup; None if the page is not shaped so."""
    _, found, rest = html.partition("<style>")
    style, closed, after = rest.partition("</style>")
    _, opened, inner = after.partition("<main>")
    body, ended, _ = inner.rpartition("</main>")
    if not (found and closed and opened and ended):
        return None
    return ReportParts(Markup(style), Markup(body))


def incident_detail(store: Store, incident_id: int) -> Detail | None:
    found = store.incidents.detail(incident_id)
    if found is None:
        return None
    inc = found.incident
    parts = None
    if inc.report_id:
        stored = store.reports.get(inc.report_id)
        if stored is not None:
            parts = report_parts(report_output(*stored).html)
    return Detail(
        incident=inc,
        severity=str(inc.labels.get("severity", "")),
        started=fmt_time(inc.starts_at),
        duration=duration(inc),
        first_seen=fmt_time(inc.created_at),
        last_seen=fmt_time(inc.updated_at),
        labels=sorted((str(k), str(v)) for k, v in inc.labels.items()),
        generator_href=safe_url(inc.generator_url),
        jobs=found.jobs,
        deliveries=found.deliveries,
        tickets=[(t, safe_url(t.url)) for t in found.tickets],
        report=parts,
        busy=any(j.state in ("queued", "running") for j in found.jobs),
        failed_deliveries=sum(d.state == "failed" for d in found.deliveries),
        events=timeline(
            inc,
            found.notifications,
            found.notifications_left_out,
            found.jobs,
            found.deliveries,
            found.tickets,
        ),
        earlier_notifications=earlier_unlisted(found.notifications),
    )


def when(dt: datetime | None) -> str:
    return fmt_time(dt)


TEMPLATE_GLOBALS: dict[str, Any] = {"when": when}
