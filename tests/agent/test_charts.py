"""Charts of a report from its evidence's series: keys and order, SVG and PNG output, hostile and
Chinese text, odd data, determinism, thread safety."""

from __future__ import annotations

import io
import logging
import math
import threading
import warnings
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import matplotlib
import pytest
from PIL import Image

from agent.charts import BASELINE_COLOR, DPI, FIRING_COLOR, MARGINS, ROW_HEIGHT, Chart, draw
from agent.models import AlertInfo, Evidence, Report, RootCause, TimeRange, Windows

SVG_NS = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 11, 21, 16, 30, tzinfo=UTC)
BASELINE = TimeRange(start=START - timedelta(minutes=65), end=START - timedelta(minutes=5))
INCIDENT = TimeRange(start=START - timedelta(minutes=5), end=START + timedelta(minutes=15))
EXPR = 'sum(rate(login_attempts_total{result="failure"}[5m])) / sum(rate(login_attempts_total[5m])) > 0.2'
HOSTILE = ["$x$", "<script>alert(1)</script>", "a&b", "\u202eevil", "back\\slash", r"$\notacommand{$"]


def _points(base: float, bump: float, n: int = 80) -> list[list[Any]]:
    """One point a minute over the baseline and incident windows, `bump` added in the incident."""
    t0 = BASELINE.start.timestamp()
    return [[t0 + 60 * i, base + (bump if i >= 60 else 0.0) + 0.001 * (i % 3)] for i in range(n)]


def _evidence(eid: str, kind: str, title: str, series: list[dict[str, Any]] | None, promql: str) -> Evidence:
    return Evidence(
        id=eid,
        kind=kind,
        title=title,
        promql=promql,
        start=BASELINE.start,
        end=INCIDENT.end,
        step=60,
        summary="",
        series=series,
    )


def _breakdown(eid: str, label: str, values: list[str], rest: bool = True) -> Evidence:
    series = [
        {"labels": {label: v}, "points": _points(1.0 + i, 5.0 if i == 0 else 0.0), "role": "series"}
        for i, v in enumerate(values)
    ]
    if rest:
        series.append({"labels": {}, "points": _points(20.0, 1.0), "role": "rest"})
    return _evidence(
        eid,
        "breakdown",
        f"Alert signal by {label}",
        series,
        f"sum by ({label}) (rate(login_attempts_total[5m]))",
    )


def _localization(eid: str, labels: dict[str, str], rest: bool = True) -> Evidence:
    series = [{"labels": labels, "points": _points(0.05, 0.6), "role": "cause"}]
    if rest:
        series.append({"labels": {}, "points": _points(0.02, 0.01), "role": "rest"})
    where = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return _evidence(eid, "localization", f"Alert signal within {where}", series, EXPR.removesuffix(" > 0.2"))


def make_report(
    language: str = "en",
    *,
    evidence: list[Evidence] | None = None,
    root_causes: list[RootCause] | None = None,
    threshold: float | None = 0.2,
    comparison: str | None = ">",
    **fields: Any,
) -> Report:
    """A report of 1 signal, 2 localized root causes and 4 breakdowns (unless told otherwise), with the
    threshold and comparison the alert rule gives."""
    if evidence is None:
        evidence = [
            _evidence(
                "E1",
                "signal",
                "Alert signal",
                [{"labels": {}, "points": _points(0.02, 0.4), "role": "signal"}],
                EXPR.removesuffix(" > 0.2"),
            ),
            _breakdown(
                "E2", "ip_region", ["shanghai", "beijing", "guangzhou", "shenzhen", "hangzhou", "wuhan"]
            ),
            _breakdown("E3", "user_type", ["admin", "normal"]),
            _breakdown("E4", "client", ["web", "ios", "android"], rest=False),
            _breakdown("E5", "dc", ["dc1", "dc2", "dc3"]),
            _localization("E6", {"ip_region": "shanghai", "user_type": "admin"}),
            _localization("E7", {"ip_region": "beijing"}),
        ]
    if root_causes is None:
        root_causes = [
            RootCause(
                labels={"user_type": "admin", "ip_region": "shanghai"},
                score=0.9,
                statement="Admin logins from shanghai fail [E6].",
                evidence_ids=["E2", "E6"],
            ),
            RootCause(labels={"ip_region": "beijing"}, score=0.2, statement="[E7]", evidence_ids=["E7"]),
        ]
    values: dict[str, Any] = {
        "id": "3f2a9c1e-7b44-4d0e-9a51-0c1d2e3f4a5b",
        "alert": AlertInfo(name="HighLoginFailureRate", starts_at=INCIDENT.start),
        "expression": EXPR,
        "windows": Windows(baseline=BASELINE, incident=INCIDENT),
        "summary": "The login failure ratio rose [E1].",
        "root_causes": root_causes,
        "evidence": evidence,
        "language": language,
        **fields,
    }
    report = Report.model_validate(values)
    # `threshold` and `comparison` are Report fields being added: set them whether or not they exist yet
    return report.model_copy(update={"threshold": threshold, "comparison": comparison})


