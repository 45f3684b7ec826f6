"""Numbers, durations, times and label sets as text: the one place each is formatted.

Everything that prints a figure (the offline writer's prose, the rendered tables, the LLM tools'
answers, chat messages) goes through these functions, so the same value reads the same everywhere and
the grounding check finds in the evidence exactly the figures the prose quotes. Pure functions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "fmt_duration",
    "fmt_label_value",
    "fmt_labels",
    "fmt_num",
    "fmt_pct",
    "fmt_range",
    "fmt_time",
    "fmt_unit",
    "rfc3339",
    "signal_unit",
    "to_utc",
]


# ---------------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------------


def _number(x: float | None) -> float | str:
    """`x` as a float, or the text that stands for it when it is none: None → "–", NaN → "NaN", a
    non-number → its str()."""
    if x is None:
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "NaN" if math.isnan(v) else v


def fmt_num(x: float | None) -> str:
    """Format a number compactly: 4 significant digits, no scientific notation for ordinary magnitudes.

    None → "–"; NaN → "NaN"; ±inf → "+Inf"/"-Inf"; 0 → "0"; 12345.678 → "12346"; 0.123456 → "0.1235";
    magnitudes below 1e-4 or from 1e15 up use a short exponent form ("1e-6").
    """
    v = _number(x)
    if isinstance(v, str):
        return v
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    v = float(f"{v:.12g}")  # drop binary noise (1e-6 * 100 = 9.999999999999999e-05) before choosing a form
    a = abs(v)
    if a < 1e-4 or a >= 1e15:
        mantissa, exponent = f"{v:.3e}".split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    s = f"{v:.4g}"
    if "e" in s:  # 4 significant digits would need an exponent: show the integer instead
        s = f"{v:.0f}"
    return "0" if s in ("-0", "0") else s


def fmt_pct(x: float | None) -> str:
    """Format a share (0..1) as a percentage with `fmt_num`'s precision: 0.8734 → "87.34%"."""
    v = _number(x)
    return v if isinstance(v, str) else f"{fmt_num(v * 100.0)}%"


def signal_unit(expression: str | None, values: Sequence[float | None]) -> str:
    """The unit an alert signal reads in, from its expression and its values: "ratio" (a division whose
    values all lie in 0..1: shown as percentages), "seconds" (a latency quantile or a `_seconds`
    metric), "per_second" (a rate, not divided by another), or "" (a plain number)."""
    expr = expression or ""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if "/" in expr and finite and all(0.0 <= v <= 1.0 for v in finite):
        return "ratio"
    if "histogram_quantile" in expr or re.search(r"_seconds(_bucket|_sum|_count)?\b", expr):
        return "seconds"
    if "/" not in expr and re.search(r"\b(i?rate|deriv)\s*\(", expr):  # a ratio of rates has no unit
        return "per_second"
    return ""


def fmt_unit(x: float | None, unit: str) -> str:
    """`x` in the unit `signal_unit` named: "87.34%", "0.83 s", "120.5/s", or `fmt_num`'s form."""
    if unit == "ratio":
        return fmt_pct(x)
    if unit == "seconds":
        return f"{fmt_num(x)} s" if _is_number(x) else fmt_num(x)
    if unit == "per_second":
        return f"{fmt_num(x)}/s" if _is_number(x) else fmt_num(x)
    return fmt_num(x)


def _is_number(x: float | None) -> bool:
    return not isinstance(_number(x), str)


def fmt_duration(seconds: float | None) -> str:
    """30 → "30s", 300 → "5m", 5400 → "1h30m", 0.25 → "0.25s"."""
    if seconds is None:
        return "–"
    s = float(seconds)
    if not math.isfinite(s):
        return fmt_num(s)
    if abs(s) < 1:
        return f"{fmt_num(s)}s"
    sign = "-" if s < 0 else ""
    total = round(abs(s))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            parts.append(f"{n}{unit}")
    return sign + ("".join(parts) or "0s")


