"""The LangChain tools over Prometheus: argument parsing and bounds (pure), then the tools themselves
called the way the agent calls them (`tool.invoke`) against the session's real Prometheus."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from langchain_core.tools import BaseTool

from tests.conftest import PromEnv
from tools.format import rfc3339
from tools.prom import Prometheus, Series
from tools.toolkit import (
    MAX_QUERY_CHARS,
    NARROW,
    Limits,
    PromToolkit,
    ToolInputError,
    bound,
    check_query,
    describe_series,
    parse_time,
)
from tools.windows import choose_step

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DEFAULT = NOW - timedelta(hours=1)
HELP = "use RFC 3339, Unix seconds, or now-15m / now-2h / now-1d"
DOWN = "http://127.0.0.1:9"  # nothing listens on the discard port

# ---------------------------------------------------------------------- parse_time


def stamp(value: datetime | float) -> str:
    return rfc3339(value, seconds=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:03:15Z", datetime(2024, 5, 1, 12, 3, 15, tzinfo=UTC)),
        ("2024-05-01T12:03:15.250Z", datetime(2024, 5, 1, 12, 3, 15, 250000, tzinfo=UTC)),
        ("2024-05-01T14:03:15+02:00", datetime(2024, 5, 1, 12, 3, 15, tzinfo=UTC)),
        ("2024-05-01T07:03:15-05:00", datetime(2024, 5, 1, 12, 3, 15, tzinfo=UTC)),
        ("2024-05-01 12:03:15Z", datetime(2024, 5, 1, 12, 3, 15, tzinfo=UTC)),
    ],
)
def test_parse_time_rfc3339(text: str, expected: datetime) -> None:
    got = parse_time(text, NOW, DEFAULT)
    assert got == expected
    assert got.utcoffset() is not None


def test_parse_time_keeps_the_offset_it_was_given() -> None:
    got = parse_time("2024-05-01T14:03:15+02:00", NOW, DEFAULT)
    assert got.utcoffset() == timedelta(hours=2)


def test_parse_time_naive_is_utc() -> None:
    got = parse_time("2024-05-01T12:03:15", NOW, DEFAULT)
    assert got == datetime(2024, 5, 1, 12, 3, 15, tzinfo=UTC)
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1714565000", datetime(2024, 5, 1, 12, 3, 20, tzinfo=UTC)),
        ("1714565000.5", datetime(2024, 5, 1, 12, 3, 20, 500000, tzinfo=UTC)),
        (" 1714565000 ", datetime(2024, 5, 1, 12, 3, 20, tzinfo=UTC)),
        (1714565000.5, datetime(2024, 5, 1, 12, 3, 20, 500000, tzinfo=UTC)),
        (1714565000, datetime(2024, 5, 1, 12, 3, 20, tzinfo=UTC)),
    ],
)
def test_parse_time_unix_seconds(text: str | float, expected: datetime) -> None:
    got = parse_time(text, NOW, DEFAULT)
    assert got == expected
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("now", timedelta(0)),
        ("now-15m", -timedelta(minutes=15)),
        ("now-2h", -timedelta(hours=2)),
        ("now-1d", -timedelta(days=1)),
        ("now-30s", -timedelta(seconds=30)),
        ("now+5m", timedelta(minutes=5)),
        ("now-1.5h", -timedelta(minutes=90)),
        (" now - 15m ", -timedelta(minutes=15)),
    ],
)
def test_parse_time_relative_to_now(text: str, delta: timedelta) -> None:
    assert parse_time(text, NOW, DEFAULT) == NOW + delta


@pytest.mark.parametrize("text", [None, ""])
def test_parse_time_missing_is_the_default(text: str | None) -> None:
    assert parse_time(text, NOW, DEFAULT) == DEFAULT


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "yesterday",
        "now-15",  # no unit
        "now-m",  # no amount
        "now15m",  # no sign
        "now-1w",  # unknown unit
        "now-nanm",
        "now-infm",
        "NOW-5m",
        "nan",
        "12:00",
        "2024-13-01T00:00:00Z",
    ],
)
def test_parse_time_garbage_is_a_tool_input_error_saying_what_works(text: str) -> None:
    with pytest.raises(ToolInputError) as err:
        parse_time(text, NOW, DEFAULT)
    message = str(err.value)
    assert f"'{text.strip()}'" in message
    assert HELP in message


@pytest.mark.parametrize("text", ["inf", "-inf", "1e20", "now-100000000d", "now+1e9d"])
def test_parse_time_out_of_range_is_a_tool_input_error(text: str) -> None:
    with pytest.raises(ToolInputError):
        parse_time(text, NOW, DEFAULT)


# ---------------------------------------------------------------------- check_query


@pytest.mark.parametrize("expr", ["", "   ", "\n\t"])
def test_check_query_refuses_empty(expr: str) -> None:
    with pytest.raises(ToolInputError, match="empty query"):
        check_query(expr)


def test_check_query_refuses_too_long() -> None:
    assert check_query("x" * MAX_QUERY_CHARS) == "x" * MAX_QUERY_CHARS
    with pytest.raises(ToolInputError, match=f"{MAX_QUERY_CHARS + 1} characters; at most {MAX_QUERY_CHARS}"):
        check_query("x" * (MAX_QUERY_CHARS + 1))


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("sum(", "unclosed left parenthesis"),
        ("user_login_total{", "unexpected end of input"),
        ("up or", "invalid promql"),
        ("rate(sum(user_login_total))", "expected type matrix in call to function 'rate'"),
    ],
)
def test_check_query_refuses_invalid_promql_with_the_parsers_message(expr: str, says: str) -> None:
    with pytest.raises(ToolInputError, match="cannot parse PromQL") as err:
        check_query(expr)
    assert says in str(err.value)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("  up{job='api'}\n", "up{job='api'}"),
        (
            "\tsum by (ip_region) (rate(user_login_total[5m])) ",
            "sum by (ip_region) (rate(user_login_total[5m]))",
        ),
        ("1", "1"),
    ],
)
def test_check_query_returns_valid_promql_stripped(expr: str, expected: str) -> None:
    assert check_query(expr) == expected


# ---------------------------------------------------------------------- describe_series

T0 = 1714564800.0  # 2024-05-01T12:00:00Z
TS = tuple(T0 + 15 * i for i in range(10))


def series(name: str, values: list[float], ts: tuple[float, ...] = TS) -> Series:
    return Series({"__name__": "m", "r": name}, ts, tuple(values))


def test_describe_series_orders_by_spread_and_summarizes() -> None:
    flat = series("flat", [5.0] * 10)
    ramp = series("ramp", [float(i) for i in range(10)])
    wide = series("wide", [100.0 + 50 * (i % 2) for i in range(10)])
    lines, truncated = describe_series([flat, ramp, wide], Limits())
    assert not truncated
    assert [line.split(":", 1)[0] for line in lines] == ['m{r="wide"}', 'm{r="ramp"}', 'm{r="flat"}']
    assert lines[1].startswith('m{r="ramp"}: min 0, mean 4.5, max 9, last 9; points ')
    # six evenly spaced points, first and last included
    points = lines[1].split("; points ", 1)[1].split(", ")
    assert len(points) == 6
    assert points[0] == f"{stamp(TS[0])}=0"
    assert points[-1] == f"{rfc3339(TS[-1], seconds=True)}=9"


def test_describe_series_caps_at_max_series_and_says_truncated() -> None:
    many = [series(f"s{i}", [0.0, float(i)]) for i in range(5)]
    lines, truncated = describe_series(many, Limits(max_series=2))
    assert truncated
    assert [line.split(":", 1)[0] for line in lines] == ['m{r="s4"}', 'm{r="s3"}']
    lines, truncated = describe_series(many[:2], Limits(max_series=2))
    assert not truncated and len(lines) == 2


def test_describe_series_handles_nan_only_and_empty_series() -> None:
    nan_only = series("nan", [math.nan] * 10)
    empty = series("empty", [], ())
    gappy = series("gappy", [1.0] + [math.nan] * 8 + [3.0])
    lines, truncated = describe_series([nan_only, empty, gappy], Limits())
    assert not truncated
    assert lines[0].startswith('m{r="gappy"}: min 1, mean 2, max 3, last 3; points ')
    assert sorted(lines[1:]) == ['m{r="empty"}: no finite values', 'm{r="nan"}: no finite values']
    assert describe_series([], Limits()) == ([], False)


def test_describe_series_formats_large_and_unnamed_values() -> None:
    one = Series({}, (T0,), (108_700.0,))
    lines, _ = describe_series([one], Limits())
    assert lines == [
        f"{{}}: min 1.087e+05, mean 1.087e+05, max 1.087e+05, last 1.087e+05; points {stamp(T0)}=1.087e+05"
    ]


# ---------------------------------------------------------------------- bound


def test_bound_leaves_short_text_alone() -> None:
    limits = Limits(max_chars=300)
    assert bound("short", limits, "hint") == "short"
    assert bound("a" * 300, limits, "hint") == "a" * 300


def test_bound_cuts_at_a_line_boundary_with_the_hint() -> None:
    limits = Limits(max_chars=300)
    original = [f"line {i:03d} " + "x" * 40 for i in range(50)]
    out = bound("\n".join(original), limits, "narrow it")
    assert len(out) <= limits.max_chars
    *kept, note = out.split("\n")
    assert note == "[truncated at 300 characters; narrow it]"
    assert kept and kept == original[: len(kept)]  # whole lines only, in order


def test_bound_cuts_a_single_long_line_too() -> None:
    limits = Limits(max_chars=300)
    out = bound("y" * 1000, limits, "hint")
    assert len(out) <= limits.max_chars
    assert out.endswith("\n[truncated at 300 characters; hint]")


def test_bound_respects_a_small_max_chars() -> None:
    out = bound("z" * 1000, Limits(max_chars=100), "h")
    assert len(out) <= 100


# ---------------------------------------------------------------------- the tools, against Prometheus


@dataclass
class Recorded:
    """A recorder as the agent supplies one: keeps every call, answers E1, E2, ..."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self,
        *,
        kind: str,
        title: str,
        promql: str,
        start: datetime,
        end: datetime,
        step: float,
        summary: str,
        error: str | None = None,
    ) -> str:
        self.calls.append(
            {
                "kind": kind,
                "title": title,
                "promql": promql,
                "start": start,
                "end": end,
                "step": step,
                "summary": summary,
                "error": error,
            }
        )
        return f"E{len(self.calls)}"


