"""The localization step of the evidence phase: the measure's leaves from Prometheus, the analysis core
on them, and every query filed as evidence.

When the finest breakdown (every candidate label at once) fits in `max_leaf_series`, its leaves are
fetched and localized as they are. When it does not (a metric with 10,000-100,000 label
combinations), no leaf is fetched: the measure is aggregated in PromQL by the labels whose breakdowns
concentrate the change most, as many as fit (`tools/cuboids.py`), localized there, and each cause is
then broken down inside itself by the labels left out, at most two levels deep. The notes say what was
left out at each step, so the report never claims more depth than it looked at.

A sum's single series (every label pinned) that changed beyond the noise of the others would be
diluted in any aggregate: a screen finds them without fetching the leaves. Two instant queries over
every leaf: the leaves that changed most the sum's way (`topk` of incident / baseline), and a
histogram of every leaf's ratio (`count_values`), which gives the noise; `tools.search.screen` judges
them. Needles and causes that share labels are tested as that shared element (its leaves queried, its
siblings judged with the same noise: one cause split into its children becomes the whole again); each
needle left is queried on its own; all are added to the causes (`tools.analysis.with_needles`).

The screen is most of what a large metric costs Prometheus: its histogram (the same whichever way the
sum moved) starts beside the group queries, its top list as soon as they say the way the sum moved, and
both run while the coarse cube is queried, localized and drilled into. The drill-down asks for every
cause of one level together (`tools.drill`): the label values it needs inside each cause (the labels it
may break the cause down by, nothing else), then the causes' cubes, queried side by side.

When no label but the candidates varies (the census says), each leaf is one series: the
screen then compares each series with itself, matched on the labels, instead of summing every series
by them twice (should two series share a leaf after all, Prometheus refuses the match, and the screen
is asked again by sum). Queries run several at a time; their evidence is filed in one order.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import numpy as np

from agent.findings import Findings
from tools import promql, search
from tools.analysis import Candidate, Labels, Localization, label_key, localize, narrow, with_needles
from tools.breakdown import QueryResult, leaves_from, segment_stats
from tools.cuboids import best_labels, combinations, pack, ratio_series, rolled_up
from tools.drill import refine
from tools.errors import AlertsleuthError, PrometheusUnavailable, QueryError
from tools.extremes import extreme_leaves, localize_extreme
from tools.format import fmt_labels
from tools.prom import Series

SCREENED = 50  # leaves the screen fetches: those that changed most the alert's way
MAX_NEEDLES = 10  # needles named (one small range query each); more are counted in a note
MAX_SHARED = 5  # elements the needles share tested (one query each)
SCREEN_BIN = 0.002  # the screen's histogram bins: atan(ln ratio) is in (-pi/2, pi/2), so < 1,600 bins
Grouped = Callable[[Sequence[str]], tuple[promql.Node, promql.Node | None]]  # labels -> (num, den)
Bounds = tuple[tuple[float, float], tuple[float, float]]


class Collector(Protocol):
    """What this step needs of the evidence collector."""

    config: Any

    def _range(self, f: Findings, expr: str) -> QueryResult: ...
    def _instant(self, f: Findings, expr: str) -> QueryResult: ...
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
    def _cardinality(
        self,
        f: Findings,
        selectors: Sequence[str],
        names: Sequence[str] | None = None,
        concurrency: int | None = None,
    ) -> dict[str, int]: ...
    def _ahead_of_time(self, f: Findings, exprs: Sequence[str]) -> None: ...


@dataclass
class Cube:
    """The measure's leaves over `labels`: the numerator's (or the sum's) and the denominator's series,
    with the numerator's query and evidence id (None when summed from another cube)."""

    labels: list[str]
    num: Sequence[Series]
    den: Sequence[Series] | None
    query: QueryResult | None = None
    evidence: str = ""


def measure_by(shape: promql.Shape) -> Grouped | None:
    """The measure by labels (numerator and denominator) of a sum, a ratio or an extreme; None for the
    rest (a quantile's depends on its bucket)."""
    num, den = shape.num, shape.den
    if shape.kind in ("ratio", "additive"):
        return lambda labels: (
            promql.group_by(num, labels),
            promql.group_by(den, labels) if den is not None else None,
        )
    if shape.kind == "extreme":
        return lambda labels: (promql.group_by(num, labels), None)
    return None


def cube_queries(grouped: Grouped, labels: Sequence[str], within: Labels = ()) -> list[str]:
    """The queries of the measure by `labels` restricted to `within`: the numerator's (or the sum's) and
    the denominator's."""
    matchers = [promql.Matcher(n, "=", v) for n, v in within]
    return [
        (promql.with_matchers(node, matchers) if matchers else node).promql()
        for node in grouped(labels)
        if node is not None
    ]


def group_queries(
    grouped: Grouped, cardinality: dict[str, int], labels: Sequence[str], budget: int
) -> list[str]:
    """The queries of `Localizer.groups`, in order."""
    return [q for group in pack(cardinality, labels, budget) for q in cube_queries(grouped, group)]


@dataclass
class _Screen:
    """The screen's two instant queries under way, and the same by sum when they assume that every leaf
    is one series (asked if Prometheus refuses them)."""

    direction: float
    futures: list[Future[QueryResult]]
    fallback: tuple[str, str] | None


def _per_series(mean: promql.Node) -> bool:
    """Is `mean` (of `promql.window_mean`) a sum of one metric's series' own window means, which are
    then the leaves' when each leaf is one series?"""
    if not (isinstance(mean, promql.Aggregate) and mean.op == "sum" and not mean.without):
        return False
    inner = mean.expr
    if not (isinstance(inner, promql.Call) and inner.args and isinstance(inner.args[0], promql.Matrix)):
        return False
    selector = inner.args[0].selector
    return bool(selector.metric) and not any(m.name == "__name__" for m in selector.matchers)


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
        series: bool = False,
    ) -> None:
        """`extreme`: for a max/min/topk/bottomk signal, (high, the alert's op, its threshold): the
        series that make the extreme are localized (`tools.extremes`) instead of a sum's change.
        `series`: every leaf is one series (no label but the candidates varies, as the census says),
        so the screen need not sum every series by its labels."""
        self.c, self.f, self.grouped, self.measure, self.ratio = c, f, grouped, measure, ratio
        self.extreme, self.series = extreme, series
        self.budget = int(c.config.max_leaf_series)
        self.cubes: list[Cube] = []  # the group queries of a large metric (see `groups`)
        self.scores: dict[str, float] = {}  # each label's concentration (`tools.cuboids.concentration`)
        self.screen: _Screen | None = None  # the needle screen under way (see `groups`)
        self._hist: tuple[str, Future[QueryResult]] | None = None  # its histogram, started early

    def groups(self, labels: list[str], cardinality: dict[str, int]) -> list[Cube] | None:
        """The measure by groups of labels that each fit the budget (`tools.cuboids.pack`), one query
        (two for a ratio) per group: every label's breakdown is summed from them, and the coarse cube
        when a group holds its labels. None when a query failed."""
        groups = pack(cardinality, labels, self.budget)
        if self._screenable() and combinations(cardinality, labels) > self.budget:
            # the screen's histogram needs no direction: started while the group queries are answered
            self._hist = self._screen_hist(labels)
        with ThreadPoolExecutor(max_workers=max(1, self.c.config.query_concurrency)) as pool:
            fetched = list(pool.map(lambda g: self._fetch(g, ()), groups))
        cubes = [
            self._filed(g, f"{self.measure} by {', '.join(g)}", q)
            for g, q in zip(groups, fetched, strict=True)
        ]
        _raise_unavailable([q for results in fetched for q in results])
        if any(cube is None for cube in cubes):
            return None
        self.cubes = [cube for cube in cubes if cube is not None]
        # The screen (see `run`) needs only the way the sum moved, the groups' total: it runs while the
        # breakdowns are summed and the cubes below are queried and localized.
        if self._screenable() and self._leaves(cardinality, labels) > self.budget:
            self.screen = self._screen_start(labels, _moved(self._analyse(self.cubes[0], totals=True)))
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
        count = self._leaves(cardinality, labels)
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
        # Single series beyond the noise, and causes found split into their children: two instant
        # queries over every series, the price of not fetching them (started with the groups' queries).
        screen = self.screen
        cube = self._cube(coarse, (), f"{self.measure} by {', '.join(coarse)}")
        if cube is None:
            if screen is not None:
                self._screen_finish(labels, cardinality, screen)
            return None
        t = time.perf_counter()
        loc = self._analyse(cube)
        self._timing(t)
        if loc.localized:
            loc, notes = refine(loc, labels, coarse, scores, self.budget, _Inside(self, labels))
            f.notes.extend(notes)
        if screen is None and self._screenable():
            screen = self._screen_start(labels, _moved(loc))
        if screen is not None:
            loc = self._screened(labels, cardinality, loc, screen)
        f.localization = loc
        inside = all({n for n, _ in c.labels} <= set(coarse) for c in loc.causes)
        return cube if inside else None

    def _leaves(self, cardinality: dict[str, int], labels: list[str]) -> int:
        """How many leaves there are at most: the combinations of the group queries' series (the labels'
        values when there are no groups); a sparse metric (routes of one service, pods of one node) may
        fit the budget."""
        if self.cubes:
            return math.prod(max(1, len(cube.num)) for cube in self.cubes)
        return combinations(cardinality, labels)

    # ---------------------------------------------------------------- queries

    def _cube(self, labels: Sequence[str], within: Labels, title: str) -> Cube | None:
        """The measure by `labels`, restricted to `within`: summed from a group query that holds the
        labels, else queried (both queries filed as evidence)."""
        if not within:
            for group in self.cubes:
                if set(labels) <= set(group.labels):
                    num_s, den_s = rolled_up(group.num, group.den, labels)
                    return Cube(list(labels), num_s, den_s, None, group.evidence)
        results = self._fetch(labels, within)
        cube = self._filed(labels, title, results)
        _raise_unavailable(results)
        return cube

    def _fetch(self, labels: Sequence[str], within: Labels) -> list[QueryResult]:
        """The queries of the measure by `labels` within `within` (`cube_queries`), run."""
        exprs = cube_queries(self.grouped, labels, within)
        with ThreadPoolExecutor(max_workers=max(1, min(2, self.c.config.query_concurrency))) as pool:
            return list(pool.map(lambda e: self.c._range(self.f, e), exprs))

    def _filed(self, labels: Sequence[str], title: str, results: list[QueryResult]) -> Cube | None:
        """The queries of a cube filed as evidence; the cube, None when one failed."""
        base, inc = self.c._bounds(self.f)
        ids = []
        for q, part in zip(results, (title, f"Denominator{title[len(self.measure) :]}"), strict=False):
            rows = segment_stats(q.series, base, inc)
            ids.append(self.c._add(self.f, "localization", part, q, f"{len(q.series)} series", rows))
        self.f.leaf_evidence.extend(ids)
        if any(q.error for q in results):
            self.f.degraded = True
            return None
        den = results[1].series if len(results) > 1 else None
        return Cube(list(labels), results[0].series, den, results[0], ids[0])

    def _analyse(self, cube: Cube, totals: bool = False, within: Candidate | None = None) -> Localization:
        """The cube localized; with `totals`, only the measure's baseline and incident values. A ratio's
        cube `within` a cause (its own leaves) narrows the cause (`tools.analysis.narrow`)."""
        base, inc = self.c._bounds(self.f)
        if totals:
            leaves = leaves_from(cube.num, cube.den, cube.labels, base, inc)
            return Localization(
                self.ratio,
                math.fsum(lf.base_num for lf in leaves) if leaves else None,
                math.fsum(lf.inc_num for lf in leaves) if leaves else None,
                localized=False,
            )
        if self.extreme is not None:
            high, op, threshold = self.extreme
            leaves = extreme_leaves(cube.num, cube.labels, base, inc, high)
            return localize_extreme(leaves, high=high, op=op, threshold=threshold)
        leaves = leaves_from(cube.num, cube.den, cube.labels, base, inc)
        if within is not None and self.ratio and within.trend is not None:
            return narrow(leaves, within, ratio=True)
        return localize(leaves, ratio=self.ratio)

    def _timing(self, t: float) -> None:
        timings = self.f.timings
        timings["localize_seconds"] = round(timings.get("localize_seconds", 0.0) + time.perf_counter() - t, 4)

    # ---------------------------------------------------------------- the needle screen

    def _screenable(self) -> bool:
        """The screen is for a plain sum's leaves (a ratio's leaves are judged by the share they explain,
        an extreme's by the series that cross the threshold)."""
        return not self.ratio and self.extreme is None

    def _screen_exprs(self, labels: Sequence[str], direction: float, series: bool) -> tuple[str, str] | None:
        """The screen's two instant queries: the leaves that changed most the alert's way, and the
        histogram of every leaf's ratio (incident mean / baseline mean). With `series` (each leaf is one
        series), the means are of the series themselves, matched on `labels`: the same ratios without
        summing every series by its labels twice (Prometheus refuses the match should two series share
        a leaf after all); None when the means cannot be taken so."""
        w = self.f.windows
        assert w is not None
        step = timedelta(seconds=self.f.step)
        num, _ = self.grouped(labels)
        # The windows of `_bounds`: the incident's points, and the baseline's without its last one.
        inc = promql.window_mean(num, w.incident.end - w.incident.start + step / 2, timedelta(0), step)
        base = promql.window_mean(
            num, w.baseline.end - w.baseline.start, w.incident.end - w.baseline.end + step / 2, step
        )
        matching = None
        if series:
            if not (_per_series(inc) and _per_series(base)):
                return None
            assert isinstance(inc, promql.Aggregate) and isinstance(base, promql.Aggregate)
            inc, base, matching = inc.expr, base.expr, tuple(labels)
        ratio = promql.Binary("/", promql.Paren(inc), promql.Paren(base), matching=matching)
        top = promql.Aggregate("topk" if direction > 0 else "bottomk", ratio, promql.Number(SCREENED))
        binned = promql.Call(
            "round", (promql.Call("atan", (promql.Call("ln", (ratio,)),)), promql.Number(SCREEN_BIN))
        )
        hist = promql.Aggregate("count_values", binned, promql.String("bin"))
        return top.promql(), hist.promql()

    def _screen_start(self, labels: Sequence[str], direction: float | None) -> _Screen | None:
        """The screen's queries, started (None without a direction: the sum did not move)."""
        if direction is None:
            return None
        fallback = self._screen_exprs(labels, direction, series=False)
        exprs = self._screen_exprs(labels, direction, series=True) if self.series else None
        if exprs is None:
            exprs, fallback = fallback, None
        assert exprs is not None
        pool = ThreadPoolExecutor(max_workers=2)
        top = pool.submit(self.c._instant, self.f, exprs[0])
        early, self._hist = self._hist, None
        hist = (
            early[1]
            if early is not None and early[0] == exprs[1]
            else pool.submit(self.c._instant, self.f, exprs[1])
        )
        pool.shutdown(wait=False)  # the two run on; nothing else is submitted
        return _Screen(direction, [top, hist], fallback)

    def _screen_hist(self, labels: Sequence[str]) -> tuple[str, Future[QueryResult]] | None:
        """The screen's histogram query (the same either way the sum moved), started."""
        exprs = (self._screen_exprs(labels, 1.0, series=True) if self.series else None) or self._screen_exprs(
            labels, 1.0, series=False
        )
        if exprs is None:
            return None
        pool = ThreadPoolExecutor(max_workers=1)
        future = pool.submit(self.c._instant, self.f, exprs[1])
        pool.shutdown(wait=False)
        return exprs[1], future

    def _screen_finish(
        self, labels: Sequence[str], cardinality: dict[str, int], screen: _Screen
    ) -> tuple[QueryResult, QueryResult, search.Screen]:
        """The screen's results, judged (`tools.search.screen`) and filed as evidence."""
        f = self.f
        direction = screen.direction
        way = "rose" if direction > 0 else "fell"
        titles = (
            f"Series whose {self.measure.lower()} {way} most (incident / baseline mean)",
            "Every series' change, binned (atan of ln(incident / baseline))",
        )
        results = [future.result() for future in screen.futures]
        if screen.fallback is not None and any(isinstance(q.exception, QueryError) for q in results):
            # Two series share a leaf's labels after all: filed as refused, and asked again by sum.
            for q, title in zip(results, titles, strict=True):
                self.c._add(f, "localization", f"{title}, series by series", q, "asked again by sum")
            with ThreadPoolExecutor(max_workers=2) as pool:
                results = list(pool.map(lambda e: self.c._instant(f, e), screen.fallback))
        top, hist = results
        candidates = [(label_key(s.labels, labels), _log(s.values[-1])) for s in top.series if s.values]
        histogram = []
        for s in hist.series:
            try:
                histogram.append((math.tan(float(s.labels.get("bin", "nan"))), int(s.values[-1])))
            except (TypeError, ValueError, OverflowError):
                continue
        found = search.screen(candidates, histogram, direction, [cardinality.get(n, 1) for n in labels])
        if top.error or hist.error:
            f.degraded = f.degraded or isinstance(top.exception or hist.exception, PrometheusUnavailable)
        shown = "; ".join(f"{fmt_labels(dict(lab))}: x{math.exp(lr):.3g}" for lab, lr in candidates[:5])
        summary = f"{len(top.series)} of {found.leaves:,} series; " + (shown or "none")
        self.c._add(f, "localization", titles[0], top, summary)
        self.c._add(
            f,
            "localization",
            titles[1],
            hist,
            f"{len(hist.series)} bins over {found.leaves:,} series: the typical one changed "
            f"x{found.background:.3g}; {found.null:,} moved "
            f"against the alert (the noise a single series is judged against); "
            f"{len(found.needles)} beyond it (cost {found.cost:.1f} nats)",
        )
        return top, hist, found

    def _screened(
        self, labels: list[str], cardinality: dict[str, int], loc: Localization, screen: _Screen
    ) -> Localization:
        """`loc` with the needles the screen found (see the module's docstring)."""
        f = self.f
        top, hist, found = self._screen_finish(labels, cardinality, screen)
        if top.error or hist.error:
            f.notes.append(f"single series not screened: {top.error or hist.error}")
            return loc
        if not found.measurable:
            f.notes.append("single series not screened: too few moved against the alert to learn the noise")
            return loc
        outside = [n for n in found.needles if not any(set(c.labels) <= set(n.labels) for c in loc.causes)]
        # Causes named so far share elements with the needles and with each other: one cause split
        # into its children (drilled apart, or found leaf by leaf) is tested as the whole.
        elements = self._shared(
            labels, cardinality, [n.labels for n in outside] + [c.labels for c in loc.causes], found
        )
        single = [n for n in outside if not any(set(e[0]) <= set(n.labels) for e in elements)]
        if len(single) > MAX_NEEDLES:
            # More than a few: a change broader than single series that the cubes did not place (or the
            # screen's top list is cut short); naming some of them would point at arbitrary leaves.
            f.notes.append(
                f"{len(single)} single series changed beyond the others' noise, more than {MAX_NEEDLES}: "
                "a broader change no element above explained; they are not named one by one"
            )
            single = []
        base, inc = self.c._bounds(f)
        for needle in single[:MAX_NEEDLES]:  # one small query each (`_cube`, restricted to the leaf)
            title = f"{self.measure} within {fmt_labels(dict(needle.labels))}"
            cube = self._cube(labels, needle.labels, title)
            leaves = leaves_from(cube.num, None, labels, base, inc) if cube is not None else []
            if len(leaves) != 1:  # failed, or gone since the screen
                continue
            leaf = leaves[0]
            excess = leaf.inc_num - found.background * leaf.base_num
            elements.append((needle.labels, leaf.base_num, leaf.inc_num, excess))
        return with_needles(loc, elements, found.leaves)

    def _shared(
        self,
        labels: list[str],
        cardinality: dict[str, int],
        members: list[Labels],
        found: search.Screen,
    ) -> list[tuple[Labels, float, float, float]]:
        """Elements that `members` (needles and causes) share, when the change is the element's, not
        theirs alone: the labels most members have in common, queried leaf by leaf (when its leaves fit
        the budget) and judged with the screen's noise (`Screen.element`: siblings that moved like the
        members make the element the cause; it may also stop lower). Each as (labels, its baseline and
        incident sums, its excess)."""
        f = self.f
        base_w, inc_w = self.c._bounds(f)
        out: list[tuple[Labels, float, float, float]] = []
        left = list(dict.fromkeys(members))
        tried: set[Labels] = set()
        for _ in range(MAX_SHARED):
            common: dict[Labels, int] = {}
            for one, two in itertools.combinations(left, 2):
                shared = tuple(sorted(set(one) & set(two)))
                if shared and shared not in tried and shared not in left:
                    common[shared] = sum(set(shared) <= set(n) for n in left)
            if not common:
                break
            element = max(common, key=lambda e: (common[e], len(e)))
            tried.add(element)
            pinned = dict(element)
            if math.prod(cardinality.get(n, 1) for n in labels if n not in pinned) > self.budget:
                continue
            cube = self._cube(labels, element, f"{self.measure} within {fmt_labels(pinned)}")
            if cube is None:
                continue
            leaves = leaves_from(cube.num, None, labels, base_w, inc_w)
            base = np.array([lf.base_num for lf in leaves])
            inc = np.array([lf.inc_num for lf in leaves])
            judged = found.element([lf.labels for lf in leaves], base, inc)
            if judged is None:
                continue
            cause = tuple(sorted((pinned | dict(judged[0])).items()))
            if len(cause) == len(labels):
                continue  # one leaf after all: a needle of its own
            inside = np.array([set(cause) <= set(lf.labels) for lf in leaves], dtype=bool)
            e_base, e_inc = float(base[inside].sum()), float(inc[inside].sum())
            out.append((cause, e_base, e_inc, e_inc - found.background * e_base))
            left = [n for n in left if not set(cause) <= set(n)]
        return out


