"""Choosing the labels of a coarse cube, and rolling series up: pure functions on small inputs."""

from __future__ import annotations

import math

import pytest

from tools.cuboids import (
    best_labels,
    choose_labels,
    combinations,
    concentration,
    pack,
    ranked_labels,
    ratio_series,
    rolled_up,
)
from tools.prom import Series
from tools.windows import WindowStat


def _st(before: float, after: float) -> WindowStat:
    return WindowStat(before, after, after)


def test_concentration_is_one_value_breaking_away_from_the_typical_one() -> None:
    alike = [_st(10, 20), _st(5, 10), _st(8, 16)]  # every value doubled: nothing concentrates
    assert concentration(alike) == pytest.approx(0.0, abs=1e-9)
    one = [_st(10, 10), _st(5, 5), _st(8, 80)]
    assert concentration(one) == pytest.approx(math.log(10), rel=1e-6)
    assert concentration([WindowStat(None, 3.0, 3.0)]) == 0.0
    # three of five zones failed alike: the median is their change, the two healthy ones stand out
    most = [_st(10, 2), _st(10, 2), _st(10, 2), _st(10, 10), _st(10, 10)]
    assert concentration(most) == pytest.approx(math.log(5), rel=1e-6)
    assert concentration([_st(10, 1), _st(5, 5), _st(8, 8)]) == pytest.approx(
        math.log(10), rel=1e-6
    )  # a fall


def test_choose_labels_skips_a_label_that_does_not_fit_and_tries_the_next() -> None:
    card = {"a": 10, "b": 24, "c": 10, "d": 15}
    assert combinations(card, ["a", "b"]) == 240
    assert choose_labels(["a", "b", "c", "d"], card, 2000) == ["a", "b"]  # c: 2,400 > 2,000
    assert choose_labels(["b", "d", "a"], card, 100) == ["b"]


def test_best_labels_maximise_the_concentration_that_fits() -> None:
    card = {"a": 10, "b": 24, "c": 10, "d": 15}
    scores = {"a": 0.1, "b": 0.5, "c": 0.1, "d": 0.45}
    assert best_labels(scores, card, 2000) == ["b", "d"]  # 360; {a, c, d} fits too but scores 0.65
    assert best_labels({n: 0.0 for n in card}, card, 2000) == ["a", "c", "d"]  # no score: most labels


def test_ranked_labels_keep_the_order_of_ties() -> None:
    assert ranked_labels({"b": 1.0}, ["a", "b", "c"]) == ["b", "a", "c"]


def test_pack_covers_every_label_with_groups_that_fit() -> None:
    card = {"a": 10, "b": 12, "c": 10, "d": 8, "e": 5}
    labels = list(card)
    groups = pack(card, labels, 2000)
    assert sorted(n for g in groups for n in g) == sorted(labels)
    assert all(combinations(card, g) <= 2000 for g in groups)
    assert len(groups) == 2
    assert pack({"pod": 5000, "code": 5}, ["pod", "code"], 2000) == [["pod"], ["code"]]


def test_pack_makes_the_first_group_the_largest_set_that_fits() -> None:
    """The most labels that fit, then the most combinations: the coarse cube the localization takes when
    the labels concentrate the change alike, which is then summed from that group, not queried again."""
    card = {"a": 10, "c": 10, "d": 15, "b": 24}
    labels = list(card)
    groups = pack(card, labels, 2000)
    assert groups == [["a", "c", "d"], ["b"]]  # first fit by values would give (d, b) and (a, c)
    assert best_labels({n: 1.0 for n in labels}, card, 2000) == groups[0]


def _s(labels: dict[str, str], values: tuple[float, ...]) -> Series:
    return Series(labels, tuple(float(t) for t in range(len(values))), values)


def test_rolled_up_sums_series_by_labels_as_sum_by_would() -> None:
    num = [
        _s({"a": "1", "b": "x"}, (1, 2)),
        _s({"a": "1", "b": "y"}, (3, 4)),
        _s({"a": "2", "b": "x"}, (5, 6)),
    ]
    den = [
        _s({"a": "1", "b": "x"}, (10, 10)),
        _s({"a": "1", "b": "y"}, (10, 10)),
        _s({"a": "2", "b": "x"}, (0, 20)),
    ]
    by_a, den_a = rolled_up(num, den, ["a"])
    assert {s.labels["a"]: s.values for s in by_a} == {"1": (4.0, 6.0), "2": (5.0, 6.0)}
    assert den_a is not None
    ratio = {s.labels["a"]: (s.timestamps, s.values) for s in ratio_series(by_a, den_a, 100.0)}
    assert ratio["1"] == ((0.0, 1.0), (20.0, 30.0))
    assert ratio["2"] == ((1.0,), (30.0,))  # the point with a zero denominator is left out
    missing, _ = rolled_up([_s({"b": "x"}, (1,))], None, ["a"])
    assert missing[0].labels == {}  # a series without the label: no label, as Prometheus answers
