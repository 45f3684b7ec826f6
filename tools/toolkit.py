"""LangChain tools over the same Prometheus functions the offline path uses, with bounded output.

Every call is validated (query length, time range, step), runs through the `Prometheus` adapter, and is
handed to a `Recorder` that files it as evidence and returns the id the model cites ("[E7]"). The
tools know nothing of reports or HTTP: the recorder and the localizer are supplied by the agent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from tools import promql
from tools.breakdown import QueryResult, run_range
from tools.errors import AlertsleuthError, PrometheusUnavailable, ToolInputError, UnsupportedQuery
from tools.format import fmt_labels, rfc3339
from tools.prom import Prometheus, Series
from tools.related import QueryRange, firing_alerts
from tools.windows import choose_step, mean

MAX_QUERY_CHARS = 2000
MAX_RANGE = timedelta(days=7)


def _stamp(value: datetime | float) -> str:
    return rfc3339(value, seconds=True)


class Recorder(Protocol):
    """Files one tool call as evidence; returns its id (E1, E2, ...)."""

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
    ) -> str: ...


# (expression, incident start, incident end) -> a text summary of the localization, citing evidence ids
Localizer = Callable[[str, datetime, datetime], str]


@dataclass(frozen=True)
class Limits:
    max_series: int = 20  # series described per answer
    max_points: int = 300  # per series and range query
    max_chars: int = 4000  # characters per answer
    max_values: int = 100  # metric names / label values listed


def parse_time(text: str | float | None, now: datetime, default: datetime) -> datetime:
    """RFC 3339, Unix seconds, 'now', or 'now-15m' / 'now-2h' / 'now-1d'."""
    if text is None or text == "":
        return default
    try:
        return _parse_time(text, now)
    except (OverflowError, OSError) as exc:
        raise ToolInputError(f"time '{text}' is out of range") from exc


def _parse_time(text: str | float, now: datetime) -> datetime:
    if isinstance(text, int | float):
        return datetime.fromtimestamp(float(text), UTC)
    s = str(text).strip()
    if s.startswith("now"):
        rest = s[3:].replace(" ", "")
        if not rest:
            return now
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        if rest[0] in "+-" and rest[-1] in units:
            try:
                amount = float(rest[1:-1])
            except ValueError:
                amount = math.nan
            if math.isfinite(amount):
                sign = -1 if rest[0] == "-" else 1
                return now + timedelta(seconds=sign * amount * units[rest[-1]])
        raise ToolInputError(f"time '{s}': use RFC 3339, Unix seconds, or now-15m / now-2h / now-1d")
    try:
        return datetime.fromtimestamp(float(s), UTC)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ToolInputError(f"time '{s}': use RFC 3339, Unix seconds, or now-15m / now-2h / now-1d") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def check_query(expr: str) -> str:
    expr = (expr or "").strip()
    if not expr:
        raise ToolInputError("empty query")
    if len(expr) > MAX_QUERY_CHARS:
        raise ToolInputError(f"query of {len(expr)} characters; at most {MAX_QUERY_CHARS}")
    try:
        promql.parse(expr)
    except UnsupportedQuery as exc:
        raise ToolInputError(str(exc)) from exc
    return expr


def _num(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a" if x is None else str(x)
    return f"{x:.4g}"


def describe_series(series: Sequence[Series], limits: Limits, points: int = 6) -> tuple[list[str], bool]:
    """One line per series (min/mean/max/last and a few evenly spaced points), the most varying first."""

    def spread(s: Series) -> float:
        vals = [v for v in s.values if math.isfinite(v)]
        return (max(vals) - min(vals)) if vals else -1.0

    ordered = sorted(series, key=spread, reverse=True)
    lines = []
    for s in ordered[: limits.max_series]:
        vals = [v for v in s.values if math.isfinite(v)]
        if not vals:
            lines.append(f"{fmt_labels(s.labels)}: no finite values")
            continue
        idx = sorted({round(i * (len(s.values) - 1) / max(1, points - 1)) for i in range(points)})
        sample = ", ".join(f"{_stamp(s.timestamps[i])}={_num(s.values[i])}" for i in idx)
        lines.append(
            f"{fmt_labels(s.labels)}: min {_num(min(vals))}, mean {_num(mean(vals))}, max {_num(max(vals))}, "
            f"last {_num(vals[-1])}; points {sample}"
        )
    return lines, len(ordered) > limits.max_series


def bound(text: str, limits: Limits, hint: str) -> str:
    if len(text) <= limits.max_chars:
        return text
    note = f"\n[truncated at {limits.max_chars} characters; {hint}]"
    keep = max(0, limits.max_chars - len(note))
    cut = text[:keep].rsplit("\n", 1)[0] if "\n" in text[:keep] else text[:keep]
    return cut + note


NARROW = "narrow it: add label matchers, aggregate with sum by (label), or shorten the range"


class RangeArgs(BaseModel):
    promql: str = Field(description="PromQL expression")
    start: str = Field(description="RFC 3339, Unix seconds, or now-1h")
    end: str = Field("now", description="RFC 3339, Unix seconds, or now")
    step: float | None = Field(None, description="seconds between points; default keeps about 300 points")


class InstantArgs(BaseModel):
    promql: str = Field(description="PromQL expression")
    time: str = Field("now", description="RFC 3339, Unix seconds, or now-5m")


class MetricsArgs(BaseModel):
    contains: str = Field("", description="only metric names containing this text")


class LabelsArgs(BaseModel):
    metric: str = Field(
        description="a metric name or a series selector such as http_requests_total{job='api'}"
    )
    label: str = Field("", description="list this label's values; empty lists the label names")


class SeriesArgs(BaseModel):
    selector: str = Field(description="series selector, e.g. up{job='api'}")


class BreakdownArgs(BaseModel):
    promql: str = Field(description="a sum, a ratio of sums or a histogram_quantile to localize")
    start: str = Field(description="when the anomaly started: RFC 3339, Unix seconds, or now-30m")
    end: str = Field("now", description="when it ended")


class RuleArgs(BaseModel):
    name: str = Field(description="alert rule name")


class WindowArgs(BaseModel):
    start: str = Field("now-1h", description="RFC 3339, Unix seconds, or now-1h")
    end: str = Field("now", description="RFC 3339, Unix seconds, or now")


class PromToolkit:
    """The agent's tools, bound to one Prometheus, one evidence recorder and one clock."""

    def __init__(
        self,
        prom: Prometheus,
        record: Recorder,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        localize: Localizer | None = None,
        limits: Limits = Limits(),
        exclude_alert: dict[str, str] | None = None,
    ) -> None:
        self.prom = prom
        self.record = record
        self.now = now
        self.localize = localize
        self.limits = limits
        self.exclude_alert = exclude_alert or {}
        self.calls = 0

    # ------------------------------------------------------------------ plumbing

    def _run(self, fn: Callable[..., str], **kwargs: Any) -> str:
        """Tool errors go back to the model as text it can act on; Prometheus down is said plainly."""
        self.calls += 1
        try:
            return fn(**kwargs)
        except ToolInputError as exc:
            return f"invalid arguments: {exc}"
        except PrometheusUnavailable as exc:
            return f"Prometheus is unavailable: {exc}. Do not retry; write the report from the evidence."
        except AlertsleuthError as exc:
            return f"query failed: {exc}"

    def _window(self, start: str, end: str) -> tuple[datetime, datetime]:
        now = self.now()
        s = parse_time(start, now, now - timedelta(hours=1))
        e = parse_time(end, now, now)
        if e <= s:
            raise ToolInputError(f"end {_stamp(e)} is not after start {_stamp(s)}")
        if e - s > MAX_RANGE:
            raise ToolInputError(f"range longer than {MAX_RANGE.days} days")
        return s, e

    # ------------------------------------------------------------------ tools

    def query_range(self, promql: str, start: str, end: str = "now", step: float | None = None) -> str:
        expr = check_query(promql)
        s, e = self._window(start, end)
        seconds = (e - s).total_seconds()
        if step is None:
            step = choose_step(seconds, self.limits.max_points)
        elif not math.isfinite(step):
            raise ToolInputError(f"step {step}: give a number of seconds")
        elif step <= 0 or seconds / step + 1 > self.limits.max_points:
            raise ToolInputError(
                f"step {step}s gives {int(seconds / max(step, 1e-9)) + 1} points; at most "
                f"{self.limits.max_points}: use step >= {choose_step(seconds, self.limits.max_points):g}"
            )
        q = run_range(self.prom, expr, s, e, step)
        if isinstance(q.exception, PrometheusUnavailable):
            raise q.exception
        return self._answer("query", f"Range query {expr}", q, f"{NARROW}")

    def _answer(self, kind: str, title: str, q: QueryResult, hint: str) -> str:
        if q.error:
            ev = self.record(
                kind=kind, title=title, promql=q.promql, start=q.start, end=q.end, step=q.step,
                summary=f"query failed: {q.error}", error=q.error,
            )  # fmt: skip
            return f"[{ev}] query failed: {q.error}"
        lines, truncated = describe_series(q.series, self.limits)
        span = f"from {_stamp(q.start)} to {_stamp(q.end)}"
        head = f"{len(q.series)} series {span}, step {q.step:g}s"
        if truncated:
            head += f"; the {self.limits.max_series} most varying shown ({hint})"
        if not q.series:
            head += "; no data (check the metric and label names with list_metrics / list_labels)"
        text = bound("\n".join([head, *lines]), self.limits, hint)
        ev = self.record(
            kind=kind, title=title, promql=q.promql, start=q.start, end=q.end, step=q.step, summary=text
        )
        return f"[{ev}] {text}"

    def query_instant(self, promql: str, time: str = "now") -> str:
        expr = check_query(promql)
        now = self.now()
        at = parse_time(time, now, now)
        q = QueryResult(expr, at, at, 0.0)
        try:
            q.series = self.prom.instant_query(expr, at)
        except PrometheusUnavailable:
            raise
        except AlertsleuthError as exc:
            q.exception = exc
        return self._answer("query", f"Instant query {expr}", q, NARROW)

    def list_metrics(self, contains: str = "") -> str:
        names = self.prom.label_values("__name__")
        hits = [n for n in names if contains.lower() in n.lower()]
        shown = hits[: self.limits.max_values]
        more = (
            f" (first {len(shown)} of {len(hits)}; pass `contains` to narrow)"
            if len(hits) > len(shown)
            else ""
        )
        return bound(f"{len(hits)} metrics{more}: " + ", ".join(shown), self.limits, "pass `contains`")

    def list_labels(self, metric: str, label: str = "") -> str:
        selector = check_query(metric)
        now = self.now()
        if not label:
            names = self.prom.label_names([selector], now - timedelta(hours=1), now)
            return f"labels of {selector}: " + ", ".join(n for n in names if n != "__name__")
        values = self.prom.label_values(label, [selector])
        shown = values[: self.limits.max_values]
        more = f" (first {len(shown)} of {len(values)})" if len(values) > len(shown) else ""
        return bound(f"{len(values)} values of {label}{more}: " + ", ".join(shown), self.limits, NARROW)

    def series(self, selector: str) -> str:
        sel = check_query(selector)
        now = self.now()
        found = self.prom.series([sel], now - timedelta(hours=1), now, limit=self.limits.max_series + 1)
        lines = [fmt_labels(s) for s in found[: self.limits.max_series]]
        more = f" (first {self.limits.max_series}; {NARROW})" if len(found) > self.limits.max_series else ""
        return bound(f"series of {sel} in the last hour{more}:\n" + "\n".join(lines), self.limits, NARROW)

    def breakdown(self, promql: str, start: str, end: str = "now") -> str:
        expr = check_query(promql)
        s, e = self._window(start, end)
        if self.localize is None:
            raise ToolInputError("breakdown is not available here")
        return self.localize(expr, s, e)

    def alert_rule(self, name: str) -> str:
        rules = [r for r in self.prom.rules() if r.get("name") == name]
        if not rules:
            return f"no alerting rule named {name!r}"
        out = []
        for r in rules[:5]:
            out.append(
                f"rule {r.get('name')} (group {r.get('group')}): expr {r.get('query')}; "
                f"for {r.get('duration', 0)}s; "
                f"labels {r.get('labels', {})}; state {r.get('state')}"
            )
        return bound("\n".join(out), self.limits, "ask for one rule")

    def alerts_in_window(self, start: str = "now-1h", end: str = "now") -> str:
        s, e = self._window(start, end)
        step = choose_step((e - s).total_seconds(), self.limits.max_points)
        expr = 'ALERTS{alertstate="firing"}'
        q = run_range(self.prom, expr, s, e, step)
        if isinstance(q.exception, PrometheusUnavailable):
            raise q.exception
        if q.error:
            return self._answer("related", "Alerts firing", q, NARROW)
        found = firing_alerts(q.series, self.exclude_alert, QueryRange(s.timestamp(), e.timestamp(), step))
        lines = [a.summary for a in found[: self.limits.max_series]]
        if len(found) > len(lines):
            lines.append(f"{len(found) - len(lines)} more left out; shorten the range")
        text = bound("\n".join(lines) or "no other alert firing in the window", self.limits, NARROW)
        ev = self.record(
            kind="related", title="Alerts firing", promql=expr, start=s, end=e, step=step, summary=text
        )
        return f"[{ev}] {text}"

    def tools(self) -> list[BaseTool]:
        def make(name: str, fn: Callable[..., str], schema: type[BaseModel], doc: str) -> BaseTool:
            def call(**kwargs: Any) -> str:
                return self._run(fn, **kwargs)

            return StructuredTool.from_function(func=call, name=name, description=doc, args_schema=schema)

        described: list[tuple[str, Callable[..., str], type[BaseModel], str]] = [
            ("query_range", self.query_range, RangeArgs,
             "Run a PromQL range query; answers per-series min/mean/max/last and a few points, "
             "with an evidence id."),
            ("query_instant", self.query_instant, InstantArgs,
             "Run a PromQL instant query at one time; answers the values with an evidence id."),
            ("list_metrics", self.list_metrics, MetricsArgs, "List metric names, optionally filtered."),
            ("list_labels", self.list_labels, LabelsArgs,
             "List a metric's label names, or one label's values."),
            ("series", self.series, SeriesArgs, "List the series matching a selector in the last hour."),
            ("alert_rule", self.alert_rule, RuleArgs, "Look up an alerting rule: expression, for, labels."),
            ("alerts_in_window", self.alerts_in_window, WindowArgs,
             "Other alerts firing in a time window, with when they fired."),
        ]  # fmt: skip
        if self.localize is not None:
            described.append(
                ("breakdown", self.breakdown, BreakdownArgs,
                 "Localize a sum, ratio or histogram quantile: which label set explains its change since "
                 "the hour before `start`, with baseline/incident values and explained share.")
            )  # fmt: skip
        out = [make(*d) for d in described]
        return out
