"""Alert storms on both backends: many alerts of one rule and group are investigated once, every member
follows the lead and gets its report, a member claimed late joins the lead, a storm does not stand
between an unrelated critical alert and its investigation, and one notification of 7,000 alerts makes
one investigation; through the live app, the report lists the storm's alerts.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, func, select

from agent.models import AlertInfo, Report, RootCause, utcnow
from agent.storm import covered, shared_alert, summarize
from server.db import ClaimedJob, Incident, Job, Store
from server.db.storms import StormRule, storm_key
from tests.conftest import PromEnv, ServerEnv
from tests.server.test_api import wait_report, webhook

T0 = utcnow().replace(microsecond=0) - timedelta(minutes=10)
URL = "http://prometheus:9090/graph?g0.expr=sum+by+%28instance%29+%28rate%28errors_total%5B5m%5D%29%29+%3E+1"
RULE = StormRule(min_alerts=10, window=600.0)


def _alert(i: int, name: str = "Errors", severity: str = "critical", url: str = URL) -> AlertInfo:
    return AlertInfo(
        name=name,
        labels={"alertname": name, "severity": severity, "team": "web", "instance": f"web-{i}"},
        starts_at=T0 + timedelta(seconds=i % 50),
        fingerprint=f"{name}-{i}",
        generator_url=url,
    )


def _ingest(store: Store, alerts: list[AlertInfo], group: str = '{}:{alertname="Errors"}') -> list[int]:
    return store.intake.ingest("alertmanager", "{}", group, alerts).created


def _claim(store: Store) -> ClaimedJob | None:
    job = store.jobs.claim("w1", 60.0, 3, RULE)
    assert job is None or isinstance(job, ClaimedJob), job
    return job


def _report(job: ClaimedJob, causes: list[RootCause]) -> Report:
    return Report(id=f"r{job.id}", alert=job.alert, expression=None, summary="storm", root_causes=causes)


def test_a_storm_is_investigated_once_and_every_member_gets_the_report(store: Store) -> None:
    ids = _ingest(store, [_alert(i) for i in range(12)])
    lead = _claim(store)
    assert lead is not None and lead.incident_id == ids[0]
    assert [i for i, _ in lead.members] == ids  # the lead first, then every member
    assert "instance" not in lead.alert.labels  # the shared signal: not pinned to one instance
    assert lead.alert.labels == {"alertname": "Errors", "severity": "critical", "team": "web"}
    assert _claim(store) is None  # the members are attached, not queued
    with store.session() as s:
        states = dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        assert states == {"running": 1, "attached": 11}
        assert set(s.scalars(select(Incident.investigation))) == {"running"}
    cause = RootCause(labels={"instance": "web-3"}, score=0.9, statement="web-3 fails")
    report = _report(lead, [cause])
    report.storm = summarize(lead.members, report.root_causes)
    store.jobs.complete(lead.id, report, "md", "<p>", {}, worker=lead.worker)
    with store.session() as s:
        incidents = list(s.scalars(select(Incident)))
        assert {(i.investigation, i.report_id, i.storm_lead_id) for i in incidents} == {
            ("done", report.id, ids[0])
        }
        assert set(s.scalars(select(Job.state))) == {"done"}
    assert report.storm.alerts == 12 and report.storm.covered == 1 and report.storm.not_covered == 11
    assert report.storm.members[0].labels == {"instance": "web-3"}


def test_a_member_claimed_late_joins_the_lead_and_fewer_than_the_minimum_run_alone(store: Store) -> None:
    ids = _ingest(store, [_alert(i) for i in range(10)])
    lead = _claim(store)
    assert lead is not None and len(lead.members) == 10
    late = _ingest(store, [_alert(99)])
    assert _claim(store) is None  # joined the running lead
    with store.session() as s:
        job = s.scalars(select(Job).where(Job.incident_id == late[0])).one()
        assert (job.state, job.lead_job_id) == ("attached", lead.id)
    store.jobs.fail(lead.id, "Prometheus answered 500", worker=lead.worker)
    with store.session() as s:
        failed = s.scalars(select(Incident).where(Incident.id.in_([*ids, *late])))
        assert {(i.investigation, i.error) for i in failed} == {("failed", "Prometheus answered 500")}
    # Another rule's five alerts: below the minimum, each investigated alone.
    _ingest(store, [_alert(i, name="Latency") for i in range(5)], group="latency")
    alone = [_claim(store) for _ in range(5)]
    assert all(j is not None and not j.members and "instance" in j.alert.labels for j in alone)


def test_a_lead_queued_again_keeps_its_members_and_leads_again(store: Store) -> None:
    ids = _ingest(store, [_alert(i) for i in range(10)])
    lead = _claim(store)
    assert lead is not None
    store.jobs.retry_later(lead.id, "Prometheus did not answer", 0.0, worker=lead.worker)
    with store.session() as s:
        assert set(s.scalars(select(Incident.investigation))) == {"queued"}  # the members follow
    again = _claim(store)
    assert again is not None and again.id == lead.id
    assert [i for i, _ in again.members] == ids


def test_a_storm_does_not_stand_between_an_unrelated_critical_alert_and_its_investigation(
    store: Store,
) -> None:
    _ingest(store, [_alert(i) for i in range(500)])  # older, and critical too
    (critical,) = _ingest(store, [_alert(0, name="DiskFull", url="")], group="disk")
    first, second = _claim(store), _claim(store)
    assert first is not None and len(first.members) == 500
    assert second is not None and second.incident_id == critical  # one investigation before it, not 500


def test_one_notification_of_7000_alerts_makes_one_investigation(store: Store) -> None:
    ids = _ingest(store, [_alert(i) for i in range(7000)])
    assert len(ids) == 7000
    lead = _claim(store)
    assert lead is not None and len(lead.members) == 7000
    assert _claim(store) is None


def test_the_storm_key_is_the_rule_and_the_group() -> None:
    a, b = _alert(1), _alert(2)
    assert storm_key(a, "g") == storm_key(b, "g")  # other instance, same rule and group
    assert storm_key(a, "g") != storm_key(a, "h")
    assert storm_key(a, "g") != storm_key(_alert(1, url=URL.replace("%3E+1", "%3E+2")), "g")
    assert storm_key(a, "g") != storm_key(_alert(1, name="Other"), "g")


def test_coverage_is_decided_on_the_labels_a_cause_and_a_member_share() -> None:
    causes = [RootCause(labels={"instance": "web-1", "route": "/login"}, score=1.0, statement="")]
    assert covered({"instance": "web-1"}, causes) is True
    assert covered({"instance": "web-2"}, causes) is False
    assert covered({"zone": "a"}, causes) is None  # nothing shared: cannot tell
    storm = summarize(
        [(1, {"instance": "web-1", "zone": "a"}), (2, {"instance": "web-2", "zone": "a"})], causes
    )
    assert (storm.covered, storm.not_covered, storm.undetermined) == (1, 1, 0)
    assert storm.shared == {"zone": "a"} and storm.varying == ["instance"]
    lead = _alert(1)
    assert shared_alert(lead, [_alert(2).labels]).labels == {
        "alertname": "Errors",
        "severity": "critical",
        "team": "web",
    }


def test_a_storm_through_the_server_makes_one_report_that_lists_its_alerts(
    server: ServerEnv, prom: PromEnv
) -> None:
    """Twelve alerts of one rule in one notification, through the live app and a real Prometheus."""
    body = webhook(prom)
    one = body["alerts"][0]
    body["alerts"] = [
        {**one, "labels": {**one["labels"], "shard": str(i)}, "fingerprint": f"shard-{i}"} for i in range(12)
    ]
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/api/v1/webhook/alertmanager", json=body)
        assert r.status_code == 202, r.text
        ids = r.json()["incidents_created"]
        assert len(ids) == 12
        incidents = [wait_report(c, i) for i in ids]
        assert {i["investigation"] for i in incidents} == {"done"}
        assert len({i["report_id"] for i in incidents}) == 1  # one investigation, one report
        assert {i["storm_lead_id"] for i in incidents} == {ids[0]}
        lead = c.get(f"/api/v1/incidents/{ids[0]}").json()
        member = c.get(f"/api/v1/incidents/{ids[5]}").json()
        assert (
            member["jobs"][0]["state"] == "done" and member["jobs"][0]["lead_job_id"] == lead["jobs"][0]["id"]
        )
        report = c.get(lead["report_url"]).json()
        assert report["root_causes"][0]["labels"] == {"ip_region": "shanghai", "user_type": "admin"}
        storm = report["storm"]
        assert storm["alerts"] == 12 and storm["varying"] == ["shard"]
        assert storm["undetermined"] == 12  # `shard` is the alerts' own label: no cause can tell
        html = c.get(f"/api/v1/reports/{report['id']}", params={"format": "html"}).text
    assert "Alert storm: 12 alerts of this rule and group, investigated once" in html


def test_a_claim_reads_a_few_rows_however_long_the_queue(tmp_path: Path) -> None:
    """SQLite's own count of the instructions a claim runs (its progress handler, called at each), with
    5,000 jobs queued, each alert a storm of its own, against 50 queued: the job to take and a storm's
    waiting members are found by index. (They were not: the claim sorted every queued job, and the
    storm's members were looked for by walking the whole queue, some hundred times the count at 50.)"""
    store = Store(f"sqlite:///{tmp_path / 'queue.db'}")
    ticks = [0]
    counting = [False]

    def tick() -> int:
        ticks[0] += 1
        return 0

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        dbapi_conn.set_progress_handler(tick if counting[0] else None, 1)

    event.listen(store.engine, "checkout", checkout)

    def one_claim() -> int:
        ticks[0], counting[0] = 0, True
        try:
            assert _claim(store) is not None
        finally:
            counting[0] = False
        return ticks[0]

    def queue(first: int, last: int) -> None:
        _ingest(store, [_alert(i, name=f"E{i}", severity="warning") for i in range(first, last)])

    try:
        queue(0, 50)
        few = one_claim()
        queue(50, 5000)
        many = one_claim()
    finally:
        store.close()
    assert few > 0
    assert many <= 2 * few, (few, many)
