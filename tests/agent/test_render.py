"""Rendering a Report to Markdown and HTML: content, language, escaping, file names, number format."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent.filenames import report_filename_stem
from agent.models import (
    AlertInfo,
    Evidence,
    Grounding,
    LLMUsage,
    Report,
    RootCause,
    SegmentStat,
    TimeRange,
    Windows,
)
from agent.render import render_html, render_markdown
from tools.format import fmt_labels, fmt_num, fmt_pct

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
START = datetime(2026, 11, 21, 16, 30, tzinfo=UTC)
EXPR = 'sum(rate(login_attempts_total{result="failure"}[5m])) / sum(rate(login_attempts_total[5m])) > 0.2'


def _series(labels: dict[str, str], base: float, bump: float, n: int = 60) -> dict[str, object]:
    t0 = (START - timedelta(minutes=60)).timestamp()
    points = [[t0 + 60 * i, str(base + (bump if i >= 40 else 0.0) + 0.001 * (i % 3))] for i in range(n)]
    points.append([t0 + 60 * n, "NaN"])  # Prometheus may return NaN: skipped, not drawn
    return {"labels": labels, "points": points}


def make_report(language: str = "en", **overrides: object) -> Report:
    baseline = TimeRange(start=START - timedelta(minutes=65), end=START - timedelta(minutes=5))
    incident = TimeRange(start=START - timedelta(minutes=5), end=START + timedelta(minutes=15))
    ev_start, ev_end = baseline.start, incident.end
    evidence = [
        Evidence(
            id="E1",
            kind="signal",
            title="Login failure ratio",
            promql=EXPR.removesuffix(" > 0.2"),
            start=ev_start,
            end=ev_end,
            step=30,
            summary="failure ratio rose from 0.02 to 0.4133 (peak 0.5871)",
            stats=[SegmentStat(labels={}, baseline=0.02, incident=0.4133, peak=0.5871)],
            series=[_series({"job": "login"}, 0.02, 0.39)],
        ),
        Evidence(
            id="E2",
            kind="breakdown",
            title="Failures by ip_region, user_type",
            promql='sum by (ip_region, user_type) (rate(login_attempts_total{result="failure"}[5m]))',
            start=ev_start,
            end=ev_end,
            step=30,
            summary="20 segments; `ip_region=shanghai` with `user_type=admin` changed most",
            stats=[
                SegmentStat(
                    labels={"ip_region": "shanghai", "user_type": "admin"},
                    baseline=0.1,
                    incident=12.5,
                    peak=14.02,
                ),
                SegmentStat(
                    labels={"ip_region": "a|b", "user_type": "normal"}, baseline=1.0, incident=1.1, peak=1.3
                ),
                SegmentStat(labels={"ip_region": SCRIPT, "user_type": "normal"}, baseline=0.5, incident=0.52),
            ]
            + [
                SegmentStat(labels={"ip_region": f"r{i}", "user_type": "normal"}, baseline=0.2, incident=0.21)
                for i in range(17)
            ],
            truncated=True,
        ),
        Evidence(
            id="E3",
            kind="localization",
            title="Localization of the failure ratio",
            promql='sum by (ip_region, user_type) (rate(login_attempts_total{result="failure"}[5m]))',
            start=ev_start,
            end=ev_end,
            step=60,
            summary='{ip_region="shanghai", user_type="admin"} explains 87.34% of the change',
            stats=[
                SegmentStat(
                    labels={"ip_region": "shanghai", "user_type": "admin"}, baseline=0.1, incident=12.5
                ),
            ],
            series=[_series({"ip_region": f"r{i}"}, 0.1 * i, 0.5) for i in range(7)],
        ),
        Evidence(
            id="E4",
            kind="related",
            title="Related alerts",
            promql='ALERTS{alertstate="firing"}',
            start=ev_start,
            end=ev_end,
            step=60,
            summary="no related alert",
            error="query timed out after 10s",
        ),
    ]
    root_causes = [
        RootCause(
            labels={"user_type": "admin", "ip_region": "shanghai"},
            score=0.9137,
            statement="Admin logins from shanghai fail: 0.1 → 12.5 per second [E2], "
            "87.34% of the change [E3].",
            evidence_ids=["E2", "E3"],
            baseline=0.1,
            incident=12.5,
            explained_share=0.8734,
        ),
        RootCause(
            labels={"ip_region": "a|b"},
            score=0.05,
            statement="A minor rise in region a|b [E2, E3].",
            evidence_ids=["E2"],
            baseline=1.0,
            incident=1.1,
            explained_share=0.021,
        ),
    ]
    fields: dict[str, object] = {
        "id": "3f2a9c1e-7b44-4d0e-9a51-0c1d2e3f4a5b",
        "alert": AlertInfo(
            name="HighLoginFailureRate",
            status="firing",
            labels={"alertname": "HighLoginFailureRate", "severity": "critical", "evil": SCRIPT},
            annotations={
                "summary": "Login failure rate above 20%",
                "description": "Failure ratio is 41%" + IMG,
                "runbook_url": "https://runbooks.example.com/login",
                "dashboard": "javascript:alert(1)",
            },
            starts_at=START,
            fingerprint="a1b2c3d4e5f60718",
            generator_url="http://prometheus:9090/graph?g0.expr=login_attempts_total&g0.tab=1",
        ),
        "expression": EXPR,
        "windows": Windows(baseline=baseline, incident=incident),
        "summary": "The login failure ratio rose from 0.02 to 0.4133 [E1].\n\n"
        "It is driven by admin users in shanghai.",
        "localized": True,
        "root_causes": root_causes,
        "evidence": evidence,
        "impact": "About 41% of login attempts fail since 16:25 UTC [E1].",
        "remediation": [
            "Check the admin SSO backend serving shanghai [E2].",
            "# Block the offending source if it is an attack",
        ],
        "prevention": ["Alert on failures per user_type, not only in aggregate."],
        "notes": ["Related alerts query timed out [E4]."],
        "language": language,
        "llm": LLMUsage(
            provider="deepseek",
            model="deepseek-chat",
            calls=3,
            tool_calls=2,
            prompt_tokens=5120,
            completion_tokens=830,
            seconds=12.3456,
        ),
        "grounding": Grounding(checked=True, ungrounded=["99.9%"]),
        "timings": {"evidence_seconds": 1.234, "queries": 14.0, "write_seconds": 12.3456},
        "created_at": START + timedelta(minutes=16),
    }
    fields.update(overrides)
    return Report.model_validate(fields)


# The answer first (the headline above these, then the analysis), the alert's metadata after it.
HEADINGS = {
    "en": [
        "Summary",
        "Root cause analysis",
        "Impact",
        "Remediation",
        "Prevention",
        "Alert",
        "Evidence",
        "Notes",
        "LLM usage",
        "Grounding",
        "Timings",
    ],
    "zh": [
        "摘要",
        "根因分析",
        "影响",
        "处置步骤",
        "预防措施",
        "告警基本信息",
        "证据",
        "说明",
        "大模型使用情况",
        "依据核验",
        "耗时",
    ],
}


def _md_headings(md: str) -> list[str]:
    return re.findall(r"^## (.+)$", md, flags=re.M)


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_markdown_sections_in_order_and_language(lang: str) -> None:
    md = render_markdown(make_report(lang))
    assert _md_headings(md) == HEADINGS[lang]
    assert md.startswith("# HighLoginFailureRate — " + ("FIRING" if lang == "en" else "触发中"))
    foreign = (
        ("Root cause analysis", "Remediation", "Prevention") if lang == "zh" else ("根因分析", "处置步骤")
    )
    for heading in foreign:
        assert heading not in md


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_html_sections_in_language(lang: str) -> None:
    page = render_html(make_report(lang))
    headings = re.findall(r"<h2>(.+?)</h2>", page)
    assert headings == HEADINGS[lang]
    assert f'<html lang="{"zh-CN" if lang == "zh" else "en"}">' in page


def test_unknown_language_falls_back_to_english() -> None:
    assert _md_headings(render_markdown(make_report("fr"))) == HEADINGS["en"]


def test_markdown_root_causes_table() -> None:
    md = render_markdown(make_report())
    rows = [line for line in md.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2
    first = _cells(rows[0])
    assert first[1] == '`{ip_region="shanghai", user_type="admin"}`'
    assert first[2:5] == ["0.9137", "0.1 → 12.5", "87.34%"]
    assert "[[E2]](#E2)" in first[5] and "[[E3]](#E3)" in first[5]
    assert first[6] == "[E2](#E2), [E3](#E3)"
    second = _cells(rows[1])
    assert len(second) == 7  # the "|" in the label value and in the statement did not split the row
    assert second[1] == '`{ip_region="a\\|b"}`'
    assert "[[E2](#E2), [E3](#E3)]" in second[5]
    assert '**Localization:** Localized to `{ip_region="shanghai", user_type="admin"}`' in md


def test_markdown_evidence_blocks() -> None:
    md = render_markdown(make_report())
    for i in range(1, 5):
        assert f'<a id="E{i}"></a>' in md
    assert "### E2 · Failures by ip\\_region" not in md  # underscores are left alone
    assert "### E2 · Failures by ip_region, user_type" in md
    assert "```promql\n" + EXPR + "\n```" in md
    assert "- **Range:** 2026-11-21 15:25:00 – 16:45:00 UTC, step 30s" in md
    # at most 15 stats rows, then the count of the rest; every row keeps 4 cells
    e2 = md.split("### E2")[1].split("### E3")[0]
    stat_rows = [line for line in e2.splitlines() if line.startswith("| `{")]
    assert len(stat_rows) == 15
    assert all(len(_cells(row)) == 4 for row in stat_rows)
    assert "| … 5 more | | | |" in e2
    assert "Output truncated" in e2
    assert "> **Query error:** query timed out after 10s" in md
    # series: block sparklines in Markdown, at most 5 series
    e3 = md.split("### E3")[1].split("### E4")[0]
    assert len(re.findall(r"^- `\{ip_region=", e3, flags=re.M)) == 5
    assert "… 2 more series" in e3
    assert re.search(r"`[▁▂▃▄▅▆▇█]{20,}`", e3)


def test_markdown_neutralises_untrusted_values() -> None:
    md = render_markdown(make_report())
    # untrusted values are either inside code spans (shown literally) or backslash-escaped
    assert "`<script>alert(1)</script>`" in md
    outside_code = re.sub(r"`[^`\n]*`", "", md)
    assert re.search(r"(?<!\\)<(script|img)", outside_code) is None
    assert "\\<img src=x onerror=alert(1)\\>" in md
    # a list item that starts like a heading stays a list item
    assert "2. \\# Block the offending source" in md
    # only http(s) links become autolinks
    assert "<https://runbooks.example.com/login>" in md
    assert "<javascript:" not in md


def test_markdown_code_fence_cannot_be_closed_by_the_query() -> None:
    md = render_markdown(make_report(expression="up ```\n# injected"))
    assert "````promql\nup ```\n# injected\n````" in md


def test_html_escapes_untrusted_values() -> None:
    page = render_html(make_report())
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'href="javascript:' not in page
    assert '<a href="https://runbooks.example.com/login" rel="noopener noreferrer">' in page
    assert 'href="http://prometheus:9090/graph?g0.expr=login_attempts_total&amp;g0.tab=1"' in page


def test_html_is_self_contained() -> None:
    page = render_html(make_report())
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta name="viewport"' in page
    assert "<style>" in page
    assert "<link" not in page
    assert re.search(r"""src=["']?https?:""", page) is None
    assert "@import" not in page


