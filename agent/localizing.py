"""The localization step of the evidence phase: the measure's leaves from Prometheus, the analysis core
on them, and every query filed as evidence.

When the finest breakdown (every candidate label at once) fits in `max_leaf_series`, its leaves are
fetched and localized as they are. When it does not (a metric with 10,000-100,000 label
combinations), no leaf is fetched: the measure is aggregated in PromQL by the labels whose breakdowns
concentrate the change most, as many as fit (`tools/cuboids.py`), localized there, and each cause is
then broken down inside itself by the labels left out, at most two levels deep. The notes say what was
left out at each step, so the report never claims more depth than it looked at.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

from agent.findings import Findings
from tools import promql
from tools.analysis import Candidate, Labels, Localization, localize
from tools.breakdown import QueryResult, leaves_from, segment_stats
from tools.cuboids import (
    best_labels,
    choose_labels,
    combinations,
    pack,
    ranked_labels,
    ratio_series,
    rolled_up,
)
from tools.errors import AlertsleuthError, PrometheusUnavailable
from tools.extremes import extreme_leaves, localize_extreme
from tools.format import fmt_labels
from tools.prom import Series

MAX_DEPTH = 2  # drill-down levels below the coarse cube
Grouped = Callable[[Sequence[str]], tuple[promql.Node, promql.Node | None]]  # labels -> (num, den)
Bounds = tuple[tuple[float, float], tuple[float, float]]


class Collector(Protocol):
    """What this step needs of the evidence collector."""

    config: Any

    def _range(self, f: Findings, expr: str) -> QueryResult: ...
    def _bounds(self, f: Findings) -> Bounds: ...
    def _add(
        self,
        f: Findings,
        kind: str,
        title: str,
        q: QueryResult,
        summary: str,
        rows: Any = (),
        series: Any = None,
    ) -> str: ...
    def _cardinality(self, f: Findings, selectors: Sequence[str]) -> dict[str, int]: ...


@dataclass
class Cube:
    """The measure's leaves over `labels`: the numerator's (or the sum's) and the denominator's series,
    with the numerator's query and evidence id (None when summed from another cube)."""

    labels: list[str]
    num: Sequence[Series]
    den: Sequence[Series] | None
    query: QueryResult | None = None
    evidence: str = ""


def _scaled(series: Sequence[Series], scale: float) -> list[Series]:
    if scale == 1.0:
        return list(series)
    return [Series(s.labels, s.timestamps, tuple(v * scale for v in s.values)) for s in series]


class Localizer:
    """One alert's localization, from the candidate labels to `f.localization`."""

    def __init__(
        self,
        c: Collector,
        f: Findings,
        grouped: Grouped,
        measure: str,
        ratio: bool,
        extreme: tuple[bool, str | None, float | None] | None = None,
    ) -> None:
        """`extreme`: for a max/min/topk/bottomk signal, (high, the alert's op, its threshold): the
        series that make the extreme are localized (`tools.extremes`) instead of a sum's change."""
        self.c, self.f, self.grouped, self.measure, self.ratio = c, f, grouped, measure, ratio
        self.extreme = extreme
        self.budget = int(c.config.max_leaf_series)
        self.cubes: list[Cube] = []  # the group queries of a large metric (see `groups`)
        self.scores: dict[str, float] = {}  # each label's concentration (`tools.cuboids.concentration`)
        self.drilled = 0  # elements examined inside the causes

    def groups(self, labels: list[str], cardinality: dict[str, int]) -> list[Cube] | None:
        """The measure by groups of labels that each fit the budget (`tools.cuboids.pack`), one query
        (two for a ratio) per group: every label's breakdown is summed from them, and the coarse cube
        when a group holds its labels. None when a query failed."""
        groups = pack(cardinality, labels, self.budget)
        with ThreadPoolExecutor(max_workers=max(1, self.c.config.query_concurrency)) as pool:
            cubes = list(
                pool.map(lambda g: self._cube(g, (), f"{self.measure} by {', '.join(g)}", keep=True), groups)
            )
        if any(cube is None for cube in cubes):
            return None
        self.cubes = [cube for cube in cubes if cube is not None]
        return self.cubes

    def breakdown(self, label: str, scale: float) -> tuple[QueryResult, str] | None:
        """The alert signal by `label`, summed from the group query holding it: a result carrying that
        query's text and range and the summed series, and the evidence id of the group query."""
        for cube in self.cubes:
            if label in cube.labels and cube.query is not None:
                num, den = rolled_up(cube.num, cube.den, [label])
                series = ratio_series(num, den, scale) if den is not None else _scaled(num, scale)
                q = cube.query
                return QueryResult(q.promql, q.start, q.end, q.step, series), cube.evidence
        return None

    def run(self, labels: list[str], cardinality: dict[str, int], scores: dict[str, float]) -> Cube | None:
        """Localize on `labels`; the cube the causes' "rest of the traffic" can be computed from (None
        when that cube does not hold every cause's labels)."""
        f = self.f
        self.scores = scores
        # The leaves are at most the combinations of the group queries' series (the labels' values
        # when there are no groups): a sparse metric (routes of one service, pods of one node) may fit.
        count = combinations(cardinality, labels)
        if self.cubes:
            count = math.prod(max(1, len(cube.num)) for cube in self.cubes)
        if count <= self.budget:
            cube = self._cube(labels, (), f"{self.measure} by {', '.join(labels)}")
            if cube is None:
                return None
            t = time.perf_counter()
            f.localization = self._analyse(cube)
            self._timing(t)
            return cube
        coarse = best_labels({n: scores.get(n, 0.0) for n in labels}, cardinality, self.budget)
        f.notes.append(
            f"the finest breakdown has up to {count:,} series (limit {self.budget:,}): localized on "
            f"{', '.join(coarse)} ({combinations(cardinality, coarse):,} combinations at most), the "
            "labels whose values changed most apart, then each cause broken down inside itself by the others"
        )
        cube = self._cube(coarse, (), f"{self.measure} by {', '.join(coarse)}")
        if cube is None:
            return None
        t = time.perf_counter()
        loc = self._analyse(cube)
        self._timing(t)
        if loc.localized:
            refined: list[Candidate] = []
            for cause in loc.causes:
                refined.extend(self._drill(cause, labels, set(coarse), 1))
            loc = replace(loc, causes=_distinct(refined), examined=loc.examined + self.drilled)
        f.localization = loc
        inside = all({n for n, _ in c.labels} <= set(coarse) for c in loc.causes)
        return cube if inside else None

    # ---------------------------------------------------------------- queries

    def _cube(self, labels: Sequence[str], within: Labels, title: str, keep: bool = False) -> Cube | None:
        """The measure by `labels`, restricted to `within`: summed from a group query that holds the
        labels, else queried (both queries filed as evidence)."""
        if not within and not keep:
            for cube in self.cubes:
                if set(labels) <= set(cube.labels):
                    num_s, den_s = rolled_up(cube.num, cube.den, labels)
                    return Cube(list(labels), num_s, den_s, None, cube.evidence)
        num, den = self.grouped(labels)
        matchers = [promql.Matcher(n, "=", v) for n, v in within]
        if matchers:
            num = promql.with_matchers(num, matchers)
            den = promql.with_matchers(den, matchers) if den is not None else None
        exprs = [num.promql()] + ([den.promql()] if den is not None else [])
        with ThreadPoolExecutor(max_workers=max(1, min(2, self.c.config.query_concurrency))) as pool:
            results = list(pool.map(lambda e: self.c._range(self.f, e), exprs))
        base, inc = self.c._bounds(self.f)
        ids = []
        for q, part in zip(results, (title, f"Denominator{title[len(self.measure) :]}"), strict=False):
            rows = segment_stats(q.series, base, inc)
            ids.append(self.c._add(self.f, "localization", part, q, f"{len(q.series)} series", rows))
        self.f.leaf_evidence.extend(ids)
        if any(q.error for q in results):
            self.f.degraded = True
            if failed := next((q for q in results if isinstance(q.exception, PrometheusUnavailable)), None):
                raise failed.exception  # type: ignore[misc]
            return None
        return Cube(
            list(labels),
            results[0].series,
            results[1].series if den is not None else None,
            results[0],
            ids[0],
        )

    def _analyse(self, cube: Cube) -> Localization:
        base, inc = self.c._bounds(self.f)
        if self.extreme is not None:
            high, op, threshold = self.extreme
            leaves = extreme_leaves(cube.num, cube.labels, base, inc, high)
            return localize_extreme(leaves, high=high, op=op, threshold=threshold)
        return localize(leaves_from(cube.num, cube.den, cube.labels, base, inc), ratio=self.ratio)

    def _timing(self, t: float) -> None:
        timings = self.f.timings
        timings["localize_seconds"] = round(timings.get("localize_seconds", 0.0) + time.perf_counter() - t, 4)

    # ---------------------------------------------------------------- drill-down

    def _drill(self, cause: Candidate, labels: list[str], seen: set[str], depth: int) -> list[Candidate]:
        """`cause` refined inside itself by the labels not looked at yet: the cause's own leaves by those
        labels (and the coarse ones it does not pin), localized; a concentrated change there narrows it."""
        f = self.f
        pinned = {n for n, _ in cause.labels}
        unseen = [n for n in labels if n not in seen and n not in pinned]
        if not unseen or depth > MAX_DEPTH:
            return [cause]
        matchers = [promql.Matcher(n, "=", v) for n, v in cause.labels]
        num, _ = self.grouped(labels)
        selectors = [s.promql() for s in promql.selectors(promql.with_matchers(num, matchers))]
        try:
            inside = self.c._cardinality(f, selectors)
        except AlertsleuthError as exc:
            f.notes.append(f"{fmt_labels(dict(cause.labels))} not broken down further: {exc}")
            return [cause]
        order = ranked_labels(self.scores, unseen) + ranked_labels(
            self.scores, [n for n in labels if n in seen and n not in pinned]
        )
        sub = choose_labels([n for n in order if inside.get(n, 0) > 1], inside, self.budget)
        if not any(n in unseen for n in sub):
            return [cause]
        left = [n for n in unseen if n not in sub]
        if left:
            f.notes.append(
                f"{fmt_labels(dict(cause.labels))} broken down by {', '.join(sub)}; "
                f"{', '.join(left)} left out at this depth"
            )
        cube = self._cube(sub, cause.labels, f"{self.measure} within {fmt_labels(dict(cause.labels))}")
        if cube is None:
            return [cause]
        t = time.perf_counter()
        loc = self._analyse(cube)
        self._timing(t)
        self.drilled += loc.examined
        if not loc.localized:
            return [cause]
        out: list[Candidate] = []
        for c in loc.causes:
            child = _narrowed(cause, c)
            out.extend(self._drill(child, labels, seen | set(sub), depth + 1))
        return out


def _distinct(causes: Sequence[Candidate]) -> list[Candidate]:
    """Causes in order without repeats and without one inside another already named (two coarse causes
    can narrow to the same element, or one to a part of the other)."""
    out: list[Candidate] = []
    for cause in causes:
        if not any(set(kept.labels) <= set(cause.labels) for kept in out):
            out.append(cause)
    return out


def _narrowed(parent: Candidate, inner: Candidate) -> Candidate:
    """A cause found inside `parent`'s own leaves, as a cause of the whole: its labels added to the
    parent's, its share of the parent's change taken of the parent's share."""
    labels: Labels = tuple(sorted((dict(parent.labels) | dict(inner.labels)).items()))
    return replace(
        inner,
        labels=labels,
        explained_share=parent.explained_share * max(0.0, min(1.0, inner.explained_share)),
        volume_share=parent.volume_share * inner.volume_share,
    )
