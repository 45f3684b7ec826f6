"""The first screen of a report: the verdict in one plain sentence, in the signal's own unit, where the
change lives, since when, and how bad. Built from the report's figures only (the signal evidence, the
root causes, the alert), never from a writer's prose; the same in HTML, Markdown, tickets and chat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agent.models import Evidence, Report
from agent.texts import phrases
from tools.format import fmt_duration, fmt_labels, fmt_pct, fmt_time, fmt_unit, signal_unit, to_utc

__all__ = ["Headline", "headline", "unit_of"]


@dataclass(frozen=True)
class Cause:
    labels: str  # ip_region="shanghai", user_type="admin"
    share: str  # "94.1%" of the change, or "" when not known
    change: str  # "11.6% → 86.9%"


@dataclass(frozen=True)
class Headline:
    verdict: str  # one sentence: what the signal did, against the threshold
    where: str  # one sentence: the root cause(s), or why there is none
    since: str  # "since 10:02 UTC (firing for 12m)"
    severity: str | None
    causes: list[Cause] = field(default_factory=list)
    storm: str = ""  # an alert storm's one line: how many alerts, how many the causes hold ("" for one)


def _signal(report: Report) -> Evidence | None:
    return next((e for e in report.evidence if e.kind == "signal" and e.stats), None)


def unit_of(report: Report) -> str:
    """The unit the report's signal reads in (tools.format.signal_unit over its figures: the signal's,
    the threshold and the root causes')."""
    ev = _signal(report)
    values: list[float | None] = [report.threshold]
    values += [v for rc in report.root_causes for v in (rc.baseline, rc.incident)]
    if ev is not None:
        values += [v for s in ev.stats for v in (s.baseline, s.incident, s.peak)]
    return signal_unit(report.expression, values)


def headline(report: Report, now: datetime | None = None) -> Headline:
    """The report's first screen (see the module docstring); `now` ends a period still firing (default:
    when the report was written)."""
    t = phrases("report", report.language)["headline"]
    alert = report.alert
    unit = unit_of(report)
    ev = _signal(report)
    if ev is None:
        verdict = t["no_signal"].format(alert=alert.name)
    else:
        st = ev.stats[0]
        rose = (st.incident or 0.0) >= (st.baseline or 0.0)
        verdict = t["verdict"].format(
            alert=alert.name,
            moved=t["rose" if rose else "fell"],
            base=fmt_unit(st.baseline, unit),
            inc=fmt_unit(st.incident, unit),
            peak=fmt_unit(st.peak, unit),
        )
        if report.threshold is not None and report.comparison:
            verdict += t["against"].format(op=report.comparison, threshold=fmt_unit(report.threshold, unit))
        verdict += t["end"]
    causes = [
        Cause(
            labels=fmt_labels(rc.labels, plain=True),
            share=fmt_pct(rc.explained_share) if rc.explained_share is not None else "",
            change=f"{fmt_unit(rc.baseline, unit)} → {fmt_unit(rc.incident, unit)}",
        )
        for rc in report.root_causes
    ]
    if causes:
        first = causes[0]
        where = t["where_share" if first.share else "where"].format(labels=first.labels, share=first.share)
        if len(causes) > 1:
            where += t["and_more"].format(n=len(causes) - 1)
    elif report.localization_note:
        where = t["not_run"].format(why=report.localization_note)
    elif report.degraded:
        where = t["unknown"]
    else:
        where = t["spread"]
    ended = alert.ends_at if alert.ends_at and alert.ends_at.year > 1 else None
    until = ended or now or report.created_at
    length = fmt_duration(max(0.0, (to_utc(until) - to_utc(alert.starts_at)).total_seconds()))
    since = t["since_resolved" if ended else "since_firing"].format(
        start=fmt_time(alert.starts_at), length=length
    )
    storm = ""
    if report.storm is not None:
        storm = t["storm"].format(n=report.storm.alerts, covered=report.storm.covered)
    return Headline(
        verdict=verdict,
        where=where,
        since=since,
        severity=alert.labels.get("severity"),
        causes=causes,
        storm=storm,
    )
