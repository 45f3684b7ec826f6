"""The significance cover's noise model and the needle screen (tools/search.py), on numbers."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from tools import search


def _leaves(
    rng: np.random.Generator, n: int, noise: float
) -> tuple[list[search.Labels], np.ndarray, np.ndarray]:
    labels = [(("a", f"a{i % 10}"), ("b", f"b{i // 10 % 20}"), ("c", f"c{i // 200}")) for i in range(n)]
    base = rng.uniform(20, 200, n)
    inc = base * (1 + rng.normal(0, noise, n))
    return labels, base, inc


def _histogram(log_ratios: np.ndarray, width: float = 0.002) -> list[tuple[float, int]]:
    """What the screen's count_values query gives: atan(ln r) rounded, as tan(bin)."""
    bins = Counter(float(np.round(np.arctan(lr) / width) * width) for lr in log_ratios)
    return [(math.tan(b), c) for b, c in bins.items()]


def test_element_cost_counts_every_cuboid_capped_by_the_leaves() -> None:
    # 10 x 20 x 5: 35 single-label, 200 + 50 + 100 pairs, 1000 leaves; a cuboid holds at most 600 leaves
    assert math.isclose(search.element_cost([10, 20, 5], 600), math.log(35 + 200 + 50 + 100 + 600))
    assert math.isclose(search.element_cost([10, 20, 5], 600, depth=1), math.log(35))
    assert search.element_cost([1, 1], 10) == math.log(2)  # nothing varies: the floor


def test_tail_z_is_small_inside_the_noise_and_grows_past_it() -> None:
    rng = np.random.default_rng(1)
    opposite = np.sort(np.abs(rng.normal(0, 0.05, 5000)))
    z = search.tail_z(np.array([0.01, 0.1, 0.5]), opposite)
    # 2 sigma reads about 2; far past the fitted tail the exponential tail is the cautious bound
    assert z[0] < 0.5 and 1.5 < z[1] < 2.6 and z[2] > 5


def test_the_screen_finds_single_leaves_far_beyond_the_noise_and_nothing_in_noise_alone() -> None:
    rng = np.random.default_rng(7)
    labels, base, inc = _leaves(rng, 4000, 0.05)
    needles = {5: 0.3, 1234: 0.35}  # two leaves fell by about 65-70 %
    for i, factor in needles.items():
        inc[i] = base[i] * factor
    log_r = np.log(inc / base)
    order = np.argsort(log_r)[:50]  # bottomk(50, ratio): the leaves that fell most
    candidates = [(labels[i], float(log_r[i])) for i in order]
    found = search.screen(candidates, _histogram(log_r), -1.0, [10, 20, 20])
    assert found.measurable and found.leaves == 4000 and 1500 < found.null < 2500
    assert {n.labels for n in found.needles} == {labels[5], labels[1234]}
    assert all(n.gain > found.cost for n in found.needles)
    assert abs(math.log(found.background)) < 0.01  # the typical leaf did not move

    noise_only = np.log(_leaves(np.random.default_rng(8), 4000, 0.05)[2] / base)
    order = np.argsort(noise_only)[:50]
    quiet = search.screen(
        [(labels[i], float(noise_only[i])) for i in order], _histogram(noise_only), -1.0, [10, 20, 20]
    )
    assert quiet.needles == []


def test_the_screen_judges_against_the_common_change_and_counts_leaves_that_vanished() -> None:
    rng = np.random.default_rng(3)
    labels, base, inc = _leaves(rng, 3000, 0.03)
    inc *= 1.4  # everything rose 40 %: no leaf is a needle for rising with the rest
    inc[17] = 0.0  # one leaf went to zero: ln r = -inf
    log_r = np.log(np.where(inc > 0, inc, 1e-300) / base)
    log_r[17] = -math.inf
    order = np.argsort(log_r)[:50]
    found = search.screen(
        [(labels[i], float(log_r[i])) for i in order], _histogram(log_r), -1.0, [10, 20, 15]
    )
    assert math.isclose(found.background, 1.4, rel_tol=0.01)
    assert [n.labels for n in found.needles] == [labels[17]]
    rose = search.screen(
        [(labels[i], float(log_r[i])) for i in np.argsort(-log_r)[:50]], _histogram(log_r), 1.0, [10, 20, 15]
    )
    assert rose.needles == []


def test_the_screen_says_when_too_few_leaves_show_the_noise() -> None:
    found = search.screen([((("a", "x"),), -1.0)], [(0.0, 30), (-1.0, 1)], -1.0, [31])
    assert not found.measurable and found.needles == []
    assert not search.screen([], [], 1.0, [3]).measurable
