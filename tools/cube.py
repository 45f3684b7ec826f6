"""The leaves of a localization indexed as a cube: element aggregates, what normal did between the
windows (the trend), what an element was expected to do, and the count noise of its numerator. Pure
functions over numbers; `tools.analysis` localizes on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tools import counts

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs: hashable label sets
EPS = 1e-12


@dataclass(frozen=True)
class Leaf:
    labels: Labels
    base_num: float
    inc_num: float
    base_den: float = 1.0
    inc_den: float = 1.0


@dataclass(frozen=True)
class Aggregate:
    base_num: float = 0.0
    inc_num: float = 0.0
    base_den: float = 0.0
    inc_den: float = 0.0

    def __add__(self, other: Aggregate) -> Aggregate:
        return Aggregate(
            self.base_num + other.base_num,
            self.inc_num + other.inc_num,
            self.base_den + other.base_den,
            self.inc_den + other.inc_den,
        )

    def __sub__(self, other: Aggregate) -> Aggregate:
        return Aggregate(
            self.base_num - other.base_num,
            self.inc_num - other.inc_num,
            self.base_den - other.base_den,
            self.inc_den - other.inc_den,
        )


def agg(leaf: Leaf) -> Aggregate:
    return Aggregate(leaf.base_num, leaf.inc_num, leaf.base_den, leaf.inc_den)


def value(num: float, den: float, ratio: bool) -> float | None:
    if not ratio:
        return num
    return num / den if den > EPS else None


class Cube:
    """Leaves indexed for fast element aggregates."""

    def __init__(
        self,
        leaves: Sequence[Leaf],
        ratio: bool,
        trend: tuple[float, float] | None = None,
        fixed: bool = False,
    ) -> None:
        self.leaves = list(leaves)
        self.ratio = ratio
        self.total = self._sum(range(len(self.leaves)))
        # Each label value's leaves, in order: an element's leaves are the intersection of its values'.
        self._index: dict[tuple[str, str], list[int]] = {}
        for i, leaf in enumerate(self.leaves):
            for pair in leaf.labels:
                self._index.setdefault(pair, []).append(i)
        self.names = sorted({n for n, _ in self._index})
        self._cache: dict[Labels, Aggregate] = {}
        self._trends: dict[Labels, tuple[float, float]] = {}
        self._values: dict[str, list[str]] = {}
        self.trend = trend if trend is not None else common_trend(self.leaves, ratio)
        self.fixed = fixed  # every element's trend is `trend` (the leaves are all inside one cause)
        self.noises: dict[tuple[float, float], counts.Dispersion] = {}  # `noise`, per factor and direction

    def members(self, element: Labels) -> list[int]:
        """The positions of the leaves `element` covers, in order."""
        if not element:
            return list(range(len(self.leaves)))
        lists = sorted((self._index.get(pair, []) for pair in element), key=len)
        out = lists[0]
        for other in lists[1:]:
            keep = set(other)
            out = [i for i in out if i in keep]
        return out

    def _sum(self, positions: Iterable[int]) -> Aggregate:
        """The leaves at `positions` summed in that order (as adding their `Aggregate`s one by one)."""
        bn = inc = bd = idn = 0.0
        for i in positions:
            leaf = self.leaves[i]
            bn, inc, bd, idn = bn + leaf.base_num, inc + leaf.inc_num, bd + leaf.base_den, idn + leaf.inc_den
        return Aggregate(bn, inc, bd, idn)

    def trend_for(self, element: Labels) -> tuple[float, float]:
        """What the element would have done had it behaved like the rest: (volume factor, measure
        factor) as volume-weighted medians over the one-label elements disjoint from it (for
        {bitrate="2000", p2p="1"}: the other bitrates and p2p="0"). Unlike one common trend this holds
        when the cause is most of the volume; as medians, a second cause elsewhere does not move it; a
        global change moves everything alike and explains nothing.

        A ratio's measure factor is read only where both windows saw events: a value whose few failures
        went to none (3 to 0) has no factor to show, it is a count too small to tell; were it the only
        other value, the element's normal would be "no failures at all". Without any value that shows
        one, the factor is the leaves' outside the element (those that show one), else 1 (no change):
        the common trend, all leaves' median, is the element's own when it holds most of the volume or
        is the only segment with events. The volume factor falls back to the common trend."""
        if self.fixed:
            return self.trend
        if element in self._trends:
            return self._trends[element]
        volume, factor = self.medians(
            ((name, other),) for name, value in element for other in self.values(name) if other != value
        )
        if factor is None:
            inside = set(self.members(element))
            outside = [lf for i, lf in enumerate(self.leaves) if i not in inside]
            factor = drift(outside, self.ratio)
        trend = (
            volume if volume is not None else self.trend[0],
            factor if factor is not None else 1.0,
        )
        self._trends[element] = trend
        return trend

    def medians(self, elements: Iterable[Labels]) -> tuple[float | None, float | None]:
        """What `elements` did, (volume factor, measure factor) as volume-weighted medians (None when
        none shows one). A ratio's measure factor is read only where both windows saw events."""
        volumes: list[tuple[float, float]] = []
        factors: list[tuple[float, float]] = []
        for element in elements:
            a = self.aggregate(element)
            if self.ratio:
                if a.base_den > EPS and a.inc_den > EPS:
                    volumes.append((a.inc_den / a.base_den, a.base_den))
                    if a.base_num > EPS and a.inc_num > EPS:
                        factors.append(((a.inc_num / a.inc_den) / (a.base_num / a.base_den), a.base_den))
            elif abs(a.base_num) > EPS:
                factors.append((a.inc_num / a.base_num, abs(a.base_num)))
        return weighted_median(volumes), weighted_median(factors)

    def aggregate(self, element: Labels) -> Aggregate:
        if element in self._cache:
            return self._cache[element]
        acc = self._cache[element] = self._sum(self.members(element))
        return acc

    def purity(self, element: Labels) -> float:
        """How uniformly the element's leaves share its departure from the trend (volume-weighted, 0..1).

        {user_type="normal"} where only two regions' normal users broke is impure (about the broken
        regions' share of its volume); {ip_region="beijing"} whose users all broke is pure.
        """
        trend = self.trend_for(element)
        e_change = change(self.aggregate(element), trend, self.ratio)
        if e_change <= 1e-9:
            return 0.0
        total_w = acc = 0.0
        for i in self.members(element):
            leaf = self.leaves[i]
            w = (leaf.inc_den + leaf.base_den) if self.ratio else abs(leaf.base_num) + abs(leaf.inc_num)
            total_w += w
            acc += w * min(1.0, change(agg(leaf), trend, self.ratio) / e_change)
        return acc / total_w if total_w > 0 else 0.0

    def values(self, name: str) -> list[str]:
        if name not in self._values:
            self._values[name] = sorted({v for n, v in self._index if n == name})
        return self._values[name]