def _svg(chart: Chart) -> ET.Element:
    assert isinstance(chart.data, str)
    return ET.fromstring(chart.data)


def _texts(chart: Chart) -> list[str]:
    return ["".join(el.itertext()) for el in _svg(chart).iter(f"{SVG_NS}text")]


def _fills(chart: Chart) -> list[str]:
    return [el.get("style", "") for el in _svg(chart).iter(f"{SVG_NS}path")]


def _png(chart: Chart) -> Image.Image:
    assert isinstance(chart.data, bytes)
    return Image.open(io.BytesIO(chart.data))


def _by_key(charts: list[Chart]) -> dict[str, Chart]:
    return {c.key: c for c in charts}


# ---------------------------------------------------------------------------------------------------
# Which charts, in which order
# ---------------------------------------------------------------------------------------------------


def test_keys_order_and_evidence() -> None:
    charts = draw(make_report())
    assert [c.key for c in charts] == [
        "signal",
        "cause-1",
        "cause-2",
        "breakdown-ip_region",
        "breakdown-user_type",
        "breakdown-client",
        "breakdown-dc",
    ]
    assert [c.evidence_id for c in charts] == ["E1", "E6", "E7", "E2", "E3", "E4", "E5"]
    assert charts[0].title == "Alert signal: HighLoginFailureRate"
    assert charts[1].title == "Root cause 1: ip_region=shanghai, user_type=admin"
    assert charts[3].title == "Alert signal by ip_region"


def test_the_writers_choice_comes_right_after_the_signal() -> None:
    report = make_report()
    report.charted = ["E4", "E7"]  # a breakdown and a cause's localization, in the writer's order
    charts = draw(report)
    assert [c.evidence_id for c in charts] == ["E1", "E4", "E7", "E6", "E2", "E3", "E5"]
    assert [c.key for c in charts][:3] == ["signal", "breakdown-client", "cause-2"]
    assert [c.key for c in draw(report, limit=3)] == ["signal", "breakdown-client", "cause-2"]
    report.charted = ["E99", "E1"]  # an unknown id draws nothing; the signal stays first
    assert [c.evidence_id for c in draw(report)] == ["E1", "E6", "E7", "E2", "E3", "E4", "E5"]


def test_limit() -> None:
    report = make_report()
    assert [c.key for c in draw(report, limit=2)] == ["signal", "cause-1"]
    assert draw(report, limit=0) == []
    assert len(draw(report)) == 7  # the default limit of 8 leaves all of them


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError):
        draw(make_report(), "pdf")  # type: ignore[arg-type]


def test_repeated_breakdown_keys_are_made_unique() -> None:
    report = make_report(
        evidence=[_breakdown("E2", "ip_region", ["a", "b"]), _breakdown("E3", "ip_region", ["c"])],
        root_causes=[],
    )
    assert [c.key for c in draw(report)] == ["breakdown-ip_region", "breakdown-ip_region-2"]


