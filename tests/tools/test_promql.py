from __future__ import annotations

import pytest

from tools import promql
from tools.errors import UnsupportedQuery

RATIO = 'sum(rate(user_login_total{login_status="failed"}[5m])) / sum(rate(user_login_total[5m])) > 0.2'


def test_round_trip_is_valid_promql() -> None:
    for text in [
        RATIO,
        'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{job="api"}[5m])))',
        "max_over_time(rate(x[1m])[5m:30s])",
        "a / on (i) group_left (z) b",
        "topk(3, sum by (route) (rate(x[1m])))",
        'up{job=~"node.*"} == 0',
        "x offset 5m",
        '-sum(x{path="a\\"b"})',
    ]:
        printed = promql.parse(text).promql()
        assert promql.parse(printed).promql() == printed  # stable and re-parseable


def test_split_condition_strips_threshold() -> None:
    cond = promql.split_condition(promql.parse(RATIO))
    assert cond.op == ">" and cond.threshold == 0.2
    assert ">" not in cond.signal.promql()
    flipped = promql.split_condition(promql.parse("0.5 < sum(x)"))
    assert flipped.op == ">" and flipped.threshold == 0.5 and flipped.signal.promql() == "sum (x)"


def test_split_condition_drops_guards_and_notes_them() -> None:
    cond = promql.split_condition(promql.parse("sum(rate(e[5m])) > 1 and sum(rate(t[5m])) > 10"))
    assert cond.threshold == 1
    assert any("guard" in n for n in cond.notes)


def test_shape_recognises_ratio_sum_and_other() -> None:
    ratio = promql.shape_of(promql.split_condition(promql.parse(RATIO)).signal)
    assert ratio.kind == "ratio"
    assert ratio.num.promql() == 'sum (rate(user_login_total{login_status="failed"}[5m]))'
    assert ratio.den is not None and ratio.den.promql() == "sum (rate(user_login_total[5m]))"
    scaled = promql.shape_of(promql.parse("100 * (sum(a) / sum(b))"))
    assert scaled.kind == "ratio" and scaled.scale == 100
    assert promql.shape_of(promql.parse("sum(rate(x[5m]))")).kind == "additive"
    other = promql.shape_of(promql.parse("stddev(x)"))
    assert other.kind == "other" and other.notes


def test_shape_of_other_aggregations() -> None:
    avg = promql.shape_of(promql.parse("avg by (job) (cpu)"))
    assert avg.kind == "ratio" and avg.notes
    assert avg.num.promql() == "sum by (job) (cpu)"
    assert avg.den is not None and avg.den.promql() == "count by (job) (cpu)"
    assert promql.shape_of(promql.parse("count(up == 1)")).kind == "additive"
    for text, leaves in (
        ("max(fs)", "max (fs)"),
        ("topk(3, lag)", "max (lag)"),
        ("bottomk(2, mem)", "min (mem)"),
    ):
        shape = promql.shape_of(promql.parse(text))
        assert shape.kind == "extreme" and shape.num.promql() == leaves
    assert promql.group_by(promql.shape_of(promql.parse("min(mem)")).num, ["instance"]).promql() == (
        "min by (instance) (mem)"
    )


def test_group_by_rewrites_every_aggregation() -> None:
    signal = promql.split_condition(promql.parse(RATIO)).signal
    out = promql.group_by(signal, ["ip_region", "user_type"]).promql()
    assert out.count("sum by (ip_region, user_type)") == 2
    assert promql.group_by(promql.parse("sum by (job) (x)"), ["r"]).promql() == "sum by (job, r) (x)"
    assert promql.group_by(promql.parse("sum without (r, i) (x)"), ["r"]).promql() == "sum without (i) (x)"
    assert promql.group_by(promql.parse("a / on (i) b"), ["r"]).promql() == "a / on (i, r) b"
    assert promql.group_by(promql.parse("a / ignoring (r) b"), ["r"]).promql() == "a / ignoring () b"


def test_with_matchers_restricts_every_selector() -> None:
    out = promql.with_matchers(promql.parse(RATIO), [promql.Matcher("ip_region", "=", "上海")]).promql()
    assert out.count('ip_region="上海"') == 2
    assert 'login_status="failed"' in out


def test_metric_names_and_selectors() -> None:
    node = promql.parse('sum(rate(a_total{x="1"}[5m])) / sum(rate(b_total[5m])) + sum(a_total)')
    assert promql.metric_names(node) == ["a_total", "b_total"]
    assert len(promql.selectors(node)) == 3


def test_outer_grouping() -> None:
    assert promql.outer_grouping(promql.parse("sum by (instance) (x) / sum by (instance) (y)")) == (
        "instance",
    )
    assert promql.outer_grouping(promql.parse("sum(x)")) == ()


def test_unparseable_query_is_reported() -> None:
    with pytest.raises(UnsupportedQuery, match="cannot parse"):
        promql.parse("sum(rate(x[5m]) >")


def test_histogram_quantile_is_a_quantile_shape_and_becomes_a_ratio_of_bucket_rates() -> None:
    signal = promql.parse(
        'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{job="api"}[5m])))'
    )
    shape = promql.shape_of(signal)
    assert (shape.kind, shape.quantile) == ("quantile", 0.99)
    assert isinstance(shape.num, promql.Aggregate)
    slow, total = promql.slower_than(shape.num, "0.5", ["route", "pod"])
    assert total.promql() == (
        'sum by (route, pod) (rate(http_request_duration_seconds_bucket{job="api",le="+Inf"}[5m]))'
    )
    assert slow.promql() == (
        total.promql() + " - "
        'sum by (route, pod) (rate(http_request_duration_seconds_bucket{job="api",le="0.5"}[5m]))'
    )
    # the rewritten queries parse back: no string surgery
    assert promql.parse(slow.promql()).promql() == slow.promql()


def test_quantile_over_series_without_le_is_not_a_quantile_shape() -> None:
    for text in (
        "histogram_quantile(0.9, rate(x_bucket[5m]))",  # per-series quantiles, no sum
        "histogram_quantile(0.9, sum by (route) (rate(x_bucket[5m])))",  # le summed away
    ):
        assert promql.shape_of(promql.parse(text)).kind == "other"


def test_window_mean_is_pushed_inside_a_sum_where_it_means_the_same() -> None:
    from datetime import timedelta

    two, five, minute = timedelta(minutes=2), timedelta(minutes=5), timedelta(minutes=1)
    gauge = promql.parse('sum by (a, b) (queue_depth{job="q"})')
    assert promql.window_mean(gauge, two, five, minute).promql() == (
        'sum by (a, b) (avg_over_time(queue_depth{job="q"}[2m] offset 5m))'
    )
    counter = promql.parse("sum by (a) (rate(requests_total[5m]))")
    # the mean rate over the window, never over less than the rate's own range
    assert promql.window_mean(counter, two, timedelta(0), minute).promql() == (
        "sum by (a) (rate(requests_total[5m]))"
    )
    assert promql.window_mean(counter, timedelta(minutes=10), five, minute).promql() == (
        "sum by (a) (rate(requests_total[10m] offset 5m))"
    )
    # anything else (an offset already there, another aggregation): a subquery at the step
    for text in ("sum by (a) (rate(requests_total[5m] offset 1h))", "max by (a) (x)"):
        mean = promql.window_mean(promql.parse(text), two, five, minute).promql()
        assert mean.startswith("avg_over_time(") and mean.endswith("[2m:1m] offset 5m)"), mean
        promql.parse(mean)  # valid PromQL
