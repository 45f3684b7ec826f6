"""The view of a `Report` that both report templates render (Markdown and HTML).

`build_view(report)` turns the report into the plain values the templates print: every figure already
formatted through `tools.format`, every fixed phrase in the report's language (from
`agent/text/report.yaml`), links only where `agent.markup.safe_url` allows them, text sparklines
from the evidence series (the HTML's charts are drawn by `agent.charts`, see `agent.render`). Free
text stays raw here: the templates escape it with `agent.markup`'s filters, which read `known_ids`
from this view to decide which `[E3]` citations become links.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.headline import headline, unit_of
from agent.markup import safe_url
from agent.models import Evidence, Report
from agent.sparklines import series_labels, series_points, text_spark
from agent.texts import language, phrases
from tools.format import fmt_duration, fmt_labels, fmt_num, fmt_pct, fmt_range, fmt_time, fmt_unit

__all__ = ["build_view"]

MAX_STAT_ROWS = 15
MAX_SERIES = 5


def _sparklines(ev: Evidence) -> tuple[list[dict[str, Any]], int]:
    """Up to MAX_SERIES text sparklines for an evidence's series (the Markdown report; the HTML one
    draws charts), and how many series were left out."""
    if not ev.series:
        return [], 0
    parsed = []
    for s in ev.series:
        if isinstance(s, Mapping):
            pts = series_points(s)
            if pts:
                parsed.append((series_labels(s), pts))
    shown = parsed[:MAX_SERIES]
    more = len(parsed) - len(shown)  # series without a usable point are not counted
    out: list[dict[str, Any]] = []
    for labels, pts in shown:
        values = [v for _, v in pts]
        out.append(
            {
                "labels": fmt_labels(labels),
                "min": fmt_num(min(values)),
                "max": fmt_num(max(values)),
                "last": fmt_num(values[-1]),
                "text": text_spark(values),
            }
        )
    return out, more


def _seen_before(report: Report, t: Mapping[str, str], matches: Mapping[str, str]) -> dict[str, Any] | None:
    """The incidents seen before as the templates print them; None when no history was asked."""
    h = report.history
    if h is None:
        return None
    rows = [
        {
            "when": fmt_time(p.starts_at),
            "lasted": fmt_duration(p.duration_seconds) if p.duration_seconds is not None else t["unresolved"],
            "causes": "; ".join(fmt_labels(c, plain=True) for c in p.root_causes) or "–",
            "match": matches.get(p.match, p.match),
            "ticket": p.ticket or "",
            "ticket_href": safe_url(p.ticket_url),
            "ended": p.closing_comment or (fmt_time(p.resolved_at) if p.resolved_at else ""),
            "summary": p.summary,
            "incident_id": p.incident_id,
        }
        for p in h.similar
    ]
    counts = ""
    if h.first_seen is not None:
        counts = t["seen_counts"].format(
            first=fmt_time(h.first_seen), n=h.last_30_days, same=h.same_cause_30_days
        )
    return {"rows": rows, "counts": counts, "nothing": t["seen_nothing"] if not rows and not counts else ""}


def _storm(report: Report, t: Mapping[str, str]) -> dict[str, Any] | None:
    """An alert storm's members as the templates print them; None when the report is one alert's."""
    st = report.storm
    if st is None:
        return None
    verdict = {True: t["storm_covered"], False: t["storm_not_covered"], None: t["storm_undetermined"]}
    return {
        "summary": t["storm_summary"].format(
            n=st.alerts,
            shared=fmt_labels(st.shared, plain=True) or "–",
            varying=", ".join(st.varying) or "–",
        ),
        "counts": t["storm_counts"].format(
            covered=st.covered, not_covered=st.not_covered, undetermined=st.undetermined
        ),
        "rows": [
            {"incident_id": m.incident_id, "labels": fmt_labels(m.labels), "verdict": verdict[m.covered]}
            for m in st.members
        ],
        "more": t["more_rows"].format(n=st.alerts - len(st.members)) if st.alerts > len(st.members) else "",
    }


def _timing_rows(timings: Mapping[str, float], phases: Mapping[str, str]) -> list[tuple[str, str]]:
    """(phase, shown value) per timings entry: `<phase>_seconds` in seconds, anything else a count."""
    rows = []
    for key, value in timings.items():
        if key.endswith("seconds"):
            phase = key.removesuffix("seconds").rstrip("_") or key
            shown = f"{fmt_num(value)} s"
        else:
            phase, shown = key, fmt_num(value)
        rows.append((phases.get(phase, phase), shown))
    return rows


def build_view(report: Report) -> dict[str, Any]:
    """The template context for `report`: see the module docstring."""
    lang = language(report.language)
    text = phrases("report", lang)
    t: dict[str, str] = text["labels"]
    statuses: dict[str, str] = text["status"]
    kinds: dict[str, str] = text["kinds"]
    alert = report.alert
    status_key = alert.status.strip().lower()
    annotations = alert.annotations
    other_annotations = [
        {"key": k, "value": v, "url": safe_url(v)}
        for k, v in annotations.items()
        if k not in ("summary", "description") and v
    ]
    evidence = []
    for ev in report.evidence:
        sparks, series_more = _sparklines(ev)
        evidence.append(
            {
                "ev": ev,
                "kind": kinds.get(ev.kind, ev.kind),
                "range": fmt_range(ev.start, ev.end),
                "step": fmt_duration(ev.step),
                "rows": [
                    {
                        "labels": fmt_labels(s.labels),
                        "baseline": fmt_num(s.baseline),
                        "incident": fmt_num(s.incident),
                        "peak": fmt_num(s.peak),
                    }
                    for s in ev.stats[:MAX_STAT_ROWS]
                ],
                "more_rows": t["more_rows"].format(n=len(ev.stats) - MAX_STAT_ROWS)
                if len(ev.stats) > MAX_STAT_ROWS
                else "",
                "sparks": sparks,
                "graph_href": safe_url(ev.graph_url),
                "more_series": t["more_series"].format(n=series_more) if series_more > 0 else "",
            }
        )
    unit = unit_of(report)
    root_causes = [
        {
            "rank": n,
            "rc": rc,
            "labels": fmt_labels(rc.labels),
            "score": fmt_num(rc.score),
            "change": f"{fmt_unit(rc.baseline, unit)} → {fmt_unit(rc.incident, unit)}",
            "share": fmt_pct(rc.explained_share),
        }
        for n, rc in enumerate(report.root_causes, start=1)
    ]
    llm = None
    if report.llm is not None:
        u = report.llm
        llm = {
            "u": u,
            "tokens": t["tokens_detail"].format(
                total=u.prompt_tokens + u.completion_tokens,
                prompt=u.prompt_tokens,
                completion=u.completion_tokens,
            ),
            "seconds": fmt_num(u.seconds),
        }
    windows = None
    if report.windows is not None:
        w = report.windows
        windows = {}
        for name, tr in (("baseline", w.baseline), ("incident", w.incident)):
            length = fmt_duration(tr.seconds)
            covered = report.data_coverage.get(name)
            if covered is not None and covered < tr.seconds:  # how much of the window had data
                length = t["with_data"].format(window=length, covered=fmt_duration(covered))
            windows[name] = f"{fmt_range(tr.start, tr.end)} ({length})"
    return {
        "r": report,
        "head": headline(report),
        "t": t,
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "known_ids": frozenset(ev.id for ev in report.evidence),
        "status_text": statuses.get(status_key, alert.status),
        "status_class": status_key if status_key in ("firing", "resolved") else "other",
        "severity": alert.labels.get("severity"),
        "starts_at": fmt_time(alert.starts_at),
        "ends_at": fmt_time(alert.ends_at) if alert.ends_at and alert.ends_at.year > 1 else t["still_firing"],
        "labels": sorted(alert.labels.items()),
        "ann_summary": annotations.get("summary", ""),
        "ann_description": annotations.get("description", ""),
        "other_annotations": other_annotations,
        "generator_url": alert.generator_url or "",
        "generator_href": safe_url(alert.generator_url),
        "windows": windows,
        "verdict_labels": fmt_labels(report.root_causes[0].labels) if report.root_causes else None,
        # Not localized: why it did not run (the writer's note), else it ran and found the change spread.
        "not_run": t["not_run"].format(why=report.localization_note) if report.localization_note else None,
        "root_causes": root_causes,
        "seen": _seen_before(report, t, text["match"]),
        "storm": _storm(report, t),
        "evidence": evidence,
        "llm": llm,
        "timings": _timing_rows(report.timings, text["phases"]),
        "created_at": fmt_time(report.created_at),
        "tickets": [{"sink": tk.sink, "key": tk.key, "href": safe_url(tk.url)} for tk in report.tickets],
    }