def weighted_median(pairs: list[tuple[float, float]]) -> float | None:
    """Median of values weighted by non-negative weights; None without weight."""
    pairs = sorted((v, w) for v, w in pairs if w > 0 and math.isfinite(v))
    total = sum(w for _, w in pairs)
    if total <= 0:
        return None
    acc = 0.0
    for value, weight in pairs:
        acc += weight
        if acc >= total / 2:
            return value
    return pairs[-1][0]


def drift(leaves: Sequence[Leaf], ratio: bool) -> float | None:
    """The measure factor of `leaves`: the volume-weighted median over those that show one (a ratio's:
    events in both windows, as `Cube.trend_for` reads them); None when none does."""
    if ratio:
        return weighted_median(
            [
                ((lf.inc_num / lf.inc_den) / (lf.base_num / lf.base_den), lf.base_den)
                for lf in leaves
                if lf.base_num > EPS and lf.inc_num > EPS and lf.inc_den > EPS and lf.base_den > EPS
            ]
        )
    return weighted_median(
        [(lf.inc_num / lf.base_num, abs(lf.base_num)) for lf in leaves if abs(lf.base_num) > EPS]
    )


def common_trend(leaves: Sequence[Leaf], ratio: bool) -> tuple[float, float]:
    """What 'normal' did between the windows: (volume factor, measure factor), as volume-weighted medians
    over the leaves, so a few broken leaves cannot move it. A change that covers most of the volume is
    the trend itself, and nothing localizes."""
    if ratio:
        volume = weighted_median(
            [(lf.inc_den / lf.base_den, lf.base_den) for lf in leaves if lf.base_den > EPS]
        )
        drift = weighted_median(
            [
                ((lf.inc_num / lf.inc_den) / (lf.base_num / lf.base_den), lf.base_den)
                for lf in leaves
                if lf.base_num > EPS and lf.inc_den > EPS and lf.base_den > EPS
            ]
        )
        return (volume if volume is not None else 1.0, drift if drift is not None else 1.0)
    scale = weighted_median(
        [(lf.inc_num / lf.base_num, abs(lf.base_num)) for lf in leaves if abs(lf.base_num) > EPS]
    )
    return (1.0, scale if scale is not None else 1.0)


