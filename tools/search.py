"""The significance cover: localization of an additive measure over many leaves, several causes at once.

Pure numpy over numbers: leaves (label sets with a baseline and an incident value) in, the elements
that cover the anomalous leaves out. `tools.analysis.localize` decides when it runs and turns its
answer into `Candidate`s.

The model
- Each leaf's deviation is d = 2 (v - f) / (|v| + |f|) (f the baseline, v the incident value), a
  bounded log ratio: a leaf that falls to zero gives -2, not minus infinity.
- Noise is learnt from the data, not assumed: anomalies move the signal one way (the way the total
  moved), so the leaves that moved the other way show what noise alone does. Every leaf's deviation
  becomes a normal score through that opposite tail (a generalised Pareto tail beyond its top values),
  so heavy-tailed noise neither hides causes nor makes single noisy leaves look like causes.
- An element (a label set) is anomalous when its leaves' scores share a shift: its gain is the
  log-likelihood ratio of one common shift against none, (sum of scores)^2 / (2 * leaves).
- One element costs log(number of candidate elements) nats, the multiple-testing price of naming it:
  under noise alone the best of M elements gains about log M.

The search, round by round over the leaves no cause covers yet
1. Spread check: when the whole (the empty label set) explains the change better than the elements of
   any one label cover it, the change is common to every leaf; its factor becomes the background the
   leaves are compared with (no cause in the first round: the change is spread).
2. The lowest layer (fewest labels) holding a significant element gives the cause: its best element,
   specialised one label at a time while a child is significant and the child's siblings (the parent
   without the child) look normal, i.e. their mean score is closer to none than to the child's.
   {a=a1, b=b2} wins over {a=a1} only when a1's other b values did not move; a cause shared by all of a
   parent's children stays the parent.
3. Its leaves are removed and the next round starts, until no element pays its cost.

The needle screen (`screen`), for a metric whose leaves are too many to fetch: the same noise model on
what two Prometheus queries return, the leaves that moved most the anomalous way and a histogram of
every leaf's ln ratio. The background is the median ratio, the noise the opposite side of the
histogram, and a single leaf is named when z^2 / 2 pays the same cost. `Screen.element` judges an
element several needles share from its own leaves, with that noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from numpy.typing import NDArray

Labels = tuple[tuple[str, str], ...]
Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]

# Leaves below the expectation needed to learn the noise from them; with fewer, the tail cannot be
# estimated and `measurable` says no.
MIN_NULL = 100
TAIL_SHARE = 0.05  # the top share of the opposite magnitudes a tail is fitted to
MIN_TAIL = 10
MAX_ROUNDS = 50


@dataclass(frozen=True)
class Found:
    labels: Labels
    base: float  # the element's sum in each window
    inc: float
    excess: float  # over the background, of its leaves no earlier cause covered (excesses add up)
    gain: float  # log-likelihood ratio, nats (before its cost)


@dataclass
class Cover:
    causes: list[Found] = field(default_factory=list)
    background: float = 1.0  # the factor the uncovered leaves share (1: they follow the baseline)
    spread: bool = False  # the first round found the change common to all leaves
    rest_shifted: bool = False  # the leaves no cause covers shifted together beyond their noise
    cost: float = 0.0
    examined: int = 0  # elements whose gain was computed
    singles: list[tuple[Labels, float, float]] = field(default_factory=list)  # one-label elements' sums


def deviations(base: Floats, inc: Floats, factor: float = 1.0) -> tuple[Floats, Bools]:
    """d = 2 (v - k f) / (|v| + |k f|) per leaf, and which leaves carry data at all."""
    f = base * factor
    den = np.abs(f) + np.abs(inc)
    info = den > 0
    d = np.zeros(len(base))
    d[info] = 2 * (inc[info] - f[info]) / den[info]
    return d, info


def measurable(base: Floats, inc: Floats) -> bool:
    """Enough leaves moved against the total for the noise to be learnt from them."""
    d, info = deviations(base, inc)
    direction = 1.0 if inc.sum() >= base.sum() else -1.0
    return int((info & (direction * d < 0)).sum()) >= MIN_NULL


class _Cube:
    def __init__(self, labels: Sequence[Labels]) -> None:
        names = sorted({n for lab in labels for n, _ in lab})
        index: list[dict[str, int]] = [{} for _ in names]
        pos = {n: j for j, n in enumerate(names)}
        codes = np.zeros((len(labels), len(names)), np.int64)
        for i, lab in enumerate(labels):
            row = dict(lab)
            for n in names:
                j = pos[n]
                codes[i, j] = index[j].setdefault(row.get(n, ""), len(index[j]))
        self.names = names
        self.values = [list(ix) for ix in index]
        self.card = [len(ix) for ix in index]
        self.codes = codes
        self.n = len(labels)
        self._idx: dict[tuple[int, ...], NDArray[np.int64]] = {}

    def idx(self, cuboid: tuple[int, ...]) -> NDArray[np.int64]:
        """Each leaf's element in the cuboid (a mixed-radix code)."""
        if cuboid not in self._idx:
            out = np.zeros(self.n, np.int64)
            for j in cuboid:
                out = out * self.card[j] + self.codes[:, j]
            self._idx[cuboid] = out
        return self._idx[cuboid]

    def size(self, cuboid: tuple[int, ...]) -> int:
        return math.prod(self.card[j] for j in cuboid)

    def decode(self, cuboid: tuple[int, ...], code: int) -> dict[int, int]:
        out = {}
        for j in reversed(cuboid):
            out[j] = code % self.card[j]
            code //= self.card[j]
        return out

    def encode(self, cuboid: tuple[int, ...], codes: dict[int, int]) -> int:
        out = 0
        for j in cuboid:
            out = out * self.card[j] + codes[j]
        return out

    def labels(self, cuboid: tuple[int, ...], code: int) -> Labels:
        codes = self.decode(cuboid, code)
        return tuple(sorted((self.names[j], self.values[j][c]) for j, c in codes.items()))


