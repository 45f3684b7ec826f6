"""Grounding: every figure the LLM writes must trace to the evidence, every cited id must exist.

Pure functions over strings and numbers. A figure is grounded when some number in the evidence equals
it after rounding to the digits written, as a percentage (31% = 0.31), or as a relative change between
two evidence numbers (+250% from 0.04 to 0.14). Small counts (steps, "3 regions"), times, dates, label
values and anything inside backticks (PromQL) are not checked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal

from agent.models import Evidence

_CODE = re.compile(r"`[^`]*`")
_CITE = re.compile(r"\[(?:E\d+(?:\s*,\s*E\d+)*)\]")
_LABELS = re.compile(r"\{[^{}]*\}")
_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"  # dates
    r"|\d{1,2}:\d{2}(?::\d{2})?"  # clock times
)
_NUMBER = re.compile(r"(?<![\w.])([-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?)(\s*%|[kKMG](?![a-zA-Z]))?")
_MAGNITUDE = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
SMALL_INT = 10  # integers up to this are counts or list positions, not measurements


def figures(text: str) -> list[tuple[str, float, bool]]:
    """(as written, value, is_percent) for each figure in `text` that is subject to grounding."""
    clean = _CODE.sub(" ", text)
    clean = _CITE.sub(" ", clean)
    clean = _LABELS.sub(" ", clean)
    clean = _TIME.sub(" ", clean)
    out = []
    for m in _NUMBER.finditer(clean):
        raw, suffix = m.group(1), (m.group(2) or "").strip()
        try:
            value = float(raw.replace(",", ""))
        except ValueError:
            continue
        if suffix in _MAGNITUDE:
            value *= _MAGNITUDE[suffix]
        percent = suffix == "%"
        if not percent and value.is_integer() and abs(value) <= SMALL_INT:
            continue
        out.append((raw + (m.group(2) or ""), value, percent))
    return out


def _resolution(raw: str, percent: bool) -> float:
    """Half a unit of the last digit written, in the figure's own scale: "0.05" -> 0.005, "2.5k" ->
    50, "31%" -> 0.005 (as a ratio)."""
    text = raw.strip()
    suffix = text[-1] if text and text[-1] in _MAGNITUDE else ""
    digits = text.rstrip("%kKMG ").replace(",", "")
    if "e" in digits.lower():
        return 0.0
    decimals = len(digits.split(".", 1)[1]) if "." in digits else 0
    unit = 10.0**-decimals * _MAGNITUDE.get(suffix, 1.0) / (100 if percent else 1)
    return unit / 2


def evidence_numbers(evidence: Sequence[Evidence], extra: Iterable[float] = ()) -> list[float]:
    """Every number the evidence holds: stats, the numbers quoted in summaries, and each stat's relative
    change (baseline to incident or peak), so "+250%" is grounded by the row it comes from."""
    nums: set[float] = {x for x in extra if math.isfinite(x)}
    for ev in evidence:
        for st in ev.stats:
            vals = [v for v in (st.baseline, st.incident, st.peak) if v is not None and math.isfinite(v)]
            nums.update(vals)
            if st.baseline and math.isfinite(st.baseline):
                nums.update((v - st.baseline) / abs(st.baseline) for v in vals[1:])
        for _raw, value, percent in figures(ev.summary):
            nums.add(value / 100 if percent else value)
        nums.update(v for _r, v, _p in _all_numbers(ev.summary))
    return sorted(x for x in nums if math.isfinite(x))


def _all_numbers(text: str) -> list[tuple[str, float, bool]]:
    out = []
    for m in _NUMBER.finditer(_TIME.sub(" ", text)):
        try:
            out.append((m.group(1), float(m.group(1).replace(",", "")), False))
        except ValueError:
            continue
    return out


def _round_half_up(x: float, digits: int) -> float:
    q = Decimal(1).scaleb(-digits)
    return float(Decimal(repr(x)).quantize(q, rounding=ROUND_HALF_UP))


def _matches(written: float, half_unit: float, target: float) -> bool:
    """Is `written` what `target` looks like rounded to the digits written (or to 1-3 significant
    figures), within 0.5 % for figures written with more digits than they deserve?"""
    if target == 0:
        return abs(written) <= half_unit
    if abs(written - target) <= max(half_unit, abs(target) * 0.005) * 1.0001:
        return True
    for sig in (1, 2, 3):  # 0.0523 written as 0.05, 1234.5 as 1200, 2450 as 2.5k
        digits = sig - 1 - math.floor(math.log10(abs(target)))
        if abs(_round_half_up(target, digits) - written) <= 1e-9 * max(1.0, abs(written)):
            return True
    return False


def grounded(raw: str, value: float, percent: bool, numbers: Sequence[float]) -> bool:
    """Does some evidence number, rounded as written, give this figure? A percentage is compared as a
    ratio (31% with 0.31; a change of +250% with 2.5)."""
    written = value / 100 if percent else value
    half_unit = _resolution(raw, percent)
    return any(_matches(written, half_unit, target) for target in numbers)


def ungrounded(texts: Iterable[str], evidence: Sequence[Evidence], extra: Iterable[float] = ()) -> list[str]:
    """The figures in `texts` that no evidence number supports, with a little context each."""
    numbers = evidence_numbers(evidence, extra)
    out: list[str] = []
    for text in texts:
        for raw, value, percent in figures(text):
            if not grounded(raw, value, percent, numbers):
                at = text.find(raw.strip())
                snippet = text[max(0, at - 40) : at + len(raw) + 20].replace("\n", " ") if at >= 0 else raw
                out.append(f"{raw.strip()} in “…{snippet.strip()}…”")
    return list(dict.fromkeys(out))


def unknown_citations(texts: Iterable[str], evidence: Sequence[Evidence]) -> list[str]:
    known = {e.id for e in evidence}
    cited = {i for text in texts for i in re.findall(r"\bE\d+\b", text)}
    return sorted(cited - known, key=lambda i: int(i[1:]))