def test_evidence_without_series_has_no_chart() -> None:
    evidence = [
        _evidence("E1", "signal", "Alert signal", None, "x"),
        _evidence("E2", "breakdown", "Alert signal by ip_region", [], "x"),
        _evidence("E3", "localization", "Alert signal within a", None, "x"),
        _evidence("E4", "related", "Related alerts", [{"labels": {}, "points": _points(1, 1)}], "ALERTS"),
        _evidence("E5", "breakdown", "by dc", [{"labels": {"dc": "a"}, "points": [], "role": "series"}], "x"),
        _breakdown("E6", "user_type", ["admin"]),
    ]
    causes = [RootCause(labels={"a": "b"}, score=0.5, statement="", evidence_ids=["E3", "E6"])]
    assert [c.key for c in draw(make_report(evidence=evidence, root_causes=causes))] == [
        "breakdown-user_type"
    ]
    assert draw(make_report(evidence=[], root_causes=[])) == []


def test_cause_chart_uses_the_cited_localization_and_its_rank() -> None:
    evidence = [_localization("E1", {"ip_region": "x"}), _localization("E2", {"ip_region": "y"}, rest=False)]
    causes = [
        RootCause(labels={"ip_region": "z"}, score=0.9, statement="", evidence_ids=["E9"]),
        RootCause(labels={"ip_region": "y"}, score=0.5, statement="", evidence_ids=["E2"]),
    ]
    (chart,) = draw(make_report(evidence=evidence, root_causes=causes))
    assert (chart.key, chart.evidence_id) == ("cause-2", "E2")
    texts = _texts(chart)
    assert "rest of the traffic" not in texts  # no rest series: one line, no legend


# ---------------------------------------------------------------------------------------------------
# SVG
# ---------------------------------------------------------------------------------------------------


def test_signal_svg_threshold_shading_and_inline_form() -> None:
    chart = draw(make_report())[0]
    assert isinstance(chart.data, str)
    assert chart.data.startswith("<svg ")
    assert "<?xml" not in chart.data and "<!DOCTYPE" not in chart.data
    root = _svg(chart)
    assert root.tag == f"{SVG_NS}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label") == chart.title
    texts = _texts(chart)
    assert "threshold > 20%" in texts
    assert chart.title in texts
    assert "UTC" in texts
    assert {"15:30", "16:00", "16:30"} <= set(texts)  # times in UTC, HH:MM
    assert any(t.endswith("%") and t != "threshold > 20%" for t in texts)  # a ratio: percentages
    fills = _fills(chart)
    assert any(f"fill: {FIRING_COLOR}; opacity" in s for s in fills)  # the firing period
    assert any(f"fill: {BASELINE_COLOR}; opacity" in s for s in fills)  # the baseline window
    assert "stroke-dasharray" in chart.data  # the threshold line is dashed


def test_signal_without_threshold_or_ratio() -> None:
    evidence = [
        _evidence(
            "E1",
            "signal",
            "Alert signal",
            [{"labels": {}, "points": _points(120.0, 900.0), "role": "signal"}],
            "sum(rate(http_requests_total[5m]))",
        )
    ]
    report = make_report(
        evidence=evidence,
        root_causes=[],
        threshold=None,
        comparison=None,
        expression="sum(rate(x[5m])) > 500",
    )
    texts = _texts(draw(report)[0])
    assert not any("threshold" in t for t in texts)
    assert not any(t.endswith("%") for t in texts)
    assert any(t.isdigit() and int(t) >= 200 for t in texts)  # plain numbers on the value axis


def test_threshold_without_comparison_and_plain_numbers() -> None:
    evidence = [
        _evidence("E1", "signal", "s", [{"labels": {}, "points": _points(0.5, 0.3), "role": "signal"}], "up")
    ]
    report = make_report(
        evidence=evidence, root_causes=[], threshold=0.7, comparison="~", expression="up > 0.7"
    )
    assert "threshold 0.7" in _texts(draw(report)[0])  # no "/" in the expression: not a ratio


