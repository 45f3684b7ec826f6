"""The report's first screen: the verdict in the signal's unit, where, since when (pure)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.headline import headline
from agent.models import Report
from agent.render import render_html, render_markdown
from tests.agent.test_render import START, make_report
from tools.format import fmt_unit, signal_unit


@pytest.mark.parametrize(
    ("expr", "values", "unit"),
    [
        ("sum(rate(a[5m])) / sum(rate(b[5m])) > 0.2", [0.02, 0.41, 0.2], "ratio"),
        ("sum(rate(a[5m])) / sum(rate(b[5m])) > 20", [2.0, 41.0, 20.0], ""),  # a ratio times 100
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) > 0.5", [0.1, 0.9], "seconds"),
        ("sum(rate(http_requests_total[5m])) > 100", [50.0, 150.0], "per_second"),
        ("max(queue_depth) > 100", [50.0, 150.0], ""),
        (None, [0.5], ""),
    ],
)
def test_the_unit_of_a_signal(expr: str | None, values: list[float], unit: str) -> None:
    assert signal_unit(expr, values) == unit


def test_values_read_in_their_unit() -> None:
    assert fmt_unit(0.8691, "ratio") == "86.91%"
    assert fmt_unit(0.83, "seconds") == "0.83 s"
    assert fmt_unit(120.5, "per_second") == "120.5/s"
    assert fmt_unit(None, "seconds") == "–"


def ratio_report(lang: str = "en") -> Report:
    report = make_report(lang, threshold=0.2, comparison=">")
    for rc in report.root_causes:  # make_report's causes read 0.1 → 12.5: not a ratio's values
        rc.baseline, rc.incident = 0.01, 0.85
    return report


def test_the_verdict_says_what_where_and_since_when() -> None:
    report = ratio_report()
    head = headline(report, now=START + timedelta(minutes=12))
    # the signal's baseline 0.02, incident 0.4133, peak 0.5871 in make_report; a ratio: percentages
    assert head.verdict == (
        "HighLoginFailureRate: the signal rose from 2% to 41.33% (peak 58.71%); the alert fires at > 20%."
    )
    assert (
        head.where
        == "Where: user_type=admin, ip_region=shanghai, 87.34% of the change. 1 more cause(s) below."
    )
    assert head.since == "Firing since 2026-11-21 16:30:00 UTC (12m)."
    assert head.severity == "critical"


def test_the_first_screen_comes_before_the_metadata() -> None:
    report = ratio_report()
    page = render_html(report)
    assert page.index('class="headline"') < page.index('id="summary"') < page.index('id="alert"')
    md = render_markdown(report)
    assert md.index("the signal rose from") < md.index("## Summary") < md.index("## Alert")


def test_the_verdict_in_chinese() -> None:
    head = headline(ratio_report("zh"), now=START + timedelta(minutes=12))
    assert "信号从 2% 升至 41.33%" in head.verdict and head.where.startswith("位置：")
