"""Sparklines from evidence series: pure functions over numbers, no formatting and no markup.

- `series_points` / `series_labels` read one series as stored on `Evidence.series` (Prometheus
  `values`/`metric` or our `points`/`labels`), skipping points that are not finite numbers.
- `x_extent`, `shade_box` and `polyline_points` give the geometry of an SVG sparkline of
  `SPARK_WIDTH` × `SPARK_HEIGHT` (the HTML report): all series of one evidence share the time axis,
  each series gets its own value axis.
- `text_spark` draws the same values with block characters (the Markdown report).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "MAX_SPARK_POINTS",
    "SPARK_HEIGHT",
    "SPARK_WIDTH",
    "TEXT_SPARK_WIDTH",
    "Point",
    "downsample",
    "polyline_points",
    "series_labels",
    "series_points",
    "shade_box",
    "text_spark",
    "x_extent",
]

MAX_SPARK_POINTS = 400
SPARK_WIDTH = 280
SPARK_HEIGHT = 44
SPARK_PAD = 3
TEXT_SPARK_WIDTH = 32

_INNER_W = SPARK_WIDTH - 2 * SPARK_PAD
_INNER_H = SPARK_HEIGHT - 2 * SPARK_PAD
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


def downsample(pts: list[Point], limit: int) -> list[Point]:
    """At most about `limit` points, evenly strided, always keeping the last one."""
    if len(pts) <= limit:
        return pts
    stride = math.ceil(len(pts) / limit)
    out = pts[::stride]
    if out[-1] != pts[-1]:
        out.append(pts[-1])
    return out


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


def _xpos(ts: float, x0: float, x1: float) -> float:
    span_x = (x1 - x0) or 1.0
    return SPARK_PAD + (ts - x0) / span_x * _INNER_W


def shade_box(x0: float, x1: float, start: float, end: float) -> dict[str, str] | None:
    """The `x` and `width` of the band shading [start, end] on the axis [x0, x1]; None when off the axis."""
    a = max(x0, start)
    b = min(x1, end)
    if b <= a:
        return None
    return {"x": f"{_xpos(a, x0, x1):.1f}", "width": f"{max(_xpos(b, x0, x1) - _xpos(a, x0, x1), 1.0):.1f}"}


def polyline_points(pts: list[Point], x0: float, x1: float) -> str:
    """The SVG polyline `points` of one non-empty series on the time axis [x0, x1].

    The value axis spans the series' own minimum to maximum (a flat series draws mid-height); at most
    `MAX_SPARK_POINTS` points are drawn, and a single point becomes a short dash.
    """
    values = [v for _, v in pts]
    lo, hi = min(values), max(values)
    span_y = hi - lo

    def ypos(v: float) -> float:
        if span_y == 0:
            return SPARK_HEIGHT / 2
        return SPARK_PAD + _INNER_H - (v - lo) / span_y * _INNER_H

    coords = [(_xpos(t, x0, x1), ypos(v)) for t, v in downsample(pts, MAX_SPARK_POINTS)]
    if len(coords) == 1:
        x, y = coords[0]
        coords = [(x - 2, y), (x + 2, y)]
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
