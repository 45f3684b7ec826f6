"""tools/similarity.py: the classes in their order, the scores in their bands, ties by recency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tools.similarity import Candidate, classify, jaccard, rank

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ADMIN_SH = frozenset({("ip_region", "shanghai"), ("user_type", "admin")})
GUEST_SH = frozenset({("ip_region", "shanghai"), ("user_type", "guest")})
GZ = frozenset({("ip_region", "guangzhou")})
METRICS = frozenset({"login_attempts_total", "login_failures_total"})


def cand(
    i: int, alertname: str = "LoginFailures", *causes: frozenset[tuple[str, str]], **kw: object
) -> Candidate:
    metrics = kw.get("metrics", METRICS)
    assert isinstance(metrics, frozenset)
    return Candidate(i, alertname, T0 + timedelta(hours=i), tuple(causes), metrics)


def test_the_classes_come_in_order_whatever_their_age() -> None:
    candidates = [
        cand(1, "LoginFailures", ADMIN_SH),  # the oldest
        cand(2, "LoginFailures", GUEST_SH),
        cand(3, "LoginFailures", GZ),
        cand(4, "LoginLatency", ADMIN_SH, metrics=frozenset({"login_attempts_total", "login_seconds"})),
        cand(5, "DiskFull", ADMIN_SH, metrics=frozenset({"node_filesystem_avail_bytes"})),  # unrelated
    ]
    ranked = rank("LoginFailures", [ADMIN_SH], METRICS, candidates)
    assert [(r.candidate.id, r.match) for r in ranked] == [
        (1, "same_cause"),
        (2, "overlapping_cause"),
        (3, "same_alert"),
        (4, "same_family"),
    ]
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4
    assert all(0 <= s <= 1 for s in scores)


def test_scores_lie_in_their_bands() -> None:
    assert classify("A", [ADMIN_SH], METRICS, cand(1, "A", ADMIN_SH)) == ("same_cause", 1.0)
    match, score = classify("A", [ADMIN_SH, GZ], METRICS, cand(1, "A", ADMIN_SH)) or ("", 0.0)
    assert match == "same_cause" and 0.85 < score < 1.0  # one cause of two in common
    match, score = classify("A", [ADMIN_SH], METRICS, cand(1, "A", GUEST_SH)) or ("", 0.0)
    assert match == "overlapping_cause" and score == pytest.approx(
        0.55 + 0.30 / 3, abs=1e-4
    )  # 1 pair shared of 3
    assert classify("A", [ADMIN_SH], METRICS, cand(1, "A")) == ("same_alert", 0.5)
    assert classify("A", [], METRICS, cand(1, "A", ADMIN_SH)) == ("same_alert", 0.5)
    assert classify("A", [ADMIN_SH], METRICS, cand(1, "B", ADMIN_SH)) == ("same_family", 0.45)
    half = cand(1, "B", metrics=frozenset({"login_attempts_total"}))
    assert classify("A", [], METRICS, half) == ("same_family", 0.45 * 0.5)
    assert classify("A", [], METRICS, cand(1, "B", metrics=frozenset())) is None
    assert classify("A", [], frozenset(), cand(1, "B", metrics=frozenset())) is None


def test_overlap_is_the_best_pair_of_causes() -> None:
    # Our second cause overlaps their first by 1 of 2 pairs: the best pair counts, not the union.
    ours = [GZ, frozenset({("ip_region", "shanghai")})]
    _, score = classify("A", ours, METRICS, cand(1, "A", ADMIN_SH)) or ("", 0.0)
    assert score == pytest.approx(0.55 + 0.30 * 0.5, abs=1e-4)


def test_ties_go_to_the_most_recent() -> None:
    ranked = rank("A", [ADMIN_SH], METRICS, [cand(1, "A", GZ), cand(3, "A", GZ), cand(2, "A", GZ)])
    assert [r.candidate.id for r in ranked] == [3, 2, 1]
    same_time = [Candidate(7, "A", T0), Candidate(9, "A", T0), Candidate(8, "A", T0)]
    assert [r.candidate.id for r in rank("A", [], METRICS, same_time)] == [9, 8, 7]


def test_limit_and_empty_input() -> None:
    many = [cand(i, "A") for i in range(10)]
    assert [r.candidate.id for r in rank("A", [], METRICS, many, limit=3)] == [9, 8, 7]
    assert rank("A", [], METRICS, many, limit=0) == []
    assert rank("A", [ADMIN_SH], METRICS, []) == []


def test_an_empty_label_set_is_a_cause_like_any_other() -> None:
    everywhere = frozenset[tuple[str, str]]()
    assert classify("A", [everywhere], METRICS, cand(1, "A", everywhere)) == ("same_cause", 1.0)
    assert classify("A", [everywhere], METRICS, cand(1, "A", GZ)) == ("same_alert", 0.5)


def test_jaccard() -> None:
    assert jaccard([], []) == 0.0
    assert jaccard({1, 2}, {2, 3}) == 1 / 3
    assert jaccard({1}, {1}) == 1.0
