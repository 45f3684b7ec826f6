"""The `breakdown` tool's work: an ad-hoc expression localized like an alert, told in numbers and filed
as evidence. Shared by the LLM report writer and `ask` (which answers with it when no LLM is set)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from agent.findings import Findings
from tools.format import fmt_labels, fmt_num, fmt_pct, fmt_range

if TYPE_CHECKING:
    from tools.toolkit import Localizer, Recorder

# (expression, incident start, seen at) -> the findings of that expression (EvidenceCollector.breakdown)
Breakdown = Callable[[str, datetime, datetime], Findings]


def localizer(breakdown: Breakdown, record: Recorder) -> Localizer:
    """The `breakdown` tool's work: the investigation's own localization of an ad-hoc expression, filed as
    one evidence item."""

    def localize(expr: str, start: datetime, end: datetime) -> str:
        findings = breakdown(expr, start, end)
        text = breakdown_text(findings)
        w = findings.windows
        ev = record(
            kind="localization",
            title=f"Breakdown of {expr}",
            promql=expr,
            start=w.baseline.start if w else start,
            end=w.incident.end if w else end,
            step=findings.step,
            summary=text,
        )
        return f"[{ev}] {text}"

    return localize


def breakdown_text(f: Findings) -> str:
    """What a breakdown found, in numbers: the windows it compared, then the localized label sets, or why
    nothing localized."""
    w = f.windows
    compared = (
        f"baseline {fmt_range(w.baseline.start, w.baseline.end)} vs incident "
        f"{fmt_range(w.incident.start, w.incident.end)}: "
        if w
        else ""
    )
    loc = f.localization
    if loc is None:
        return compared + "not localized: " + ("; ".join(f.notes) or "no data")
    head = (
        f"{compared}signal {fmt_num(loc.baseline)} -> {fmt_num(loc.incident)} over labels "
        f"{', '.join(f.labels)}"
    )
    if not loc.localized:
        return f"{head}; not localized: " + "; ".join(loc.notes or ["the change is spread"])
    causes = [
        f"{fmt_labels(dict(c.labels))}: {fmt_num(c.baseline)} -> {fmt_num(c.incident)}, explains "
        f"{fmt_pct(c.explained_share)} of the change, {fmt_pct(c.volume_share)} of the volume"
        for c in loc.causes
    ]
    return f"{head}; localized to " + "; ".join(causes)