def _inv_norm_sf(p: Floats) -> Floats:
    """z with P(Z > z) = p for a standard normal Z (Acklam's rational approximation, |error| < 1.2e-9)."""
    p = np.clip(p, 1e-300, 1 - 1e-16)
    a = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690, -30.66479806614716,
         2.506628277459239)  # fmt: skip
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572)
    c = (-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
         4.374664141464968, 2.938163982698783)  # fmt: skip
    d = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416)

    def tail(q: Floats) -> Floats:  # the lower tail's z for cdf q
        r = np.sqrt(-2 * np.log(q))
        num = ((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]
        return num / ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1)

    out = np.empty_like(p)
    low = 0.02425
    upper = p < low  # z large: the upper tail
    lower = p > 1 - low
    mid = ~upper & ~lower
    out[upper] = -tail(p[upper])
    out[lower] = tail(1 - p[lower])
    q = 0.5 - p[mid]
    r = q * q
    num = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
    out[mid] = num / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    return out


def normal_scores(x: Floats, info: Bools, null: Bools) -> Floats:
    """Deviations (positive: the anomalous direction) as normal scores under the noise the `null` leaves
    show on the opposite side: P(|x| >= t) from their magnitudes, and beyond the top TAIL_SHARE of them a
    generalised Pareto tail fitted to those (peaks over threshold). Without enough of them, deviations are
    scaled by their robust spread."""
    opposite = np.sort(-x[null & (x < 0)])
    if len(opposite) < MIN_NULL:
        ref = x[null] if null.any() else x[info]
        spread = 1.4826 * float(np.median(np.abs(ref - np.median(ref)))) if len(ref) else 0.0
        return np.where(info, x / max(spread, 1e-12), 0.0)
    return np.where(info, np.sign(x) * tail_z(np.abs(x), opposite), 0.0)