def test_html_evidence_anchors_and_citation_links() -> None:
    page = render_html(make_report())
    for i in range(1, 5):
        assert f'<article class="evidence" id="E{i}">' in page
    assert '<a class="cite" href="#E1">[E1]</a>' in page  # in the summary
    assert '[<a class="cite" href="#E2">E2</a>, <a class="cite" href="#E3">E3</a>]' in page
    assert '<td class="labels">{ip_region=&#34;shanghai&#34;, user_type=&#34;admin&#34;}</td>' in page
    assert '<td class="num">87.34%</td>' in page
    assert "<code>ip_region=shanghai</code>" in page  # inline code in an evidence summary


def test_html_charts_lead_and_sit_by_their_evidence() -> None:
    report = make_report()
    report.evidence[1].series = report.evidence[2].series  # the breakdown keeps its values' series
    page = render_html(report)
    first = page.split('id="verdict"')[1].split("</section>")[0]
    assert first.count("<svg") >= 1 and 'role="img"' in first  # the signal's chart, with the answer
    e1 = page.split('id="E1"')[1].split('id="E2"')[0]
    e2 = page.split('id="E2"')[1].split('id="E3"')[0]
    assert "<svg" not in e1  # shown on the first screen, not twice
    assert e2.count("<svg") == 1  # the breakdown's small multiples, in its evidence
    assert "<script" not in page.lower() and "<polyline" not in page
    assert "default-src 'none'; style-src 'unsafe-inline'; img-src data:" in page  # the CSP holds