@dataclass
class Kit:
    toolkit: PromToolkit
    recorder: Recorded
    tools: dict[str, BaseTool]
    now: datetime

    def call(self, tool: str, /, **args: Any) -> str:
        out = self.tools[tool].invoke(args)
        assert isinstance(out, str)
        return out


MakeKit = Callable[..., Kit]


@pytest.fixture
def make_kit(prom: PromEnv) -> MakeKit:
    now = datetime.fromtimestamp(prom.now, UTC)

    def make(url: str | None = None, **kwargs: Any) -> Kit:
        recorder = Recorded()
        toolkit = PromToolkit(Prometheus(url or prom.url), recorder, now=lambda: now, **kwargs)
        return Kit(toolkit, recorder, {t.name: t for t in toolkit.tools()}, now)

    return make


BURST_TOTAL = 'sum(rate(user_login_total{scenario="burst"}[5m]))'
BURST_BY_REGION = 'sum by (ip_region) (rate(user_login_total{scenario="burst"}[5m]))'
REJECTED = "rate(user_login_total[5m]) / on() user_login_total"  # many-to-many: Prometheus refuses


def test_tool_names(make_kit: MakeKit) -> None:
    kit = make_kit()
    assert sorted(kit.tools) == [
        "alert_rule",
        "alerts_in_window",
        "list_labels",
        "list_metrics",
        "query_instant",
        "query_range",
        "series",
    ]
    assert all(t.description for t in kit.tools.values())


