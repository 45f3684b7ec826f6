from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.models import AlertInfo
from agent.plan import expression_from_generator_url, find_rule, parse_for, plan_windows

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def alert(**kw: object) -> AlertInfo:
    data: dict[str, object] = {
        "name": "HighLoginFailureRate",
        "labels": {"alertname": "HighLoginFailureRate", "severity": "critical"},
        "starts_at": T0,
    }
    data.update(kw)
    return AlertInfo.model_validate(data)


def test_generator_url_expression() -> None:
    url = (
        "http://prometheus:9090/graph?g0.expr=sum%28rate%28x%7Bs%3D%22failed%22%7D%5B5m%5D%29%29+%3E+0.2"
        "&g0.tab=1"
    )
    assert expression_from_generator_url(url) == 'sum(rate(x{s="failed"}[5m])) > 0.2'
    assert expression_from_generator_url("http://x/graph?g0.tab=1") is None
    assert expression_from_generator_url(None) is None


def test_find_rule_matches_name_and_static_labels() -> None:
    rules = [
        {
            "name": "HighLoginFailureRate",
            "labels": {"severity": "warning"},
            "query": "a > 1",
            "type": "alerting",
        },
        {
            "name": "HighLoginFailureRate",
            "labels": {"severity": "critical"},
            "query": "b > 1",
            "type": "alerting",
        },
        {"name": "Other", "labels": {}, "query": "c", "type": "alerting"},
    ]
    found = find_rule(rules, alert())
    assert found is not None and found["query"] == "b > 1"
    assert find_rule(rules, alert(name="Missing")) is None


def test_parse_for() -> None:
    assert parse_for(60) == timedelta(minutes=1)
    assert parse_for("5m") == timedelta(minutes=5)
    assert parse_for(None) == timedelta(0)


def test_windows_start_when_the_condition_began() -> None:
    now = T0 + timedelta(minutes=5)
    w = plan_windows(
        alert(),
        now,
        for_duration=timedelta(minutes=1),
        baseline=timedelta(hours=1),
        min_incident=timedelta(seconds=60),
    )
    assert w.incident.start == T0 - timedelta(minutes=1)
    assert w.incident.end == now
    assert w.baseline.end == w.incident.start
    assert w.baseline.seconds == 3600


def test_resolved_alert_ends_at_its_end_and_short_incident_is_extended() -> None:
    ended = T0 + timedelta(seconds=20)
    w = plan_windows(
        alert(status="resolved", ends_at=ended),
        T0 + timedelta(hours=1),
        for_duration=timedelta(0),
        baseline=timedelta(minutes=10),
        min_incident=timedelta(seconds=60),
    )
    assert w.incident.end == ended
    assert w.incident.seconds == 60
    assert w.baseline.seconds == 600
