"""Incidents seen before, in the investigation and the report: asked once the causes are known, stated
plainly by the offline writer, listed in the rendered report (a real Prometheus; the history is a
plain implementation of agent.history.History)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.evidence import InvestigationConfig
from agent.history import HistorySummary, Likeness, NoHistory, PastIncident
from agent.investigator import Investigator
from agent.render import render_html, render_markdown
from tests.agent.test_investigator import fire
from tests.conftest import PromEnv
from tools.prom import Prometheus


class Remembered:
    """A history that has seen one incident with the same cause, 3 of them in 30 days."""

    def __init__(self) -> None:
        self.asked: list[Likeness] = []

    def similar(self, like: Likeness, limit: int = 5) -> HistorySummary:
        self.asked.append(like)
        past = PastIncident(
            incident_id=7,
            alertname=like.alertname,
            starts_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
            resolved_at=datetime(2026, 11, 20, 9, 12, tzinfo=UTC),
            duration_seconds=720,
            root_causes=[dict(like.causes[0])] if like.causes else [],
            summary="Admin logins failed in shanghai.",
            ticket="#41",
            ticket_url="https://redmine.example.com/issues/41",
            match="same_cause",
            score=1.0,
        )
        return HistorySummary(
            similar=[past],
            first_seen=datetime(2026, 10, 1, tzinfo=UTC),
            last_30_days=4,
            same_cause_30_days=3,
        )


def investigator(prom: PromEnv, history: object) -> Investigator:
    config = InvestigationConfig(default_for_seconds=120)
    clock = lambda: datetime.fromtimestamp(prom.now, UTC)  # noqa: E731
    return Investigator(Prometheus(prom.url), config, clock, history=history)  # type: ignore[arg-type]


def test_the_past_is_asked_with_the_causes_and_stated(prom: PromEnv) -> None:
    history = Remembered()
    alert = fire(prom, "burst")
    report = investigator(prom, history).investigate(alert, incident_id=12)
    (like,) = history.asked
    assert like.causes[0] == (("ip_region", "shanghai"), ("user_type", "admin"))
    assert like.exclude_incident == 12 and like.before == alert.starts_at
    assert "login" in " ".join(like.metrics)
    assert report.history is not None and report.history.same_cause_30_days == 3
    assert "The same cause was found 3 times in the 30 days before" in report.summary
    assert "it lasted 12m" in report.summary
    md = render_markdown(report)
    assert "## Seen before" in md and "[#41](<https://redmine.example.com/issues/41>)" in md
    assert "same alert, same root cause" in md
    page = render_html(report)
    assert page.index('id="root-causes"') < page.index('id="seen-before"') < page.index('id="impact"')


def test_nothing_seen_before_is_said_and_no_history_says_nothing(prom: PromEnv) -> None:
    alert = fire(prom, "burst")
    report = investigator(prom, NoHistory()).investigate(alert)
    assert "No earlier incident of this alert is stored." in report.summary
    assert "Seen before" in render_markdown(report)
    plain = investigator(prom, None).investigate(alert)
    assert plain.history is None and "Seen before" not in render_markdown(plain)


class Broken:
    def similar(self, like: Likeness, limit: int = 5) -> HistorySummary:
        raise OSError("disk I/O error")


def test_a_history_that_cannot_be_read_leaves_a_note(prom: PromEnv) -> None:
    report = investigator(prom, Broken()).investigate(fire(prom, "burst"))
    assert report.localized and not report.degraded
    assert "past incidents could not be read: OSError" in report.notes
    assert report.history is None


def test_the_offline_sentence_for_an_unresolved_same_cause(prom: PromEnv) -> None:
    history = Remembered()
    inv = investigator(prom, history)
    f = inv.collect(fire(prom, "burst"))
    inv.recall(f)
    assert f.history is not None
    f.history.similar[0].duration_seconds = None
    f.history.similar[0].resolved_at = None
    report = inv.write(f)
    assert "last time, on 2026-11-20 09:00:00 UTC, it did not resolve" in report.summary
    assert timedelta(seconds=0) <= datetime.now(UTC) - report.created_at


def test_the_llm_gets_the_past_as_data_and_may_quote_its_figures(prom: PromEnv) -> None:
    from agent.llm_writer import _extra_numbers, evidence_prompt
    from agent.offline_writer import OfflineWriter

    inv = investigator(prom, Remembered())
    f = inv.collect(fire(prom, "burst"))
    inv.recall(f)
    offline = OfflineWriter().write(f)
    prompt = evidence_prompt(f, offline, 60_000)
    block = prompt.split('<data kind="past_incidents">', 1)[1].split("</data>", 1)[0]
    assert '"same_cause_in_30_days": 3' in block and '"lasted_seconds": 720' in block
    assert {3.0, 4.0, 720, 12.0} <= set(_extra_numbers(f, offline))  # "3 times", "12 minutes" are grounded
