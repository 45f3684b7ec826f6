"""Breakdowns of an alert signal by label: the queries, and their numbers turned into segments and leaves.

These functions are the shared path of the webhook, the CLI, the agent's tools and the benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from tools import promql
from tools.analysis import Labels, Leaf, label_key
from tools.errors import AlertsleuthError
from tools.prom import Prometheus, Series
from tools.windows import WindowStat, compare_windows

# Labels that never explain an anomaly on their own.
IGNORED_LABELS = frozenset({"__name__", "le", "quantile"})


@dataclass
class QueryResult:
    """One query and what came of it: its series, or the exception it failed with."""

    promql: str
    start: datetime
    end: datetime
    step: float
    series: list[Series] = field(default_factory=list)
    exception: AlertsleuthError | None = None

    @property
    def error(self) -> str | None:
        """The failure as text (what evidence records), or None."""
        return None if self.exception is None else str(self.exception)


def run_range(prom: Prometheus, expr: str, start: datetime, end: datetime, step: float) -> QueryResult:
    """A range query that never raises: failures are recorded on the result."""
    result = QueryResult(expr, start, end, step)
    try:
        result.series = prom.range_query(expr, start, end, step)
    except AlertsleuthError as exc:
        result.exception = exc
    return result


def run_instant(prom: Prometheus, expr: str, at: datetime, start: datetime, step: float) -> QueryResult:
    """An instant query at `at` that never raises; `start` and `step` say what range its windows read
    (kept on the result, as evidence shows them)."""
    result = QueryResult(expr, start, at, step)
    try:
        result.series = prom.instant_query(expr, at)
    except AlertsleuthError as exc:
        result.exception = exc
    return result


@dataclass
class LabelCandidates:
    labels: list[str]
    cardinality: dict[str, int]
    notes: list[str] = field(default_factory=list)


Census = dict[str, set[str]]  # label name -> its values on the series of one selector


def label_census(
    prom: Prometheus,
    selector: str,
    start: datetime,
    end: datetime,
    concurrency: int = 4,
    names: Sequence[str] | None = None,
) -> Census:
    """The labels of a selector's series over [start, end] and their values, from the label APIs. They
    read the index only, no samples, so this stays cheap on a metric of 100,000 series (the series API
    would send every label set). The labels' values are asked for `concurrency` at a time; only those of
    `names` when given (no label-names call; a name the series lack has no values)."""
    if names is None:
        names = [n for n in prom.label_names([selector], start, end) if n != "__name__"]
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(names)))) as pool:
        values = list(pool.map(lambda name: prom.label_values(name, [selector], start, end), names))
    return {name: set(found) for name, found in zip(names, values, strict=True)}


def merged(censuses: Sequence[Census]) -> Census:
    out: Census = {}
    for census in censuses:
        for name, values in census.items():
            out.setdefault(name, set()).update(values)
    return out


def candidate_labels(
    values: Mapping[str, Collection[str]],
    *,
    fixed: Sequence[str] = (),
    max_cardinality: int = 50,
    max_labels: int = 8,
) -> LabelCandidates:
    """Labels of the underlying series that can explain something: not constant, not `le`, not huge.

    `values` are each label's values (a census). `fixed` are labels the expression already pins
    (equality matchers, the alert's own grouping). Ordered by cardinality (fewest values first),
    capped at `max_labels`.
    """
    notes: list[str] = []
    card = {name: len(v) for name, v in values.items()}
    usable = []
    for name, count in sorted(card.items(), key=lambda kv: (kv[1], kv[0])):
        if name in IGNORED_LABELS or name in fixed or count < 2:
            continue
        if count > max_cardinality:
            notes.append(f"label '{name}' left out: {count} values (limit {max_cardinality})")
            continue
        usable.append(name)
    if len(usable) > max_labels:
        notes.append(
            f"labels {', '.join(usable[max_labels:])} left out: at most {max_labels} labels are analysed"
        )
        usable = usable[:max_labels]
    return LabelCandidates(usable, card, notes)


def fixed_labels(signal: promql.Node) -> list[str]:
    """Labels that are part of the measure's definition: pinned by `=` or `=~` on any selector.

    In `sum(rate(x{status=~"5.."}[5m])) / sum(rate(x[5m]))` splitting by `status` compares unlike
    things (only the numerator has 5xx), so such labels are never breakdown candidates.
    """
    return sorted({m.name for s in promql.selectors(signal) for m in s.matchers if m.op in ("=", "=~")})


def numerator_only(
    shape: promql.Shape, censuses: dict[str, Census], labels: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Of `labels`, those only a ratio's numerator has (`status` on the errors, not on the requests):
    the two sides can only be compared on the labels they share. With the note that says so."""
    if shape.kind != "ratio" or shape.den is None:
        return [], []

    def names(node: promql.Node) -> set[str]:
        return set(merged([censuses.get(s.promql(), {}) for s in promql.selectors(node)]))

    only = [n for n in labels if n in names(shape.num) - names(shape.den)]
    if not only:
        return [], []
    note = (
        f"{', '.join(only)}: only on the numerator, so localized on the labels both sides have, "
        "and broken down on the numerator alone (which kind of it changed)"
    )
    return only, [note]


def segment_stats(
    series: Sequence[Series], baseline: tuple[float, float], incident: tuple[float, float]
) -> list[tuple[dict[str, str], WindowStat]]:
    """Each series compared between the windows, the most changed first."""
    rows = [(s.labels, compare_windows(s.timestamps, s.values, baseline, incident)) for s in series]

    def change(row: tuple[dict[str, str], WindowStat]) -> float:
        st = row[1]
        if st.incident is None:
            return -1.0
        return abs(st.incident - (st.baseline or 0.0))

    return sorted(rows, key=change, reverse=True)


def leaves_from(
    num: Sequence[Series],
    den: Sequence[Series] | None,
    names: Sequence[str],
    baseline: tuple[float, float],
    incident: tuple[float, float],
) -> list[Leaf]:
    """Join numerator and denominator series by their labels into leaves with window means.

    The leaves add up to the measure, so a leaf without a sample at one of the query's evaluation
    times counted 0 in the sum there: each window's mean is taken over every evaluation time any leaf
    has in it, a missing point counting 0 (a zone whose instances all went down leaves `count by
    (zone)`; a pod replaced by another leaves the sum). A leaf missing from the numerator (no failures
    at all) counts as zero there.
    """
    (b_lo, b_hi), (i_lo, i_hi) = baseline, incident
    b_times: set[float] = set()
    i_times: set[float] = set()

    def sums(series: Sequence[Series]) -> dict[tuple[tuple[str, str], ...], list[float]]:
        """Each leaf's sums in the two windows (one pass over the points), and the windows' times."""
        out: dict[tuple[tuple[str, str], ...], list[float]] = {}
        for s in series:
            acc = out.setdefault(label_key(s.labels, names), [0.0, 0.0])
            b_sum = i_sum = 0.0
            for t, v in zip(s.timestamps, s.values, strict=True):
                if b_lo <= t <= b_hi:
                    b_times.add(t)
                    if math.isfinite(v):
                        b_sum += v
                if i_lo <= t <= i_hi:
                    i_times.add(t)
                    if math.isfinite(v):
                        i_sum += v
            acc[0] += b_sum
            acc[1] += i_sum
        return out

    def means(out: dict[tuple[tuple[str, str], ...], list[float]]) -> dict[Labels, tuple[float, float]]:
        return {k: (b / max(1, len(b_times)), i / max(1, len(i_times))) for k, (b, i) in out.items()}

    n_sums = sums(num)
    d_sums = sums(den) if den is not None else None  # its times count too
    n = means(n_sums)
    if d_sums is None:
        return [Leaf(k, b, i) for k, (b, i) in n.items()]
    leaves = []
    for key, (db, di) in means(d_sums).items():
        nb, ni = n.get(key, (0.0, 0.0))
        leaves.append(Leaf(key, nb, ni, db, di))
    return leaves
