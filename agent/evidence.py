"""The evidence phase: plan the windows, run the signal, breakdown, localization and related queries
through tools/, and file every query as Evidence in the `Findings` a writer gets.

Queries that do not need each other's answers run at the same time: the signal's while the series'
labels are looked up and the first breakdown queries run (`_ahead_of_time`). Each range query is asked
once per investigation (`_range`), and the evidence is filed in the order of the steps, whichever query
answers first."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from agent.findings import Findings
from agent.localizing import Localizer, cube_queries, group_queries, measure_by
from agent.models import AlertInfo, Evidence, SegmentStat
from agent.plan import expression_from_generator_url, find_rule, parse_for, plan_windows
from tools import promql
from tools.breakdown import (
    Census,
    QueryResult,
    candidate_labels,
    fixed_labels,
    label_census,
    merged,
    numerator_only,
    run_instant,
    run_range,
    segment_stats,
)
from tools.chartdata import kept as kept_series
from tools.chartdata import rest_of_cause, top_and_rest
from tools.cuboids import combinations, concentration
from tools.errors import AlertsleuthError, PrometheusUnavailable, UnsupportedQuery
from tools.format import fmt_labels, fmt_num, fmt_pct
from tools.links import grafana_explore, prometheus_graph, ui_base
from tools.prom import Prometheus, Series
from tools.related import collect_related
from tools.windows import WindowStat, choose_step

MAX_STATS_PER_EVIDENCE = 30
LeafSeries = tuple[Sequence[Series], Sequence[Series] | None]  # the finest breakdown: numerator, denominator
RELATED_LOOKBACK_SECONDS = 3600.0  # restarts and deploys are looked for this long before the baseline


@dataclass(frozen=True)
class InvestigationConfig:
    language: str = "en"
    baseline_seconds: float = 3600.0
    min_incident_seconds: float = 60.0
    default_for_seconds: float = 0.0
    max_points: int = 300
    min_step_seconds: float = 1.0
    max_labels: int = 8
    max_label_values: int = 50
    max_leaf_series: int = 2000  # the finest breakdown is fetched up to this many series, else aggregated
    query_concurrency: int = 4
    prometheus_ui_url: str | None = None  # where people see Prometheus, when the alert does not say
    grafana_url: str | None = None  # evidence links open Grafana's Explore there instead
    grafana_datasource: str = "prometheus"  # the Prometheus data source's uid in that Grafana


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _data_seconds(series: Sequence[Series], bounds: tuple[float, float], step: float, length: float) -> float:
    """How much of a window (`bounds`, `length` seconds long) the series had data for: the span of its
    timestamps with a finite value, plus the step the last point stands for, at most `length`."""
    lo, hi = bounds
    ts = [
        t
        for s in series
        for t, v in zip(s.timestamps, s.values, strict=True)
        if lo <= t <= hi and math.isfinite(v)
    ]
    return round(min(length, max(ts) - min(ts) + step), 3) if ts else 0.0


def _stats(rows: Sequence[tuple[dict[str, str], WindowStat]]) -> tuple[list[SegmentStat], bool]:
    out = [
        SegmentStat(labels=labels, baseline=st.baseline, incident=st.incident, peak=st.peak)
        for labels, st in rows[:MAX_STATS_PER_EVIDENCE]
    ]
    return out, len(rows) > MAX_STATS_PER_EVIDENCE


@dataclass
class _Lookup:
    """The underlying series' labels (`EvidenceCollector._lookup`): their values, the notes they call
    for, the candidate labels and, of a ratio, those only its numerator has."""

    found: Census
    notes: list[str]
    labels: list[str]
    numerator_only: list[str]


class EvidenceCollector:
    """Collects the evidence of one alert at a time from Prometheus. Thread-safe; share one per process."""

    def __init__(
        self,
        prom: Prometheus,
        config: InvestigationConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.prom = prom
        self.config = config
        self.clock = clock
        self._ahead: dict[str, Future[QueryResult]] = {}  # one investigation's range queries, by expression
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1)  # one investigation's (`_collect`)

    # ------------------------------------------------------------------ public

    def collect(self, alert: AlertInfo) -> Findings:
        """The findings of `alert`. Its queries are counted on a view of the adapter of its own, so
        `timings["queries"]` is this investigation's even while others share the adapter."""
        prom = self.prom.counting_view()
        findings = EvidenceCollector(prom, self.config, self.clock)._collect(alert)
        findings.timings["queries"] = float(prom.log.queries)
        return findings

    def breakdown(self, expr: str, start: datetime, end: datetime) -> Findings:
        """The investigation of an ad-hoc expression, as if it had alerted at `start`, seen at `end`:
        its signal, breakdowns and localization (for the `breakdown` tool and `ask`)."""
        alert = AlertInfo(
            name="breakdown", starts_at=start, generator_url=f"http://prometheus/graph?g0.expr={quote(expr)}"
        )
        return EvidenceCollector(self.prom, self.config, clock=lambda: end).collect(alert)

    def _collect(self, alert: AlertInfo) -> Findings:
        t_start = time.perf_counter()
        f = Findings(alert=alert, language=self.config.language)
        self._pool = ThreadPoolExecutor(max_workers=max(1, self.config.query_concurrency))
        try:
            self._plan(f)
            if f.condition is not None and f.windows is not None:
                # The signal's query runs while the series' labels are looked up and the first
                # breakdown queries run: none of them needs another's answer.
                signal = f.condition.signal.promql()
                self._ahead_of_time(f, [signal])
                lookup = self._lookup(f)
                self._signal(f, self._range(f, signal))
                if not f.unavailable:
                    self._breakdowns(f, lookup)
                    self._related(f)
        except PrometheusUnavailable as exc:
            f.unavailable = f.degraded = True
            f.notes.append(str(exc))
        except AlertsleuthError as exc:
            f.degraded = True
            f.notes.append(str(exc))
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
        f.timings["evidence_seconds"] = round(time.perf_counter() - t_start, 4)
        return f

    # ------------------------------------------------------------------ phases

    def _plan(self, f: Findings) -> None:
        alert = f.alert
        expr = expression_from_generator_url(alert.generator_url)
        f.expression_source = "generatorURL" if expr else None
        for_duration = timedelta(seconds=self.config.default_for_seconds)
        rule = None
        try:
            rule = find_rule(self.prom.rules(), alert)
        except PrometheusUnavailable:
            raise
        except AlertsleuthError as exc:
            f.notes.append(f"rules API: {exc}")
        if rule is not None:
            for_duration = parse_for(rule.get("duration"))
            if expr is None:
                expr = str(rule.get("query") or "").strip() or None
                f.expression_source = "rules API" if expr else None
        if expr is None:
            f.degraded = True
            f.notes.append(
                f"no rule expression found for alert '{alert.name}' (generatorURL had no g0.expr "
                "and the rules API has no matching alerting rule)"
            )
            return
        f.expression = expr
        try:
            node = promql.parse(expr)
        except UnsupportedQuery as exc:
            f.degraded = True
            f.notes.append(str(exc))
            return
        f.condition = promql.split_condition(node)
        f.notes.extend(f.condition.notes)
        # A rule that groups (`sum by (instance) (...) > x`) fires once per group: investigate this
        # alert's group only, by pinning the grouping labels to the alert's values.
        pinned = [
            promql.Matcher(n, "=", alert.labels[n])
            for n in promql.outer_grouping(f.condition.signal)
            if n in alert.labels
        ]
        if pinned:
            f.condition = replace(f.condition, signal=promql.with_matchers(f.condition.signal, pinned))
            f.notes.append("restricted to the alert's group: " + ", ".join(m.promql() for m in pinned))
        f.shape = promql.shape_of(f.condition.signal)
        f.notes.extend(f.shape.notes)
        f.windows = plan_windows(
            alert,
            self.clock(),
            for_duration=for_duration,
            baseline=timedelta(seconds=self.config.baseline_seconds),
            min_incident=timedelta(seconds=self.config.min_incident_seconds),
        )
        total = (f.windows.incident.end - f.windows.baseline.start).total_seconds()
        f.step = choose_step(total, self.config.max_points, self.config.min_step_seconds)

    def _add(
        self,
        f: Findings,
        kind: str,
        title: str,
        q: QueryResult,
        summary: str,
        rows: Sequence[tuple[dict[str, str], WindowStat]] = (),
        series: list[dict[str, Any]] | None = None,
    ) -> str:
        """File `q` as the next evidence; `series`, when given, are the points its charts draw."""
        ev_id = f"E{len(f.evidence) + 1}"
        stats, truncated = _stats(rows)
        f.evidence.append(
            Evidence(
                id=ev_id,
                kind=kind,
                title=title,
                promql=q.promql,
                start=q.start,
                end=q.end,
                step=q.step,
                summary=summary if not q.error else f"query failed: {q.error}",
                stats=stats,
                truncated=truncated,
                error=q.error,
                series=series or None,
                graph_url=self._graph_url(f, q),
            )
        )
        return ev_id

    def _graph_url(self, f: Findings, q: QueryResult) -> str | None:
        """Where a person sees this query over its range: Grafana when configured, else Prometheus."""
        c = self.config
        if c.grafana_url:
            return grafana_explore(c.grafana_url, c.grafana_datasource, q.promql, q.start, q.end)
        base = ui_base(f.alert.generator_url, c.prometheus_ui_url)
        return prometheus_graph(base, q.promql, q.start, q.end, q.step) if base else None

    def _range(self, f: Findings, expr: str) -> QueryResult:
        """A range query over the investigation's range, asked once: the answer of the same query asked
        or started before (`_ahead_of_time`), if any."""
        with self._lock:
            ahead = self._ahead.get(expr)
            mine = ahead is None
            if ahead is None:
                ahead = self._ahead[expr] = Future()
        if mine:
            try:
                ahead.set_result(run_range(self.prom, *self._range_args(f, expr)))
            except BaseException as exc:  # run_range raises nothing it expects; waiters must not hang
                ahead.set_exception(exc)
                raise
        return ahead.result()

    def _range_args(self, f: Findings, expr: str) -> tuple[str, datetime, datetime, float]:
        assert f.windows is not None
        return expr, f.windows.baseline.start, f.windows.incident.end, f.step

    def _ahead_of_time(self, f: Findings, exprs: Sequence[str]) -> None:
        """Start range queries that will be asked for (`_range` then answers with their results)."""
        with self._lock:
            for expr in exprs:
                if expr not in self._ahead:
                    self._ahead[expr] = self._pool.submit(run_range, self.prom, *self._range_args(f, expr))

    def _instant(self, f: Findings, expr: str) -> QueryResult:
        """An instant query at the incident's end (its windows read back to the baseline's start)."""
        assert f.windows is not None
        return run_instant(self.prom, expr, f.windows.incident.end, f.windows.baseline.start, f.step)

    def _bounds(self, f: Findings) -> tuple[tuple[float, float], tuple[float, float]]:
        assert f.windows is not None
        w = f.windows
        # The baseline excludes its last point: that instant belongs to the incident.
        return (
            (_ts(w.baseline.start), _ts(w.baseline.end) - 1e-3),
            (_ts(w.incident.start), _ts(w.incident.end)),
        )

    def _signal(self, f: Findings, q: QueryResult) -> None:
        """File the signal's query `q`."""
        assert f.condition is not None
        if isinstance(q.exception, PrometheusUnavailable):
            raise q.exception
        base, inc = self._bounds(f)
        rows = segment_stats(q.series, base, inc)
        assert f.windows is not None
        for name, bounds, window in (
            ("baseline", base, f.windows.baseline),
            ("incident", inc, f.windows.incident),
        ):  # a fact about the data only: the analysis does not read it
            f.data_seconds[name] = _data_seconds(q.series, bounds, f.step, window.seconds)
        if q.error:
            f.degraded = True
            summary = ""
        elif not rows:
            summary = "the signal returned no data in either window"
            f.notes.append(summary)
        else:
            st = rows[0][1]
            thr = ""
            if f.condition.threshold is not None:
                thr = f"; alert condition {f.condition.op} {fmt_num(f.condition.threshold)}"
            more = f" ({len(rows)} series, the most changed shown)" if len(rows) > 1 else ""
            summary = (
                f"baseline mean {fmt_num(st.baseline)}, incident mean {fmt_num(st.incident)}, "
                f"incident peak {fmt_num(st.peak)}{thr}{more}"
            )
        order = [labels for labels, _ in rows]
        f.signal_evidence = self._add(
            f,
            "signal",
            "Alert signal over the baseline and incident windows",
            q,
            summary,
            rows,
            top_and_rest(q.series, order, role="signal", keep=3, with_rest=False),
        )

    def _lookup(self, f: Findings) -> _Lookup | AlertsleuthError:
        """The labels of the signal's series and the candidates among them (or why they could not be
        looked up); the breakdown queries they call for are started."""
        assert f.condition is not None and f.windows is not None and f.shape is not None
        signal = f.condition.signal
        w = f.windows
        fixed = set(fixed_labels(signal)) | set(promql.outer_grouping(signal))
        try:
            censuses = {
                sel.promql(): label_census(
                    self.prom, sel.promql(), w.baseline.start, w.incident.end, self.config.query_concurrency
                )
                for sel in promql.selectors(signal)
            }
        except AlertsleuthError as exc:
            return exc
        found = merged(list(censuses.values()))
        cands = candidate_labels(
            found,
            fixed=sorted(fixed),
            max_cardinality=self.config.max_label_values,
            max_labels=self.config.max_labels,
        )
        only, note = numerator_only(f.shape, censuses, cands.labels)
        labels = [n for n in cands.labels if n not in only]
        if labels:  # what `_breakdowns` asks for first: the group queries, or each label's and the leaves'
            cardinality = {name: len(found.get(name, ())) for name in labels}
            budget = self.config.max_leaf_series
            grouped = measure_by(f.shape)
            if combinations(cardinality, labels) <= budget or f.shape.kind not in ("ratio", "additive"):
                self._ahead_of_time(f, [self._by_label(f, n) for n in labels])
                if grouped is not None and combinations(cardinality, labels) <= budget:
                    self._ahead_of_time(f, cube_queries(grouped, labels))
            elif grouped is not None:
                self._ahead_of_time(f, group_queries(grouped, cardinality, labels, budget))
        return _Lookup(found, [*cands.notes, *note], labels, only)

    def _by_label(self, f: Findings, label: str) -> str:
        """The query of the signal's breakdown by `label` (of an extreme, its series by it: `topk by
        (label)` would keep k per value)."""
        assert f.condition is not None and f.shape is not None
        if f.shape.kind == "extreme" and isinstance(f.shape.num, promql.Aggregate):
            return promql.group_by(f.shape.num, [label]).promql()
        return promql.group_by(f.condition.signal, [label]).promql()

    def _breakdowns(self, f: Findings, lookup: _Lookup | AlertsleuthError) -> None:
        assert f.condition is not None and f.windows is not None and f.shape is not None
        if isinstance(lookup, PrometheusUnavailable):
            raise lookup
        if isinstance(lookup, AlertsleuthError):
            f.notes.append(f"series lookup failed: {lookup}")
            return
        found, labels, numerator_only = lookup.found, lookup.labels, lookup.numerator_only
        f.jobs = sorted(found.get("job", ()))
        f.notes.extend(lookup.notes)
        shape = f.shape
        f.labels = labels
        if not labels:
            f.notes.append("the underlying series have no label that varies: nothing to break down")
            self._kinds(f, numerator_only)
            return

        measure = "Numerator"
        grouped = measure_by(shape)
        if shape.kind == "quantile" and isinstance(shape.num, promql.Aggregate):
            le = self._quantile_bucket(f, found)
            if le is not None:
                buckets = shape.num
                measure = f"Observations above le={le}"

                def above(labels: Sequence[str]) -> tuple[promql.Node, promql.Node | None]:
                    return promql.slower_than(buckets, le, labels)

                grouped = above

        ratio = shape.kind not in ("additive", "extreme")
        cardinality = {name: len(found.get(name, ())) for name in labels}
        extreme = None
        if shape.kind == "extreme" and isinstance(shape.num, promql.Aggregate):
            extreme = (shape.num.op == "max", f.condition.op, f.condition.threshold)
        # Each leaf is one series when no other label varies (should a label of one value be missing
        # from some series, two series make one leaf: Prometheus refuses the screen's match then).
        series = all(len(values) <= 1 for name, values in found.items() if name not in labels)
        localizer = (
            Localizer(self, f, grouped, measure if ratio else "Signal", ratio, extreme, series)
            if grouped
            else None
        )
        # A large metric: each label's breakdown is summed from a few group queries, not one query per
        # label over every series (a ratio's or a sum's only: a quantile's is not a sum).
        large = combinations(cardinality, labels) > self.config.max_leaf_series
        derived: dict[str, tuple[QueryResult, str]] = {}
        t0 = time.perf_counter()
        if localizer is not None and large and shape.kind in ("ratio", "additive"):
            if localizer.groups(labels, cardinality) is None:
                return
            for label in labels:
                if (found_in := localizer.breakdown(label, shape.scale)) is not None:
                    derived[label] = found_in

        def run(label: str) -> QueryResult:
            return derived[label][0] if label in derived else self._range(f, self._by_label(f, label))

        with ThreadPoolExecutor(max_workers=max(1, self.config.query_concurrency)) as pool:
            results = list(pool.map(run, labels))
        f.timings["breakdown_seconds"] = round(time.perf_counter() - t0, 4)

        base, inc = self._bounds(f)
        scores: dict[str, float] = {}
        for label, q in zip(labels, results, strict=True):
            rows = segment_stats(q.series, base, inc)
            scores[label] = concentration([st for _, st in rows])
            top = "; ".join(
                f"{r[0].get(label, '')}: {fmt_num(r[1].baseline)} -> {fmt_num(r[1].incident)}"
                for r in rows[:5]
            )
            source = f" (summed from {derived[label][1]})" if label in derived else ""
            f.label_evidence[label] = self._add(
                f,
                "breakdown",
                f"Alert signal by {label}",
                q,
                f"{len(rows)} values of {label}{source}, most changed first (baseline -> incident mean): "
                + top,
                rows,
                top_and_rest(q.series, [r[0] for r in rows], with_rest=f.shape.kind == "additive"),
            )
        if q_err := next((q for q in results if isinstance(q.exception, PrometheusUnavailable)), None):
            f.degraded = True
            f.notes.append(f"some breakdown queries failed: {q_err.error}")
        if grouped is None:
            f.notes.append(
                "localization needs a sum or a ratio of sums; this signal is compared label by label only"
            )
            return
        assert localizer is not None
        cube = localizer.run(labels, cardinality, scores)
        if f.localization is None:
            return
        self._kinds(f, numerator_only)
        f.timings["elements_examined"] = float(f.localization.examined)
        f.notes.extend(f.localization.notes)
        if f.localization.localized:
            # The traffic outside each cause, from the same leaves (a sum or a ratio of sums only: the
            # leaves of a quantile count observations, not the quantile).
            additive = f.shape.kind in ("ratio", "additive")
            outside = (cube.num, cube.den) if cube is not None and additive else None
            self._verify_causes(f, outside)

    def _kinds(self, f: Findings, labels: Sequence[str]) -> None:
        """The numerator by each of its own labels, within each cause (or overall when nothing was
        localized): which value of it carries the change ("the new errors are status=503")."""
        if not labels or f.shape is None or f.condition is None:
            return
        loc = f.localization
        within = [c.labels for c in loc.causes[:3]] if loc is not None and loc.localized else [()]
        base, inc = self._bounds(f)
        for element in within:
            mostly: dict[str, str] = {}
            shares: list[float] = []
            first = ""
            for label in labels:
                node = promql.group_by(f.shape.num, [label])
                if element:
                    node = promql.with_matchers(node, [promql.Matcher(n, "=", v) for n, v in element])
                q = self._range(f, node.promql())
                rows = segment_stats(q.series, base, inc)
                deltas = {r[0].get(label, ""): (r[1].incident or 0.0) - (r[1].baseline or 0.0) for r in rows}
                total = sum(deltas.values())
                top = max(deltas, key=lambda v: deltas[v] * (1 if total >= 0 else -1), default=None)
                share = deltas[top] / total if top is not None and abs(total) > 1e-12 else 0.0
                where = f" within {fmt_labels(dict(element))}" if element else ""
                text = f"{label}={top}: {fmt_pct(share)} of the change" if top is not None else "no data"
                ev = self._add(f, "breakdown", f"Numerator{where} by {label}", q, text, rows)
                first = first or ev
                if top is not None and share >= 0.5:
                    mostly[label] = top
                    shares.append(share)
                    if not element:
                        f.notes.append(f"the numerator's change is mostly {label}={top} ({fmt_pct(share)})")
            if element and mostly:
                f.cause_detail[element] = (mostly, min(shares), first)

    def _cardinality(
        self,
        f: Findings,
        selectors: Sequence[str],
        names: Sequence[str] | None = None,
        concurrency: int | None = None,
    ) -> dict[str, int]:
        """Each label's number of values on the series of `selectors`, over the investigation's range
        (only those of `names` when given), asked for `concurrency` (else `query_concurrency`) at a time."""
        assert f.windows is not None
        w = f.windows
        concurrency = concurrency or self.config.query_concurrency
        census: Census = merged(
            [
                label_census(self.prom, s, w.baseline.start, w.incident.end, concurrency, names)
                for s in selectors
            ]
        )
        return {name: len(values) for name, values in census.items()}

    def _quantile_bucket(self, f: Findings, found: Census) -> str | None:
        """The bucket boundary a quantile alert is judged at: the smallest `le` at or above the alert's
        threshold (or, without one, above the quantile's baseline value). The quantile rises past it
        exactly when the share of observations above it rises past 1 - q, so that share is localized
        as a ratio, numerator and denominator together."""
        assert f.condition is not None and f.shape is not None
        bounds: dict[float, str] = {}
        for text in found.get("le", ()):
            try:
                value = float(text)
            except ValueError:
                continue
            if math.isfinite(value):
                bounds.setdefault(value, text)
        if not bounds:
            f.notes.append(
                "the histogram has no finite `le` buckets: the quantile is compared label by label"
            )
            return None
        level = f.condition.threshold if f.condition.op in (">", ">=") else None
        if level is None:
            signal = next((e for e in f.evidence if e.id == f.signal_evidence), None)
            level = signal.stats[0].baseline if signal and signal.stats else None
        if level is None:
            return None
        above = [b for b in sorted(bounds) if b >= level * (1 - 1e-9)]
        le = bounds[above[0] if above else max(bounds)]
        f.notes.append(
            f"the p{(f.shape.quantile or 0) * 100:g} latency is localized through the share of observations "
            f"above the bucket le={le} (the alert's level {fmt_num(level)}): the quantile lies above that "
            f"bucket exactly when more than {fmt_pct(1 - (f.shape.quantile or 0))} of the observations do"
        )
        return le

    def _related(self, f: Findings) -> None:
        """Other alerts firing, targets down, restarts and deploys around the alert, as evidence."""
        assert f.windows is not None
        w = f.windows
        start = w.baseline.start
        span = (w.incident.end - start).total_seconds() + RELATED_LOOKBACK_SECONDS
        related = collect_related(
            self.prom,
            jobs=f.jobs,
            alert_labels={**f.alert.labels, "alertname": f.alert.name},
            start=start,
            end=w.incident.end,
            step=choose_step(span, self.config.max_points, self.config.min_step_seconds),
            lookback_seconds=RELATED_LOOKBACK_SECONDS,
        )
        f.related = related
        for section in related.sections:
            if section.query is None:
                continue
            f.related_evidence[section.kind] = self._add(
                f, "related", section.title, section.query, "\n".join(section.lines)
            )
            f.evidence[-1].truncated = section.truncated

    def _verify_causes(
        self, f: Findings, leaves: tuple[Sequence[Series], Sequence[Series] | None] | None
    ) -> None:
        """Query the alert signal restricted to each cause: the figures its statement cites, and the line
        its chart draws against the rest of the traffic (computed from `leaves`, when given)."""
        assert f.condition is not None and f.localization is not None and f.shape is not None
        base, inc = self._bounds(f)
        causes = f.localization.causes

        def run(labels: tuple[tuple[str, str], ...]) -> QueryResult:
            matchers = [promql.Matcher(n, "=", v) for n, v in labels]
            return self._range(f, promql.with_matchers(f.condition.signal, matchers).promql())  # type: ignore[union-attr]

        with ThreadPoolExecutor(max_workers=max(1, self.config.query_concurrency)) as pool:
            results = list(pool.map(run, [c.labels for c in causes]))
        for cand, q in zip(causes, results, strict=True):
            rows = segment_stats(q.series, base, inc)
            text = fmt_labels(dict(cand.labels))
            summary = "no data"
            if rows:
                st = rows[0][1]
                summary = (
                    f"{text}: baseline mean {fmt_num(st.baseline)}, incident mean {fmt_num(st.incident)}, "
                    f"incident peak {fmt_num(st.peak)}"
                )
            series = top_and_rest(q.series, [r[0] for r in rows], role="cause", keep=1, with_rest=False)
            rest = rest_of_cause(*leaves, dict(cand.labels), f.shape.scale) if leaves and series else []
            if rest:
                series.append(kept_series({}, rest, "rest"))
            f.cause_evidence[cand.labels] = self._add(
                f, "localization", f"Alert signal within {text}", q, summary, rows, series
            )