def test_several_signal_series_get_a_legend() -> None:
    series = [
        {"labels": {"job": "a"}, "points": _points(0.1, 0.2), "role": "signal"},
        {"labels": {"job": "b"}, "points": _points(0.2, 0.1), "role": "signal"},
    ]
    evidence = [_evidence("E1", "signal", "s", series, EXPR)]
    texts = _texts(draw(make_report(evidence=evidence, root_causes=[]))[0])
    assert {"job=a", "job=b"} <= set(texts)
    one = [_evidence("E1", "signal", "s", series[:1], EXPR)]
    assert "job=a" not in _texts(draw(make_report(evidence=one, root_causes=[]))[0])


def test_cause_svg_legend_and_shading() -> None:
    chart = _by_key(draw(make_report()))["cause-1"]
    texts = _texts(chart)
    assert {"ip_region=shanghai, user_type=admin", "rest of the traffic"} <= set(texts)
    assert any(f"fill: {FIRING_COLOR}; opacity" in s for s in _fills(chart))


def test_breakdown_svg_has_a_row_per_value_and_the_rest() -> None:
    chart = _by_key(draw(make_report()))["breakdown-ip_region"]
    texts = _texts(chart)
    assert {"shanghai", "beijing", "guangzhou", "shenzhen", "hangzhou", "wuhan", "other values"} <= set(texts)
    assert "6.002" in texts  # shanghai's peak: 1 + 5 + 0.002, on its row's value axis
    client = _by_key(draw(make_report()))["breakdown-client"]
    assert "other values" not in _texts(client)


def test_svg_has_no_script_nor_external_reference() -> None:
    for chart in draw(make_report()):
        assert isinstance(chart.data, str)
        assert "<script" not in chart.data.lower()
        assert "http://www.w3.org/Graphics" not in chart.data  # the DOCTYPE's DTD
        for el in _svg(chart).iter():
            for name, value in el.attrib.items():
                if name.endswith("href"):
                    assert value.startswith("#"), value


def test_svg_is_deterministic() -> None:
    first = draw(make_report())
    second = draw(make_report())
    assert [c.data for c in first] == [c.data for c in second]
    assert [c.data for c in draw(make_report(), "png")] == [c.data for c in draw(make_report(), "png")]


# ---------------------------------------------------------------------------------------------------
# PNG
# ---------------------------------------------------------------------------------------------------


def test_png_sizes_and_metadata() -> None:
    charts = _by_key(draw(make_report(), "png"))
    for chart in charts.values():
        assert isinstance(chart.data, bytes)
        assert chart.data.startswith(b"\x89PNG\r\n\x1a\n")
        image = _png(chart)
        assert image.format == "PNG"
        assert not {"Software", "Creation Time", "Date"} & set(image.info)
    assert _png(charts["signal"]).size == (640, 220)
    assert _png(charts["cause-1"]).size == (640, 220)
    rows = 7  # six values and the rest
    height = round(DPI * (MARGINS[2] + MARGINS[3] + ROW_HEIGHT * rows))
    assert _png(charts["breakdown-ip_region"]).size == (640, height)


# ---------------------------------------------------------------------------------------------------
# Hostile and Chinese text
# ---------------------------------------------------------------------------------------------------


def _hostile_report(language: str = "en") -> Report:
    evidence = [
        _evidence(
            "E1", "signal", "s", [{"labels": {}, "points": _points(0.02, 0.4), "role": "signal"}], EXPR
        ),
        _breakdown("E2", "ip_region", HOSTILE),
        _localization("E3", {"ip_region": "$x$", "user_type": "<script>alert(1)</script>"}),
    ]
    causes = [
        RootCause(
            labels={"ip_region": "$x$", "user_type": "<script>alert(1)</script>"},
            score=0.9,
            statement="",
            evidence_ids=["E3"],
        )
    ]
    alert = AlertInfo(name="Evil$a$<script>&\u202e", starts_at=INCIDENT.start)
    return make_report(language, evidence=evidence, root_causes=causes, alert=alert)


