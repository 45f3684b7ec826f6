"""Reports as output: the archive files the worker writes once, and a stored report read for output
with its incident's tickets joined (API, notices).

A report is stored as the worker wrote it; tickets are kept in their own table. Whoever shows a report
(`GET /api/v1/reports/{id}` in every format, a notice's Markdown, HTML and JSON) reads it through
`report_output`, which joins the tickets with `with_tickets`: the one place they enter a report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.filenames import report_filename_stem
from agent.models import Report, TicketLink
from agent.render import render_html, render_markdown
from server.db.models import ReportRow, Ticket


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def archive_report(report: Report, reports_dir: str | Path) -> tuple[str, str, dict[str, str]]:
    """Render and write the report; returns (markdown, html, {format: path})."""
    directory = Path(reports_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stem = report_filename_stem(report)
    markdown = render_markdown(report)
    html = render_html(report)
    paths = {}
    for fmt, text in (("md", markdown), ("html", html), ("json", report.model_dump_json(indent=2))):
        path = directory / f"{stem}.{fmt}"
        _write_atomic(path, text)
        paths[fmt] = str(path)
    return markdown, html, paths


@dataclass(frozen=True)
class Rendered:
    """A report in the three forms it is shown in."""

    json: str
    markdown: str
    html: str


def with_tickets(report: Report, tickets: Sequence[Ticket]) -> Report:
    """The report showing the incident's tickets (a copy; the stored report is never rewritten)."""
    links = [TicketLink(sink=t.sink, key=t.key, url=t.url) for t in tickets]
    return report.model_copy(update={"tickets": links})


def report_output(row: ReportRow, tickets: Sequence[Ticket], report: Report | None = None) -> Rendered:
    """A stored report as shown: rendered again with its incident's tickets, or as stored when there
    are none (the stored texts are that rendering). `report` is `row.body` already parsed, if it is."""
    if not tickets:
        return Rendered(row.body, row.markdown, row.html)
    shown = with_tickets(report or Report.model_validate_json(row.body), tickets)
    return Rendered(shown.model_dump_json(), render_markdown(shown), render_html(shown))
