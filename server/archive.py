"""The report archive: Markdown, HTML and JSON files under the reports directory."""

from __future__ import annotations

import os
from pathlib import Path

from agent.models import Report
from agent.render import render_html, render_markdown, report_filename_stem


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
