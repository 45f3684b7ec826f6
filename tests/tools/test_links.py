"""Links to a query's graph (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from tools.links import grafana_explore, prometheus_graph, ui_base

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
END = datetime(2026, 12, 1, 11, 30, tzinfo=UTC)
EXPR = 'sum(rate(x_total{code=~"5.."}[5m])) / sum(rate(x_total[5m]))'


def test_the_prometheus_people_reach_is_the_alerts_own() -> None:
    assert ui_base("https://prom.example.com/prometheus/graph?g0.expr=up", "http://10.0.0.1:9090") == (
        "https://prom.example.com/prometheus"
    )
    assert ui_base(None, "http://10.0.0.1:9090/") == "http://10.0.0.1:9090"
    assert ui_base("javascript:alert(1)", None) is None


def test_prometheus_graph_shows_the_query_over_its_range() -> None:
    url = prometheus_graph("http://prom:9090/", EXPR, START, END, 15.0)
    parts = urlsplit(url)
    assert parts.path == "/graph"
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["g0.expr"] == EXPR and q["g0.range_input"] == "5400s"
    assert q["g0.end_input"] == "2026-12-01 11:30:00" and q["g0.step_input"] == "15" and q["g0.tab"] == "0"


def test_grafana_explore_carries_the_datasource_query_and_range() -> None:
    url = grafana_explore("https://grafana.example.com", "prom-uid", EXPR, START, END)
    parts = urlsplit(url)
    assert parts.path == "/explore"
    pane = json.loads(parse_qs(parts.query)["panes"][0])["a"]
    assert pane["queries"][0]["expr"] == EXPR and pane["datasource"] == "prom-uid"
    assert pane["range"] == {
        "from": str(int(START.timestamp() * 1000)),
        "to": str(int(END.timestamp() * 1000)),
    }
