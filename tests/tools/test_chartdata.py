"""The series an evidence keeps for its charts (pure functions over numbers)."""

from __future__ import annotations

from tools.chartdata import downsample, kept, rest_of_cause, summed, top_and_rest
from tools.prom import Series


def s(labels: dict[str, str], *values: float, t0: float = 0.0) -> Series:
    return Series(labels, tuple(t0 + 15 * i for i in range(len(values))), tuple(values))


def test_the_most_changed_are_kept_by_name_and_the_others_summed() -> None:
    series = [s({"r": "a"}, 1, 2), s({"r": "b"}, 10, 20), s({"r": "c"}, 3, 4), s({"r": "d"}, 5, 6)]
    out = top_and_rest(series, [{"r": "b"}, {"r": "d"}, {"r": "a"}, {"r": "c"}], keep=2)
    assert [(x["labels"], x["role"]) for x in out] == [
        ({"r": "b"}, "series"),
        ({"r": "d"}, "series"),
        ({}, "rest"),
    ]
    assert out[-1]["points"] == [[0, 4.0], [15, 6.0]]
    assert len(top_and_rest(series, [{"r": "b"}], keep=2, with_rest=False)) == 1


def test_points_are_bounded_finite_and_short() -> None:
    pts = [(float(i), 1 / 3) for i in range(1000)] + [(1000.0, float("nan"))]
    out = top_and_rest([Series({}, tuple(p[0] for p in pts), tuple(p[1] for p in pts))], [{}], max_points=300)
    points = out[0]["points"]
    assert len(points) <= 301 and points[-1][0] == 999 and points[0][1] == 0.333333
    assert downsample([(0.0, 1.0)], 10) == [(0.0, 1.0)]
    assert kept({}, [(1.5, 2.0)], "rest")["points"] == [[1.5, 2.0]]


def test_the_rest_of_a_cause_is_the_complement_of_its_leaves() -> None:
    num = [s({"r": "a", "u": "x"}, 8, 9), s({"r": "a", "u": "y"}, 1, 1), s({"r": "b", "u": "x"}, 1, 1)]
    den = [s({"r": "a", "u": "x"}, 10, 10), s({"r": "a", "u": "y"}, 10, 10), s({"r": "b", "u": "x"}, 10, 0)]
    assert rest_of_cause(num, None, {"r": "a", "u": "x"}) == [(0.0, 2.0), (15.0, 2.0)]
    # the ratio outside the cause: (1 + 1) / (10 + 10), then 2 / 10 where b's denominator fell to 0
    assert rest_of_cause(num, den, {"r": "a", "u": "x"}, scale=100) == [(0.0, 10.0), (15.0, 20.0)]
    assert rest_of_cause(num, den, {"r": "c"}) == [(0.0, 10 / 30), (15.0, 11 / 20)]
    assert summed([]) == []
