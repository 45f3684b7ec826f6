"""What a report's analysis is, for deciding whether a repeat is news: pure functions over the Report.

A sink hears about an incident again (a ticket comment, a chat message) only when this changed: the
localized root causes, whether anything localized, and whether the investigation was degraded. The
figures themselves move with every refresh and are not news on their own.
"""

from __future__ import annotations

from typing import Any

from agent.models import Report
from server.delivery.message import label_set


def analysis_of(report: Report) -> dict[str, Any]:
    return {
        "localized": report.localized,
        "degraded": report.degraded,
        "causes": [label_set(dict(sorted(rc.labels.items()))) for rc in report.root_causes],
    }


def describe_change(old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    """None when nothing a person would act on changed; else one line saying what did."""
    if old is None:
        return None
    parts = []
    if old.get("causes") != new.get("causes"):
        before = "; ".join(old.get("causes") or []) or "none"
        after = "; ".join(new.get("causes") or []) or "none"
        parts.append(f"root causes {before} → {after}")
    if old.get("localized") != new.get("localized") and not parts:
        parts.append("now localized" if new.get("localized") else "no longer localized")
    if old.get("degraded") != new.get("degraded"):
        parts.append("investigation degraded" if new.get("degraded") else "investigation complete again")
    return ", ".join(parts) or None
