"""The Notice a sink gets: built from the stored incident and report, with the incident's tickets joined
into the report's Markdown, HTML and JSON (rendered once per notice); and the incident's marker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from agent.charts import charts_of
from agent.filenames import report_filename_stem
from agent.headline import headline
from agent.models import Report
from server.archive import report_output
from server.chart_links import chart_url
from server.db.models import Incident, ReportRow, Ticket
from server.delivery.base import Notice, NoticeCause
from server.delivery.message import label_set
from tools.format import rfc3339


def marker(inc: Incident) -> str:
    """Stable and unique per incident: how a ticket sink finds its ticket again."""
    return f"alertsleuth-{inc.fingerprint[:16]}-{int(inc.starts_at.timestamp())}"


def build_notice(
    event: str,
    inc: Incident,
    row: ReportRow | None,
    *,
    change: str | None,
    external_url: str | None,
    tickets: Sequence[Ticket] = (),
    chart_link_key: str | None = None,
    chart_link_seconds: float = 604_800.0,
) -> Notice:
    """The notice of `event`, telling the report `row` (None: there is none) with `tickets` shown; with
    `chart_link_key` and `external_url`, a signed link to the signal chart valid `chart_link_seconds`."""
    report = Report.model_validate_json(row.body) if row is not None else None
    shown = report_output(row, tickets, report) if row is not None else None
    causes = [
        NoticeCause(dict(rc.labels), rc.statement, rc.score) for rc in (report.root_causes if report else [])
    ]
    where = label_set(causes[0].labels) if causes and report and report.localized else None
    status = "RESOLVED" if event == "resolved" else "FIRING"
    title = f"[{status}] {inc.alertname}" + (f": {where}" if where else "")
    base = external_url.rstrip("/") if external_url else None
    ends = inc.resolved_at if event == "resolved" else None
    return Notice(
        event=event,  # type: ignore[arg-type]
        incident_id=inc.id,
        marker=marker(inc),
        alertname=inc.alertname,
        status=inc.status,
        severity=inc.labels.get("severity"),
        labels=dict(inc.labels),
        title=title,
        summary=report.summary if report else "No report was written for this incident.",
        root_causes=causes,
        localized=bool(report and report.localized),
        degraded=bool(report and report.degraded),
        starts_at=rfc3339(inc.starts_at),
        ends_at=rfc3339(ends) if ends else None,
        duration_seconds=(ends - inc.starts_at).total_seconds() if ends else None,
        report_id=row.id if row else None,
        markdown=shown.markdown if shown else None,
        html=shown.html if shown else None,
        report_json=shown.json if shown else None,
        report_url=f"{base}/api/v1/reports/{row.id}?format=html" if base and row else None,
        incident_url=f"{base}/api/v1/incidents/{inc.id}" if base else None,
        chart_url=(
            chart_url(base, chart_link_key, row.id, "signal", chart_link_seconds)
            if base and chart_link_key and row is not None and _has_signal(report)
            else None
        ),
        change=change,
        runbooks=[r.name for r in report.runbooks] if report is not None else [],
        headline=_headline(report, ends),
        charts=(lambda: _pngs(report)) if report is not None else (lambda: []),
    )


def _has_signal(report: Report | None) -> bool:
    """Whether the report has the evidence its signal chart is drawn from (agent/charts.py)."""
    return report is not None and any(ev.kind == "signal" for ev in report.evidence)


def _pngs(report: Report) -> list[tuple[str, bytes]]:
    stem = report_filename_stem(report)
    return [
        (f"{stem}.{c.key}.png", bytes(c.data)) for c in charts_of(report, "png") if isinstance(c.data, bytes)
    ]


def _headline(report: Report | None, ended: datetime | None) -> list[str]:
    if report is None:
        return []
    head = headline(report, now=ended or datetime.now(UTC))
    return [head.verdict, head.where, head.since, *([head.storm] if head.storm else [])]


def probe_notice(sink: str) -> Notice:
    """What `alertsleuth sinks test NAME` sends."""
    now = datetime.now(UTC)
    return Notice(
        event="test",
        incident_id=0,
        marker=f"alertsleuth-test-{int(now.timestamp())}",
        alertname="AlertsleuthTest",
        status="firing",
        severity="info",
        labels={"alertname": "AlertsleuthTest"},
        title=f"[TEST] alertsleuth test message from sink {sink}",
        summary=f"alertsleuth test message from sink {sink}: if you can read this, delivery works.",
        starts_at=rfc3339(now),
    )
