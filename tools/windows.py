"""Windows and steps: a series' mean over the baseline and the incident window, and the step of a range
query. Pure functions over numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def choose_step(seconds: float, max_points: int = 300, min_step: float = 1.0) -> float:
    """The smallest 'nice' step that keeps a range query of `seconds` within `max_points` points."""
    need = max(min_step, seconds / max(1, max_points - 1))
    for step in NICE_STEPS:
        if step >= need:
            return float(step)
    return float(math.ceil(need / 86400) * 86400)


def window_values(
    timestamps: Sequence[float], values: Sequence[float], start: float, end: float
) -> list[float]:
    """Finite values whose timestamp lies in [start, end]."""
    return [v for t, v in zip(timestamps, values, strict=True) if start <= t <= end and math.isfinite(v)]


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class WindowStat:
    baseline: float | None
    incident: float | None
    peak: float | None  # the incident value farthest from the baseline mean


def compare_windows(
    timestamps: Sequence[float],
    values: Sequence[float],
    baseline: tuple[float, float],
    incident: tuple[float, float],
) -> WindowStat:
    base = window_values(timestamps, values, *baseline)
    inc = window_values(timestamps, values, *incident)
    b = mean(base)
    peak = None
    if inc:
        ref = b if b is not None else 0.0
        peak = max(inc, key=lambda v: abs(v - ref))
    return WindowStat(b, mean(inc), peak)
