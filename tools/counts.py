"""The noise of a ratio's numerator: how far an observed value is from the one expected, in normal scores.

Pure functions over numbers. A ratio's numerator (failures, errors, slow requests) is a count, or a
rate of one. Given what it was expected to be in the incident window (`e`, from its own baseline ratio
and the incident's denominator), the observed value `o` is judged by the Poisson deviance,
D = 2 (o ln(o / e) - (o - e)), over the variance-to-mean ratio of a negative binomial,
phi + alpha e, as the signed normal score z = sign(o - e) sqrt(D / (phi + alpha e)).

- phi is the size of one event in the measure's units: about 1 for plain counts, 1 / T for a rate over
  T seconds, more for counts burstier than Poisson. It rules small segments.
- alpha is the relative noise floor (alpha = 0.01: 10 % from one window to the next whatever the
  volume), which real traffic has and Poisson has not. It rules large segments, so a 5 % wobble of
  20,000 failures is not taken for an anomaly.

Both are learnt from the leaves themselves (`dispersion`, given the leaves that moved against the
anomaly): the medians of D / (phi + alpha e) over the smaller and over the larger half of the leaves
(by expectation) are each set to the median of a chi-square of one degree of freedom. A sum of leaves
is judged with the variance phi e + alpha (sum of the leaves' e squared): the relative noise of many
leaves together is smaller than one leaf's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

CHI2_MEDIAN = 0.454936  # the median of a chi-square of one degree of freedom
Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Dispersion:
    phi: float  # one event, in the measure's units
    alpha: float = 0.0  # the squared relative noise floor

    def z(self, observed: float, expected: float, squares: float | None = None) -> float:
        """The signed normal score of `observed` against `expected` (above an expectation below one
        event, that event is expected: never more than was observed). For a sum of leaves whose noise is
        their own, `squares` is the sum of their expectations squared: the relative noise of a sum of
        many leaves is smaller than one leaf's (variance phi e + alpha squares; one leaf: e squared)."""
        e = max(expected, min(observed, self.phi)) if observed > expected else expected
        d = deviance(observed, e)
        if d <= 0:
            return 0.0
        relative = (squares / e if squares is not None else e) if e > 0 else 0.0
        return math.copysign(math.sqrt(d / (self.phi + self.alpha * relative)), observed - e)


def deviance(observed: float, expected: float) -> float:
    """The Poisson deviance of `observed` against `expected` (both >= 0; 0 when equal)."""
    o, e = max(0.0, observed), max(0.0, expected)
    if e <= 0.0:
        return math.inf if o > 0 else 0.0
    if o <= 0.0:
        return 2 * e
    return max(0.0, 2 * (o * math.log(o / e) - (o - e)))


def _deviances(o: Floats, e: Floats) -> Floats:
    o = np.maximum(o, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(o > 0, o * np.log(np.where(o > 0, o, 1.0) / e), 0.0)
    return np.maximum(2 * (term - (o - e)), 0.0)


def _solve(d: Floats, base: Floats, slope: Floats, lo: float, hi: float) -> float:
    """x in [lo, hi] with median(d / (base + slope x)) = CHI2_MEDIAN (the median falls as x grows);
    lo when even lo gives less."""
    if not len(d) or float(np.median(d / np.maximum(base + slope * lo, 1e-300))) <= CHI2_MEDIAN:
        return lo
    a, b = math.log(max(lo, 1e-300)), math.log(hi)
    for _ in range(60):
        mid = (a + b) / 2
        if float(np.median(d / (base + slope * math.exp(mid)))) > CHI2_MEDIAN:
            a = mid
        else:
            b = mid
    return math.exp((a + b) / 2)


def dispersion(pairs: Iterable[tuple[float, float]]) -> Dispersion:
    """phi and alpha from the (observed, expected) values of leaves that show the noise (see the module's
    docstring). Leaves expected to have less than one event cannot show their noise and are left out
    once a first phi is known. phi = 1 and alpha = 0 without data; phi is never 0 (a noiseless cube gets
    a phi far below any of its values)."""
    rows = [(o, e) for o, e in pairs if e > 0 and math.isfinite(o) and math.isfinite(e)]
    if not rows:
        return Dispersion(1.0)
    o = np.array([r[0] for r in rows], dtype=float)
    e = np.array([r[1] for r in rows], dtype=float)
    d = _deviances(o, e)
    floor = 1e-9 * float(e.max())
    phi = max(float(np.median(d)) / CHI2_MEDIAN, floor)
    keep = e >= phi
    if keep.sum() >= 2:
        e, d = e[keep], d[keep]
    order = np.argsort(e)
    small, large = order[: max(1, len(order) // 2)], order[len(order) // 2 :]
    alpha = 0.0
    top_phi = float(d.max()) / CHI2_MEDIAN + floor  # beyond these, every leaf is within one median
    top_alpha = float(np.max(d / e)) / CHI2_MEDIAN + 1.0
    for _ in range(8):  # each median depends on both: solved in turn
        phi = _solve(d[small], alpha * e[small], np.ones(len(small)), floor, top_phi)
        alpha = _solve(d[large], np.full(len(large), phi), e[large], 0.0, top_alpha)
    return Dispersion(phi, alpha)
