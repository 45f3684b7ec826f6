"""The analysis core: pure functions over numbers. No I/O, no HTTP, no report format. (Window means
and steps: `tools.windows`.)

Terms
- A *leaf* is one series of the finest breakdown (all candidate labels), with its measure in the
  baseline and in the incident window: numerator and, for ratios, denominator.
- An *element* is a label set such as {ip_region="shanghai", user_type="admin"}; it covers the leaves
  whose labels contain it.
- The *explained share* of an element is how much of the alert signal's change disappears when that
  element alone is put back to its expected behaviour (a counterfactual), the way Adtributor's
  explanatory power and RobustSpot's derived-measure handling treat ratios: numerator and denominator
  move together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from tools import search

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs: hashable label sets


def label_key(labels: dict[str, str], names: Iterable[str] | None = None) -> Labels:
    if names is None:
        return tuple(sorted(labels.items()))
    return tuple(sorted((n, labels.get(n, "")) for n in names))


# ---------------------------------------------------------------- localization


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


def _agg(leaf: Leaf) -> Aggregate:
    return Aggregate(leaf.base_num, leaf.inc_num, leaf.base_den, leaf.inc_den)


@dataclass(frozen=True)
class Candidate:
    labels: Labels
    explained_share: float  # fraction of the signal's change removed by the counterfactual
    baseline: float | None  # the element's own measure (ratio or sum) in each window
    incident: float | None
    deviation: float  # relative change of the element's own measure
    surprise: float  # Jensen-Shannon divergence of its shares (numerator and denominator)
    volume_share: float  # the element's share of the incident denominator (or sum)

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


EPS = 1e-12


def _conclude(result: Localization, verdict: str, note: str) -> None:
    result.verdict, result.verdict_note = verdict, note
    result.notes.append(note)


def _value(num: float, den: float, ratio: bool) -> float | None:
    if not ratio:
        return num
    return num / den if den > EPS else None


def _rel_change(before: float | None, after: float | None) -> float:
    if before is None or after is None:
        return 0.0
    return abs(after - before) / max(abs(before), EPS)


def _log_change(a: Aggregate, ratio: bool) -> float | None:
    """log(incident / baseline) of an aggregate's measure; None when it has no data."""
    before, after = _value(a.base_num, a.base_den, ratio), _value(a.inc_num, a.inc_den, ratio)
    if before is None or after is None:
        return None
    floor = 1e-9 * max(abs(before), abs(after), 1e-12)
    return math.log((abs(after) + floor) / (abs(before) + floor))


def _looks_normal(part: Aggregate, anomalous: Candidate, cube: _Cube, reference: float = 1.0) -> bool:
    """Is `part` (what an element leaves out) closer to the normal behaviour than to the anomalous element?

    Normal is a change of the measure by the factor `reference` (1.0: unchanged; or what the world
    outside the parent element did). Compared as log changes, so "changed 4x while the element changed
    10x" counts as anomalous too, and a change shared by everything (a global change) leaves no part
    normal. A part with no data cannot show anything and is not called normal.
    """
    ratio = cube.ratio
    if (
        (part.inc_den <= EPS and part.base_den <= EPS)
        if ratio
        else (abs(part.base_num) + abs(part.inc_num) <= EPS)
    ):
        return False
    change = _log_change(part, ratio)
    if change is None or anomalous.baseline is None or anomalous.incident is None:
        return False
    floor = 1e-9 * max(abs(anomalous.baseline), abs(anomalous.incident), 1e-12)
    element = math.log((abs(anomalous.incident) + floor) / (abs(anomalous.baseline) + floor))
    normal = math.log(reference) if reference > EPS else 0.0
    return abs(change - normal) < abs(change - element)


def _js(p: float, q: float) -> float:
    """Jensen-Shannon divergence of one element's share p (baseline) vs q (incident), as Adtributor does."""

    def term(x: float, m: float) -> float:
        return x * math.log(x / m) if x > 0 else 0.0

    m = (p + q) / 2
    return 0.5 * (term(p, m) + term(q, m)) if m > 0 else 0.0