def test_zh_fixed_phrases() -> None:
    md = render_markdown(make_report("zh"))
    page = render_html(make_report("zh"))
    for text in (md, page):
        assert "已定位到" in text
        assert "… 另有 5 行" in text
        assert "查询错误" in text
        assert "以下内容未能追溯到证据" in text
    assert "| 撰写 | 12.35 s |" in md
    assert "| 查询次数 | 14 |" in md


def test_llm_usage_and_offline() -> None:
    md = render_markdown(make_report())
    assert "- **Model:** deepseek-chat" in md
    assert "- **Tokens:** 5950 (prompt 5120 + completion 830)" in md
    assert "- **Seconds:** 12.35" in md
    offline = make_report(llm=None, grounding=Grounding(checked=False))
    md = render_markdown(offline)
    assert "written offline (no LLM)" in md
    assert "written offline (no LLM)" in render_html(offline)
    assert "## Grounding" not in md
    assert "离线生成" in render_markdown(make_report("zh", llm=None))
    fallback = make_report(
        llm=LLMUsage(provider="deepseek", model="deepseek-chat", fallback_reason="timeout")
    )
    assert "- **Fallback reason:** timeout" in render_markdown(fallback)


def test_not_localized_and_empty_sections() -> None:
    bare = make_report(
        localized=False,
        root_causes=[],
        evidence=[],
        remediation=[],
        prevention=[],
        notes=[],
        impact="",
        timings={},
        windows=None,
        degraded=True,
    )
    md = render_markdown(bare)
    assert "Not localized: the change is spread across segments." in md
    assert "No root-cause candidate was identified." in md
    assert "## Notes" not in md and "## Timings" not in md
    assert "Degraded" in md
    assert "[[E1]](#E1)" in md  # a cited id matching E<n> still links
    page = render_html(bare)
    assert "Not localized: the change is spread across segments." in page
    assert "No evidence was collected." in page


