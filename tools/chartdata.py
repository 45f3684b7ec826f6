"""The series an evidence keeps for its charts: bounded, the most changed first, the rest summed.

Pure functions over query results. A kept series is a dict, as `Evidence.series` stores it:

    {"labels": {"ip_region": "shanghai"}, "points": [[1767225600, 0.031], ...], "role": "series"}

`role` says what the line is: `signal` (the alert's expression), `series` (one value of a broken-down
label), `cause` (the signal within a root cause), `rest` (everything else: the other values of a
label, or the traffic outside a cause). Values keep six significant digits; at most `max_points`
points per series (evenly strided, the last one kept).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tools.prom import Series

Point = tuple[float, float]
"""(unix timestamp, value)"""

MAX_POINTS = 300  # per kept series
KEEP = 6  # series of one breakdown drawn by name; the others are summed into `rest`


def downsample(pts: list[Point], limit: int) -> list[Point]:
    """At most about `limit` points, evenly strided, always keeping the last one."""
    if len(pts) <= limit:
        return pts
    stride = math.ceil(len(pts) / limit)
    out = pts[::stride]
    if out[-1] != pts[-1]:
        out.append(pts[-1])
    return out


def points_of(s: Series) -> list[Point]:
    """The finite points of a series, in time order."""
    return sorted(
        (t, v) for t, v in zip(s.timestamps, s.values, strict=True) if math.isfinite(t) and math.isfinite(v)
    )


def kept(
    labels: Mapping[str, str], pts: list[Point], role: str, max_points: int = MAX_POINTS
) -> dict[str, Any]:
    """One series as an evidence stores it."""
    return {
        "labels": dict(labels),
        "points": [[_ts(t), float(f"{v:.6g}")] for t, v in downsample(pts, max_points)],
        "role": role,
    }


def _ts(t: float) -> float | int:
    return int(t) if float(t).is_integer() else round(t, 3)


def summed(series: Iterable[list[Point]]) -> list[Point]:
    """The pointwise sum of several series (a timestamp missing from one adds nothing for it)."""
    total: dict[float, float] = {}
    for pts in series:
        for t, v in pts:
            total[t] = total.get(t, 0.0) + v
    return sorted(total.items())


def top_and_rest(
    series: Sequence[Series],
    order: Sequence[Mapping[str, str]],
    *,
    role: str = "series",
    keep: int = KEEP,
    with_rest: bool = True,
    max_points: int = MAX_POINTS,
) -> list[dict[str, Any]]:
    """The first `keep` series in `order` (label sets, the most changed first), then, when `with_rest`
    (the values add up: a sum, not a ratio or a quantile), the others summed as one `rest` series."""
    by_labels = {_key(s.labels): s for s in series}
    chosen = [by_labels[_key(labels)] for labels in order if _key(labels) in by_labels][:keep]
    chosen_keys = {_key(s.labels) for s in chosen}
    out = [kept(s.labels, pts, role, max_points) for s in chosen if (pts := points_of(s))]
    others = [points_of(s) for s in series if _key(s.labels) not in chosen_keys]
    if with_rest and others and (rest := summed(others)):
        out.append(kept({}, rest, "rest", max_points))
    return out


def rest_of_cause(
    num: Sequence[Series], den: Sequence[Series] | None, cause: Mapping[str, str], scale: float = 1.0
) -> list[Point]:
    """The signal outside `cause`, from the finest breakdown's leaves: the sum of the leaves that do not
    match it, or for a ratio the sums of numerator and denominator outside it, divided (points where
    the rest's denominator is 0 are left out); times the signal's constant factor `scale`."""

    def outside(group: Sequence[Series]) -> list[Point]:
        return summed(points_of(s) for s in group if not _matches(s.labels, cause))

    top = outside(num)
    if den is None:
        return [(t, v * scale) for t, v in top]
    bottom = dict(outside(den))
    return [(t, v / bottom[t] * scale) for t, v in top if bottom.get(t)]


def _matches(labels: Mapping[str, str], cause: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in cause.items())


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))