class _Inside:
    """`Inside` over Prometheus for a `Localizer`: the label values inside causes (the labels asked for
    only), and their cubes queried side by side, localized and filed as evidence in the order asked."""

    def __init__(self, localizer: Localizer, labels: Sequence[str]) -> None:
        self.lz, self.labels = localizer, list(labels)

    def cardinality(
        self, asked: Sequence[tuple[Labels, Sequence[str]]]
    ) -> list[dict[str, int] | AlertsleuthError]:
        lz = self.lz
        num, _ = lz.grouped(self.labels)
        # the causes side by side, each one's labels shared out of the same `query_concurrency`
        concurrency = max(1, lz.c.config.query_concurrency)
        each = max(1, concurrency // max(1, len(asked)))

        def values(ask: tuple[Labels, Sequence[str]]) -> dict[str, int] | AlertsleuthError:
            within, names = ask
            matchers = [promql.Matcher(n, "=", v) for n, v in within]
            selectors = [s.promql() for s in promql.selectors(promql.with_matchers(num, matchers))]
            try:
                return lz.c._cardinality(lz.f, selectors, names, each)
            except AlertsleuthError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(values, asked))

    def localized(self, asked: Sequence[tuple[Sequence[str], Candidate]]) -> list[Localization | None]:
        lz = self.lz
        # every cube's queries started (`_range` answers each once), then taken in order
        lz.c._ahead_of_time(
            lz.f, [e for labels, within in asked for e in cube_queries(lz.grouped, labels, within.labels)]
        )
        return [self._one(labels, within) for labels, within in asked]

    def _one(self, labels: Sequence[str], within: Candidate) -> Localization | None:
        lz = self.lz
        cube = lz._cube(labels, within.labels, f"{lz.measure} within {fmt_labels(dict(within.labels))}")
        if cube is None:
            return None
        t = time.perf_counter()
        loc = lz._analyse(cube, within=within)
        lz._timing(t)
        return loc


def _raise_unavailable(results: Sequence[QueryResult]) -> None:
    if failed := next((q for q in results if isinstance(q.exception, PrometheusUnavailable)), None):
        raise failed.exception  # type: ignore[misc]


def _moved(loc: Localization) -> float | None:
    """+1 when the localized sum rose, -1 when it fell (None without data or change)."""
    if loc.baseline is None or loc.incident is None or loc.incident == loc.baseline:
        return None
    return 1.0 if loc.incident > loc.baseline else -1.0


def _log(ratio: float) -> float:
    """ln of a ratio of window means: -inf for a leaf that went to zero, inf for one that appeared."""
    if ratio <= 0:
        return -math.inf if ratio == 0 else math.nan
    return math.log(ratio) if math.isfinite(ratio) else (math.inf if ratio > 0 else math.nan)
