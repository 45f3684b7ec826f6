"""Localization of `max`, `min`, `topk` and `bottomk` alerts: which series make the extreme. Pure functions.

Such a value is not the sum of its parts, so "how much of the change does an element explain" has no
meaning. What does: the series that cross the alert's threshold in the incident window (for
`max(x) > 0.9`, those above 0.9; without a threshold, the series at the extreme), and the most general
label set that holds all of them and none of the others. One filesystem filling on one host reads
{instance="db-3", mountpoint="/data"}: dropping either label would take in series that did not cross,
while `device` and `fstype` add nothing. An alert whose condition holds for every series
(`max(up) < 1`: all down) has nothing to localize.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tools.analysis import Candidate, Labels, Leaf, Localization, label_key
from tools.prom import Series

MAX_SEPARATE = 3  # crossing series reported one by one when no label set holds them all


def extreme_leaves(
    series: Sequence[Series],
    names: Sequence[str],
    baseline: tuple[float, float],
    incident: tuple[float, float],
    high: bool,
) -> list[Leaf]:
    """Each series' highest (or lowest) value in each window, as a leaf (no value: 0)."""
    pick = max if high else min
    out = []
    for s in series:
        values = [[], []]  # type: list[list[float]]
        for t, v in zip(s.timestamps, s.values, strict=True):
            if not math.isfinite(v):
                continue
            for i, (lo, hi) in enumerate((baseline, incident)):
                if lo <= t <= hi:
                    values[i].append(v)
        if values[1]:
            out.append(
                Leaf(label_key(s.labels, names), pick(values[0]) if values[0] else math.nan, pick(values[1]))
            )
    return out


def _holds(value: float, op: str, threshold: float) -> bool:
    return {
        ">": value > threshold,
        ">=": value >= threshold,
        "<": value < threshold,
        "<=": value <= threshold,
        "==": value == threshold,
        "!=": value != threshold,
    }.get(op, False)


def _inside(labels: Labels, element: Labels) -> bool:
    lab = dict(labels)
    return all(lab.get(n) == v for n, v in element)


def _minimal(start: Labels, others: Sequence[Leaf], cardinality: dict[str, int]) -> Labels:
    """`start` without every label it can lose and still hold none of `others` (the labels with the
    most values tried first: a host's device goes before its mountpoint)."""
    element = list(start)
    for name, value in sorted(start, key=lambda nv: (-cardinality.get(nv[0], 0), nv[0])):
        trial = tuple(nv for nv in element if nv != (name, value))
        if trial and not any(_inside(o.labels, trial) for o in others):
            element = list(trial)
    return tuple(sorted(element))


def localize_extreme(
    leaves: Sequence[Leaf], *, high: bool, op: str | None = None, threshold: float | None = None
) -> Localization:
    pick = max if high else min
    base_values = [lf.base_num for lf in leaves if math.isfinite(lf.base_num)]
    result = Localization(
        ratio=False,
        baseline=pick(base_values) if base_values else None,
        incident=pick(lf.inc_num for lf in leaves) if leaves else None,
        localized=False,
    )
    if not leaves:
        result.notes.append("no data to localize in the incident window")
        return result
    toward = op in ((">", ">=") if high else ("<", "<="))
    if threshold is not None and op is not None and toward:
        crossing = [lf for lf in leaves if _holds(lf.inc_num, op, threshold)]
        what = f"{op} {threshold:g}"
    else:
        if (
            threshold is not None
            and op is not None
            and all(_holds(lf.inc_num, op, threshold) for lf in leaves)
        ):
            result.notes.append(
                f"the condition holds for every one of the {len(leaves)} series: nothing to localize"
            )
            return result
        extreme = pick(lf.inc_num for lf in leaves)
        crossing = [lf for lf in leaves if abs(lf.inc_num - extreme) <= 1e-9 * max(1.0, abs(extreme))]
        what = "at the extreme"
    result.examined = len(leaves)
    if not crossing:
        result.notes.append(f"no series is {what} in the incident window")
        return result
    if len(crossing) == len(leaves):
        result.notes.append(f"all {len(leaves)} series are {what}: the change is spread across segments")
        return result
    others = [lf for lf in leaves if lf not in crossing]
    names = {name for lf in leaves for name, _ in lf.labels}
    values = {name: len({dict(lf.labels).get(name) for lf in leaves}) for name in names}
    common = tuple(sorted(set.intersection(*(set(lf.labels) for lf in crossing))))
    if common and not any(_inside(o.labels, common) for o in others):
        elements = [_minimal(common, others, values)]
    elif len(crossing) <= MAX_SEPARATE:
        elements = [_minimal(lf.labels, others, values) for lf in crossing]
    else:
        result.notes.append(
            f"{len(crossing)} of {len(leaves)} series are {what} with no label set holding them alone: "
            "the change is spread across segments"
        )
        return result
    for element in elements:
        inside = [lf for lf in leaves if _inside(lf.labels, element)]
        base = [lf.base_num for lf in inside if math.isfinite(lf.base_num)]
        e_base = pick(base) if base else None
        e_inc = pick(lf.inc_num for lf in inside)
        share = sum(1 for lf in crossing if _inside(lf.labels, element)) / len(crossing)
        deviation = abs(e_inc - e_base) / max(abs(e_base), 1e-12) if e_base is not None else 0.0
        result.causes.append(
            Candidate(element, share, e_base, e_inc, deviation, 0.0, len(inside) / len(leaves))
        )
    result.ranked = list(result.causes)
    result.localized = True
    return result