def test_query_range_answers_with_an_evidence_id_and_records_the_query(make_kit: MakeKit) -> None:
    kit = make_kit()
    start, end = kit.now - timedelta(minutes=30), kit.now
    out = kit.call("query_range", promql=f"  {BURST_TOTAL} ", start="now-30m", end="now", step=60)
    assert out.startswith(f"[E1] 1 series from {stamp(start)} to {stamp(end)}, step 60s\n")
    assert re.search(r"\n\{\}: min [\d.]+, mean [\d.]+, max [\d.]+, last [\d.]+; points ", out)
    (rec,) = kit.recorder.calls
    assert rec == {
        "kind": "query",
        "title": f"Range query {BURST_TOTAL}",
        "promql": BURST_TOTAL,
        "start": start,
        "end": end,
        "step": 60.0,
        "summary": out.removeprefix("[E1] "),
        "error": None,
    }
    # the next call gets the next id
    out = kit.call(
        "query_range",
        promql=BURST_TOTAL,
        start=stamp(start),
        end=str(end.timestamp()),
    )
    assert out.startswith("[E2] 1 series ")
    assert kit.recorder.calls[1]["start"] == start and kit.recorder.calls[1]["end"] == end


def test_query_range_default_step_keeps_points_within_the_limit(make_kit: MakeKit) -> None:
    kit = make_kit()
    out = kit.call("query_range", promql=BURST_TOTAL, start="now-30m")
    step = choose_step(1800, Limits().max_points)
    assert out.startswith("[E1] ") and f", step {step:g}s\n" in out
    assert kit.recorder.calls[0]["step"] == step