def test_hostile_text_is_text_and_escaped() -> None:
    charts = _by_key(draw(_hostile_report()))
    assert list(charts) == ["signal", "cause-1", "breakdown-ip_region"]  # "$\notacommand{$" is no mathtext
    for chart in charts.values():
        assert isinstance(chart.data, str)
        assert "<script" not in chart.data
        assert "\u202e" not in chart.data
    raw = charts["breakdown-ip_region"].data
    assert isinstance(raw, str)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert "a&amp;b" in raw
    texts = _texts(charts["breakdown-ip_region"])
    for shown in ['"$x$"', '"<script>alert(1)</script>"', '"a&b"', '"\\u202eevil"', '"back\\\\slash"']:
        assert shown in texts, shown
    assert r'"$\\notacommand{$"' in texts
    assert charts["signal"].title == "Alert signal: Evil$a$<script>&\\u202e"
    assert charts["signal"].title in _texts(charts["signal"])
    root = _svg(charts["signal"])
    assert root.get("aria-label") == charts["signal"].title
    legend = 'ip_region="$x$", user_type="<script>alert(1)</script>"'
    assert legend in _texts(charts["cause-1"])


def test_hostile_text_draws_as_png() -> None:
    assert [c.key for c in draw(_hostile_report(), "png")] == ["signal", "cause-1", "breakdown-ip_region"]


