"""The drill-down flow (`tools.drill.refine`) over a hand-written `Inside`."""

from __future__ import annotations

from collections.abc import Sequence

from tools.analysis import Candidate, Labels, Localization
from tools.drill import MAX_DEPTH, refine
from tools.errors import AlertsleuthError, QueryError


def cand(labels: Labels, share: float = 1.0) -> Candidate:
    return Candidate(labels, share, 0.01, 0.1, 9.0, 0.1, 0.5, (1.0, 1.0))


class Fake:
    """Each label has 3 values inside any element; inside a cause the first unseen label's value "1" is
    the cause, with half of the cause's change; `fail` pins whose label values cannot be read."""

    def __init__(self, fail: Labels | None = None) -> None:
        self.fail = fail
        self.asked: list[tuple[list[str], Labels]] = []
        self.batches: list[int] = []  # how many causes each call of `cardinality` asked about

    def cardinality(
        self, asked: Sequence[tuple[Labels, Sequence[str]]]
    ) -> list[dict[str, int] | AlertsleuthError]:
        self.batches.append(len(asked))
        return [
            QueryError("too many series") if within == self.fail else {n: 3 for n in names}
            for within, names in asked
        ]

    def localized(self, asked: Sequence[tuple[Sequence[str], Candidate]]) -> list[Localization | None]:
        return [self._one(labels, within) for labels, within in asked]

    def _one(self, labels: Sequence[str], within: Candidate) -> Localization | None:
        self.asked.append((list(labels), within.labels))
        name = next(n for n in labels if n not in dict(within.labels))
        return Localization(True, 0.0, 1.0, localized=True, causes=[cand(((name, "1"),), 0.5)], examined=4)


def test_each_cause_is_narrowed_level_by_level_and_the_notes_say_what_was_left_out() -> None:
    loc = Localization(True, 0.0, 1.0, localized=True, causes=[cand((("a", "1"),))], examined=10)
    fake = Fake()
    out, notes = refine(loc, list("abcde"), ["a"], {n: 1.0 for n in "abcde"}, 9, fake)
    # a budget of 9 series: two labels of 3 values a level, at most MAX_DEPTH levels below the coarse cube
    assert len(fake.asked) == MAX_DEPTH
    assert [dict(c.labels) for c in out.causes] == [{"a": "1", "b": "1", "d": "1"}]
    assert out.causes[0].explained_share == 0.25  # half of half of the whole
    assert out.examined == 10 + 4 * MAX_DEPTH
    assert notes and all("left out at this depth" in n for n in notes)


def test_a_cause_whose_labels_cannot_be_read_is_kept_and_said_so() -> None:
    loc = Localization(True, 0.0, 1.0, localized=True, causes=[cand((("a", "1"),))])
    out, notes = refine(loc, list("ab"), ["a"], {}, 9, Fake(fail=(("a", "1"),)))
    assert [dict(c.labels) for c in out.causes] == [{"a": "1"}]
    assert notes == ['{a="1"} not broken down further: too many series']


def test_the_causes_of_one_level_are_asked_for_together_and_come_back_in_their_order() -> None:
    causes = [cand((("a", "1"),)), cand((("a", "2"),))]
    loc = Localization(True, 0.0, 1.0, localized=True, causes=causes, examined=10)
    fake = Fake()
    out, _ = refine(loc, list("abcde"), ["a"], {n: 1.0 for n in "abcde"}, 9, fake)
    assert fake.batches == [2] * MAX_DEPTH  # one call a level, both causes in it
    assert [dict(c.labels) for c in out.causes] == [
        {"a": "1", "b": "1", "d": "1"},
        {"a": "2", "b": "1", "d": "1"},
    ]
    assert out.examined == 10 + 2 * 4 * MAX_DEPTH
