"""Grounding: which figures the checker looks at, which evidence numbers support them, and which
citations point nowhere. Pure: Evidence and SegmentStat rows are built by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from agent.grounding import evidence_numbers, figures, grounded, ungrounded, unknown_citations
from agent.models import Evidence, SegmentStat

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def ev(id: str, summary: str = "", *stats: SegmentStat) -> Evidence:
    return Evidence(
        id=id,
        kind="breakdown",
        title=f"evidence {id}",
        promql="sum(rate(user_login_total[5m]))",
        start=AT,
        end=AT,
        step=15,
        summary=summary,
        stats=list(stats),
    )


def stat(
    baseline: float | None = None, incident: float | None = None, peak: float | None = None, **labels: str
) -> SegmentStat:
    return SegmentStat(
        labels=labels or {"ip_region": "shanghai"}, baseline=baseline, incident=incident, peak=peak
    )


def written(text: str) -> list[str]:
    return [raw for raw, _v, _p in figures(text)]


def ok(raw: str, numbers: list[float]) -> bool:
    """Whether the one figure in `raw` is grounded by `numbers`."""
    ((text, value, percent),) = figures(raw)
    return grounded(text, value, percent, numbers)


# ---------------------------------------------------------------------- figures


@pytest.mark.parametrize(
    "text",
    [
        "3 regions, 10 steps, 0 errors, 5.0 instances, -2 places",  # small integers
        "at 12:03 and again at 12:03:15",  # clock times
        "on 2024-05-01, from 2024-05-01T12:03:15Z to 2024-05-01 12:33",  # ISO dates and timestamps
        "see [E3] and [E12, E14] and [E1,E2]",  # citations
        'the segment {ip_region="shanghai", user_type="admin2"}',  # label sets
        "the rule `sum(rate(x[5m])) / sum(rate(y[5m])) > 0.2`",  # code
        "v2.3 of p99 on http_5xx (E7)",  # numbers inside words
    ],
)
def test_figures_skip_what_is_not_a_measurement(text: str) -> None:
    assert figures(text) == []


def test_figures_keep_measurements() -> None:
    text = (
        "Failures rose to 31% (0.3104, +250%, -12.5%) over 1,234.5 logins; 1,200 an hour, 1.2k per shard, "
        "3M requests, 2.5G bytes, 11 pods, 12.5 ms, 50 % of it"
    )
    assert figures(text) == [
        ("31%", 31.0, True),
        ("0.3104", 0.3104, False),
        ("+250%", 250.0, True),
        ("-12.5%", -12.5, True),
        ("1,234.5", 1234.5, False),
        ("1,200", 1200.0, False),
        ("1.2k", 1200.0, False),
        ("3M", 3_000_000.0, False),
        ("2.5G", 2_500_000_000.0, False),
        ("11", 11.0, False),
        ("12.5", 12.5, False),
        ("50 %", 50.0, True),
    ]


def test_figures_keep_small_percentages_and_decimals() -> None:
    assert written("5% of 3 regions, 0.5 of the rate, 7.5 per second") == ["5%", "0.5", "7.5"]


def test_figures_mixed_with_skipped_parts() -> None:
    text = 'At 12:03 on 2024-05-01 the ratio of {ip_region="sh"} was 0.31 [E3] (`x > 0.2`), 3 regions'
    assert figures(text) == [("0.31", 0.31, False)]


# ---------------------------------------------------------------------- evidence_numbers


def test_evidence_numbers_hold_stats_summaries_and_relative_changes() -> None:
    evidence = [
        ev("E1", "failure ratio 0.0523 (5.2%) over 1,234.5 logins", stat(0.04, 0.14, 0.2)),
        ev("E2", "", stat(None, 3.0), stat(0.0, 1.0)),
    ]
    nums = evidence_numbers(evidence, extra=[0.9])
    for expected in (0.04, 0.14, 0.2, 0.0523, 0.052, 1234.5, 3.0, 0.0, 1.0, 0.9):
        assert any(math.isclose(n, expected) for n in nums), expected
    # relative changes of the row with a non-zero baseline: +250% to the incident, +400% to the peak
    assert any(math.isclose(n, 2.5) for n in nums) and any(math.isclose(n, 4.0) for n in nums)
    assert nums == sorted(nums)


# ---------------------------------------------------------------------- grounded

RATIO = [0.0523]


@pytest.mark.parametrize("raw", ["0.0523", "0.052", "0.05", "5.23%", "5.2%", "5%"])
def test_grounded_accepts_rounding_to_the_written_digits(raw: str) -> None:
    assert ok(raw, RATIO)


@pytest.mark.parametrize("raw", ["31%", "31.0%", "31.04%", "0.31", "0.3104"])
def test_grounded_accepts_a_ratio_as_a_percentage(raw: str) -> None:
    assert ok(raw, [0.3104])


@pytest.mark.parametrize("raw", ["1234.5", "1,234.5", "1,235", "1230", "1200", "1.2k", "1.23k", "1k"])
def test_grounded_accepts_significant_figure_rounding(raw: str) -> None:
    assert ok(raw, [1234.5])


@pytest.mark.parametrize("raw", ["+250%", "250%", "rose 250 %", "+400%"])
def test_grounded_accepts_relative_changes_from_a_stats_row(raw: str) -> None:
    nums = evidence_numbers([ev("E1", "", stat(baseline=0.04, incident=0.14, peak=0.2))])
    assert ok(raw, nums)


def test_relative_changes_need_the_stats_row() -> None:
    nums = evidence_numbers([ev("E1", "", stat(baseline=0.04)), ev("E2", "", stat(incident=0.14))])
    assert not ok("+250%", nums)


@pytest.mark.parametrize(
    ("raw", "numbers"),
    [
        ("0.987", [0.0523, 0.3104, 1234.5]),  # made up
        ("0.053", RATIO),  # 0.0523 rounds to 0.052
        ("35%", [0.3104]),  # a wrong percentage
        ("12.3%", [0.0523, 0.3104]),
        ("50%", [0.05]),  # a factor-10 slip
        ("0.5", [0.05]),
        ("0.005", [0.05]),
        ("-250%", [0.04, 0.14, 2.5]),  # wrong sign
        ("2.5k", [2.5]),  # wrong magnitude
        ("1300", [1234.5]),
    ],
)
def test_grounded_rejects_figures_the_evidence_does_not_hold(raw: str, numbers: list[float]) -> None:
    assert not ok(raw, numbers)


def test_grounded_with_no_evidence_rejects_everything() -> None:
    assert not ok("0.31", [])
    assert not ok("31%", [])


def test_grounded_zero_needs_a_zero() -> None:
    assert ok("0.0%", [0.0]) and ok("0%", [0.0])
    assert not ok("0.02", [0.0]) and not ok("2%", [0.0])


def test_grounded_does_not_read_a_relative_change_as_a_percentage() -> None:
    nums = evidence_numbers([ev("E1", "", stat(baseline=0.02, incident=0.14))])
    assert ok("+600%", nums)
    assert not ok("6%", nums)


@pytest.mark.parametrize(("raw", "value"), [("2.5k", 2450.0), ("130", 125.0), ("1.3M", 1_250_000.0)])
def test_grounded_accepts_half_up_rounding(raw: str, value: float) -> None:
    assert ok(raw, [value])


# ---------------------------------------------------------------------- ungrounded

EVIDENCE = [
    ev(
        "E1",
        "failure ratio 0.0523 (baseline 0.04), 1,234.5 logins",
        stat(baseline=0.04, incident=0.14, peak=0.2, ip_region="shanghai", user_type="admin"),
    ),
    ev("E2", "failure ratio 0.3104 at the peak"),
]


def test_ungrounded_is_empty_for_a_clean_text() -> None:
    texts = [
        "At 12:03 on 2024-05-01 the failure ratio rose from 0.04 to 0.14 (+250%) in shanghai [E1].",
        'It peaked at 31% [E2] for {ip_region="shanghai"}; 3 regions checked with `x > 0.2`.',
        "About 1.2k logins were affected, a ratio of 0.052 [E1].",
    ]
    assert ungrounded(texts, EVIDENCE) == []


def test_ungrounded_returns_the_unsupported_figures_with_context() -> None:
    texts = [
        "The failure ratio reached 0.987 in shanghai [E1], with 0.052 overall.",
        "About 50%\nof logins failed after the deploy.",
    ]
    out = ungrounded(texts, EVIDENCE)
    assert [u.split(" in ", 1)[0] for u in out] == ["0.987", "50%"]
    assert out[0].startswith("0.987 in “…The failure ratio reached 0.987 in shanghai [E1]")
    assert out[1].startswith("50% in “…About 50% of logins")  # newline flattened
    assert all(u.endswith("…”") for u in out)


def test_ungrounded_lists_a_repeated_figure_once() -> None:
    out = ungrounded(["0.987 and again 0.987", "once more 0.987"], EVIDENCE)
    assert len(out) == 2  # one per distinct context
    assert all(line.startswith("0.987 in ") for line in out)
    assert ungrounded(["0.987, 0.987"], EVIDENCE) == ["0.987 in “…0.987, 0.987…”"]


def test_ungrounded_uses_extra_numbers() -> None:
    assert ungrounded(["explains 87% of the change"], EVIDENCE) != []
    assert ungrounded(["explains 87% of the change"], EVIDENCE, extra=[0.8712]) == []


def test_ungrounded_with_no_evidence_flags_every_figure() -> None:
    assert [u.split(" in ", 1)[0] for u in ungrounded(["0.31 and 12% and 42"], [])] == ["0.31", "12%", "42"]


def test_ungrounded_survives_a_non_finite_baseline() -> None:
    evidence = [ev("E1", "", stat(baseline=math.inf, incident=0.14, peak=0.2))]
    assert ungrounded(["rose to 0.987"], evidence) == ["0.987 in “…rose to 0.987…”"]


def test_an_infinite_extra_number_grounds_nothing() -> None:
    assert ungrounded(["rose to 0.987"], [], extra=[math.inf]) == ["0.987 in “…rose to 0.987…”"]


# ---------------------------------------------------------------------- unknown_citations


def test_unknown_citations_in_numeric_order() -> None:
    texts = ["see [E10] and [E2], E3 and E1", "[E11, E4] and E1 again", "not ids: E12x, E 5, XE7"]
    assert unknown_citations(texts, EVIDENCE) == ["E3", "E4", "E10", "E11"]


def test_unknown_citations_empty_when_all_known() -> None:
    assert unknown_citations(["[E1] and [E2]", "E1, E2"], EVIDENCE) == []
    assert unknown_citations(["no citations at all"], []) == []
