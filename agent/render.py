"""Render a `Report` as GitHub-flavoured Markdown or as one self-contained HTML page.

Both renderings read one view of the report (`agent.report_view.build_view`) and differ only in their
jinja2 template (`agent/templates/report.md.j2`, `report.html.j2`) and in how free text is escaped:
HTML is autoescaped, and both templates pass untrusted and written text through the filters of
`agent.markup`. Fixed phrases come from `agent/text/report.yaml`, numbers from `tools.format`, charts
from `agent.charts` (HTML; the Markdown draws text sparklines from `agent.sparklines`), file names from
`agent.filenames`.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from jinja2 import Environment
from markupsafe import Markup

from agent.charts import charts_of
from agent.markup import environment
from agent.models import Report
from agent.report_view import build_view

__all__ = [
    "render_html",
    "render_markdown",
]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


@functools.cache
def _env() -> Environment:
    return environment(TEMPLATE_DIR)


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown, in the report's language."""
    text = _env().get_template("report.md.j2").render(build_view(report))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts, no external assets):
    the signal's and the root causes' charts on the first screen, each breakdown's by its evidence."""
    view = build_view(report)
    first: list[dict[str, object]] = []
    by_evidence: dict[str, list[dict[str, object]]] = {}
    for chart in charts_of(report, "svg"):
        # matplotlib's SVG, its text escaped by it (agent/charts.py): markup to place as it is
        shown: dict[str, object] = {
            "svg": Markup(str(chart.data)),
            "title": chart.title,
            "evidence_id": chart.evidence_id,
        }
        if chart.key.startswith("breakdown"):
            by_evidence.setdefault(chart.evidence_id, []).append(shown)
        else:
            first.append(shown)
    view["charts_first"], view["charts_by_evidence"] = first, by_evidence
    return _env().get_template("report.html.j2").render(view)