# ---------------------------------------------------------------------------------------------------
# Times
# ---------------------------------------------------------------------------------------------------


def to_utc(dt: datetime) -> datetime:
    """A datetime in UTC; a naive one is taken to be UTC already."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def fmt_time(dt: datetime | None) -> str:
    """For people: UTC to the second, "2026-11-21 16:30:00 UTC"; None (or Go's zero time) → "–"."""
    if dt is None or dt.year <= 1:
        return "–"
    return to_utc(dt).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_range(start: datetime, end: datetime) -> str:
    """For people: "2026-11-21 16:30:00 – 16:45:00 UTC" (the date repeated only when it changes)."""
    a, b = to_utc(start), to_utc(end)
    if a.date() == b.date():
        return f"{a:%Y-%m-%d %H:%M:%S} – {b:%H:%M:%S} UTC"
    return f"{a:%Y-%m-%d %H:%M:%S} – {b:%Y-%m-%d %H:%M:%S} UTC"


def rfc3339(value: datetime | float, *, seconds: bool = False) -> str:
    """For machines and logs: RFC 3339 in UTC with a `Z`, e.g. 2026-11-21T16:30:00.5Z.

    `value` is a datetime or Unix seconds; `seconds=True` drops the fraction (2026-11-21T16:30:00Z).
    """
    dt = datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else to_utc(value)
    return dt.isoformat(timespec="seconds" if seconds else "auto").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------------
# Label sets
# ---------------------------------------------------------------------------------------------------

_PLAIN_VALUE = re.compile(r"[\w.:/@+-]+")


def _prom_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def fmt_label_value(text: str) -> str:
    """A label value bare when plain, else JSON-quoted (no raw newlines reach a one-line text)."""
    return text if _PLAIN_VALUE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def fmt_labels(
    labels: Mapping[str, Any] | Sequence[tuple[str, Any]],
    *,
    plain: bool = False,
    sep: str | None = None,
    first: Sequence[str] = (),
    limit: int | None = None,
    empty: str | None = None,
) -> str:
    """A label set as text, in one of two forms.

    - PromQL (default): the way Prometheus prints it, `{ip_region="shanghai", user_type="admin"}`, names
      sorted, values escaped; a `__name__` label leads, as Prometheus prints a series:
      `http_requests_total{code="500"}`.
    - plain: `ip_region=shanghai, user_type=admin` for titles and one-line summaries, in the given
      order (names in `first` lead), values JSON-quoted unless plain.

    `sep` joins the pairs (", " unless given), `limit` keeps that many pairs and says how many more
    there were, `empty` is what an empty set reads as ("{}" and "" unless given).
    """
    pairs = [(str(k), str(v)) for k, v in (labels.items() if isinstance(labels, Mapping) else labels)]
    joiner = ", " if sep is None else sep
    if plain:
        lead = sorted((p for p in pairs if p[0] in first), key=lambda p: list(first).index(p[0]))
        rest = [p for p in pairs if p[0] not in first]
        rest = sorted(rest) if first else rest
        shown = (lead + rest)[:limit] if limit is not None else lead + rest
        text = joiner.join(f"{k}={fmt_label_value(v)}" for k, v in shown)
        if len(pairs) > len(shown):
            text += f" (+{len(pairs) - len(shown)} more labels)"
        return text or ("" if empty is None else empty)
    name = next((v for k, v in pairs if k == "__name__"), "")
    items = sorted(p for p in pairs if p[0] != "__name__")
    shown = items[:limit] if limit is not None else items
    inner = joiner.join(f'{k}="{_prom_escape(v)}"' for k, v in shown)
    if len(items) > len(shown):
        inner += f"{joiner}…(+{len(items) - len(shown)})"
    if not name and not inner and empty is not None:
        return empty
    return f"{name}{{{inner}}}"
