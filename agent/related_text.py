"""The related-context lines of a report in its language: other alerts firing, targets down, restarts
and deploys, worded from tools/related.py's findings with the phrases of agent/text/related.yaml."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.texts import phrases
from tools.format import fmt_label_value, rfc3339
from tools.related import FiringAlert, Interval, Restart, Section, TargetDown, VersionChange, labels_text

__all__ = ["section_lines"]


def _stamp(value: float) -> str:
    return rfc3339(value, seconds=True)


def _when(intervals: Sequence[Interval], state: str, t: Mapping[str, Any]) -> str:
    """'since T', 'from T1 to T2' or 'N times from T1 to T2'; 'before T1' when the range cut the start."""
    first, last = intervals[0], intervals[-1]
    start = t["before"].format(start=_stamp(first.start)) if first.open_start else _stamp(first.start)
    if len(intervals) == 1:
        if last.open_end:
            return str(t["since"].format(start=start))
        return str(t["from_to"].format(start=start, end=_stamp(last.end)))
    text = t["times"].format(n=len(intervals), start=start, end=_stamp(last.end))
    return str(text + (t["still"].format(state=t["states"][state]) if last.open_end else ""))


def _line(finding: Any, t: Mapping[str, Any]) -> str:
    if isinstance(finding, FiringAlert):
        text = t["alert"].format(
            name=fmt_label_value(finding.alertname), when=_when(finding.intervals, "firing", t)
        )
        return str(
            text + (t["with_labels"].format(labels=labels_text(finding.labels)) if finding.labels else "")
        )
    if isinstance(finding, TargetDown):
        return str(
            t["target_down"].format(
                labels=labels_text(finding.labels), when=_when(finding.intervals, "down", t)
            )
        )
    if isinstance(finding, Restart):
        key = "restarted" if finding.start > finding.previous_start else "went_back"
        return str(
            t[key].format(
                labels=labels_text(finding.labels),
                start=_stamp(finding.start),
                previous=_stamp(finding.previous_start),
                seen=_stamp(finding.seen_at),
            )
        )
    if isinstance(finding, VersionChange):

        def show(v: str | None) -> str:
            return str(t["none"]) if v is None else fmt_label_value(v)

        diff = ", ".join(t["change"].format(name=n, old=show(o), new=show(v)) for n, o, v in finding.changes)
        who = labels_text({"job": finding.job, "instance": finding.instance})
        return str(
            t["deploy"].format(
                who=who, diff=diff, at=_stamp(finding.at), metric=fmt_label_value(finding.metric)
            )
        )
    return str(getattr(finding, "summary", finding))


def section_lines(section: Section[Any], lang: str) -> list[str]:
    """One line per finding of `section` in `lang`, then how many were left out."""
    t = phrases("related", lang)
    out = [_line(f, t) for f in section.findings]
    if section.truncated:
        noun = t["nouns"].get(section.kind, section.noun)
        out.append(
            t["left_out"].format(
                n=section.total - len(section.findings), noun=noun, shown=len(section.findings)
            )
        )
    return out