def test_query_range_many_series_are_truncated_with_the_narrowing_hint(make_kit: MakeKit) -> None:
    kit = make_kit(limits=Limits(max_series=2))
    out = kit.call("query_range", promql=BURST_BY_REGION, start="now-30m", step=60)
    head, *lines = out.split("\n")
    assert head.startswith("[E1] 5 series from ")
    assert head.endswith(f"; the 2 most varying shown ({NARROW})")
    assert len(lines) == 2
    assert lines[0].startswith('{ip_region="shanghai"}: ')  # the burst's region varies most
    assert kit.recorder.calls[0]["summary"] == out.removeprefix("[E1] ")


def test_query_range_answer_is_bounded_in_characters(make_kit: MakeKit) -> None:
    kit = make_kit(limits=Limits(max_chars=600))
    out = kit.call("query_range", promql='user_login_total{scenario="burst"}', start="now-30m")
    assert out.startswith("[E1] 20 series ")
    assert out.endswith(f"\n[truncated at 600 characters; {NARROW}]")
    assert len(out.removeprefix("[E1] ")) <= 600


def test_query_range_no_data_says_how_to_find_names(make_kit: MakeKit) -> None:
    kit = make_kit()
    out = kit.call("query_range", promql="no_such_metric_total", start="now-10m")
    assert out.startswith("[E1] 0 series ")
    assert out.endswith("; no data (check the metric and label names with list_metrics / list_labels)")
    assert kit.recorder.calls[0]["error"] is None


def test_query_range_too_small_step_is_refused_naming_the_minimum(make_kit: MakeKit) -> None:
    kit = make_kit()
    minimum = choose_step(1800, Limits().max_points)
    out = kit.call("query_range", promql=BURST_TOTAL, start="now-30m", step=1)
    assert out == f"invalid arguments: step 1.0s gives 1801 points; at most 300: use step >= {minimum:g}"
    for bad in (0, -5):
        out = kit.call("query_range", promql=BURST_TOTAL, start="now-30m", step=bad)
        assert out.startswith("invalid arguments: step ") and out.endswith(f"use step >= {minimum:g}")
    assert kit.recorder.calls == []
    # the step it names is accepted
    assert kit.call("query_range", promql=BURST_TOTAL, start="now-30m", step=minimum).startswith("[E1] ")