def test_timings_and_times() -> None:
    md = render_markdown(make_report())
    assert "| evidence | 1.234 s |" in md
    assert "| queries | 14 |" in md
    assert "- **Started:** 2026-11-21 16:30:00 UTC" in md
    assert "- **Ended:** still firing" in md
    resolved = make_report(
        alert=make_report().alert.model_copy(
            update={"status": "resolved", "ends_at": START + timedelta(minutes=20)}
        )
    )
    md = render_markdown(resolved)
    assert md.startswith("# HighLoginFailureRate — RESOLVED")
    assert "- **Ended:** 2026-11-21 16:50:00 UTC" in md


def test_filename_stem() -> None:
    report = make_report()
    assert report_filename_stem(report) == "HighLoginFailureRate_20261121T163000Z_3f2a9c1e"
    alert = report.alert.model_copy(
        update={
            "name": "登录失败率/过高 ../x",
            "starts_at": datetime(2026, 11, 22, 0, 30, tzinfo=timezone(timedelta(hours=8))),
        }
    )
    stem = report_filename_stem(report.model_copy(update={"alert": alert}))
    assert stem == "_" * 9 + ".._x_20261121T163000Z_3f2a9c1e"
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", stem)
    long = report.alert.model_copy(update={"name": "A" * 200})
    stem = report_filename_stem(report.model_copy(update={"alert": long, "id": "ab/cd"}))
    assert stem == "A" * 80 + "_20261121T163000Z_ab_cd"
    hidden = report.alert.model_copy(update={"name": ".hidden", "starts_at": datetime(2026, 1, 2, 3, 4, 5)})
    assert (
        report_filename_stem(report.model_copy(update={"alert": hidden}))
        == "_hidden_20260102T030405Z_3f2a9c1e"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "–"),
        (0, "0"),
        (0.0, "0"),
        (-0.0, "0"),
        (1e-6, "1e-6"),
        (-2.5e-7, "-2.5e-7"),
        (0.0001234, "0.0001234"),
        (0.123456, "0.1235"),
        (0.1 + 0.2, "0.3"),
        (1.0, "1"),
        (12.5, "12.5"),
        (999.96, "1000"),
        (1234.5678, "1235"),
        (9999.7, "10000"),
        (12345.678, "12346"),
        (-12345.678, "-12346"),
        (3_000_000.4, "3000000"),
        (2e15, "2e15"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
    ],
)
def test_fmt_num(value: float | None, expected: str) -> None:
    assert fmt_num(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "–"),
        (0, "0%"),
        (1, "100%"),
        (0.8734, "87.34%"),
        (0.021, "2.1%"),
        (1e-6, "0.0001%"),
        (math.nan, "NaN"),
        (1.5, "150%"),
    ],
)
def test_fmt_pct(value: float | None, expected: str) -> None:
    assert fmt_pct(value) == expected