class _Cube:
    """Leaves indexed for fast element aggregates."""

    def __init__(self, leaves: Sequence[Leaf], ratio: bool, trend: tuple[float, float] | None = None) -> None:
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
        self.trend = trend if trend is not None else _trend(self.leaves, ratio)

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
        global change moves everything alike and explains nothing. Falls back to the common trend."""
        if element in self._trends:
            return self._trends[element]
        volumes: list[tuple[float, float]] = []
        factors: list[tuple[float, float]] = []
        for name, value in element:
            for other in self.values(name):
                if other == value:
                    continue
                a = self.aggregate(((name, other),))
                if self.ratio:
                    if a.base_den > EPS and a.inc_den > EPS:
                        volumes.append((a.inc_den / a.base_den, a.base_den))
                        if a.base_num > EPS:
                            factors.append(((a.inc_num / a.inc_den) / (a.base_num / a.base_den), a.base_den))
                elif abs(a.base_num) > EPS:
                    factors.append((a.inc_num / a.base_num, abs(a.base_num)))
        volume = _weighted_median(volumes)
        factor = _weighted_median(factors)
        trend = (
            volume if volume is not None else self.trend[0],
            factor if factor is not None else self.trend[1],
        )
        self._trends[element] = trend
        return trend

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
        e_change = _change(self.aggregate(element), trend, self.ratio)
        if e_change <= 1e-9:
            return 0.0
        total_w = acc = 0.0
        for i in self.members(element):
            leaf = self.leaves[i]
            w = (leaf.inc_den + leaf.base_den) if self.ratio else abs(leaf.base_num) + abs(leaf.inc_num)
            total_w += w
            acc += w * min(1.0, _change(_agg(leaf), trend, self.ratio) / e_change)
        return acc / total_w if total_w > 0 else 0.0

    def values(self, name: str) -> list[str]:
        if name not in self._values:
            self._values[name] = sorted({v for n, v in self._index if n == name})
        return self._values[name]


def _weighted_median(pairs: list[tuple[float, float]]) -> float | None:
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


def _trend(leaves: Sequence[Leaf], ratio: bool) -> tuple[float, float]:
    """What 'normal' did between the windows: (volume factor, measure factor), as volume-weighted medians
    over the leaves, so a few broken leaves cannot move it. A change that covers most of the volume is
    the trend itself, and nothing localizes."""
    if ratio:
        volume = _weighted_median(
            [(lf.inc_den / lf.base_den, lf.base_den) for lf in leaves if lf.base_den > EPS]
        )
        drift = _weighted_median(
            [
                ((lf.inc_num / lf.inc_den) / (lf.base_num / lf.base_den), lf.base_den)
                for lf in leaves
                if lf.base_num > EPS and lf.inc_den > EPS and lf.base_den > EPS
            ]
        )
        return (volume if volume is not None else 1.0, drift if drift is not None else 1.0)
    scale = _weighted_median(
        [(lf.inc_num / lf.base_num, abs(lf.base_num)) for lf in leaves if abs(lf.base_num) > EPS]
    )
    return (1.0, scale if scale is not None else 1.0)


def _expected(e: Aggregate, trend: tuple[float, float], ratio: bool) -> Aggregate:
    """What the element would have done in the incident window had it followed the common trend."""
    volume, factor = trend
    if ratio:
        return Aggregate(e.base_num, e.base_num * volume * factor, e.base_den, e.base_den * volume)
    return Aggregate(e.base_num, e.base_num * factor, e.base_den, e.inc_den)


def _change(a: Aggregate, trend: tuple[float, float], ratio: bool) -> float:
    """How far an aggregate is from its expected incident behaviour (numerator and denominator)."""
    exp = _expected(a, trend, ratio)
    out = abs(a.inc_num - exp.inc_num) / max(abs(exp.inc_num), abs(a.inc_num) * 1e-3, EPS)
    if ratio:
        out += abs(a.inc_den - exp.inc_den) / max(abs(exp.inc_den), abs(a.inc_den) * 1e-3, EPS)
    return out


def _evaluate(cube: _Cube, total: Aggregate, element: Labels, base_value: float | None) -> Candidate | None:
    e = cube.aggregate(element)
    rest = total - e
    ratio = cube.ratio
    inc_value = _value(total.inc_num, total.inc_den, ratio)
    if base_value is None or inc_value is None:
        return None
    delta = inc_value - base_value
    if abs(delta) <= EPS * max(1.0, abs(base_value)):
        return None
    exp = _expected(e, cube.trend_for(element), ratio)
    cf = rest + Aggregate(e.base_num, exp.inc_num, e.base_den, exp.inc_den)
    cf_value = _value(cf.inc_num, cf.inc_den, ratio)
    if cf_value is None:
        return None
    explained = (inc_value - cf_value) / delta
    e_base = _value(e.base_num, e.base_den, ratio)
    e_inc = _value(e.inc_num, e.inc_den, ratio)
    surprise = 0.0
    if abs(total.base_num) > EPS and abs(total.inc_num) > EPS:
        surprise += _js(e.base_num / total.base_num, e.inc_num / total.inc_num)
    if ratio and total.base_den > EPS and total.inc_den > EPS:
        surprise += _js(e.base_den / total.base_den, e.inc_den / total.inc_den)
    volume = (
        (e.inc_den / total.inc_den if total.inc_den > EPS else 0.0)
        if ratio
        else (e.inc_num / total.inc_num if abs(total.inc_num) > EPS else 0.0)
    )
    return Candidate(element, explained, e_base, e_inc, _rel_change(e_base, e_inc), surprise, volume)


def localize(
    leaves: Sequence[Leaf],
    *,
    ratio: bool,
    max_causes: int | None = None,
    max_labels: int | None = None,
    min_share: float = 0.5,
    specialize_tolerance: float = 0.15,
) -> Localization:
    """Find the label set(s) that explain the change of an additive or ratio measure.

    A sum whose leaves can show their own noise (at least `search.MIN_NULL` moved against the total) is
    localized by the significance cover of `tools.search`: several causes at once, each at its depth, no
    cap on causes or labels unless `max_causes`/`max_labels` say. Ratios, and sums over too few leaves
    to learn a noise from, by the explained share (`_explained`: at most 3 causes of up to 3 labels
    unless given).

    Why ratios keep the explained share: numerator and denominator move together, and an incident
    shifts traffic (retries, failover), so segments it does not touch change their ratio significantly
    too; and the failures of small segments are bursty counts whose noise cannot be learnt leaf by leaf.
    On the RS incidents a significance search names such secondary segments beside most true causes,
    and picks the most broken part of a cause instead of the cause. Weighing each segment by the change
    of the ratio it removes keeps the segment that moved the alert.
    """
    total = Aggregate(
        math.fsum(lf.base_num for lf in leaves),
        math.fsum(lf.inc_num for lf in leaves),
        math.fsum(lf.base_den for lf in leaves),
        math.fsum(lf.inc_den for lf in leaves),
    )
    base = _value(total.base_num, total.base_den, ratio)
    inc = _value(total.inc_num, total.inc_den, ratio)
    result = Localization(ratio, base, inc, localized=False)
    if not leaves or base is None or inc is None:
        result.notes.append("no data to localize in one of the windows")
        return result
    if abs(inc - base) <= 1e-9 * max(1.0, abs(base)):
        result.notes.append("the signal did not change between the baseline and the incident window")
        return result
    if not ratio:
        base_values = np.array([lf.base_num for lf in leaves], dtype=float)
        inc_values = np.array([lf.inc_num for lf in leaves], dtype=float)
        if search.measurable(base_values, inc_values):
            found = search.cover(
                [lf.labels for lf in leaves],
                base_values,
                inc_values,
                max_labels=max_labels,
                max_causes=max_causes,
            )
            return _from_cover(result, found, min_share)
    cube = _Cube(leaves, ratio)
    return _explained(cube, result, max_causes or 3, max_labels or 3, min_share, specialize_tolerance)


def _sum_candidate(
    result: Localization, labels: Labels, e_base: float, e_inc: float, excess: float
) -> Candidate:
    """An element of a sum as a cause: `excess` (its change over the background) as its share of the
    total's change."""
    total_base, total_inc = result.baseline or 0.0, result.incident or 0.0
    surprise = _js(e_base / total_base, e_inc / total_inc) if total_base and total_inc else 0.0
    volume = e_inc / total_inc if abs(total_inc) > EPS else 0.0
    share = excess / (total_inc - total_base) if abs(total_inc - total_base) > EPS else 0.0
    return Candidate(labels, share, e_base, e_inc, _rel_change(e_base, e_inc), surprise, volume)