def expected(e: Aggregate, trend: tuple[float, float], ratio: bool) -> Aggregate:
    """What the element would have done in the incident window had it followed the common trend."""
    volume, factor = trend
    if ratio:
        return Aggregate(e.base_num, e.base_num * volume * factor, e.base_den, e.base_den * volume)
    return Aggregate(e.base_num, e.base_num * factor, e.base_den, e.inc_den)


def change(a: Aggregate, trend: tuple[float, float], ratio: bool) -> float:
    """How far an aggregate is from its expected incident behaviour (numerator and denominator)."""
    exp = expected(a, trend, ratio)
    out = abs(a.inc_num - exp.inc_num) / max(abs(exp.inc_num), abs(a.inc_num) * 1e-3, EPS)
    if ratio:
        out += abs(a.inc_den - exp.inc_den) / max(abs(exp.inc_den), abs(a.inc_den) * 1e-3, EPS)
    return out


def neutralised(cube: Cube, element: Labels, ratio: bool) -> tuple[Cube, Aggregate]:
    """Replace the element's leaves by their expected behaviour (the common trend)."""
    e = cube.aggregate(element)
    exp = expected(e, cube.trend_for(element), ratio)
    fn = exp.inc_num / e.inc_num if abs(e.inc_num) > EPS else 0.0
    fd = exp.inc_den / e.inc_den if abs(e.inc_den) > EPS else 0.0
    leaves = []
    inside = set(cube.members(element))
    for i, leaf in enumerate(cube.leaves):
        if i in inside:
            if ratio:
                leaf = Leaf(leaf.labels, leaf.base_num, leaf.inc_num * fn, leaf.base_den, leaf.inc_den * fd)
            else:
                leaf = Leaf(leaf.labels, leaf.base_num, leaf.inc_num * fn, leaf.base_den, leaf.inc_den)
        leaves.append(leaf)
    new = Cube(leaves, ratio, cube.trend, cube.fixed)
    return new, new.total


def expected_numerator(a: Aggregate, factor: float, cube: Cube) -> float:
    """The numerator an aggregate was expected to have in the incident window had its measure changed by
    `factor`: its baseline ratio times its incident denominator (a segment new in the incident is
    expected to have the whole's baseline ratio); for a sum, its baseline times the factor."""
    if not cube.ratio:
        return max(0.0, a.base_num * factor)
    t = cube.total
    ratio = (
        a.base_num / a.base_den
        if a.base_den > EPS
        else (t.base_num / t.base_den if t.base_den > EPS else 0.0)
    )
    return max(0.0, ratio * a.inc_den * factor)


def moment(
    cube: Cube, element: Labels, factor: float, without: Labels = ()
) -> tuple[float, float, float] | None:
    """An element's incident numerator (observed, expected had its measure changed by `factor`, and the
    sum of its leaves' expectations squared, as `counts.Dispersion.z` takes it), leaving out the leaves
    of `without` (an element inside it); None without leaves."""
    members = cube.members(element)
    if without:
        inside = set(cube.members(without))
        members = [i for i in members if i not in inside]
    if not members:
        return None
    expected = [expected_numerator(agg(cube.leaves[i]), factor, cube) for i in members]
    observed = math.fsum(cube.leaves[i].inc_num for i in members)
    return observed, math.fsum(expected), math.fsum(e * e for e in expected)


def noise(cube: Cube, factor: float, direction: float) -> counts.Dispersion:
    """The count noise of the cube's leaves: learnt from those that moved against the signal (`direction`
    +1 when it rose, -1 when it fell; an incident moves its leaves one way, perhaps most of them), each
    against its expectation had its measure changed by `factor`. Cached per factor."""
    key = (factor, direction)
    if key not in cube.noises:
        pairs = []
        for leaf in cube.leaves:
            e = expected_numerator(agg(leaf), factor, cube)
            if direction * (leaf.inc_num - e) <= 0:
                pairs.append((leaf.inc_num, e))
        cube.noises[key] = counts.dispersion(pairs)
    return cube.noises[key]