def test_fmt_labels() -> None:
    assert (
        fmt_labels({"user_type": "admin", "ip_region": "shanghai"})
        == '{ip_region="shanghai", user_type="admin"}'
    )
    assert fmt_labels({"a": 'q"\\\n', "__name__": "up"}) == 'up{a="q\\"\\\\\\n"}'
    assert fmt_labels({}) == "{}"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_minimal_report_renders(lang: str) -> None:
    report = Report(
        id="x",
        alert=AlertInfo(name="Up", starts_at=datetime(2026, 1, 1), generator_url="javascript:alert(1)"),
        expression=None,
        summary="",
        localized=True,
        language=lang,
    )
    md = render_markdown(report)
    page = render_html(report)
    assert md.startswith("# Up — ")
    assert ("Localized." if lang == "en" else "已定位。") in md
    assert 'href="javascript:' not in page
    assert "`javascript:alert(1)`" in md
    assert report_filename_stem(report) == "Up_20260101T000000Z_x"


def test_markdown_list_items_keep_their_text() -> None:
    md = render_markdown(make_report(remediation=["1. restart", "99.9% of logins fail", "- nested?"]))
    assert "1. 1\\. restart" in md
    assert "2. 99.9% of logins fail" in md
    assert "3. \\- nested?" in md


def test_odd_series_shapes_do_not_break_rendering() -> None:
    report = make_report()
    odd = report.evidence[0].model_copy(
        update={
            "series": [
                {"labels": "not a dict", "points": "nope"},
                {"metric": {"job": "x"}, "values": [[1.0], ["a", "b"], [1795000000, "1"]]},
                {"labels": {"job": "y"}, "points": []},
            ]
        }
    )
    page = render_html(report.model_copy(update={"evidence": [odd]}))
    first = page.split('id="verdict"')[1].split("</section>")[0]
    assert first.count("<svg") == 1  # only the series with one usable point is drawn