@pytest.mark.parametrize("step", [math.nan, math.inf])
def test_query_range_non_finite_step_is_refused(make_kit: MakeKit, step: float) -> None:
    kit = make_kit()
    out = kit.call("query_range", promql=BURST_TOTAL, start="now-30m", step=step)
    assert out.startswith("invalid arguments: ")
    assert kit.recorder.calls == []


def test_query_range_end_not_after_start_is_refused(make_kit: MakeKit) -> None:
    kit = make_kit()
    start, end = kit.now, kit.now - timedelta(minutes=30)
    out = kit.call("query_range", promql=BURST_TOTAL, start="now", end="now-30m")
    assert out == (f"invalid arguments: end {stamp(end)} is not after start {stamp(start)}")
    out = kit.call("query_range", promql=BURST_TOTAL, start="now-30m", end="now-30m")
    assert out.startswith("invalid arguments: end ") and "is not after start" in out
    assert kit.recorder.calls == []


def test_query_range_longer_than_seven_days_is_refused(make_kit: MakeKit) -> None:
    kit = make_kit()
    assert kit.call("query_range", promql=BURST_TOTAL, start="now-8d") == (
        "invalid arguments: range longer than 7 days"
    )
    assert kit.recorder.calls == []
    assert kit.call("query_range", promql=BURST_TOTAL, start="now-7d").startswith("[E1] ")


def test_query_range_bad_time_is_invalid_arguments(make_kit: MakeKit) -> None:
    kit = make_kit()
    out = kit.call("query_range", promql=BURST_TOTAL, start="an hour ago")
    assert out == f"invalid arguments: time 'an hour ago': {HELP}"
    assert kit.recorder.calls == []


def test_query_range_out_of_range_time_is_invalid_arguments(make_kit: MakeKit) -> None:
    kit = make_kit()
    out = kit.call("query_range", promql=BURST_TOTAL, start="1e20")
    assert out.startswith("invalid arguments: ")


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("sum(rate(user_login_total[5m])", "unclosed left parenthesis"),
        # refused by our parser before Prometheus sees it
        ("rate(sum(user_login_total))", "expected type matrix in call to function 'rate', got vector"),
        ("", "empty query"),
    ],
)
def test_invalid_promql_is_invalid_arguments_and_records_nothing(
    make_kit: MakeKit, expr: str, says: str
) -> None:
    kit = make_kit()
    out = kit.call("query_range", promql=expr, start="now-10m")
    assert out.startswith("invalid arguments: ") and says in out
    out = kit.call("query_instant", promql=expr)
    assert out.startswith("invalid arguments: ") and says in out
    assert kit.recorder.calls == []
    assert kit.toolkit.calls == 2


def test_query_prometheus_rejects_is_recorded_with_its_message(make_kit: MakeKit) -> None:
    kit = make_kit()
    out = kit.call("query_range", promql=REJECTED, start="now-10m")
    assert out.startswith("[E1] query failed: Prometheus rejected the query: ")
    assert "many-to-many matching not allowed" in out
    (rec,) = kit.recorder.calls
    assert rec["promql"] == REJECTED and rec["kind"] == "query"
    assert rec["error"] and "many-to-many matching not allowed" in rec["error"]
    assert rec["summary"] == f"query failed: {rec['error']}"
    assert rec["end"] - rec["start"] == timedelta(minutes=10)


def test_query_instant_answers_with_an_evidence_id(make_kit: MakeKit) -> None:
    kit = make_kit()
    expr = 'sum(user_login_total{scenario="steady"})'
    at = kit.now - timedelta(minutes=5)
    out = kit.call("query_instant", promql=expr, time="now-5m")
    assert out.startswith(f"[E1] 1 series from {stamp(at)} to {stamp(at)}")
    assert f"points {stamp(at)}=" in out
    (rec,) = kit.recorder.calls
    assert (rec["kind"], rec["promql"], rec["start"], rec["end"], rec["step"]) == ("query", expr, at, at, 0.0)
    assert rec["title"] == f"Instant query {expr}"


