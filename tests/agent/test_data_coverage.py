"""How much of each window had data: said in the report, and a thin baseline lowers the confidence
without changing the localization."""

from __future__ import annotations

from agent.render import render_markdown
from tests.agent.test_investigator import fire, run
from tests.conftest import PromEnv

SHANGHAI_ADMIN = {"ip_region": "shanghai", "user_type": "admin"}


def test_a_full_baseline_is_said_and_keeps_normal_confidence(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "burst"))  # a 1h baseline, all of it with data
    assert report.windows is not None
    assert report.data_coverage["baseline"] == report.windows.baseline.seconds
    assert report.data_coverage["incident"] == report.windows.incident.seconds
    assert report.confidence == "normal"
    assert not any("baseline" in n and "data" in n for n in report.notes)
    assert "low confidence" not in render_markdown(report).lower()


def test_a_thin_baseline_is_said_and_lowers_the_confidence(prom: PromEnv) -> None:
    full = run(prom, fire(prom, "burst"))
    report = run(prom, fire(prom, "burst"), baseline_seconds=3 * 3600)  # the data begins 80m before
    assert report.windows is not None and report.windows.baseline.seconds == 3 * 3600
    covered = report.data_coverage["baseline"]
    assert 75 * 60 <= covered <= 81 * 60, covered
    assert report.confidence == "low"
    # The localization is untouched: same causes, same scores.
    assert [(rc.labels, rc.score) for rc in report.root_causes][:1] == [
        (SHANGHAI_ADMIN, full.root_causes[0].score)
    ]
    note = next(n for n in report.notes if "baseline" in n)
    assert "3h" in note and "1h" in note and "low confidence" in note.lower()
    assert "low confidence" in report.root_causes[0].statement.lower()
    md = render_markdown(report)
    assert "data for 1h" in md  # the baseline window line says how much of it had data


def test_a_thin_baseline_in_chinese(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "burst"), baseline_seconds=3 * 3600, language="zh")
    assert report.confidence == "low"
    assert "置信度较低" in report.root_causes[0].statement
