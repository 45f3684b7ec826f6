"""Classes of localization misses, each on a small hand-written cube of Poisson counts (a ratio: failures
over requests, the baseline a mean over ten minutes), and the trend the cube reads them against."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from tools.analysis import Leaf, label_key, localize
from tools.cube import Cube

Shares = dict[str, dict[str, float]]  # label -> value -> share of the requests


def counts(
    shares: Shares, factor: Callable[[dict[str, str]], float], rate: float = 0.02, seed: int = 3
) -> list[Leaf]:
    """One leaf per combination of the labels' values, 20,000 requests a minute split by the shares,
    failures at `rate` in the baseline and `rate * factor(labels)` in the incident minute."""
    rng = np.random.default_rng(seed)
    out = []
    names = list(shares)
    for combo in itertools.product(*(list(shares[n].items()) for n in names)):
        labels = {n: v for n, (v, _) in zip(names, combo, strict=True)}
        den = 20000.0 * float(np.prod([w for _, w in combo]))
        base = float(rng.poisson(rate * den * 10)) / 10
        inc = float(rng.poisson(rate * den * factor(labels)))
        out.append(Leaf(label_key(labels), base, inc, den, den))
    return out


def causes(leaves: list[Leaf]) -> list[dict[str, str]]:
    return [dict(c.labels) for c in localize(leaves, ratio=True).causes]


B = {"b1": 0.6, "b2": 0.4}


def test_two_values_of_one_label_holding_most_of_the_traffic_are_both_causes() -> None:
    # a1 (45 %) x8 and a2 (35 %) x20: each value's normal, the other values weighted by volume, is
    # mostly the other broken one, so no value alone explains the change (it was called spread). Judged
    # together against what a3..a5 did, both are causes.
    a = {"a1": 0.45, "a2": 0.35, "a3": 0.08, "a4": 0.07, "a5": 0.05}
    leaves = counts({"a": a, "b": B}, lambda lab: {"a1": 8.0, "a2": 20.0}.get(lab["a"], 1.0))
    res = localize(leaves, ratio=True)
    assert res.localized
    assert sorted(map(str, (dict(c.labels) for c in res.causes))) == sorted(
        map(str, [{"a": "a1"}, {"a": "a2"}])
    )
    assert any("broke together" in n for n in res.notes)


def test_even_change_is_still_spread_when_values_are_judged_together() -> None:
    a = {"a1": 0.45, "a2": 0.35, "a3": 0.08, "a4": 0.07, "a5": 0.05}
    res = localize(counts({"a": a, "b": B}, lambda lab: 6.0), ratio=True)
    assert not res.localized


def test_a_second_cause_beside_one_holding_most_of_the_volume_is_found() -> None:
    # a1 (55 %) x40 and a2 (10 %) x20: the common trend, every leaf's median, is a1's own change, and
    # against it what a1 leaves looks unchanged. Against what normal was for a1 (the other values of a)
    # it is not: a2 is the second cause.
    a = {"a1": 0.55, "a2": 0.10, "a3": 0.15, "a4": 0.12, "a5": 0.08}
    leaves = counts({"a": a, "b": B}, lambda lab: {"a1": 40.0, "a2": 20.0}.get(lab["a"], 1.0), rate=0.01)
    assert causes(leaves) == [{"a": "a1"}, {"a": "a2"}]


def test_a_value_whose_few_failures_went_to_none_does_not_say_what_normal_is() -> None:
    # x=small has 3 % of the requests and about 12 failures a minute, none in the incident minute; x=big
    # is everything else, and in it only y0 broke. Read as a factor, "12 to 0" made big's normal "no
    # failures at all": big explained the change several times over and its other y values looked broken.
    x = {"big": 0.97, "small": 0.03}
    y = {"y0": 0.15, "y1": 0.45, "y2": 0.40}

    def factor(lab: dict[str, str]) -> float:
        if lab["x"] == "small":
            return 0.0
        return 8.0 if lab["y"] == "y0" else 1.0

    leaves = counts({"x": x, "y": y}, factor, seed=5)
    assert causes(leaves) == [{"x": "big", "y": "y0"}]
    cube = Cube(leaves, ratio=True)
    assert 0.8 < cube.trend_for((("x", "big"),))[1] < 1.25  # normal read from the leaves that show it


def test_without_any_other_segment_showing_a_factor_normal_is_no_change() -> None:
    # A histogram's share of slow requests: only p1/r1 had slow requests before, and it went from 0.0015
    # to 30 a second; p2/r2 had one, then none. The common trend is p1/r1's own change; the pods that
    # show nothing say nothing, and normal is taken as unchanged.
    leaves = []
    for pod, pw in {"p1": 80.0, "p2": 30.0, "p3": 35.0, "p4": 28.0}.items():
        for route, rw in {"r1": 1.0, "r2": 0.8, "r3": 0.6}.items():
            base, inc = {("p1", "r1"): (0.0015, 30.0), ("p2", "r2"): (0.0008, 0.0)}.get(
                (pod, route), (0.0, 0.0)
            )
            leaves.append(Leaf(label_key({"pod": pod, "route": route}), base, inc, pw * rw, pw * rw * 1.05))
    cube = Cube(leaves, ratio=True)
    assert cube.trend[1] > 1000  # the common trend: p1/r1's change
    assert cube.trend_for((("pod", "p1"),))[1] == 1.0
    assert causes(leaves) == [{"pod": "p1", "route": "r1"}]


def test_a_child_stands_for_a_parent_whose_explanation_overshoots() -> None:
    # Everything but a1 fell to 0.85 of its failures, a1/b1 doubled. b1's counterfactual (put back to
    # the other b values' fall) removes more than the whole change; a1/b1 removes about all of it. A
    # child keeps its parent's explanation when it keeps (1 - tolerance) of the whole change.
    def factor(lab: dict[str, str]) -> float:
        if lab["a"] == "a1":
            return 2.0 if lab["b"] == "b1" else 1.0
        return 0.85

    a = {"a1": 0.3, "a2": 0.3, "a3": 0.2, "a4": 0.2}
    b = {"b1": 0.4, "b2": 0.3, "b3": 0.3}
    res = localize(counts({"a": a, "b": b}, factor, seed=2), ratio=True)
    assert max(c.explained_share for c in res.ranked) > 1.0  # the parent overshoots
    assert [dict(c.labels) for c in res.causes] == [{"a": "a1", "b": "b1"}]
