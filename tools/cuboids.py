"""Which labels to localize on when the finest breakdown is too large to fetch, and how a cause found
on fewer labels is refined inside itself. Pure functions over numbers and label names.

A metric of pod x route x code x region easily has 10,000-100,000 label combinations. Fetching every
one (every *leaf*) would cost Prometheus and the network more than the investigation is worth, so the
localization runs on a coarser cube first: the labels whose breakdowns concentrate the change most,
as many as fit in a budget of series (the *pseudo-leaves*). Each cause found there is then broken down
inside itself by the labels left out (its own leaves are few), which finds causes deeper than the
coarse cube and says where the coarse cube stopped.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

from tools.prom import Series
from tools.windows import WindowStat


def concentration(stats: Sequence[WindowStat]) -> float:
    """How far one value of a label moved from its typical value: the largest distance of a value's log
    change from the median one, over the label's values (those with data in both windows), either way.
    A label whose values all moved alike (or not at all) scores 0; one value breaking away scores its
    own change, and so does a label most of whose values moved while the others did not (three of five
    zones failing: the median is the failed zones' change, the healthy zones are that far from it)."""
    changes = []
    for st in stats:
        if st.baseline is None or st.incident is None:
            continue
        before, after = abs(st.baseline), abs(st.incident)
        floor = 1e-9 * max(before, after, 1e-12)
        changes.append(math.log((after + floor) / (before + floor)))
    if not changes:
        return 0.0
    changes.sort()
    mid = len(changes) // 2
    median = changes[mid] if len(changes) % 2 else (changes[mid - 1] + changes[mid]) / 2
    return max(changes[-1] - median, median - changes[0])


def combinations(cardinality: Mapping[str, int], labels: Sequence[str]) -> int:
    """The number of label combinations `labels` can make at most (the product of their cardinalities)."""
    return math.prod(max(1, cardinality.get(name, 1)) for name in labels)


def choose_labels(order: Sequence[str], cardinality: Mapping[str, int], budget: int) -> list[str]:
    """The labels to break down by, taken in `order` (most telling first) while the combinations they
    can make stay within `budget`; a label that does not fit is skipped and the next one tried."""
    chosen: list[str] = []
    for name in order:
        if combinations(cardinality, [*chosen, name]) <= budget:
            chosen.append(name)
    return chosen


def ranked_labels(scores: Mapping[str, float], labels: Sequence[str]) -> list[str]:
    """`labels` by concentration, highest first; ties (and labels without a score) keep their order."""
    position = {name: i for i, name in enumerate(labels)}
    return sorted(labels, key=lambda name: (-scores.get(name, 0.0), position[name]))


def pack(cardinality: Mapping[str, int], labels: Sequence[str], budget: int) -> list[list[str]]:
    """Groups of `labels` whose combinations each stay within `budget`, few of them: one query by each
    group gives every label's breakdown, summed locally, instead of one query per label over every
    series. Each group is the largest set of the labels left that fits (the most labels, then the most
    combinations), the set `best_labels` takes when the labels concentrate the change alike: the coarse
    cube is then summed from it too. A label alone over the budget gets a group of its own, first."""
    alone = sorted(
        (n for n in labels if cardinality.get(n, 1) > budget), key=lambda n: -cardinality.get(n, 1)
    )
    groups = [[name] for name in alone]
    left = [n for n in labels if n not in alone]
    while left:
        fitting = (
            subset
            for size in range(1, len(left) + 1)
            for subset in itertools.combinations(left, size)
            if combinations(cardinality, subset) <= budget
        )
        group = max(fitting, key=lambda s: (len(s), combinations(cardinality, s)))
        groups.append(list(group))
        left = [n for n in left if n not in group]
    return [sorted(g, key=labels.index) for g in groups]


def rolled_up(
    num: Sequence[Series], den: Sequence[Series] | None, labels: Sequence[str]
) -> tuple[list[Series], list[Series] | None]:
    """Series summed by `labels` (pointwise; a timestamp missing from one series adds nothing for it):
    the numerator's (or the sum's) and the denominator's, as a query `sum by (labels)` would return them."""

    def by(series: Sequence[Series]) -> list[Series]:
        groups: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
        for s in series:
            key = tuple((n, s.labels.get(n, "")) for n in labels)
            acc = groups.setdefault(key, {})
            for t, v in zip(s.timestamps, s.values, strict=True):
                if math.isfinite(v):
                    acc[t] = acc.get(t, 0.0) + v
        out = []
        for key, acc in groups.items():
            ts = tuple(sorted(acc))
            out.append(Series({n: v for n, v in key if v}, ts, tuple(acc[t] for t in ts)))
        return out

    return by(num), by(den) if den is not None else None


def ratio_series(num: Sequence[Series], den: Sequence[Series], scale: float = 1.0) -> list[Series]:
    """numerator / denominator x `scale`, matched on labels, at the timestamps both have (a zero
    denominator leaves its point out), as the signal of a ratio of sums is broken down."""
    bottoms = {tuple(sorted(s.labels.items())): dict(zip(s.timestamps, s.values, strict=True)) for s in den}
    out = []
    for s in num:
        bottom = bottoms.get(tuple(sorted(s.labels.items())), {})
        pts = [
            (t, v / bottom[t] * scale) for t, v in zip(s.timestamps, s.values, strict=True) if bottom.get(t)
        ]
        if pts:
            out.append(Series(dict(s.labels), tuple(t for t, _ in pts), tuple(v for _, v in pts)))
    return out


def best_labels(scores: Mapping[str, float], cardinality: Mapping[str, int], budget: int) -> list[str]:
    """The set of labels whose combinations fit `budget` with the most concentration in total (then the
    most labels), in the order of `scores`. Exhaustive: at most 2^8 sets for the 8 labels analysed."""
    labels = list(scores)
    best: tuple[float, int] = (-1.0, 0)
    chosen: list[str] = []
    for size in range(1, len(labels) + 1):
        for subset in itertools.combinations(labels, size):
            if combinations(cardinality, subset) > budget:
                continue
            value = (sum(max(0.0, scores[n]) for n in subset), size)
            if value > best:
                best, chosen = value, list(subset)
    return chosen
