"""Reports as output: the archive files the worker writes once, and a stored report read for output
with its incident's tickets joined (API, notices).

The archive is a copy of the database, written after it. The worker renders a report
(`render_report`: nothing is written yet), commits its row (`JobQueue.complete`, whose row holds the
JSON, Markdown and HTML), and only then writes the three files (`write_files`, each to a temporary
name, then renamed into place). A process killed before the commit leaves no file and no row (the job
is re-queued); killed after it, it leaves a row whose files may be missing or half-written under a
temporary name. At start-up, before the workers, `restore_archive` removes the temporaries and writes
every missing file from its row. So no file lacks a row, and after a start no row points at a missing
file. Files the archive holds beyond that (deleted rows, another database) are left alone.

A report is stored as the worker wrote it; tickets are kept in their own table. Whoever shows a report
(`GET /api/v1/reports/{id}` in every format, a notice's Markdown, HTML and JSON) reads it through
`report_output`, which joins the tickets with `with_tickets`: the one place they enter a report.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from agent.filenames import report_filename_stem
from agent.models import Report, TicketLink
from agent.render import render_html, render_markdown
from server.db.database import Database
from server.db.models import ReportRow, Ticket

log = logging.getLogger("alertsleuth.archive")

TEMPORARY_SUFFIX = ".tmp"


@dataclass(frozen=True)
class Archived:
    """A report rendered for the archive: its texts and the paths they go to (nothing written yet)."""

    markdown: str
    html: str
    json: str
    paths: dict[str, str]  # format (md, html, json) -> path

    def texts(self) -> dict[str, str]:
        return {"md": self.markdown, "html": self.html, "json": self.json}


def render_report(report: Report, reports_dir: str | Path) -> Archived:
    """Render the report and name its files in `reports_dir`; writes nothing."""
    directory = Path(reports_dir)
    stem = report_filename_stem(report)
    return Archived(
        markdown=render_markdown(report),
        html=render_html(report),
        json=report.model_dump_json(indent=2),
        paths={fmt: str(directory / f"{stem}.{fmt}") for fmt in ("md", "html", "json")},
    )


def write_files(archived: Archived) -> bool:
    """Write the archive files of a report whose row is committed. A failure is logged, not raised (the
    report is stored; `restore_archive` writes the files at the next start). Returns whether all were."""
    try:
        for fmt, text in archived.texts().items():
            _write_atomic(Path(archived.paths[fmt]), text)
    except OSError:
        log.exception("cannot write the report files; they are written at the next start")
        return False
    return True


def restore_archive(db: Database, reports_dir: str | Path) -> tuple[int, int]:
    """At start-up, before the workers: remove the temporaries a killed writer left in `reports_dir`
    and write every stored report's missing files from its row. Returns (removed, written)."""
    directory = Path(reports_dir)
    removed = 0
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name.endswith(TEMPORARY_SUFFIX) and path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    written = 0
    with db.session() as s:
        listed = s.execute(select(ReportRow.id, ReportRow.paths)).all()
        lacking = [rid for rid, paths in listed if any(not Path(p).is_file() for p in paths.values())]
        for rid in lacking:
            row = s.get(ReportRow, rid)
            assert row is not None
            texts = {
                "md": row.markdown,
                "html": row.html,
                "json": Report.model_validate_json(row.body).model_dump_json(indent=2),
            }
            for fmt, name in row.paths.items():
                if fmt in texts and not Path(name).is_file():
                    try:
                        _write_atomic(Path(name), texts[fmt])
                        written += 1
                    except OSError as exc:
                        log.warning("cannot restore a report file", extra={"path": name, "error": str(exc)})
    if removed or written:
        log.info("report archive restored", extra={"temporaries_removed": removed, "files_written": written})
    return removed, written


def _write_atomic(path: Path, text: str) -> None:
    """Write to a temporary name of our own (hidden, random, in the same directory), then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Rendered:
    """A report in the three forms it is shown in."""

    json: str
    markdown: str
    html: str


def with_tickets(report: Report, tickets: Sequence[Ticket]) -> Report:
    """The report showing the incident's tickets (a copy; the stored report is never rewritten)."""
    links = [
        TicketLink(
            sink=t.sink, key=t.key, url=t.url, closed_at=t.closed_at, closing_comment=t.closing_comment
        )
        for t in tickets
    ]
    return report.model_copy(update={"tickets": links})


def report_output(row: ReportRow, tickets: Sequence[Ticket], report: Report | None = None) -> Rendered:
    """A stored report as shown: rendered again with its incident's tickets, or as stored when there
    are none (the stored texts are that rendering). `report` is `row.body` already parsed, if it is."""
    if not tickets:
        return Rendered(row.body, row.markdown, row.html)
    shown = with_tickets(report or Report.model_validate_json(row.body), tickets)
    return Rendered(shown.model_dump_json(), render_markdown(shown), render_html(shown))