def tail_z(t: Floats, opposite: Floats) -> Floats:
    """The normal score of each magnitude `t` under the noise `opposite` shows (the sorted magnitudes of
    the leaves that moved against the anomaly, at least MIN_NULL of them): the empirical survival below
    their top TAIL_SHARE, a generalised Pareto tail fitted to that top beyond it, halved (symmetric
    noise: P(x > t) = P(|x| > t) / 2)."""
    n = len(opposite)
    k = max(MIN_TAIL, int(TAIL_SHARE * n))
    threshold = opposite[n - k]
    excess = opposite[n - k :] - threshold
    # A generalised Pareto tail by the method of moments, never lighter than exponential (shape >= 0).
    mean, var = float(np.mean(excess)), float(np.var(excess))
    shape, scale = 0.0, max(mean, 1e-12)
    if var > 0 and mean > 0:
        shape = max(0.0, 0.5 * (1 - mean * mean / var))
        scale = max(0.5 * mean * (1 + mean * mean / var), 1e-12)
    beyond = n - np.searchsorted(opposite, t, side="left")
    survival = (beyond + 0.5) / (n + 1)
    over = np.maximum(t - threshold, 0.0)
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        if shape > 1e-9:
            tail = (k / (n + 1)) * (1 + shape * over / scale) ** (-1 / shape)
        else:
            tail = (k / (n + 1)) * np.exp(-over / scale)
    survival = np.minimum(np.where(t > threshold, tail, survival), 1.0)
    return np.maximum(_inv_norm_sf(survival / 2), 0.0)


def element_cost(cards: Sequence[int], leaves: int, depth: int | None = None) -> float:
    """The price of naming one element, log(number of candidate elements): every element of every
    cuboid of up to `depth` labels (all by default) of labels with `cards` values each, a cuboid
    counting at most `leaves` elements (those with data)."""
    useful = [c for c in cards if c > 1]
    top = min(len(useful), depth if depth is not None else len(useful))
    candidates = sum(
        min(math.prod(combo), leaves) for size in range(1, top + 1) for combo in combinations(useful, size)
    )
    return math.log(max(candidates, 2))


@dataclass(frozen=True)
class Needle:
    """A single leaf (every label pinned) whose own change is beyond the other leaves' noise."""

    labels: Labels
    log_ratio: float  # ln(incident / baseline) of its window means
    z: float  # normal score against the background
    gain: float  # z^2 / 2, nats (before its cost)


@dataclass
class Screen:
    needles: list[Needle] = field(default_factory=list)  # the significant ones, strongest first
    background: float = 1.0  # the factor the typical leaf changed by (the median ratio)
    leaves: int = 0  # leaves with data in both windows or either
    null: int = 0  # leaves that moved against the anomaly (the noise was learnt from them)
    cost: float = 0.0
    measurable: bool = True  # enough leaves moved against it to learn the noise
    direction: float = 1.0
    opposite: Floats = field(default_factory=lambda: np.zeros(0))  # the null magnitudes, sorted

    def scores(self, base: Floats, inc: Floats) -> tuple[Floats, Bools]:
        """Leaves' normal scores under this screen's background and noise (positive: the anomalous
        way), and which leaves carry data."""
        d, info = deviations(base, inc, self.background)
        x = self.direction * d
        return np.where(info, np.sign(x) * tail_z(np.abs(x), self.opposite), 0.0), info

    def element(self, leaves: Sequence[Labels], base: Floats, inc: Floats) -> tuple[Labels, float] | None:
        """Where a change shared by `leaves` (every leaf of one element, each with all its labels) sits:
        None when their common shift does not pay the cost; else, from their element down, the cover's
        specialisation (a child while it pays and its siblings look normal) gives the labels it adds and
        the gain. Judged with this screen's noise, since the element's own leaves are too few to show
        theirs."""
        x, info = self.scores(base, inc)
        rnd = _Round.scored(_Cube(leaves), x, info)
        gain = float(_gains(*rnd.sums(()))[0])
        if gain <= self.cost:
            return None
        cuboid, code, gain = rnd.specialise((), 0, gain, self.cost, len(rnd.cube.names))
        return rnd.cube.labels(cuboid, code), gain