def test_query_instant_rejected_is_recorded_like_query_range(make_kit: MakeKit) -> None:
    kit = make_kit()
    out = kit.call("query_instant", promql=REJECTED)
    assert "many-to-many matching not allowed" in out
    assert out.startswith("[E1] query failed: ")
    assert len(kit.recorder.calls) == 1 and kit.recorder.calls[0]["error"]


@pytest.mark.parametrize("expr", ['scalar(sum(user_login_total{scenario="steady"}))', "time()"])
def test_query_instant_scalar(make_kit: MakeKit, expr: str) -> None:
    kit = make_kit()
    out = kit.call("query_instant", promql=expr)
    assert out.startswith("[E1] 1 series ")


def test_list_metrics_with_contains(make_kit: MakeKit) -> None:
    kit = make_kit()
    assert kit.call("list_metrics", contains="LOGIN_tot") == "1 metrics: user_login_total"
    assert kit.call("list_metrics", contains="no_such_thing") == "0 metrics: "
    assert "user_login_total" in kit.call("list_metrics")
    assert kit.recorder.calls == []


def test_list_labels_names_and_values(make_kit: MakeKit) -> None:
    kit = make_kit()
    selector = 'user_login_total{scenario="steady"}'
    assert kit.call("list_labels", metric=f" {selector} ") == (
        f"labels of {selector}: instance, ip_region, job, login_status, scenario, user_type"
    )
    assert kit.call("list_labels", metric="user_login_total", label="ip_region") == (
        "5 values of ip_region: beijing, guangzhou, hangzhou, shanghai, shenzhen"
    )
    assert (
        kit.call("list_labels", metric=selector, label="login_status")
        == "2 values of login_status: failed, success"
    )
    assert kit.call("list_labels", metric="sum(", label="x").startswith(
        "invalid arguments: cannot parse PromQL"
    )
    assert kit.recorder.calls == []


def test_list_labels_values_are_capped(make_kit: MakeKit) -> None:
    kit = make_kit(limits=Limits(max_values=2))
    assert kit.call("list_labels", metric="user_login_total", label="ip_region") == (
        "5 values of ip_region (first 2 of 5): beijing, guangzhou"
    )


def test_series_lists_matching_series(make_kit: MakeKit) -> None:
    kit = make_kit()
    selector = 'user_login_total{scenario="burst",ip_region="shanghai"}'
    head, *lines = kit.call("series", selector=selector).split("\n")
    assert head == f"series of {selector} in the last hour:"
    assert len(lines) == 4
    assert all(line.startswith("user_login_total{") and 'ip_region="shanghai"' in line for line in lines)
    assert {re.search(r'user_type="(\w+)"', line).group(1) for line in lines} == {"admin", "normal"}  # type: ignore[union-attr]


def test_series_listing_is_capped_with_the_hint(make_kit: MakeKit) -> None:
    kit = make_kit(limits=Limits(max_series=2))
    selector = 'user_login_total{scenario="burst",ip_region="shanghai"}'
    head, *lines = kit.call("series", selector=selector).split("\n")
    assert head == f"series of {selector} in the last hour (first 2; {NARROW}):"
    assert len(lines) == 2


def test_alert_rule_known_and_unknown(make_kit: MakeKit) -> None:
    kit = make_kit()
    out = kit.call("alert_rule", name="BurstFailureRatio")
    assert out.startswith("rule BurstFailureRatio (group test): expr ")
    assert 'scenario="burst"' in out and "> 0.2" in out
    assert "; for 120s; labels {'severity': 'critical'}; state " in out
    assert "\n" not in out  # one rule loaded
    assert kit.call("alert_rule", name="NoSuchAlert") == "no alerting rule named 'NoSuchAlert'"
    assert kit.recorder.calls == []


