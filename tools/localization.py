"""What a localization finds, and the counterfactual it is measured by. Pure: numbers in, numbers out.

A `Candidate` is one element (a label set) as a cause: its explained share of the signal's change,
its own measure in each window, and what normal was for it. A `Localization` holds the causes found,
the best single elements (evidence), the notes and the verdict. `evaluate` is the counterfactual an
element's explained share comes from: the element put back to its trend, numerator and denominator
together (`tools.cube`). `tools.analysis` localizes with them; `tools.explained` is the search for
ratios.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tools.cube import EPS, Aggregate, Cube, Labels, Leaf, expected, value


def label_key(labels: dict[str, str], names: Iterable[str] | None = None) -> Labels:
    if names is None:
        return tuple(sorted(labels.items()))
    return tuple(sorted((n, labels.get(n, "")) for n in names))


@dataclass(frozen=True)
class Candidate:
    labels: Labels
    explained_share: float  # fraction of the signal's change removed by the counterfactual
    baseline: float | None  # the element's own measure (ratio or sum) in each window
    incident: float | None
    deviation: float  # relative change of the element's own measure
    surprise: float  # Jensen-Shannon divergence of its shares (numerator and denominator)
    volume_share: float  # the element's share of the incident denominator (or sum)
    # What the element would have done had it behaved like the rest, (volume factor, measure factor):
    # what normal is for its parts too (`narrow`). None when not known (a sum's cover, an extreme).
    trend: tuple[float, float] | None = None

    @property
    def score(self) -> float:
        return max(0.0, min(1.0, self.explained_share))


@dataclass
class Localization:
    ratio: bool
    baseline: float | None
    incident: float | None
    localized: bool
    causes: list[Candidate] = field(default_factory=list)
    ranked: list[Candidate] = field(default_factory=list)  # best single-element explanations, for evidence
    notes: list[str] = field(default_factory=list)
    examined: int = 0  # elements whose counterfactual was evaluated
    # What the search concluded about the change, and the note among `notes` that says it (so that a
    # later step, `with_needles`, can revise it): "spread" (no element holds it), "part" (the best
    # elements explain too little and the rest moved beyond its noise), "noise" (the causes explain
    # less than half, the rest is within noise); "" when the causes explain it or nothing was concluded.
    verdict: str = ""
    verdict_note: str | None = None


def conclude(result: Localization, verdict: str, note: str) -> None:
    result.verdict, result.verdict_note = verdict, note
    result.notes.append(note)


def rel_change(before: float | None, after: float | None) -> float:
    if before is None or after is None:
        return 0.0
    return abs(after - before) / max(abs(before), EPS)


def jensen_shannon(p: float, q: float) -> float:
    """Jensen-Shannon divergence of one element's share p (baseline) vs q (incident), as Adtributor does."""

    def term(x: float, m: float) -> float:
        return x * math.log(x / m) if x > 0 else 0.0

    m = (p + q) / 2
    return 0.5 * (term(p, m) + term(q, m)) if m > 0 else 0.0


def evaluate(
    cube: Cube,
    total: Aggregate,
    element: Labels,
    base_value: float | None,
    trend: tuple[float, float] | None = None,
) -> Candidate | None:
    e = cube.aggregate(element)
    normal = trend if trend is not None else cube.trend_for(element)
    rest = total - e
    ratio = cube.ratio
    inc_value = value(total.inc_num, total.inc_den, ratio)
    if base_value is None or inc_value is None:
        return None
    delta = inc_value - base_value
    if abs(delta) <= EPS * max(1.0, abs(base_value)):
        return None
    exp = expected(e, normal, ratio)
    cf = rest + Aggregate(e.base_num, exp.inc_num, e.base_den, exp.inc_den)
    cf_value = value(cf.inc_num, cf.inc_den, ratio)
    if cf_value is None:
        return None
    explained = (inc_value - cf_value) / delta
    e_base = value(e.base_num, e.base_den, ratio)
    e_inc = value(e.inc_num, e.inc_den, ratio)
    surprise = 0.0
    if abs(total.base_num) > EPS and abs(total.inc_num) > EPS:
        surprise += jensen_shannon(e.base_num / total.base_num, e.inc_num / total.inc_num)
    if ratio and total.base_den > EPS and total.inc_den > EPS:
        surprise += jensen_shannon(e.base_den / total.base_den, e.inc_den / total.inc_den)
    volume = (
        (e.inc_den / total.inc_den if total.inc_den > EPS else 0.0)
        if ratio
        else (e.inc_num / total.inc_num if abs(total.inc_num) > EPS else 0.0)
    )
    return Candidate(
        element,
        explained,
        e_base,
        e_inc,
        rel_change(e_base, e_inc),
        surprise,
        volume,
        normal,
    )


def totals(leaves: Sequence[Leaf], ratio: bool) -> tuple[float | None, float | None]:
    """The measure over all `leaves`: its baseline and incident values."""
    base_num = math.fsum(lf.base_num for lf in leaves)
    inc_num = math.fsum(lf.inc_num for lf in leaves)
    base_den = math.fsum(lf.base_den for lf in leaves)
    inc_den = math.fsum(lf.inc_den for lf in leaves)
    return value(base_num, base_den, ratio), value(inc_num, inc_den, ratio)
