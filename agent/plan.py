"""Planning an investigation: which expression, which windows. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import promql_parser

from agent.models import AlertInfo, TimeRange, Windows


def expression_from_generator_url(url: str | None) -> str | None:
    """Prometheus' generatorURL carries the rule expression as `g0.expr` in its query string."""
    if not url:
        return None
    try:
        query = parse_qs(urlparse(url).query)
    except ValueError:
        return None
    values = query.get("g0.expr")
    return values[0].strip() if values and values[0].strip() else None


def find_rule(rules: Iterable[dict[str, Any]], alert: AlertInfo) -> dict[str, Any] | None:
    """The alerting rule that produced the alert: same name, and its static labels match the alert's."""
    best: dict[str, Any] | None = None
    for rule in rules:
        if rule.get("name") != alert.name or rule.get("type", "alerting") != "alerting":
            continue
        static = rule.get("labels") or {}
        if any(alert.labels.get(k) != v for k, v in static.items()):
            continue
        if best is None or (rule.get("state") == "firing" and best.get("state") != "firing"):
            best = rule
    return best


def parse_for(value: Any) -> timedelta:
    """A rule's `duration` from the rules API (seconds) or a Prometheus duration string."""
    if value is None or value == "":
        return timedelta(0)
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    return promql_parser.parse_duration(str(value))


def plan_windows(
    alert: AlertInfo,
    now: datetime,
    *,
    for_duration: timedelta,
    baseline: timedelta,
    min_incident: timedelta,
) -> Windows:
    """Incident: from when the condition began (startsAt - for) to the alert's end, or now.

    Baseline: at least `baseline` long and never shorter than the incident, ending where the incident
    window starts. An incident window shorter than `min_incident` is extended backwards.
    """
    cond_start = alert.starts_at - for_duration
    end = now
    if alert.status == "resolved" and alert.ends_at and alert.ends_at.year > 1 and alert.ends_at <= now:
        end = alert.ends_at
    end = max(end, cond_start)
    start = min(cond_start, end - min_incident)
    incident = TimeRange(start=start, end=end)
    length = max(baseline, end - start)
    return Windows(baseline=TimeRange(start=start - length, end=start), incident=incident)