def with_needles(
    result: Localization,
    needles: Sequence[tuple[Labels, float, float, float]],
    screened: int,
    min_share: float = 0.5,
) -> Localization:
    """A sum's localization with the single leaves a screen of all `screened` leaves found beyond their
    noise (`tools.search.screen`), each as (labels, its baseline and incident means, its excess over the
    background): those inside a cause already named add nothing; the others are causes after the named
    ones. A localization that found nothing becomes localized on them, its notes saying what they
    explain; the "spread" verdict it had is replaced, since some of the change is not spread. A cause
    named before inside a new element (the element's siblings moved too) gives way to it."""
    new = [n for n in needles if not any(set(c.labels) <= set(n[0]) for c in result.causes)]
    if not new:
        return result
    kept = [c for c in result.causes if not any(set(n[0]) < set(c.labels) for n in new)]
    causes = [*kept, *(_sum_candidate(result, *n) for n in new)]
    # The rest of the change is noise unless the named elements' rest was found shifted beyond it.
    notes = [n for n in result.notes if n != result.verdict_note]  # the verdict is revised below
    share = sum(c.explained_share for c in causes)
    notes.append(
        f"{len(new)} single series (every label pinned) changed beyond the noise of the other "
        f"{screened - len(new):,} series, found by screening all of them in Prometheus"
    )
    out = replace(
        result,
        localized=True,
        causes=causes,
        notes=notes,
        examined=result.examined + screened,
        verdict="",
        verdict_note=None,
    )
    if result.verdict == "part":  # the rest of the change had moved beyond its noise: it still has
        _conclude(
            out, "part", f"the causes explain {share:.0%} of the change; the rest moved beyond its noise too"
        )
    elif share < min_share:
        _conclude(out, "noise", f"the causes explain {share:.0%} of the change; the rest is within noise")
    return out