def test_control_characters_keep_the_svg_valid() -> None:
    evidence = [_breakdown("E1", "ip_region", ["a\x00b", "c\x1bd", "e\nf", "\ud800"])]
    (chart,) = draw(make_report(evidence=evidence, root_causes=[]))
    texts = _texts(chart)  # parses: no raw control character or lone surrogate reached the XML
    assert {'"a\\u0000b"', '"c\\u001bd"', '"e\\nf"', '"\\ud800"'} <= set(texts)


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_chinese_report_draws_without_warnings(fmt: str) -> None:
    report = make_report(
        "zh",
        evidence=[
            _evidence(
                "E1", "signal", "s", [{"labels": {}, "points": _points(0.02, 0.4), "role": "signal"}], EXPR
            ),
            _breakdown("E2", "ip_region", ["上海", "北京", "\u202e广州"]),
            _localization("E3", {"ip_region": "上海"}),
        ],
        root_causes=[RootCause(labels={"ip_region": "上海"}, score=0.9, statement="", evidence_ids=["E3"])],
        alert=AlertInfo(name="登录失败率过高", starts_at=INCIDENT.start),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing CJK font must not warn (nor fail)
        charts = draw(report, fmt)  # type: ignore[arg-type]
    assert [c.key for c in charts] == ["signal", "cause-1", "breakdown-ip_region"]
    assert [c.title for c in charts] == [
        "告警信号：登录失败率过高",
        "根因 1：ip_region=上海",
        "告警信号按 ip_region 拆分",
    ]
    if fmt == "svg":
        by_key = _by_key(charts)
        assert "阈值 > 20%" in _texts(by_key["signal"])
        assert "其余流量" in _texts(by_key["cause-1"])
        assert {"上海", "北京", '"\\u202e广州"', "其他取值"} <= set(_texts(by_key["breakdown-ip_region"]))
        assert "Noto Sans CJK SC" in by_key["signal"].data  # the browser may have the font the server lacks


# ---------------------------------------------------------------------------------------------------
# Odd data
# ---------------------------------------------------------------------------------------------------


def test_non_finite_points_and_a_single_point() -> None:
    t0 = BASELINE.start.timestamp()
    signal = [
        [t0, "NaN"],
        [t0 + 60, 0.1],
        [t0 + 120, float("inf")],
        [t0 + 180, "+Inf"],
        [t0 + 240, None],
        ["bad"],
        [t0 + 300, 0.3],
        [float("nan"), 0.2],
    ]
    evidence = [
        _evidence("E1", "signal", "s", [{"labels": {}, "points": signal, "role": "signal"}], EXPR),
        _evidence(
            "E2",
            "localization",
            "within a",
            [
                {"labels": {"a": "b"}, "points": [[t0 + 600, 0.5]], "role": "cause"},
                {"labels": {}, "points": [[t0, math.nan], [t0 + 60, 0.1]], "role": "rest"},
            ],
            EXPR,
        ),
        _evidence(
            "E3", "breakdown", "by a", [{"labels": {"a": "b"}, "points": [[t0, 1.0]], "role": "series"}], "x"
        ),
        _evidence("E4", "breakdown", "by a", [{"labels": {"a": "b"}, "points": [[t0, "NaN"]]}], "x"),
    ]
    causes = [RootCause(labels={"a": "b"}, score=0.5, statement="", evidence_ids=["E2"])]
    report = make_report(evidence=evidence, root_causes=causes)
    for fmt in ("svg", "png"):
        assert [c.key for c in draw(report, fmt)] == ["signal", "cause-1", "breakdown-a"]  # type: ignore[arg-type]
    cause = _by_key(draw(report))["cause-1"].data
    assert isinstance(cause, str)
    assert "<use " in cause  # the single point is a marker


def test_flat_and_negative_series() -> None:
    evidence = [
        _evidence("E1", "signal", "s", [{"labels": {}, "points": _points(0.0, 0.0), "role": "signal"}], "x"),
        _evidence(
            "E2",
            "breakdown",
            "by a",
            [
                {"labels": {"a": "flat"}, "points": [[p[0], 3.0] for p in _points(0, 0)], "role": "series"},
                {"labels": {"a": "neg"}, "points": _points(-5.0, 2.0), "role": "series"},
                {"labels": {"a": "zero"}, "points": _points(0.0, 0.0), "role": "series"},
            ],
            "x",
        ),
    ]
    charts = draw(make_report(evidence=evidence, root_causes=[], threshold=None))
    assert [c.key for c in charts] == ["signal", "breakdown-a"]
    assert "-5" in _texts(charts[1])  # a negative row shows its lowest value


def test_no_windows_and_resolved_alert() -> None:
    alert = AlertInfo(
        name="A", status="resolved", starts_at=INCIDENT.start, ends_at=INCIDENT.start + timedelta(minutes=5)
    )
    (chart,) = draw(
        make_report(windows=None, alert=alert, root_causes=[], evidence=make_report().evidence[:1])
    )
    fills = _fills(chart)
    assert any(f"fill: {FIRING_COLOR}; opacity" in s for s in fills)
    assert not any(f"fill: {BASELINE_COLOR}; opacity" in s for s in fills)


def test_a_chart_that_cannot_be_drawn_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    huge = [{"labels": {}, "points": _points(1.7e308, 0.0), "role": "signal"}]  # no finite axis holds it
    evidence = [_evidence("E1", "signal", "s", huge, "x"), _breakdown("E2", "user_type", ["admin"])]
    with caplog.at_level(logging.WARNING, logger="alertsleuth.charts"):
        charts = draw(make_report(evidence=evidence, root_causes=[]))
    assert [c.key for c in charts] == ["breakdown-user_type"]
    assert any("signal" in r.getMessage() and r.name == "alertsleuth.charts" for r in caplog.records)


# ---------------------------------------------------------------------------------------------------
# Process state and threads
# ---------------------------------------------------------------------------------------------------


def test_global_rc_params_are_left_alone() -> None:
    before = dict(matplotlib.rcParams)
    draw(make_report())
    draw(make_report(), "png")
    assert dict(matplotlib.rcParams) == before


def test_threads_draw_the_same_charts() -> None:
    report = make_report()
    expected = [c.data for c in draw(report)]
    results: list[list[str | bytes]] = []
    lock = threading.Lock()

    def work() -> None:
        data = [c.data for c in draw(report)]
        with lock:
            results.append(data)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert results == [expected] * 4


def test_a_cjk_font_is_there_for_chinese_labels() -> None:
    """The Makefile installs Debian's fonts-wqy-microhei; without a CJK font, PNG charts show boxes."""
    import os

    from matplotlib import font_manager

    from agent.charts import FONTS

    found = [f.name for f in font_manager.fontManager.ttflist if f.name in FONTS[:-1]]
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("no CJK font (make fonts installs fonts-wqy-microhei); Chinese labels draw as boxes")
        pytest.skip("no CJK font installed")
    path = font_manager.findfont(font_manager.FontProperties(family=FONTS[:-1]), fallback_to_default=False)
    assert "wqy" in path.lower() or "cjk" in path.lower() or "droid" in path.lower(), path
