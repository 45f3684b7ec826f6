"""The Prometheus adapter against a real Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exporter.launch import free_port
from tests.conftest import PromEnv
from tools.errors import PrometheusUnavailable, QueryError, QueryTooLarge
from tools.prom import Prometheus


def test_range_query_returns_typed_series(prom: PromEnv) -> None:
    p = Prometheus(prom.url)
    end = datetime.fromtimestamp(prom.now, UTC)
    series = p.range_query(
        'sum by (ip_region) (user_login_total{scenario="steady"})', end - timedelta(minutes=5), end, 15
    )
    assert {s.labels["ip_region"] for s in series} == {
        "beijing",
        "shanghai",
        "guangzhou",
        "shenzhen",
        "hangzhou",
    }
    assert all(len(s.values) == 21 for s in series)
    assert p.log.queries == 1


def test_bad_promql_is_a_query_error_naming_the_problem(prom: PromEnv) -> None:
    p = Prometheus(prom.url)
    now = datetime.now(UTC)
    with pytest.raises(QueryError, match="parse error"):
        p.range_query("sum(rate(x[5m])", now - timedelta(minutes=1), now, 15)


def test_too_many_points_is_refused_before_asking() -> None:
    p = Prometheus("http://127.0.0.1:9")
    now = datetime.now(UTC)
    with pytest.raises(QueryTooLarge, match="points per series"):
        p.range_query("up", now - timedelta(days=30), now, 1)


def test_unreachable_prometheus() -> None:
    p = Prometheus(f"http://127.0.0.1:{free_port()}", timeout=2, retries=0)
    now = datetime.now(UTC)
    with pytest.raises(PrometheusUnavailable, match="unreachable"):
        p.range_query("up", now - timedelta(minutes=1), now, 15)
    assert p.ready() is False


def test_rules_series_labels(prom: PromEnv) -> None:
    p = Prometheus(prom.url)
    rules = p.rules()
    assert [r["name"] for r in rules] == ["BurstFailureRatio"]
    assert rules[0]["duration"] == 120
    end = datetime.fromtimestamp(prom.now, UTC)
    found = p.series(['user_login_total{scenario="burst"}'], end - timedelta(minutes=10), end)
    assert len(found) == 20
    assert "ip_region" in p.label_names()
    assert p.ready()