def test_alerts_in_window_answers_with_an_evidence_id(make_kit: MakeKit) -> None:
    kit = make_kit()
    # rules are evaluated from Prometheus' start, after the fixture's `now`: nothing fired before it
    out = kit.call("alerts_in_window", start="now-30m")
    assert out == "[E1] no other alert firing in the window"
    (rec,) = kit.recorder.calls
    assert rec["kind"] == "related" and rec["promql"] == 'ALERTS{alertstate="firing"}'
    assert (rec["start"], rec["end"]) == (kit.now - timedelta(minutes=30), kit.now)
    assert rec["step"] == choose_step(1800, Limits().max_points)
    assert rec["summary"] == "no other alert firing in the window" and rec["error"] is None
    # default window: the last hour
    assert kit.call("alerts_in_window").startswith("[E2] ")
    assert kit.recorder.calls[1]["start"] == kit.now - timedelta(hours=1)
    # bad window: refused, nothing recorded
    assert kit.call("alerts_in_window", start="now", end="now-1h").startswith("invalid arguments: end ")
    assert len(kit.recorder.calls) == 2


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("query_range", {"promql": "up", "start": "now-10m"}),
        ("query_instant", {"promql": "up"}),
        ("list_metrics", {}),
        ("list_labels", {"metric": "up"}),
        ("list_labels", {"metric": "up", "label": "job"}),
        ("series", {"selector": "up"}),
        ("alert_rule", {"name": "BurstFailureRatio"}),
        pytest.param("alerts_in_window", {}),
    ],
)
def test_prometheus_down_says_unavailable_and_to_write_from_the_evidence(
    make_kit: MakeKit, name: str, args: dict[str, Any]
) -> None:
    kit = make_kit(url=DOWN)
    out = kit.call(name, **args)  # no exception escapes
    assert out.startswith("Prometheus is unavailable: ")
    assert "Do not retry; write the report from the evidence." in out
    assert kit.recorder.calls == []


def test_calls_counts_every_call_refused_or_not(make_kit: MakeKit) -> None:
    kit = make_kit()
    assert kit.toolkit.calls == 0
    kit.call("list_metrics", contains="login")
    kit.call("query_range", promql="sum(", start="now-10m")
    kit.call("query_range", promql=BURST_TOTAL, start="now-10m", step=60)
    kit.call("alert_rule", name="nope")
    assert kit.toolkit.calls == 4
    assert len(kit.recorder.calls) == 1


def test_breakdown_only_with_a_localizer_and_given_datetimes(make_kit: MakeKit) -> None:
    assert "breakdown" not in make_kit().tools

    seen: list[tuple[str, datetime, datetime]] = []

    def localize(expr: str, start: datetime, end: datetime) -> str:
        seen.append((expr, start, end))
        return "shanghai admins explain 90% of the change [E1]"

    kit = make_kit(localize=localize)
    assert "breakdown" in kit.tools
    out = kit.call("breakdown", promql=f" {BURST_TOTAL} ", start="now-10m")
    assert out == "shanghai admins explain 90% of the change [E1]"
    assert seen == [(BURST_TOTAL, kit.now - timedelta(minutes=10), kit.now)]
    assert all(isinstance(t, datetime) and t.tzinfo is not None for t in seen[0][1:])

    at = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    kit.call(
        "breakdown", promql=BURST_TOTAL, start=at.isoformat(), end=str((at + timedelta(hours=1)).timestamp())
    )
    assert seen[1][1:] == (at, at + timedelta(hours=1))

    # refused arguments never reach the localizer
    assert kit.call("breakdown", promql="sum(", start="now-10m").startswith("invalid arguments: ")
    assert kit.call("breakdown", promql=BURST_TOTAL, start="now", end="now-1h").startswith(
        "invalid arguments: "
    )
    assert len(seen) == 2
    assert kit.recorder.calls == []  # the localizer files its own evidence


def test_breakdown_without_a_localizer_is_refused() -> None:
    toolkit = PromToolkit(Prometheus(DOWN), Recorded(), now=lambda: NOW)
    with pytest.raises(ToolInputError, match="not available"):
        toolkit.breakdown(BURST_TOTAL, "now-10m")
