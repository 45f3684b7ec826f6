"""The explained-share search: localization of a ratio, and of a sum over too few leaves to learn a
noise from. Pure: a `tools.cube.Cube` in, `Candidate`s out.

Each element is scored by its explained share (`tools.localization.evaluate`: how much of the
signal's change disappears when it is put back to what the elements disjoint from it did). Layer 1
(one label) is scored exhaustively; the best element is specialised one label at a time while a child
keeps its explanation and the child's siblings neither look anomalous nor share its anomaly beyond the
count noise of the leaves (`_specialise`). Further causes are searched in the residual; when none
holds the change, several values of one label may have broken together (`_values_together`).
`narrow` refines a cause inside itself the same way, against what the world outside it did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tools import search
from tools.cube import (
    EPS,
    Aggregate,
    Cube,
    Labels,
    Leaf,
    agg,
    expected,
    expected_numerator,
    moment,
    neutralised,
    value,
)
from tools.cube import noise as leaf_noise
from tools.localization import Candidate, Localization, conclude, evaluate, rel_change, totals


def narrow(
    leaves: Sequence[Leaf],
    parent: Candidate,
    *,
    ratio: bool,
    max_labels: int = 3,
    specialize_tolerance: float = 0.15,
) -> Localization:
    """A ratio's cause refined inside itself: `leaves` are the cause's own (by labels it does not pin),
    and normal is what the world outside it did (`parent.trend`), for every part of it: its parts are
    not compared with each other, which all share the anomaly. The cause is specialised as an element of
    the whole is (`_specialise`): a part stands for it only when the cause's other parts do not share its
    anomaly. Localized on that part (its explained share: of the cause's change), else not localized."""
    base, inc = totals(leaves, ratio)
    result = Localization(ratio, base, inc, localized=False)
    if not leaves or parent.trend is None or base is None or inc is None or abs(inc - base) <= EPS:
        return result
    cube = Cube(leaves, ratio, parent.trend, fixed=True)
    root = evaluate(cube, cube.total, (), base)
    if root is None or root.explained_share <= 0:
        return result
    useful = [n for n in cube.names if len(cube.values(n)) > 1]
    noise = _significance(cube, useful, max_labels, inc > base)
    found = _specialise(cube, cube.total, root, base, useful, max_labels, specialize_tolerance, noise, result)
    if found.labels:
        result.causes = [replace(found, explained_share=found.explained_share / root.explained_share)]
        result.localized = True
    return result


def explained(
    cube: Cube,
    result: Localization,
    max_causes: int,
    max_labels: int,
    min_share: float,
    specialize_tolerance: float,
) -> Localization:
    """The explained share: how much of the signal's change disappears when an element is put back to
    what the one-label elements disjoint from it did (a counterfactual: numerator and denominator move
    together). Layer 1 (one label) is scored exhaustively; the best element is then specialised one label
    at a time (`_specialise`: a child stands for its parent only when the parent's other children do not
    share the anomaly). Further causes are searched in the residual, after the found ones are replaced by
    their counterfactual, while what no cause covers still looks anomalous; a further cause must explain
    `min_share` of what remains and depart beyond the noise on the leaves no named cause holds (the
    residual of a named cause's own uneven leaves is not a further cause). When that finds nothing,
    several values of one label may have broken together (`_values_together`)."""
    ratio = cube.ratio
    total = cube.total
    base = result.baseline
    assert base is not None
    useful = [n for n in cube.names if len(cube.values(n)) > 1]
    layer1 = [((n, v),) for n in useful for v in cube.values(n)]
    noise = _significance(cube, useful, max_labels, (result.incident or 0.0) > base)
    current_total = total
    current_cube = cube
    remaining = 1.0  # share of the original change not yet explained
    for round_no in range(max_causes):
        cands = [c for el in layer1 if (c := evaluate(current_cube, current_total, el, base)) is not None]
        result.examined += len(cands)
        if round_no == 0:
            result.ranked = sorted(cands, key=lambda c: (-c.explained_share, -c.surprise))[:20]
        if not cands:
            break
        # Explanation weighted by purity: an element that explains much only because it contains the
        # real causes among many normal leaves loses to the causes themselves. An element whose measure
        # did not move (the failures' own status: a ratio of 0 in both windows) is where the volume
        # moved, not where the measure broke.
        moved = [c for c in cands if c.deviation > EPS]
        if not moved:
            if round_no == 0:
                conclude(
                    result, "spread", "no segment's own value moved, only their mix: the change is spread"
                )
            break
        best = max(moved, key=lambda c: (c.explained_share * current_cube.purity(c.labels), c.surprise))
        if best.explained_share <= 0:
            break
        best = _specialise(
            current_cube, current_total, best, base, useful, max_labels, specialize_tolerance, noise, result
        )
        # A further cause must explain most of what is still unexplained, and depart beyond the noise
        # outside the causes named.
        if round_no > 0 and (
            best.explained_share < min_share or not _departs(current_cube, best.labels, noise, result.causes)
        ):
            break
        absolute = min(best.explained_share, 1.0) * remaining
        result.causes.append(replace(best, explained_share=absolute))
        remaining -= absolute
        # The residual is searched while the rest does not look normal next to the first cause, or departs
        # from what normal was for it beyond the noise (a second, smaller cause).
        if _rest_normal(cube, result.causes) and not _departs(cube, (), noise, result.causes):
            break
        current_cube, current_total = neutralised(current_cube, best.labels, ratio)
    # Locality: what no cause covers must look unchanged, else the change is spread everywhere.
    if result.causes and not _rest_normal(cube, result.causes):
        first = result.causes[0]
        rest = _uncovered(cube, result.causes)
        rest_dev = rel_change(
            value(rest.base_num, rest.base_den, ratio), value(rest.inc_num, rest.inc_den, ratio)
        )
        conclude(
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
            conclude(result, "part", f"the best elements explain only {share:.0%} of the change")
    if not result.localized:
        together = _values_together(cube, result, useful, noise, max_causes, min_share)
        if together:
            result.notes = [n for n in result.notes if n != result.verdict_note]
            result.verdict, result.verdict_note = "", None
            result.causes, result.localized = together, True
            name = together[0].labels[0][0]
            result.notes.append(
                f"{len(together)} values of {name} broke together, holding "
                f"{sum(c.volume_share for c in together):.0%} of the volume: each is judged against what "
                f"the other values of {name} did"
            )
    return result


def _values_together(
    cube: Cube,
    result: Localization,
    names: list[str],
    noise: _Significance,
    max_causes: int,
    min_share: float,
) -> list[Candidate]:
    """Several values of one label that broke together, holding most of its volume: no single value
    explains the change, since the normal each is compared with (the label's other values, weighted
    by volume) is mostly another broken value. Judged together, normal is what the label's remaining
    values did. The values that moved most the signal's way are taken, fewest first (at least two, at
    most `max_causes`, some left to say what normal is), until together they explain `min_share` of
    the change, each departing from that normal beyond the noise, and what they leave out looks normal
    next to them. Each value is a cause, its share its own counterfactual's; the label whose values
    explain most wins. Empty when no label's values do."""
    ratio = cube.ratio
    base, inc = result.baseline, result.incident
    if base is None or inc is None or abs(inc - base) <= EPS:
        return []
    best: tuple[float, list[Candidate]] | None = None
    for name in names:
        moved = []
        for v in cube.values(name):
            element: Labels = ((name, v),)
            a = cube.aggregate(element)
            before, after = value(a.base_num, a.base_den, ratio), value(a.inc_num, a.inc_den, ratio)
            if before is not None and after is not None and before > EPS and after > EPS:
                moved.append((noise.direction * math.log(after / before), element))
        moved.sort(key=lambda m: -m[0])
        for k in range(2, min(max_causes, len(moved) - 1) + 1):
            taken = [el for _, el in moved[:k]]
            trend = _trend_of(cube, [el for _, el in moved[k:]])
            if trend is None:
                break
            if not all(_departs(cube, el, noise, factor=trend[1]) for el in taken):
                break  # a value that does not depart from the others' normal: more values will not do
            members = [_put_back(cube, result, el, trend) for el in taken]
            share = _put_back(cube, result, (), trend, taken).explained_share
            if share >= min_share and _rest_normal(cube, members):
                if best is None or share > best[0]:
                    best = (share, sorted(members, key=lambda c: -c.explained_share))
                break
    return best[1] if best is not None else []


def _put_back(
    cube: Cube,
    result: Localization,
    element: Labels,
    trend: tuple[float, float],
    elements: Sequence[Labels] = (),
) -> Candidate:
    """`element` (or all of `elements`, disjoint) as a cause whose normal is `trend`: its explained share
    is that of its counterfactual, the element put back to the trend."""
    ratio, total = cube.ratio, cube.total
    parts = [cube.aggregate(el) for el in (elements or [element])]
    cf = total
    for a in parts:
        exp = expected(a, trend, ratio)
        cf = cf - a + Aggregate(a.base_num, exp.inc_num, a.base_den, exp.inc_den)
    base, inc = result.baseline or 0.0, result.incident or 0.0
    cf_value = value(cf.inc_num, cf.inc_den, ratio)
    share = (inc - cf_value) / (inc - base) if cf_value is not None and abs(inc - base) > EPS else 0.0
    a = parts[0]
    e_base, e_inc = value(a.base_num, a.base_den, ratio), value(a.inc_num, a.inc_den, ratio)
    volume = (
        (a.inc_den / total.inc_den if total.inc_den > EPS else 0.0)
        if ratio
        else (a.inc_num / total.inc_num if abs(total.inc_num) > EPS else 0.0)
    )
    return Candidate(element, share, e_base, e_inc, rel_change(e_base, e_inc), 0.0, volume, trend)


def _trend_of(cube: Cube, elements: Sequence[Labels]) -> tuple[float, float] | None:
    """What `elements` did, (volume factor, measure factor) (`Cube.medians`); None when none shows a
    measure factor."""
    volume, factor = cube.medians(elements)
    if factor is None:
        return None
    return (volume if volume is not None else cube.trend[0], factor)


def _empty(a: Aggregate) -> bool:
    scale = EPS * max(1.0, abs(a.base_num) + abs(a.inc_num) + abs(a.base_den) + abs(a.inc_den))
    return all(abs(x) <= scale for x in (a.base_num, a.inc_num, a.base_den, a.inc_den))


def _uncovered(cube: Cube, causes: Sequence[Candidate]) -> Aggregate:
    """The leaves no cause covers, summed."""
    covered = {i for c in causes for i in cube.members(c.labels)}
    return cube._sum(i for i in range(len(cube.leaves)) if i not in covered)


def _rest_normal(cube: Cube, causes: Sequence[Candidate]) -> bool:
    """Does what no cause covers look unchanged next to the first cause (or have no data at all)?"""
    rest = _uncovered(cube, causes)
    if (rest.inc_den <= EPS) if cube.ratio else (abs(rest.inc_num) <= EPS):
        return True
    return _looks_normal(rest, causes[0], cube)


def _log_change(a: Aggregate, ratio: bool) -> float | None:
    """log(incident / baseline) of an aggregate's measure; None when it has no data."""
    before, after = value(a.base_num, a.base_den, ratio), value(a.inc_num, a.inc_den, ratio)
    if before is None or after is None:
        return None
    floor = 1e-9 * max(abs(before), abs(after), 1e-12)
    return math.log((abs(after) + floor) / (abs(before) + floor))


def _looks_normal(part: Aggregate, anomalous: Candidate, cube: Cube, reference: float = 1.0) -> bool:
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


@dataclass(frozen=True)
class _Significance:
    """What a departure must pass to count as an anomaly: the normal score whose z^2 / 2 pays the
    multiple-testing price of naming an element of the cube (`tools.search.element_cost`, as the sums'
    cover uses), and the way the signal moved."""

    z: float
    direction: float  # +1 when the signal rose, -1 when it fell


def _significance(cube: Cube, names: list[str], max_labels: int, rose: bool) -> _Significance:
    cost = search.element_cost([len(cube.values(n)) for n in names], len(cube.leaves), max_labels)
    return _Significance(math.sqrt(2 * cost), 1.0 if rose else -1.0)


def _shares(cube: Cube, noise: _Significance, parent: Labels, child: Candidate) -> bool:
    """Do the parent's other children (the siblings, together) share the child's anomaly: did their
    numerator depart from what their values did outside the parent (`_outside`), the anomaly's way,
    beyond the count noise of the leaves (`tools.cube.noise`, `tools.counts`)? Then the parent, not the
    child, is the cause: {a=a1} stays when a1's other b values broke too, however much more {a=a1, b=b2}
    broke. Their normal is their own values' elsewhere, not the parent's trend: when b1 fell everywhere
    and b3 held, a1's b1 and b3 doing the same is no share in {a=a1, b=b2}'s anomaly."""
    factor = _outside(cube, parent, child.labels)
    siblings = moment(cube, parent, factor, child.labels)
    if siblings is None:
        return False
    observed, expect, squares = siblings
    z = leaf_noise(cube, factor, noise.direction).z(observed, expect, squares)
    return noise.direction * z > noise.z


def _departs(
    cube: Cube,
    element: Labels,
    noise: _Significance,
    without: Sequence[Candidate] = (),
    factor: float | None = None,
) -> bool:
    """Did the element's numerator (leaving out the causes' leaves `without`) depart from the measure
    factor `factor`, the anomaly's way, beyond the count noise? By default the element's trend; for the
    rest of the cube once causes are named (`element` empty), what normal was for the first cause: the
    common trend, every leaf's median, is the causes' own change when they hold most of the volume."""
    if factor is None:
        if element:
            factor = cube.trend_for(element)[1]
        elif without and without[0].trend is not None:
            factor = without[0].trend[1]
        else:
            factor = cube.trend[1]
    inside = {i for c in without for i in cube.members(c.labels)}
    members = [i for i in cube.members(element) if i not in inside]
    if not members:
        return False
    leaves = [cube.leaves[i] for i in members]
    expect = [expected_numerator(agg(lf), factor, cube) for lf in leaves]
    z = leaf_noise(cube, factor, noise.direction).z(
        math.fsum(lf.inc_num for lf in leaves), math.fsum(expect), math.fsum(e * e for e in expect)
    )
    return noise.direction * z > noise.z


def _outside(cube: Cube, parent: Labels, child: Labels) -> float:
    """What the child's siblings' values did outside the parent, the normal the siblings are judged
    against (`_specialise`, `_shares`): the measure factor of the leaves in neither the parent nor the
    child's new value (for {a=a1, b=b2}: a2..an with b1, b3, ...); the parent's trend when they show
    none. Inside one cause (`narrow`, a fixed cube) every part's normal is what the world outside it did:
    its other parts share its anomaly."""
    if cube.fixed:
        return cube.trend[1]
    (added,) = [p for p in child if p not in parent]
    a = cube.total - cube.aggregate(parent) - cube.aggregate((added,)) + cube.aggregate(child)
    before, after = value(a.base_num, a.base_den, cube.ratio), value(a.inc_num, a.inc_den, cube.ratio)
    if before is None or after is None or before <= EPS or after <= EPS:
        return cube.trend_for(parent)[1]
    return after / before


def _specialise(
    cube: Cube,
    total: Aggregate,
    cand: Candidate,
    base: float,
    names: list[str],
    max_labels: int,
    tolerance: float,
    noise: _Significance,
    result: Localization,
) -> Candidate:
    """`cand` narrowed one label at a time to the best child that stands for it. The children are scored
    against the parent's normal (its trend), so that they compete on the same counterfactual as it. A
    child may stand for the parent when it keeps (1 - tolerance) of the explanation (of all of the change
    when `cand` explains more: a counterfactual that overshoots), its measure moved, its siblings look
    closer to normal than to it (normal: what the siblings' values did outside the parent, `_outside`),
    and they do not share its anomaly beyond the noise (`_shares`): {shanghai, admin} wins over
    {shanghai} only when shanghai's other users did not change. The best such child is taken, scored
    again against its own trend as every element is."""
    while len(cand.labels) < max_labels:
        used = {n for n, _ in cand.labels}
        parent = cube.aggregate(cand.labels)
        children: list[Candidate] = []
        for name in names:
            if name in used:
                continue
            for value_ in cube.values(name):
                element = tuple(sorted((*cand.labels, (name, value_))))
                part = cube.aggregate(element)
                if part.inc_den <= 0 and part.base_den <= 0:
                    continue
                if _empty(parent - part):
                    continue  # a label implied by the others (a route's service): same leaves, no news
                child = evaluate(cube, total, element, base, cube.trend_for(cand.labels))
                result.examined += 1
                if child is not None:
                    children.append(child)
        floor = (1 - tolerance) * min(1.0, cand.explained_share)
        keep = [c for c in children if c.explained_share >= floor and c.deviation > EPS]
        if not keep:
            return cand
        stands = [
            c
            for c in sorted(keep, key=lambda c: (-c.explained_share, -c.surprise))
            if _looks_normal(
                parent - cube.aggregate(c.labels), c, cube, _outside(cube, cand.labels, c.labels)
            )
            and not _shares(cube, noise, cand.labels, c)
        ]
        if not stands:
            return cand
        cand = evaluate(cube, total, stands[0].labels, base) or stands[0]
    return cand
