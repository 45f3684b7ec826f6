"""Which past incidents are most like this one: a pure ranking over plain data (no I/O).

An incident is compared on its alert's name, its root-cause label sets (best first) and the metric names
its alert expression reads (its "family"). A candidate falls in the first of these classes it meets, and
its score lies in that class's band, so a higher class always scores higher:

    same_cause         same alert, and one of its root-cause label sets is identical to one of ours.
                       0.85 + 0.15 * J(cause sets): J is the Jaccard overlap of the two sets of label
                       sets (1.0 when every cause is the same)                           (0.85, 1.0]
    overlapping_cause  same alert, and some root-cause label pair is shared: 0.55 + 0.30 * j, j the best
                       Jaccard overlap of label pairs between one of our causes and one of its causes
                       (0 < j < 1, identical sets being same_cause)                      (0.55, 0.85)
    same_alert         same alert, no cause in common (or either side has no cause)      0.5
    same_family        another alert whose expression reads some of the same metric names: 0.45 * J,
                       J the Jaccard overlap of the two metric-name sets, only when J > 0 (0, 0.45]

Anything else (another alert sharing no metric name) is not similar and is left out. Scores are rounded
to 4 decimals; equal scores are broken by recency (the later `starts_at` first, then the higher id).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

Labels = frozenset[tuple[str, str]]

SAME_CAUSE = "same_cause"
OVERLAPPING_CAUSE = "overlapping_cause"
SAME_ALERT = "same_alert"
SAME_FAMILY = "same_family"
ORDER = (SAME_CAUSE, OVERLAPPING_CAUSE, SAME_ALERT, SAME_FAMILY)  # most alike first


@dataclass(frozen=True)
class Candidate:
    """A past incident as the ranking sees it."""

    id: int
    alertname: str
    starts_at: datetime
    causes: tuple[Labels, ...] = ()  # root-cause label sets, best first
    metrics: frozenset[str] = frozenset()  # metric names its alert expression reads


class Ranked(NamedTuple):
    candidate: Candidate
    match: str  # same_cause | overlapping_cause | same_alert | same_family
    score: float  # 0..1, higher is more alike


def jaccard(a: Collection[object], b: Collection[object]) -> float:
    """|a ∩ b| / |a ∪ b|, 0.0 when both are empty."""
    sa, sb = set(a), set(b)
    union = len(sa | sb)
    return len(sa & sb) / union if union else 0.0


def classify(
    alertname: str, causes: Sequence[Labels], metrics: Collection[str], candidate: Candidate
) -> tuple[str, float] | None:
    """The candidate's class and score (see the module's docstring), or None when it is not similar."""
    if candidate.alertname != alertname:
        family = jaccard(metrics, candidate.metrics)
        return (SAME_FAMILY, 0.45 * family) if family > 0 else None
    ours, theirs = set(causes), set(candidate.causes)
    if ours & theirs:
        return SAME_CAUSE, 0.85 + 0.15 * jaccard(ours, theirs)
    overlap = max((jaccard(a, b) for a in ours for b in theirs), default=0.0)
    if overlap > 0:
        return OVERLAPPING_CAUSE, 0.55 + 0.30 * overlap
    return SAME_ALERT, 0.5


def rank(
    alertname: str,
    causes: Sequence[Labels],
    metrics: Collection[str],
    candidates: Sequence[Candidate],
    limit: int | None = None,
) -> list[Ranked]:
    """The similar candidates, most alike first (ties: the most recent first), at most `limit`."""
    ranked = []
    for candidate in candidates:
        found = classify(alertname, causes, metrics, candidate)
        if found is not None:
            match, score = found
            ranked.append(Ranked(candidate, match, round(min(1.0, max(0.0, score)), 4)))
    # The class first: rounding could otherwise tie the bottom of a band with the top of the next.
    ranked.sort(
        key=lambda r: (ORDER.index(r.match), -r.score, -r.candidate.starts_at.timestamp(), -r.candidate.id)
    )
    return ranked if limit is None else ranked[: max(0, limit)]
