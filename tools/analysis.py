"""The analysis core's entry: `localize` picks the search that fits the measure (the significance
cover of `tools.search` for a sum over many leaves, else the explained-share search of
`tools.explained`) and `with_needles` adds what the screen of a large metric found. Pure functions
over numbers: no I/O, no HTTP, no report format. What they find: `tools.localization`. (Window means
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
- A child element stands for its parent only when the parent's other children do not share its
  anomaly beyond the count noise of the leaves (`tools.counts`): the least specific element that holds
  the anomaly is the cause. The leaves as a cube, trends and expectations: `tools.cube`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from tools import search
from tools.cube import EPS, Aggregate, Cube, Labels, Leaf
from tools.explained import explained, narrow
from tools.localization import (
    Candidate,
    Localization,
    conclude,
    jensen_shannon,
    label_key,
    rel_change,
    totals,
)

__all__ = ["Aggregate", "Candidate", "Labels", "Leaf", "Localization", "label_key", "localize", "narrow"]


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
    to learn a noise from, by the explained share (`explained`: at most 3 causes of up to 3 labels
    unless given).

    Why ratios keep the explained share: numerator and denominator move together, and an incident
    shifts traffic (retries, failover), so segments it does not touch change their ratio significantly
    too; and the failures of small segments are bursty counts whose noise cannot be learnt leaf by leaf.
    On the RS incidents a significance search names such secondary segments beside most true causes,
    and picks the most broken part of a cause instead of the cause. Weighing each segment by the change
    of the ratio it removes keeps the segment that moved the alert.
    """
    base, inc = totals(leaves, ratio)
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
    cube = Cube(leaves, ratio)
    return explained(cube, result, max_causes or 3, max_labels or 3, min_share, specialize_tolerance)


def _sum_candidate(
    result: Localization, labels: Labels, e_base: float, e_inc: float, excess: float
) -> Candidate:
    """An element of a sum as a cause: `excess` (its change over the background) as its share of the
    total's change."""
    total_base, total_inc = result.baseline or 0.0, result.incident or 0.0
    surprise = jensen_shannon(e_base / total_base, e_inc / total_inc) if total_base and total_inc else 0.0
    volume = e_inc / total_inc if abs(total_inc) > EPS else 0.0
    share = excess / (total_inc - total_base) if abs(total_inc - total_base) > EPS else 0.0
    return Candidate(labels, share, e_base, e_inc, rel_change(e_base, e_inc), surprise, volume)


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
        conclude(
            out, "part", f"the causes explain {share:.0%} of the change; the rest moved beyond its noise too"
        )
    elif share < min_share:
        conclude(out, "noise", f"the causes explain {share:.0%} of the change; the rest is within noise")
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
        conclude(result, "spread", f"{how}: the change is spread across segments")
    elif share >= min_share or not found.rest_shifted:
        result.localized = True
        if share < min_share:  # the rest of the change is the other leaves' noise: their sum moved
            conclude(
                result, "noise", f"the causes explain {share:.0%} of the change; the rest is within noise"
            )
    else:
        conclude(result, "part", f"the best elements explain only {share:.0%} of the change")
    return result
