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
    """Where causes are broken down inside themselves (`refine`): their labels' values and their own
    leaves. Each call asks for every cause of one level at once, so an `Inside` over a server may ask
    for them side by side; the answers come back in the order asked."""

    def cardinality(
        self, asked: Sequence[tuple[Labels, Sequence[str]]]
    ) -> list[dict[str, int] | AlertsleuthError]:
        """For each (within, labels): how many values each of `labels` has on the series inside
        `within`, or the error that kept them from being read."""
        ...

    def localized(self, asked: Sequence[tuple[Sequence[str], Candidate]]) -> list[Localization | None]:
        """For each (labels, within): the measure by `labels` inside `within`, localized there (a ratio's
        cause narrowed, `tools.analysis.narrow`); None when it could not be had."""
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
    refined = d.down([(cause, set(coarse)) for cause in loc.causes], 1)
    causes = _distinct([c for narrowed in refined for c in narrowed])
    return replace(loc, causes=causes, examined=loc.examined + d.examined), d.notes


@dataclass
class _Drill:
    """One `refine`: what every level shares, and what the levels add up (notes, elements examined)."""

    labels: list[str]
    scores: dict[str, float]
    budget: int
    inside: Inside
    notes: list[str] = field(default_factory=list)
    examined: int = 0

    def down(self, causes: Sequence[tuple[Candidate, set[str]]], depth: int) -> list[list[Candidate]]:
        """Each cause refined inside itself by the labels not looked at yet (its `seen` were): the cause's
        own leaves by those labels (and the coarse ones it does not pin, as many as fit `budget`, by
        `scores`), localized; a concentrated change there narrows it, at most `MAX_DEPTH` levels down.
        A ratio's cause is narrowed against what the world outside it did (`tools.analysis.narrow`): a
        part stands for it only when its other parts do not share the anomaly. The causes of one level
        are asked for together; each comes back as the list of causes it narrowed to, in order."""
        out = [[cause] for cause, _ in causes]
        asks = self._breakdowns(causes, depth)
        if not asks:
            return out
        found = self.inside.localized([(sub, causes[i][0]) for i, sub in asks])
        children: list[tuple[int, tuple[Candidate, set[str]]]] = []  # (parent, child)
        for (i, sub), loc in zip(asks, found, strict=True):
            if loc is None:
                continue
            self.examined += loc.examined
            if not loc.localized:
                continue
            parent, seen = causes[i]
            children.extend((i, (_narrowed(parent, inner), seen | set(sub))) for inner in loc.causes)
            out[i] = []
        for (i, _), refined in zip(
            children, self.down([child for _, child in children], depth + 1), strict=True
        ):
            out[i].extend(refined)
        return out

    def _breakdowns(
        self, causes: Sequence[tuple[Candidate, set[str]]], depth: int
    ) -> list[tuple[int, list[str]]]:
        """The labels each cause is broken down by at this depth, as (the cause's index, labels): those not
        looked at yet first, then the coarse ones it does not pin, by `scores`, as many as fit `budget`
        by their values inside it (asked for every cause at once). A cause with nothing new to look at,
        or whose values could not be read (noted), is left out."""
        labels = self.labels
        todo: list[tuple[int, list[str], list[str]]] = []  # (cause, its unseen labels, the order)
        for i, (cause, seen) in enumerate(causes):
            pinned = {n for n, _ in cause.labels}
            unseen = [n for n in labels if n not in seen and n not in pinned]
            if not unseen or depth > MAX_DEPTH:
                continue
            order = ranked_labels(self.scores, unseen) + ranked_labels(
                self.scores, [n for n in labels if n in seen and n not in pinned]
            )
            todo.append((i, unseen, order))
        if not todo:
            return []
        census = self.inside.cardinality([(causes[i][0].labels, order) for i, _, order in todo])
        asks: list[tuple[int, list[str]]] = []
        for (i, unseen, order), values in zip(todo, census, strict=True):
            cause = causes[i][0]
            if isinstance(values, AlertsleuthError):
                self.notes.append(f"{fmt_labels(dict(cause.labels))} not broken down further: {values}")
                continue
            sub = choose_labels([n for n in order if values.get(n, 0) > 1], values, self.budget)
            if not any(n in unseen for n in sub):
                continue
            left = [n for n in unseen if n not in sub]
            if left:
                self.notes.append(
                    f"{fmt_labels(dict(cause.labels))} broken down by {', '.join(sub)}; "
                    f"{', '.join(left)} left out at this depth"
                )
            asks.append((i, sub))
        return asks


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
