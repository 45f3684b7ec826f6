"""Sparklines from evidence series: pure functions over numbers, no formatting and no markup.

- `series_points` / `series_labels` read one series as stored on `Evidence.series` (Prometheus
  `values`/`metric` or our `points`/`labels`), skipping points that are not finite numbers.
- `x_extent` gives the time axis all series of one evidence share (agent/charts.py).
- `text_spark` draws a series' values with block characters (the Markdown report).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "TEXT_SPARK_WIDTH",
    "Point",
    "series_labels",
    "series_points",
    "text_spark",
    "x_extent",
]

TEXT_SPARK_WIDTH = 32

_BLOCKS = "▁▂▃▄▅▆▇█"

Point = tuple[float, float]
"""(unix timestamp, value)"""


def series_points(series: Mapping[str, Any]) -> list[Point]:
    """The finite (timestamp, value) points of a series, sorted by time."""
    raw = series.get("points")
    if raw is None:
        raw = series.get("values")
    pts: list[Point] = []
    if not isinstance(raw, list | tuple):
        return pts
    for p in raw:
        try:
            ts, val = float(p[0]), float(p[1])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        if math.isfinite(ts) and math.isfinite(val):
            pts.append((ts, val))
    pts.sort()
    return pts


def series_labels(series: Mapping[str, Any]) -> dict[str, str]:
    """The label set of a series (`labels` or Prometheus' `metric`), empty when it has none."""
    labels = series.get("labels")
    if labels is None:
        labels = series.get("metric")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def text_spark(values: list[float], width: int = TEXT_SPARK_WIDTH) -> str:
    """The values as block characters, averaged down to at most `width` characters."""
    if not values:
        return ""
    if len(values) > width:
        buckets = [values[i * len(values) // width : (i + 1) * len(values) // width] for i in range(width)]
        values = [sum(b) / len(b) for b in buckets if b]
    lo, hi = min(values), max(values)
    if hi == lo:
        return _BLOCKS[3] * len(values)
    top = len(_BLOCKS) - 1
    return "".join(_BLOCKS[round((v - lo) / (hi - lo) * top)] for v in values)


def x_extent(start: float, end: float, series: Sequence[list[Point]]) -> tuple[float, float]:
    """The shared time axis: the query range, widened to every (non-empty) series' first and last point."""
    x0 = min(start, min(p[0][0] for p in series))
    x1 = max(end, max(p[-1][0] for p in series))
    return x0, x1