def screen(
    candidates: Sequence[tuple[Labels, float]],
    histogram: Sequence[tuple[float, int]],
    direction: float,
    cards: Sequence[int],
) -> Screen:
    """The needles among `candidates`, the leaves that moved most in `direction` (+1 up, -1 down) as
    (labels, ln(incident / baseline)), judged against every leaf's ln ratio given as a `histogram` of
    (value, count) (infinite values: a leaf that appeared or went to zero; NaN, no data, left out).

    The background is the median ratio (most leaves follow it); each leaf's deviation from it is the
    bounded log ratio of the module's model, d = 2 tanh((ln r - ln k) / 2); noise is learnt from the
    leaves that moved the other way (`tail_z`), and a needle must pay `element_cost` over the cuboids of
    labels with `cards` values."""
    values = np.array([v for v, c in histogram if not math.isnan(v) and c > 0], dtype=float)
    counts = np.array([c for v, c in histogram if not math.isnan(v) and c > 0], dtype=np.int64)
    out = Screen(leaves=int(counts.sum()), direction=direction)
    if not len(values):
        out.measurable = False
        return out
    order = np.argsort(values)
    values, counts = values[order], counts[order]
    median = float(values[np.searchsorted(np.cumsum(counts), (out.leaves + 1) // 2 - 1, side="right")])
    log_k = median if math.isfinite(median) else 0.0
    out.background = math.exp(log_k)
    out.cost = element_cost(cards, out.leaves)

    def deviation(log_r: Floats) -> Floats:
        with np.errstate(invalid="ignore"):
            return direction * 2 * np.tanh((log_r - log_k) / 2)

    x = deviation(values)
    against = x < 0
    opposite = np.sort(np.repeat(-x[against], counts[against]))
    out.null, out.opposite = len(opposite), opposite
    if out.null < MIN_NULL:
        out.measurable = False
        return out
    logs = np.array([lr for _, lr in candidates], dtype=float)
    xs = deviation(logs) if len(logs) else np.zeros(0)
    zs = np.where(xs > 0, tail_z(np.abs(xs), opposite), 0.0)
    found = [
        Needle(labels, float(lr), float(z), float(z * z / 2))
        for (labels, lr), z in zip(candidates, zs, strict=True)
        if z * z / 2 > out.cost
    ]
    out.needles = sorted(found, key=lambda n: -n.gain)
    return out


def _background(base: Floats, inc: Floats, leaves: Bools) -> float:
    """The common factor k of the given leaves: their deviations from k * baseline average zero."""
    f, v = np.abs(base[leaves]), np.abs(inc[leaves])
    keep = (f + v) > 0
    f, v = f[keep], v[keep]
    if not len(f):
        return 1.0
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        k = math.exp(mid)
        if float(np.mean(2 * (v - k * f) / (v + k * f))) > 0:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def _gains(sums: Floats, counts: Floats) -> Floats:
    """Log-likelihood ratio of one common shift of the scores against none (positive shifts only)."""
    ok = (sums > 0) & (counts > 0)
    return np.where(ok, sums * sums / (2 * np.where(ok, counts, 1.0)), 0.0)


class _Round:
    """The scores of the leaves still uncovered, against a background factor."""

    def __init__(self, cube: _Cube, base: Floats, inc: Floats, direction: float, alive: Bools, k: float):
        d, info = deviations(base, inc, k)
        self.cube = cube
        self.k = k
        self.info = info & alive
        self.x = normal_scores(direction * d, self.info, self.info)
        self.w = self.info.astype(float)
        self.examined = 0

    @classmethod
    def scored(cls, cube: _Cube, x: Floats, info: Bools) -> _Round:
        """A round over leaves whose normal scores are already known (the needle screen's)."""
        rnd = cls.__new__(cls)
        rnd.cube, rnd.k, rnd.info, rnd.x, rnd.w, rnd.examined = cube, 1.0, info, x, info.astype(float), 0
        return rnd

    def sums(self, cuboid: tuple[int, ...]) -> tuple[Floats, Floats]:
        idx = self.cube.idx(cuboid)
        size = self.cube.size(cuboid)
        self.examined += size
        return (
            np.bincount(idx, weights=self.x, minlength=size).astype(float),
            np.bincount(idx, weights=self.w, minlength=size).astype(float),
        )

    def specialise(
        self, cuboid: tuple[int, ...], code: int, gain: float, cost: float, depth: int
    ) -> tuple[tuple[int, ...], int, float]:
        """Go down to the best child while it pays its cost and its siblings look normal."""
        while len(cuboid) < depth:
            codes = self.cube.decode(cuboid, code)
            best: tuple[float, tuple[int, ...], int] | None = None
            for j in range(len(self.cube.names)):
                if j in cuboid or self.cube.card[j] < 2:
                    continue
                child_cuboid = tuple(sorted((*cuboid, j)))
                sums, counts = self.sums(child_cuboid)
                gains = _gains(sums, counts)
                kids = np.array(
                    [self.cube.encode(child_cuboid, {**codes, j: v}) for v in range(self.cube.card[j])]
                )
                if int((counts[kids] > 0).sum()) < 2:
                    continue  # one child only: the label adds no information (implied by the others)
                kid = int(kids[np.argmax(gains[kids])])
                rest_n = float(counts[kids].sum() - counts[kid])
                if gains[kid] <= cost or rest_n <= 0:
                    continue
                rest_mean = float(sums[kids].sum() - sums[kid]) / rest_n
                if rest_mean >= sums[kid] / counts[kid] / 2:
                    continue  # the siblings look more like the child than like normal
                if best is None or gains[kid] > best[0]:
                    best = (float(gains[kid]), child_cuboid, kid)
            if best is None:
                break
            gain, cuboid, code = best
        return cuboid, code, gain


def cover(
    labels: Sequence[Labels],
    base: Floats,
    inc: Floats,
    *,
    max_labels: int | None = None,
    max_causes: int | None = None,
) -> Cover:
    """The causes of an additive measure's change: see the module's docstring."""
    cube = _Cube(labels)
    direction = 1.0 if inc.sum() >= base.sum() else -1.0
    useful = [j for j in range(len(cube.names)) if cube.card[j] > 1]
    depth = min(len(useful), max_labels or len(useful))
    layers = [list(combinations(useful, size)) for size in range(1, depth + 1)]
    result = Cover(cost=element_cost([cube.card[j] for j in useful], cube.n, depth))
    for j in useful:
        b = np.bincount(cube.codes[:, j], weights=base, minlength=cube.card[j])
        v = np.bincount(cube.codes[:, j], weights=inc, minlength=cube.card[j])
        result.singles += [
            (((cube.names[j], cube.values[j][c]),), float(b[c]), float(v[c])) for c in range(cube.card[j])
        ]
    cost = result.cost
    alive = np.ones(cube.n, bool)
    drift = False
    for round_no in range(min(max_causes or MAX_ROUNDS, MAX_ROUNDS)):
        rnd = _Round(cube, base, inc, direction, alive, _background(base, inc, alive) if drift else 1.0)
        if not drift and _spread(rnd, useful, cost):
            drift = True
            result.spread = round_no == 0
            rnd = _Round(cube, base, inc, direction, alive, _background(base, inc, alive))
        result.background = rnd.k
        pick = _best_in_lowest_layer(rnd, layers, cost)
        if pick is not None:
            pick = rnd.specialise(*pick, cost, depth)
        result.examined += rnd.examined
        if pick is None:
            break
        cuboid, code, gain = pick
        leaves = cube.idx(cuboid) == code
        covered = alive & leaves
        excess = float((inc[covered] - rnd.k * base[covered]).sum())
        sums = float(base[leaves].sum()), float(inc[leaves].sum())
        result.causes.append(Found(cube.labels(cuboid, code), *sums, excess, gain))
        alive = alive & ~covered
        if not alive.any():
            break
    if drift:
        result.rest_shifted = True
    elif alive.any():
        rest = _Round(cube, base, inc, direction, alive, 1.0)
        result.rest_shifted = float(_gains(*rest.sums(()))[0]) > cost
    return result


def _spread(rnd: _Round, useful: list[int], cost: float) -> bool:
    """Does one common shift of every leaf beat the best cover by the elements of any one label?"""
    whole = float(_gains(*rnd.sums(()))[0]) - cost
    if whole <= 0:
        return False
    covers = [float(np.maximum(_gains(*rnd.sums((j,))) - cost, 0.0).sum()) for j in useful]
    return whole > max(covers, default=0.0)


def _best_in_lowest_layer(
    rnd: _Round, layers: list[list[tuple[int, ...]]], cost: float
) -> tuple[tuple[int, ...], int, float] | None:
    for layer in layers:
        best: tuple[tuple[int, ...], int, float] | None = None
        for cuboid in layer:
            gains = _gains(*rnd.sums(cuboid))
            code = int(np.argmax(gains))
            if gains[code] > cost and (best is None or gains[code] > best[2]):
                best = (cuboid, code, float(gains[code]))
        if best is not None:
            return best
    return None