def _from_cover(result: Localization, found: search.Cover, min_share: float) -> Localization:
    """The significance cover's causes as `Candidate`s; their shares of the change add up."""

    def candidate(labels: Labels, e_base: float, e_inc: float, excess: float) -> Candidate:
        return _sum_candidate(result, labels, e_base, e_inc, excess)

    result.examined = found.examined
    singles = [candidate(el, b, v, v - b) for el, b, v in found.singles]
    result.ranked = sorted(singles, key=lambda c: (-c.explained_share, -c.surprise))[:20]
    result.causes = [candidate(c.labels, c.base, c.inc, c.excess) for c in found.causes]
    share = sum(c.explained_share for c in result.causes)
    if not result.causes:
        how = "all leaves changed together" if found.spread else "no element changed beyond its leaves' noise"
        _conclude(result, "spread", f"{how}: the change is spread across segments")
    elif share >= min_share or not found.rest_shifted:
        result.localized = True
        if share < min_share:  # the rest of the change is the other leaves' noise: their sum moved
            _conclude(
                result, "noise", f"the causes explain {share:.0%} of the change; the rest is within noise"
            )
    else:
        _conclude(result, "part", f"the best elements explain only {share:.0%} of the change")
    return result


def _explained(
    cube: _Cube,
    result: Localization,
    max_causes: int,
    max_labels: int,
    min_share: float,
    specialize_tolerance: float,
) -> Localization:
    """The explained share: how much of the signal's change disappears when an element is put back to
    what the one-label elements disjoint from it did (a counterfactual: numerator and denominator move
    together). Layer 1 (one label) is scored exhaustively; an element is then specialised one label at a
    time while a child keeps (1 - specialize_tolerance) of its explanation and the child's siblings
    stayed normal, so {shanghai, admin} wins over {shanghai} only when shanghai's other users did not
    change. Further causes are searched, after the found ones are replaced by their counterfactual,
    while what no cause covers still looks anomalous; a further cause must explain `min_share` of what
    remains."""
    ratio = cube.ratio
    total = cube.total
    base = result.baseline
    assert base is not None
    useful = [n for n in cube.names if len(cube.values(n)) > 1]
    layer1 = [((n, v),) for n in useful for v in cube.values(n)]
    current_total = total
    current_cube = cube
    remaining = 1.0  # share of the original change not yet explained
    for round_no in range(max_causes):
        cands = [c for el in layer1 if (c := _evaluate(current_cube, current_total, el, base)) is not None]
        result.examined += len(cands)
        if round_no == 0:
            result.ranked = sorted(cands, key=lambda c: (-c.explained_share, -c.surprise))[:20]
        if not cands:
            break
        # Explanation weighted by purity: an element that explains much only because it contains the
        # real causes among many normal leaves loses to the causes themselves.
        best = max(cands, key=lambda c: (c.explained_share * current_cube.purity(c.labels), c.surprise))
        if best.explained_share <= 0:
            break
        best = _specialise(
            current_cube, current_total, best, base, useful, max_labels, specialize_tolerance, result
        )
        # A further cause must explain most of what is still unexplained.
        if round_no > 0 and best.explained_share < min_share:
            break
        if best.deviation <= EPS:
            break
        absolute = min(best.explained_share, 1.0) * remaining
        result.causes.append(replace(best, explained_share=absolute))
        remaining -= absolute
        if _rest_normal(cube, result.causes):
            break
        current_cube, current_total = _neutralise(current_cube, best.labels, ratio)
    # Locality: what no cause covers must look unchanged, else the change is spread everywhere.
    if result.causes and not _rest_normal(cube, result.causes):
        first = result.causes[0]
        rest = _uncovered(cube, result.causes)
        rest_dev = _rel_change(
            _value(rest.base_num, rest.base_den, ratio), _value(rest.inc_num, rest.inc_den, ratio)
        )
        _conclude(
            result,
            "spread",
            f"the best element changed by {first.deviation:.0%} while the rest changed by {rest_dev:.0%}: "
            "the change is spread across segments",
        )
        result.causes = []
    if result.causes:
        share = sum(c.explained_share for c in result.causes)
        result.localized = share >= min_share
        if not result.localized:
            _conclude(result, "part", f"the best elements explain only {share:.0%} of the change")
    return result


