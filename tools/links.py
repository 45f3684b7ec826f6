"""Links to a query's graph, for people: Prometheus' own graph page or Grafana's Explore. Pure."""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import quote, urlencode, urlsplit

__all__ = ["grafana_explore", "prometheus_graph", "ui_base"]


def ui_base(generator_url: str | None, fallback: str | None) -> str | None:
    """The Prometheus UI people reach: the origin (and path prefix) of the alert's generatorURL, which
    Prometheus builds from its --web.external-url, else `fallback` (the URL alertsleuth queries)."""
    for url in (generator_url, fallback):
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            path = parts.path
            prefix = path[: path.rfind("/graph")] if "/graph" in path else path.rstrip("/")
            return f"{parts.scheme}://{parts.netloc}{prefix}"
    return None


def prometheus_graph(base: str, expr: str, start: datetime, end: datetime, step: float) -> str:
    """Prometheus' graph page showing `expr` over [start, end] at `step` seconds."""
    seconds = max(1, round((end - start).total_seconds()))
    query = urlencode(
        {
            "g0.expr": expr,
            "g0.tab": "0",
            "g0.range_input": f"{seconds}s",
            "g0.end_input": end.strftime("%Y-%m-%d %H:%M:%S"),
            "g0.moment_input": end.strftime("%Y-%m-%d %H:%M:%S"),
            "g0.step_input": f"{step:g}",
        },
        quote_via=quote,
    )
    return f"{base.rstrip('/')}/graph?{query}"


def grafana_explore(base: str, datasource: str, expr: str, start: datetime, end: datetime) -> str:
    """Grafana's Explore showing `expr` from data source `datasource` (its uid) over [start, end]."""
    pane = {
        "datasource": datasource,
        "queries": [{"refId": "A", "expr": expr, "datasource": {"type": "prometheus", "uid": datasource}}],
        "range": {"from": str(int(start.timestamp() * 1000)), "to": str(int(end.timestamp() * 1000))},
    }
    panes = json.dumps({"a": pane}, separators=(",", ":"))
    return f"{base.rstrip('/')}/explore?{urlencode({'schemaVersion': '1', 'panes': panes}, quote_via=quote)}"
