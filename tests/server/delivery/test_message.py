"""The pure text and timing helpers of delivery: fitting a size limit, durations, the brief message,
what counts as a changed analysis, retry backoff, the incident marker, and the Notice built from the
stored incident and report."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from agent.models import AlertInfo, Report
from agent.models import RootCause as ReportCause
from server.db import Incident, ReportRow
from server.delivery.base import Notice, NoticeCause
from server.delivery.change import analysis_of, describe_change
from server.delivery.message import NO_LINK, bold, brief, duration, fit, label_set, link_to, size
from server.delivery.notice import build_notice, marker, probe_notice
from server.delivery.outbox import backoff
from tools.format import rfc3339

URL = "https://alertsleuth.example.com/api/v1/reports/r-42?format=html"
STARTS = datetime(2025, 11, 21, 10, 0, 0, tzinfo=UTC)

# ---------------------------------------------------------------- size and fit

ASCII = "\n".join(f"line {i}: login failures rose in region-{i % 7} for user_type admin" for i in range(40))
CJK = "\n".join(
    f"第{i}行:上海地区管理员用户登录失败率上升至百分之三十八,主要集中在认证服务" for i in range(30)
)
EMOJI = "🔥🚨" * 50 + "\n" + "👩‍💻 on call: 🧯" * 20 + "\n" + "✅" * 30
MIXED = "\n".join(f"{i} 🔥 ip_region=上海 user_type=admin — ça brûle" for i in range(30))
ONE_LINE = "x" * 500
ONE_LINE_CJK = "漢" * 300
LEADING_BREAKS = "\n" * 20 + "text after blank lines " * 20
TEXTS = {"ascii": ASCII, "cjk": CJK, "emoji": EMOJI, "mixed": MIXED, "line": ONE_LINE}
TEXTS |= {"line-cjk": ONE_LINE_CJK, "breaks": LEADING_BREAKS}


def tail(link: str | None, style: str) -> str:
    where = link_to(link, "full report", style) if link else NO_LINK  # type: ignore[arg-type]
    return f"\n\n… shortened to fit; {where}"


def test_size_counts_bytes_or_chars() -> None:
    assert size("abc", "bytes") == size("abc", "chars") == 3
    assert size("上海", "bytes") == 6 and size("上海", "chars") == 2
    assert size("🔥", "bytes") == 4 and size("🔥", "chars") == 1
    assert size("", "bytes") == 0


@pytest.mark.parametrize("name", sorted(TEXTS))
@pytest.mark.parametrize("unit", ["bytes", "chars"])
@pytest.mark.parametrize(
    ("link", "style"), [(URL, "markdown"), (URL, "slack"), (URL, "text"), (None, "markdown")]
)
def test_fit_properties_over_every_limit(name: str, unit: str, link: str | None, style: str) -> None:
    text = TEXTS[name]
    full = size(text, unit)  # type: ignore[arg-type]
    end = tail(link, style)
    end_size = size(end, unit)  # type: ignore[arg-type]
    for limit in itertools.chain(range(0, 200), range(200, full + 20, 7), [full - 1, full, full + 1]):
        out = fit(text, limit, link=link, unit=unit, style=style)  # type: ignore[arg-type]
        # never over the limit, in bytes (valid UTF-8: no character split) and in chars
        assert size(out, unit) <= limit, (limit, out)  # type: ignore[arg-type]
        assert size(out, "chars") <= limit
        out.encode("utf-8")
        if full <= limit:
            assert out == text  # fits: unchanged
            continue
        if out.endswith(end):  # shortened: says so, with the link
            head = out[: -len(end)]
            assert text.startswith(head)  # a prefix of the text, nothing invented or reordered
            if limit >= end_size + 40 and name != "breaks":
                assert head, (limit, out)  # something of the text is kept
        else:  # no room for any of the text: the notice itself, cut when even that is too long
            assert limit <= end_size, (limit, out)
            assert end.strip().startswith(out)
            if limit >= size(end.strip(), unit):  # type: ignore[arg-type]
                assert out == end.strip()


def test_fit_keeps_text_that_fits_exactly() -> None:
    for text in ("", "a", "上海", "🔥", ASCII, CJK):
        assert fit(text, size(text, "bytes"), link=URL) == text
        assert fit(text, size(text, "chars"), link=URL, unit="chars") == text
        assert fit(text, 10**9, link=None) == text


def test_fit_cuts_at_a_line_break() -> None:
    text = "first line\nsecond line\nthird line that is much longer than the others\n" + "fourth " * 40
    limit = size(tail(URL, "markdown"), "bytes") + 40
    out = fit(text, limit, link=URL)
    assert out == "first line\nsecond line" + tail(URL, "markdown")


def test_fit_does_not_throw_away_most_of_the_text_for_a_line_break() -> None:
    text = "short\n" + "y" * 300
    limit = size(tail(URL, "markdown"), "bytes") + 100
    out = fit(text, limit, link=URL)
    head = out[: -len(tail(URL, "markdown"))]
    assert head.startswith("short\nyyy") and len(head) == 100


def test_fit_trims_trailing_whitespace_before_the_notice() -> None:
    text = "a" * 50 + "   \n\n\n" + "b" * 500
    out = fit(text, 60 + size(tail(None, "markdown"), "bytes"), link=None)
    assert out == "a" * 50 + tail(None, "markdown")


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("markdown", f"[full report]({URL})"),
        ("slack", f"<{URL}|full report>"),
        ("text", f"full report: {URL}"),
    ],
)
def test_fit_link_styles(style: str, expected: str) -> None:
    out = fit(ASCII, 500, link=URL, style=style)  # type: ignore[arg-type]
    assert out.endswith(f"… shortened to fit; {expected}")


def test_fit_without_a_link_says_how_to_get_one() -> None:
    assert fit(ASCII, 500, link=None).endswith(f"… shortened to fit; {NO_LINK}")
    assert fit(ASCII, 500, link="").endswith(NO_LINK)


def test_fit_tiny_limits() -> None:
    assert fit(ASCII, 0, link=URL) == ""
    assert fit(ASCII, 1, link=URL) == ""  # "…" is 3 bytes
    assert fit(ASCII, 3, link=URL) == "…"
    assert fit(ASCII, 1, link=URL, unit="chars") == "…"
    assert fit(ASCII, 5, link=URL, unit="chars") == "… sho"
    assert fit("", 0, link=URL) == ""


def test_fit_bytes_never_splits_a_character() -> None:
    for text in (ONE_LINE_CJK, "🔥" * 200, "é" * 400):
        for limit in range(len(tail(URL, "markdown").encode()) + 1, 600):
            out = fit(text, limit, link=URL)
            head = out[: -len(tail(URL, "markdown"))]
            assert set(head) <= set(text)  # whole characters only, no replacement characters
            assert len(out.encode("utf-8")) <= limit
            # and as long as it can be: one more character would not have fit
            assert len(out.encode()) + len(text[0].encode()) > limit


# ---------------------------------------------------------------- small helpers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.4, "0s"),
        (1, "1s"),
        (12, "12s"),
        (59, "59s"),
        (59.6, "1m 00s"),
        (60, "1m 00s"),
        (61, "1m 01s"),
        (245, "4m 05s"),
        (245.2, "4m 05s"),
        (3599, "59m 59s"),
        (3600, "1h 00m"),
        (3659, "1h 00m"),
        (7380, "2h 03m"),
        (86399, "23h 59m"),
        (86400, "1d 0h"),
        (3 * 86400 + 4 * 3600 + 59 * 60, "3d 4h"),
        (100 * 86400, "100d 0h"),
        (-5, "0s"),
        (-0.4, "0s"),
    ],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_link_bold_and_label_set() -> None:
    assert link_to(URL, "Full report", "markdown") == f"[Full report]({URL})"
    assert link_to(URL, "Full report", "slack") == f"<{URL}|Full report>"
    assert link_to(URL, "Full report", "text") == f"Full report: {URL}"
    assert bold("t", "markdown") == "**t**" and bold("t", "slack") == "*t*" and bold("t", "text") == "t"
    assert label_set({"ip_region": "上海", "user_type": "admin"}) == "ip_region=上海, user_type=admin"
    assert label_set({}) == "(all series)"


# ---------------------------------------------------------------- brief


def notice(event: str = "firing", **changes: Any) -> Notice:
    base = Notice(
        event=event,  # type: ignore[arg-type]
        incident_id=42,
        marker="alertsleuth-3f9a1c2b7d4e5f60-1763719200",
        alertname="LoginFailureRatio",
        status="resolved" if event == "resolved" else "firing",
        severity="critical",
        labels={"alertname": "LoginFailureRatio", "severity": "critical"},
        title=f"[{'RESOLVED' if event == 'resolved' else 'FIRING'}] LoginFailureRatio: ip_region=上海",
        summary="Login failures rose to 38%, concentrated in ip_region=上海.",
        root_causes=[
            NoticeCause({"ip_region": "上海", "user_type": "admin"}, "92% of the failures", 0.92),
            NoticeCause({"ip_region": "北京"}, "5% of the failures", 0.05),
        ],
        localized=True,
        starts_at="2025-11-21T10:00:00Z",
        ends_at="2025-11-21T10:04:05Z" if event == "resolved" else None,
        duration_seconds=245.0 if event == "resolved" else None,
        report_id="r-42",
        report_url=URL,
    )
    return replace(base, **changes)


def test_brief_firing() -> None:
    assert brief(notice()) == "\n".join(
        [
            "**[FIRING] LoginFailureRatio: ip_region=上海**",
            "severity: critical",
            "",
            "Login failures rose to 38%, concentrated in ip_region=上海.",
            "",
            "**Root causes**",
            "- ip_region=上海, user_type=admin: 92% of the failures",
            "- ip_region=北京: 5% of the failures",
            "",
            f"[Full report]({URL})",
            "Incident 42, started 2025-11-21T10:00:00Z",
        ]
    )


def test_brief_resolved_says_when_and_how_long_and_skips_the_causes() -> None:
    text = brief(notice("resolved"))
    assert "Resolved at 2025-11-21T10:04:05Z, lasted 4m 05s." in text
    assert "Root causes" not in text and "92% of the failures" not in text
    assert text.startswith("**[RESOLVED] LoginFailureRatio")
    assert f"[Full report]({URL})" in text
    no_time = brief(notice("resolved", ends_at=None, duration_seconds=None))
    assert "Resolved at now." in no_time and "lasted" not in no_time


def test_brief_update_says_what_changed() -> None:
    text = brief(notice("update", change="root causes ip_region=北京 → ip_region=上海"))
    lines = text.splitlines()
    assert lines[2] == "Changed: root causes ip_region=北京 → ip_region=上海"
    assert "**Root causes**" in lines
    assert "Changed:" not in brief(notice("update"))


def test_brief_caps_the_causes() -> None:
    causes = [NoticeCause({"pod": f"p{i}"}, f"cause {i}", 1 - i / 10) for i in range(6)]
    text = brief(notice(root_causes=causes))
    assert "- pod=p2: cause 2" in text and "pod=p3" not in text
    assert "- … 3 more in the report" in text
    text = brief(notice(root_causes=causes), causes=6)
    assert "pod=p5" in text and "more in the report" not in text
    assert "more in the report" not in brief(notice(root_causes=causes[:3]))


def test_brief_without_optional_parts() -> None:
    text = brief(notice(severity=None, root_causes=[], report_url=None, starts_at=""))
    assert text == "**[FIRING] LoginFailureRatio: ip_region=上海**\n\n" + notice().summary + "\n\nIncident 42"
    assert "severity" not in text and "Root causes" not in text and "Full report" not in text


def test_brief_styles() -> None:
    slack = brief(notice(), "slack")
    assert slack.startswith("*[FIRING]") and "*Root causes*" in slack and f"<{URL}|Full report>" in slack
    text = brief(notice(), "text")
    assert text.startswith("[FIRING]") and "\nRoot causes\n" in text and f"Full report: {URL}" in text
    assert "*" not in text


def test_brief_of_the_test_probe_has_no_incident_line() -> None:
    probe = probe_notice("ops-chat")
    assert probe.event == "test" and probe.incident_id == 0
    text = brief(probe)
    assert "ops-chat" in text and "Incident" not in text
    assert probe.marker.startswith("alertsleuth-test-")
    assert probe.starts_at.endswith("Z")


# ---------------------------------------------------------------- what changed


def report(causes: list[dict[str, str]], *, localized: bool = True, degraded: bool = False) -> Report:
    return Report(
        id="r-1",
        alert=AlertInfo(name="LoginFailureRatio", starts_at=STARTS),
        expression=None,
        summary="s",
        localized=localized,
        degraded=degraded,
        root_causes=[ReportCause(labels=c, score=0.5, statement="because") for c in causes],
    )


def test_analysis_of() -> None:
    a = analysis_of(report([{"user_type": "admin", "ip_region": "上海"}, {"pod": "p1"}], degraded=True))
    assert a == {"localized": True, "degraded": True, "causes": ["ip_region=上海, user_type=admin", "pod=p1"]}
    json.dumps(a)  # stored as JSON
    assert analysis_of(report([], localized=False)) == {"localized": False, "degraded": False, "causes": []}


def test_label_order_is_not_a_change() -> None:
    old = analysis_of(report([{"b": "2", "a": "1"}]))
    new = analysis_of(report([{"a": "1", "b": "2"}]))
    assert describe_change(old, new) is None


def test_same_analysis_is_not_news() -> None:
    a = analysis_of(report([{"ip_region": "上海"}]))
    assert describe_change(a, dict(a)) is None
    assert describe_change(None, a) is None  # nothing sent before: not a change


def test_changed_causes() -> None:
    old = analysis_of(report([{"ip_region": "北京"}]))
    new = analysis_of(report([{"ip_region": "上海"}, {"pod": "p1"}]))
    assert describe_change(old, new) == "root causes ip_region=北京 → ip_region=上海; pod=p1"
    assert describe_change(new, old) == "root causes ip_region=上海; pod=p1 → ip_region=北京"


def test_cause_order_is_a_change() -> None:
    old = analysis_of(report([{"a": "1"}, {"b": "2"}]))
    new = analysis_of(report([{"b": "2"}, {"a": "1"}]))
    assert describe_change(old, new) == "root causes a=1; b=2 → b=2; a=1"


def test_causes_appearing_or_vanishing() -> None:
    none = analysis_of(report([], localized=False))
    some = analysis_of(report([{"ip_region": "上海"}]))
    # the causes line says it all; "now localized" would repeat it
    assert describe_change(none, some) == "root causes none → ip_region=上海"
    assert describe_change(some, none) == "root causes ip_region=上海 → none"


def test_localized_alone() -> None:
    old = analysis_of(report([{"ip_region": "上海"}], localized=False))
    new = analysis_of(report([{"ip_region": "上海"}], localized=True))
    assert describe_change(old, new) == "now localized"
    assert describe_change(new, old) == "no longer localized"


def test_degraded() -> None:
    ok = analysis_of(report([{"a": "1"}]))
    bad = analysis_of(report([{"a": "1"}], degraded=True))
    assert describe_change(ok, bad) == "investigation degraded"
    assert describe_change(bad, ok) == "investigation complete again"
    worse = analysis_of(report([{"b": "2"}], degraded=True))
    assert describe_change(ok, worse) == "root causes a=1 → b=2, investigation degraded"


# ---------------------------------------------------------------- backoff


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.5, 0.999999, 1.0])
def test_backoff_grows_exponentially_with_equal_jitter(rand: float) -> None:
    for attempts in range(1, 9):
        full = 5.0 * 2 ** (attempts - 1)
        got = backoff(attempts, 5.0, 10_000.0, None, rand)
        assert got == pytest.approx(full / 2 + full / 2 * rand)
        assert full / 2 <= got <= full  # half fixed, half random


def test_backoff_doubles() -> None:
    delays = [backoff(n, 5.0, 10_000.0, None, 0.5) for n in range(1, 10)]
    assert all(b == pytest.approx(2 * a) for a, b in itertools.pairwise(delays))
    assert backoff(0, 5.0, 900.0, None, 0.0) == backoff(1, 5.0, 900.0, None, 0.0) == 2.5


def test_backoff_is_capped() -> None:
    for attempts in (9, 10, 20, 64, 100, 1025, 10_000):
        for rand in (0.0, 0.5, 1.0):
            got = backoff(attempts, 5.0, 900.0, None, rand)
            assert 450.0 <= got <= 900.0
    assert backoff(10_000, 5.0, 900.0, None, 1.0) == 900.0  # no float overflow for huge attempt counts


def test_backoff_jitter_spreads_retries() -> None:
    delays = {backoff(3, 5.0, 900.0, None, r / 10) for r in range(10)}
    assert len(delays) == 10 and min(delays) == 10.0 and max(delays) < 20.0


def test_backoff_respects_retry_after() -> None:
    assert backoff(1, 5.0, 900.0, 120.0, 0.0) == 120.0  # the server asks for longer than our delay
    assert backoff(1, 5.0, 900.0, 120.0, 1.0) == 120.0
    assert backoff(8, 5.0, 900.0, 1.0, 0.0) == 320.0  # ours is longer: ours
    assert backoff(1, 5.0, 900.0, 0.0, 0.0) == 2.5
    assert backoff(1, 5.0, 900.0, None, 0.0) == 2.5


def test_backoff_caps_retry_after() -> None:
    assert backoff(1, 5.0, 900.0, 86_400.0, 0.0) == 900.0  # a hostile or broken Retry-After
    assert backoff(1, 5.0, 60.0, 61.0, 0.5) == 60.0
    assert backoff(1, 5.0, 900.0, -30.0, 0.0) == 2.5  # nonsense is ignored


def test_backoff_zero_settings() -> None:
    assert backoff(3, 0.0, 900.0, None, 0.7) == 0.0
    assert backoff(3, 5.0, 0.0, 30.0, 0.7) == 0.0


def test_backoff_never_exceeds_cap_nor_goes_below_half_the_exponential() -> None:
    for attempts, base, cap, retry_after, rand in itertools.product(
        (1, 2, 5, 12, 40), (0.5, 5.0, 60.0), (1.0, 60.0, 900.0), (None, 0.0, 3.0, 5000.0), (0.0, 0.3, 0.99)
    ):
        got = backoff(attempts, base, cap, retry_after, rand)
        assert got <= cap
        assert got >= min(cap, base * 2 ** (attempts - 1)) / 2
        assert got >= min(cap, retry_after or 0.0)


# ---------------------------------------------------------------- marker and the Notice


def incident(**changes: Any) -> Incident:
    data: dict[str, Any] = {
        "id": 7,
        "fingerprint": "3f9a1c2b7d4e5f60aabbccddeeff0011",
        "alertname": "LoginFailureRatio",
        "status": "firing",
        "starts_at": STARTS,
        "resolved_at": None,
        "labels": {"alertname": "LoginFailureRatio", "severity": "critical", "job": "login"},
        "annotations": {"summary": "login failures"},
    }
    data.update(changes)
    return Incident(**data)


def report_row(rep: Report | None = None) -> ReportRow:
    rep = rep or report([{"user_type": "admin", "ip_region": "上海"}, {"pod": "p1"}])
    return ReportRow(
        id="r-42",
        incident_id=7,
        body=rep.model_dump_json(),
        markdown="# Root-cause report",
        html="<html></html>",
        paths={},
    )


def test_marker_is_stable_and_per_incident() -> None:
    inc = incident()
    assert marker(inc) == f"alertsleuth-3f9a1c2b7d4e5f60-{int(STARTS.timestamp())}"
    assert marker(inc) == "alertsleuth-3f9a1c2b7d4e5f60-1763719200"
    assert marker(incident()) == marker(inc)
    assert marker(incident(starts_at=STARTS + timedelta(hours=1))) != marker(inc)  # a new firing
    assert marker(incident(fingerprint="0" * 32)) != marker(inc)
    assert marker(incident(fingerprint="abc")) == "alertsleuth-abc-1763719200"
    east = timezone(timedelta(hours=8))
    assert marker(incident(starts_at=STARTS.astimezone(east))) == marker(inc)  # an instant, not a wall time


def test_notice_times_are_rfc3339_utc() -> None:
    assert rfc3339(STARTS) == "2025-11-21T10:00:00Z"
    assert rfc3339(STARTS.astimezone(timezone(timedelta(hours=8)))) == "2025-11-21T10:00:00Z"


def test_build_notice_firing() -> None:
    row = report_row()
    n = build_notice("firing", incident(), row, change=None, external_url="https://as.example.com/")
    assert n.event == "firing" and n.status == "firing"
    assert n.incident_id == 7 and n.marker == "alertsleuth-3f9a1c2b7d4e5f60-1763719200"
    assert n.alertname == "LoginFailureRatio" and n.severity == "critical"
    assert n.labels == incident().labels
    # the first cause's labels, in the report's order
    assert n.title == "[FIRING] LoginFailureRatio: user_type=admin, ip_region=上海"
    assert n.summary == "s"
    assert n.root_causes == [
        NoticeCause({"user_type": "admin", "ip_region": "上海"}, "because", 0.5),
        NoticeCause({"pod": "p1"}, "because", 0.5),
    ]
    assert n.localized is True and n.degraded is False
    assert n.starts_at == "2025-11-21T10:00:00Z" and n.ends_at is None and n.duration_seconds is None
    assert n.report_id == "r-42" and n.markdown == row.markdown and n.html == row.html
    assert n.report_json == row.body
    assert n.report_url == "https://as.example.com/api/v1/reports/r-42?format=html"  # no double slash
    assert n.incident_url == "https://as.example.com/api/v1/incidents/7"
    assert n.change is None


def test_build_notice_labels_are_a_copy() -> None:
    inc = incident()
    n = build_notice("firing", inc, None, change=None, external_url=None)
    n.labels["x"] = "y"
    assert "x" not in inc.labels


def test_build_notice_update_carries_the_change() -> None:
    n = build_notice("update", incident(), report_row(), change="now localized", external_url=None)
    assert n.event == "update" and n.change == "now localized" and n.title.startswith("[FIRING] ")


def test_build_notice_resolved() -> None:
    ended = STARTS + timedelta(minutes=4, seconds=5)
    inc = incident(status="resolved", resolved_at=ended)
    n = build_notice("resolved", inc, report_row(), change=None, external_url=None)
    assert n.title == "[RESOLVED] LoginFailureRatio: user_type=admin, ip_region=上海"
    assert n.status == "resolved"
    assert n.ends_at == "2025-11-21T10:04:05Z" and n.duration_seconds == 245.0
    assert "lasted 4m 05s" in brief(n)
    firing = build_notice("firing", inc, report_row(), change=None, external_url=None)
    assert firing.ends_at is None and firing.duration_seconds is None  # only resolved notices time it


def test_build_notice_not_localized_has_a_plain_title() -> None:
    row = report_row(report([{"pod": "p1"}], localized=False, degraded=True))
    n = build_notice("firing", incident(), row, change=None, external_url=None)
    assert n.title == "[FIRING] LoginFailureRatio"
    assert n.localized is False and n.degraded is True and len(n.root_causes) == 1
    row = report_row(report([], localized=True))
    assert build_notice("firing", incident(), row, change=None, external_url=None).title == (
        "[FIRING] LoginFailureRatio"
    )


def test_build_notice_without_a_report_or_external_url() -> None:
    inc = incident(labels={"alertname": "LoginFailureRatio"})
    n = build_notice("resolved", inc, None, change=None, external_url=None)
    assert n.summary == "No report was written for this incident."
    assert n.root_causes == [] and not n.localized and not n.degraded
    assert n.severity is None
    assert n.report_id is None and n.markdown is None and n.html is None and n.report_json is None
    assert n.report_url is None and n.incident_url is None
    assert n.ends_at is None and n.duration_seconds is None  # resolved_at not set yet
    n = build_notice("firing", inc, None, change=None, external_url="https://as.example.com")
    assert n.report_url is None  # nothing to link
    assert n.incident_url == "https://as.example.com/api/v1/incidents/7"
    assert "Full report" not in brief(n)


def test_brief_leads_with_the_reports_first_screen() -> None:
    head = [
        "LoginFailureRatio: the signal rose from 3.2% to 53.15% (peak 61.76%); the alert fires at > 20%.",
        "Where: ip_region=上海, user_type=admin, 92% of the change.",
        "Firing since 2025-11-21 10:00:00 UTC (8m).",
    ]
    text = brief(notice(headline=head))
    lines = text.splitlines()
    assert lines[0] == "**[FIRING] LoginFailureRatio: ip_region=上海**"
    assert lines[2:5] == head  # verdict, where, since: before the summary and the root causes
    assert text.index(head[0]) < text.index("Login failures rose to 38%") < text.index("**Root causes**")
