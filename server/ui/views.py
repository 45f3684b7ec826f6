"""What the UI's pages show, read from the store (blocking: call from a worker thread).

The list reads a page of incidents (`store.incidents.page`, its count and its rows), then in one more
transaction the current reports' bodies and the tickets of just that page's incidents: four queries
for any page size. Of a body, only its first root cause's labels are kept.

With ChatOps configured, an incident's page also reads its silences, its runbook actions, its audit trail
(for the actions' steps in the timeline) and the runbooks that fit it (`ChatOps.runbooks`): its
`ChatOpsPanel`. Every text in it is plain (labels, outputs and comments come from alerts, playbooks and
people): the template escapes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy import select

from agent.markup import safe_url
from server.archive import report_output
from server.chatops.service import ChatOps
from server.db import Delivery, Incident, Job, ReportRow, Store, Ticket
from server.db.actions import ACTIVE
from server.db.models import IncidentFinding, RunbookAction, SilenceRow
from server.silences import incident_matchers
from server.ui.timeline import Event, earlier_unlisted, matchers_text, timeline
from tools.format import fmt_duration, fmt_labels, fmt_time, to_utc

AUDIT_READ = 1000  # audit events of an incident read for its timeline (oldest first)


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
class SilenceLine:
    """One silence alertsleuth made for the incident."""

    silence_id: str
    matchers: str  # the editable form, `a="1", b=~"x"`
    starts: str
    until: str
    by: str
    comment: str
    expired_at: str  # "" unless expired through alertsleuth
    expired_by: str
    active: bool  # not expired by us and not past its end: it may be expired


@dataclass
class StepLine:
    """A runbook action's dry run or run, as far as it went."""

    name: str  # "Dry run" | "Run"
    status: str  # running | successful | failed | timeout | canceled | error
    rc: str
    command: str
    started: str
    finished: str
    output: str


@dataclass
class ActionLine:
    id: int
    runbook: str
    state: str
    requested_by: str
    approved_by: str
    requested: str
    updated: str
    values: list[tuple[str, str]]  # the variables' public values (secrets are stored masked)
    fit: str  # why the runbook fits
    steps: list[StepLine]


@dataclass
class RunbookFit:
    name: str
    description: str
    why: str


@dataclass
class ChatOpsPanel:
    """The "Silences and runbooks" section of an incident's page."""

    can_silence: bool  # chatops.alertmanager is configured
    has_runbooks: bool  # chatops.runbooks is configured
    max_silence: str
    default_matchers: str  # the incident's labels as matchers: what an empty matchers field means
    silences: list[SilenceLine]
    fits: list[RunbookFit]
    actions: list[ActionLine]
    busy: bool  # a dry run or a run is going on: the page reloads itself


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
    chatops: ChatOpsPanel | None = None  # with ChatOps configured


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


def _when_stored(value: Any) -> str:
    """A step's time as stored (ISO 8601 text) for people; "–" when absent or unreadable."""
    try:
        return fmt_time(datetime.fromisoformat(str(value))) if value else "–"
    except ValueError:
        return "–"


def _step(name: str, step: Mapping[str, Any] | None) -> StepLine | None:
    if not step:
        return None
    rc = step.get("rc")
    command = step.get("command")
    return StepLine(
        name=name,
        status=str(step.get("status") or "?"),
        rc="–" if rc is None else str(rc),
        command=" ".join(str(a) for a in command) if isinstance(command, list) else "",
        started=_when_stored(step.get("started_at")),
        finished=_when_stored(step.get("finished_at")),
        output=str(step.get("output") or ""),
    )


def action_line(a: RunbookAction) -> ActionLine:
    variables = a.variables if isinstance(a.variables, dict) else {}
    values = variables.get("values")
    return ActionLine(
        id=a.id,
        runbook=a.runbook,
        state=a.state,
        requested_by=a.requested_by,
        approved_by=a.approved_by or "",
        requested=fmt_time(a.created_at),
        updated=fmt_time(a.updated_at),
        values=sorted((str(k), str(v)) for k, v in values.items()) if isinstance(values, dict) else [],
        fit=str(variables.get("fit") or ""),
        steps=[s for s in (_step("Dry run", a.dry_run), _step("Run", a.run)) if s is not None],
    )


def silence_line(row: SilenceRow, now: datetime) -> SilenceLine:
    return SilenceLine(
        silence_id=row.silence_id,
        matchers=matchers_text(row.matchers),
        starts=fmt_time(row.starts_at),
        until=fmt_time(row.ends_at),
        by=row.created_by,
        comment=row.comment,
        expired_at=fmt_time(row.expired_at) if row.expired_at else "",
        expired_by=row.expired_by or "",
        active=row.expired_at is None and to_utc(row.ends_at) > now,
    )


def chatops_panel(
    chatops: ChatOps, inc: Incident, silences: list[SilenceRow], actions: list[RunbookAction]
) -> ChatOpsPanel:
    try:
        fits = [
            RunbookFit(str(f["name"]), str(f["description"]), str(f["why"])) for f in chatops.runbooks(inc.id)
        ]
    except LookupError:  # the incident went away meanwhile
        fits = []
    now = datetime.now(UTC)
    return ChatOpsPanel(
        can_silence=chatops.silencer is not None,
        has_runbooks=chatops.desk is not None,
        max_silence=chatops.config.max_silence,
        default_matchers=", ".join(str(m) for m in incident_matchers(inc.labels)),
        silences=[silence_line(r, now) for r in silences],
        fits=fits,
        actions=[action_line(a) for a in actions],
        busy=any(a.state in ACTIVE for a in actions),
    )


def incident_detail(store: Store, incident_id: int, chatops: ChatOps | None = None) -> Detail | None:
    """The incident's page; with `chatops`, its silences, runbooks and actions too (and their lines in
    the timeline)."""
    found = store.incidents.detail(incident_id)
    if found is None:
        return None
    inc = found.incident
    silences: list[SilenceRow] = []
    actions: list[RunbookAction] = []
    audit = []
    if chatops is not None:
        silences = store.chatops.silences(incident_id)
        actions = store.actions.of_incident(incident_id)
        if actions:
            audit = store.chatops.audit_trail(incident_id=incident_id, limit=AUDIT_READ)
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
            silences=silences,
            actions=actions,
            audit=audit,
        ),
        earlier_notifications=earlier_unlisted(found.notifications),
        chatops=chatops_panel(chatops, inc, silences, actions) if chatops is not None else None,
    )


def when(dt: datetime | None) -> str:
    return fmt_time(dt)


TEMPLATE_GLOBALS: dict[str, Any] = {"when": when}
