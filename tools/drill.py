"""The drill-down of a localization on coarse labels: each cause broken down inside itself by the labels
left out, as deep as `MAX_DEPTH`. Pure over an `Inside` (where the cause's own leaves come from): the
Localizer's queries Prometheus (`agent.localizing`), the offline benchmark reads a CSV
(`bench/rca_rs_offline.py`); both run this one flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from tools.analysis import Candidate, Labels, Localization
from tools.cuboids import choose_labels, ranked_labels
from tools.errors import AlertsleuthError
from tools.format import fmt_labels

MAX_DEPTH = 2  # drill-down levels below the coarse cube


class Inside(Protocol):
    """Where a cause is broken down inside itself (`refine`): its labels' values and its own leaves."""

    def cardinality(self, within: Labels) -> dict[str, int]:
        """How many values each label has on the series inside `within` (raises AlertsleuthError)."""
        ...

    def localized(self, labels: Sequence[str], within: Candidate) -> Localization | None:
        """The measure by `labels` inside `within`, localized there (a ratio's cause narrowed,
        `tools.analysis.narrow`); None when it could not be had."""
        ...


def refine(
    loc: Localization,
    labels: Sequence[str],
    coarse: Sequence[str],
    scores: dict[str, float],
    budget: int,
    inside: Inside,
) -> tuple[Localization, list[str]]:
    """`loc` (localized on the `coarse` labels of `labels`) with each cause broken down inside itself by
    the labels left out (`_Drill.down`), the causes found without repeats (`_distinct`), and the notes
    that say what each step left out. The one drill-down of the house: the Localizer's over Prometheus
    and the offline benchmark's over a CSV both run it."""
    d = _Drill(list(labels), scores, budget, inside)
    refined = [c for cause in loc.causes for c in d.down(cause, set(coarse), 1)]
    return replace(loc, causes=_distinct(refined), examined=loc.examined + d.examined), d.notes


@dataclass
class _Drill:
    """One `refine`: what every level shares, and what the levels add up (notes, elements examined)."""

    labels: list[str]
    scores: dict[str, float]
    budget: int
    inside: Inside
    notes: list[str] = field(default_factory=list)
    examined: int = 0

    def down(self, cause: Candidate, seen: set[str], depth: int) -> list[Candidate]:
        """`cause` refined inside itself by the labels not looked at yet (`seen` were): the cause's own
        leaves by those labels (and the coarse ones it does not pin, as many as fit `budget`, by
        `scores`), localized; a concentrated change there narrows it, at most `MAX_DEPTH` levels down.
        A ratio's cause is narrowed against what the world outside it did (`tools.analysis.narrow`): a
        part stands for it only when its other parts do not share the anomaly."""
        labels = self.labels
        pinned = {n for n, _ in cause.labels}
        unseen = [n for n in labels if n not in seen and n not in pinned]
        if not unseen or depth > MAX_DEPTH:
            return [cause]
        try:
            values = self.inside.cardinality(cause.labels)
        except AlertsleuthError as exc:
            self.notes.append(f"{fmt_labels(dict(cause.labels))} not broken down further: {exc}")
            return [cause]
        order = ranked_labels(self.scores, unseen) + ranked_labels(
            self.scores, [n for n in labels if n in seen and n not in pinned]
        )
        sub = choose_labels([n for n in order if values.get(n, 0) > 1], values, self.budget)
        if not any(n in unseen for n in sub):
            return [cause]
        left = [n for n in unseen if n not in sub]
        if left:
            self.notes.append(
                f"{fmt_labels(dict(cause.labels))} broken down by {', '.join(sub)}; "
                f"{', '.join(left)} left out at this depth"
            )
        loc = self.inside.localized(sub, cause)
        if loc is None:
            return [cause]
        self.examined += loc.examined
        if not loc.localized:
            return [cause]
        return [
            c for inner in loc.causes for c in self.down(_narrowed(cause, inner), seen | set(sub), depth + 1)
        ]


def _distinct(causes: Sequence[Candidate]) -> list[Candidate]:
    """Causes in order without repeats and without one inside another already named (two coarse causes
    can narrow to the same element, or one to a part of the other)."""
    out: list[Candidate] = []
    for cause in causes:
        if not any(set(kept.labels) <= set(cause.labels) for kept in out):
            out.append(cause)
    return out


def _narrowed(parent: Candidate, inner: Candidate) -> Candidate:
    """A cause found inside `parent`'s own leaves, as a cause of the whole: its labels added to the
    parent's, its share of the parent's change taken of the parent's share."""
    labels: Labels = tuple(sorted((dict(parent.labels) | dict(inner.labels)).items()))
    return replace(
        inner,
        labels=labels,
        explained_share=parent.explained_share * max(0.0, min(1.0, inner.explained_share)),
        volume_share=parent.volume_share * inner.volume_share,
    )
