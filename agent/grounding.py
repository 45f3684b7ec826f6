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


def _decimals(raw: str) -> int:
    digits = raw.rstrip("%kKMG ").replace(",", "")
    if "e" in digits.lower():
        return 12
    return len(digits.split(".", 1)[1]) if "." in digits else 0


def evidence_numbers(evidence: Sequence[Evidence], extra: Iterable[float] = ()) -> list[float]:
    """Every number the evidence holds: stats, the numbers quoted in summaries, and each stat's relative
    change (baseline to incident or peak), so "+250%" is grounded by the row it comes from."""
    nums: set[float] = set(extra)
    for ev in evidence:
        for st in ev.stats:
            vals = [v for v in (st.baseline, st.incident, st.peak) if v is not None and math.isfinite(v)]
            nums.update(vals)
            if st.baseline:
                nums.update((v - st.baseline) / abs(st.baseline) for v in vals[1:])
        for _raw, value, percent in figures(ev.summary):
            nums.add(value / 100 if percent else value)
        nums.update(v for _r, v, _p in _all_numbers(ev.summary))
    return sorted(nums)


def _all_numbers(text: str) -> list[tuple[str, float, bool]]:
    out = []
    for m in _NUMBER.finditer(_TIME.sub(" ", text)):
        try:
            out.append((m.group(1), float(m.group(1).replace(",", "")), False))
        except ValueError:
            continue
    return out


def _matches(written: float, decimals: int, target: float) -> bool:
    if target == 0:
        return abs(written) <= 0.5 * 10**-decimals
    tolerance = max(0.5 * 10**-decimals, abs(target) * 0.005)
    if abs(written - target) <= tolerance * 1.0001:
        return True
    # significant-figure rounding (0.0523 written as 0.05, 1234.5 as 1200)
    for sig in (1, 2, 3):
        digits = sig - 1 - math.floor(math.log10(abs(target)))
        if abs(round(target, digits) - written) <= 1e-12 * max(1.0, abs(written)):
            return True
    return False


def grounded(raw: str, value: float, percent: bool, numbers: Sequence[float]) -> bool:
    decimals = _decimals(raw)
    candidates = [value / 100, value] if percent else [value]
    for target in numbers:
        for c in candidates:
            scale_dec = decimals + (2 if percent and c is candidates[0] else 0)
            if _matches(c, scale_dec, target):
                return True
    return False


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