def _empty(a: Aggregate) -> bool:
    scale = EPS * max(1.0, abs(a.base_num) + abs(a.inc_num) + abs(a.base_den) + abs(a.inc_den))
    return all(abs(x) <= scale for x in (a.base_num, a.inc_num, a.base_den, a.inc_den))


def _uncovered(cube: _Cube, causes: Sequence[Candidate]) -> Aggregate:
    """The leaves no cause covers, summed."""
    covered = {i for c in causes for i in cube.members(c.labels)}
    return cube._sum(i for i in range(len(cube.leaves)) if i not in covered)


def _rest_normal(cube: _Cube, causes: Sequence[Candidate]) -> bool:
    """Does what no cause covers look unchanged next to the first cause (or have no data at all)?"""
    rest = _uncovered(cube, causes)
    if (rest.inc_den <= EPS) if cube.ratio else (abs(rest.inc_num) <= EPS):
        return True
    return _looks_normal(rest, causes[0], cube)


def _specialise(
    cube: _Cube,
    total: Aggregate,
    cand: Candidate,
    base: float,
    names: list[str],
    max_labels: int,
    tolerance: float,
    result: Localization,
) -> Candidate:
    while len(cand.labels) < max_labels:
        used = {n for n, _ in cand.labels}
        parent = cube.aggregate(cand.labels)
        children: list[Candidate] = []
        for name in names:
            if name in used:
                continue
            for value in cube.values(name):
                element = tuple(sorted((*cand.labels, (name, value))))
                agg = cube.aggregate(element)
                if agg.inc_den <= 0 and agg.base_den <= 0:
                    continue
                if _empty(parent - agg):
                    continue  # a label implied by the others (a route's service): same leaves, no news
                child = _evaluate(cube, total, element, base)
                result.examined += 1
                if child is not None:
                    children.append(child)
        keep = [c for c in children if c.explained_share >= (1 - tolerance) * cand.explained_share]
        if not keep:
            return cand
        best = max(keep, key=lambda c: (c.explained_share, c.surprise))
        sibling = cube.aggregate(cand.labels) - cube.aggregate(best.labels)
        if not _looks_normal(sibling, best, cube, cube.trend_for(cand.labels)[1]):
            return cand
        cand = best
    return cand


def _neutralise(cube: _Cube, element: Labels, ratio: bool) -> tuple[_Cube, Aggregate]:
    """Replace the element's leaves by their expected behaviour (the common trend)."""
    e = cube.aggregate(element)
    exp = _expected(e, cube.trend_for(element), ratio)
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
    new = _Cube(leaves, ratio, cube.trend)
    return new, new.total
