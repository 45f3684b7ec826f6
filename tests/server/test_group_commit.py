"""Intake in batches (group commit), its bounds, and the queue's order, on both backends.

- many notifications in one transaction behave as one transaction each, in order: a later one joins
  the incident an earlier one made; one that cannot be stored fails alone;
- the writer batches concurrent requests, answers each once its transaction committed, and refuses
  (IntakeFull) when too many wait;
- a full backlog refuses, as a whole, a notification that would queue an investigation, and stores
  nothing of it; resolutions and repeats still pass;
- investigations are claimed by severity, then age; the webhook answers 503 with Retry-After when the
  backlog is full;
- a late firing of a resolved incident (an Alertmanager peer's copy) is never re-investigated.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from agent.models import AlertInfo, utcnow
from server.db import Incident, Job, Notification, Store
from server.db.intake import IngestRequest, IngestResult, IntakeRules
from server.db.models import NotificationIncident
from server.intake_writer import IntakeWriter
from server.settings import Settings
from tests.conftest import PromEnv, serve
from tests.server.test_api import webhook
from tools.errors import IntakeFull

T0 = utcnow().replace(microsecond=0) - timedelta(minutes=10)
RULES = IntakeRules(window=300.0, lock_timeout=10.0)


def _alert(fp: str, status: str = "firing", severity: str = "warning", starts: float = 0.0) -> AlertInfo:
    return AlertInfo(
        name="LoginFailures",
        status=status,
        labels={"alertname": "LoginFailures", "severity": severity, "fp": fp},
        starts_at=T0 + timedelta(seconds=starts),
        ends_at=T0 + timedelta(minutes=5) if status == "resolved" else None,
        fingerprint=fp,
    )


def _req(*alerts: AlertInfo, body: str = "{}") -> IngestRequest:
    return IngestRequest("alertmanager", body, "g", list(alerts))


def _count(store: Store, model: type) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _ok(result: IngestResult | Exception) -> IngestResult:
    assert isinstance(result, IngestResult), result
    return result


def test_a_batch_is_one_transaction_per_notification_in_order(store: Store) -> None:
    results = store.intake.ingest_many(
        [
            _req(_alert("a")),
            _req(_alert("a", starts=20.0)),  # an HA replica's near startsAt: joins a's incident
            _req(_alert("b")),
            _req(_alert("a", "resolved")),
        ],
        RULES,
    )
    first, second, third, fourth = (_ok(r) for r in results)
    assert first.created and not first.deduplicated
    assert second.deduplicated == first.created and not second.created
    assert third.created and third.created != first.created
    assert fourth.resolved == first.created
    assert len({r.notification_id for r in (first, second, third, fourth)}) == 4
    with store.session() as s:
        a = s.get(Incident, first.created[0])
        assert a is not None
        assert (a.status, a.notifications, a.investigation) == ("resolved", 3, "queued")
        assert s.scalar(select(func.count()).select_from(Job)) == 2
        links = s.execute(
            select(NotificationIncident.notification_id, NotificationIncident.outcome)
            .where(NotificationIncident.incident_id == a.id)
            .order_by(NotificationIncident.notification_id)
        ).all()
    assert [outcome for _, outcome in links] == ["created", "deduplicated", "resolved"]
    assert [n for n, _ in links] == [first.notification_id, second.notification_id, fourth.notification_id]


def test_a_notification_that_cannot_be_stored_fails_alone(store: Store) -> None:
    bad = _req(_alert("bad"), body="a lone surrogate \ud800 no driver encodes")
    results = store.intake.ingest_many([_req(_alert("x")), bad, _req(_alert("y"))], RULES)
    assert isinstance(results[1], Exception)
    assert _ok(results[0]).created and _ok(results[2]).created
    assert _count(store, Notification) == 2
    with store.session() as s:
        assert set(s.scalars(select(Incident.fingerprint))) == {"x", "y"}


def test_a_full_backlog_refuses_new_investigations_and_stores_nothing_of_them(store: Store) -> None:
    rules = IntakeRules(window=300.0, lock_timeout=10.0, max_backlog=2)
    results = store.intake.ingest_many([_req(_alert("a")), _req(_alert("b")), _req(_alert("c"))], rules)
    assert _ok(results[0]).created and _ok(results[1]).created
    refused = results[2]
    assert isinstance(refused, IntakeFull) and refused.reason == "backlog"
    assert "2 investigations are queued" in str(refused) and refused.retry_after > 0
    assert _count(store, Notification) == 2 and _count(store, Incident) == 2
    # Full: a repeat and a resolution still pass, a notification mixing a new alert in does not.
    again = store.intake.ingest_many(
        [_req(_alert("a")), _req(_alert("b", "resolved")), _req(_alert("a"), _alert("d"))], rules
    )
    assert _ok(again[0]).deduplicated and _ok(again[1]).resolved
    assert isinstance(again[2], IntakeFull)
    with store.session() as s:
        a = s.scalars(select(Incident).where(Incident.fingerprint == "a")).one()
        assert a.notifications == 2  # the refused notification did not count
        assert s.scalar(select(func.count()).select_from(Incident).where(Incident.fingerprint == "d")) == 0
    # A worker takes one: there is room again.
    with store.session() as s:
        s.execute(update(Job).where(Job.incident_id == a.id).values(state="done"))
    later = store.intake.ingest("alertmanager", "{}", "g", [_alert("c")], window=300.0, max_backlog=2)
    assert later.created


def test_investigations_are_claimed_by_severity_then_age(store: Store) -> None:
    for fp, severity in [
        ("w1", "warning"),
        ("i1", "info"),
        ("c1", "critical"),
        ("w2", "WARNING"),
        ("c2", "page"),
    ]:
        store.intake.ingest("alertmanager", "{}", "g", [_alert(fp, severity=severity)])
    order = []
    while (job := store.jobs.claim("w", 60.0)) is not None:
        order.append(job.alert.fingerprint)  # type: ignore[union-attr]
    assert order == ["c1", "c2", "w1", "w2", "i1"]


def test_a_late_firing_of_a_resolved_incident_is_not_reinvestigated(store: Store) -> None:
    created = store.intake.ingest("alertmanager", "{}", "g", [_alert("a")]).created
    store.intake.ingest("alertmanager", "{}", "g", [_alert("a", "resolved")])
    with store.session() as s:
        s.execute(update(Incident).values(investigation="done", updated_at=utcnow() - timedelta(hours=2)))
    late = store.intake.ingest("alertmanager", "{}", "g", [_alert("a")], refresh_after=60.0)
    assert late.deduplicated == created and not late.refreshed
    assert _count(store, Job) == 1


def test_the_writer_batches_concurrent_requests_and_answers_each_after_its_commit(store: Store) -> None:
    sizes: list[int] = []
    writer = IntakeWriter(store.intake, RULES, max_pending=1000, on_batch=sizes.append)

    async def post_all() -> list[IngestResult]:
        writer.start()
        try:
            return await asyncio.gather(*(writer.write(_req(_alert(f"fp{i}"))) for i in range(200)))
        finally:
            await writer.stop()

    results = asyncio.run(post_all())
    assert sum(sizes) == 200 and max(sizes) > 1  # all in fewer transactions than requests
    ids = {r.created[0] for r in results}
    assert len(ids) == 200
    with store.session() as s:  # each answered one is stored
        assert set(s.scalars(select(Incident.id))) == ids

    async def late() -> IngestResult:
        return await writer.write(_req(_alert("late")))

    with pytest.raises(IntakeFull):  # stopped: refuses
        asyncio.run(late())


def test_the_writer_refuses_past_its_pending_bound_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    store = Store(f"sqlite:///{db}")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the store's write lock
    writer = IntakeWriter(store.intake, RULES, max_pending=2)

    async def scenario() -> list[IngestResult]:
        writer.start()
        try:
            first = asyncio.ensure_future(writer.write(_req(_alert("a"))))  # taken, waits for the lock
            for _ in range(500):
                await asyncio.sleep(0.01)
                if not writer.pending:
                    break
            assert writer.pending == 0
            waiting = [asyncio.ensure_future(writer.write(_req(_alert(fp)))) for fp in ("b", "c")]
            await asyncio.sleep(0)  # both wait behind the batch in hand
            assert writer.pending == 2
            with pytest.raises(IntakeFull) as full:
                await writer.write(_req(_alert("d")))
            assert full.value.reason == "pending" and "2 notifications wait" in str(full.value)
            holder.execute("ROLLBACK")
            return await asyncio.wait_for(asyncio.gather(first, *waiting), 20)
        finally:
            await writer.stop()

    try:
        outcomes = asyncio.run(scenario())
    finally:
        holder.close()
    assert all(isinstance(o, IngestResult) for o in outcomes)
    with store.session() as s:
        assert set(s.scalars(select(Incident.fingerprint))) == {"a", "b", "c"}
    store.close()


def test_the_webhook_answers_503_with_retry_after_when_the_backlog_is_full(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    env, stop = serve(make_settings(max_backlog=1), start_workers=False)  # nothing takes from the queue
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            first = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="one"))
            assert first.status_code == 202, first.text
            full = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="two"))
            assert full.status_code == 503
            assert full.headers["Retry-After"] == "30"
            assert "the backlog is full: 1 investigations are queued" in full.json()["detail"]
            resolved = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, "burst", "resolved", "one"))
            assert resolved.status_code == 202 and resolved.json()["resolved"]  # resolutions still pass
            listed = c.get("/api/v1/incidents").json()
            metrics = c.get("/metrics").text
    finally:
        stop()
    assert [i["fingerprint"] for i in listed["items"]] == ["one"]  # nothing of the refused one stored
    assert 'alertsleuth_requests_rejected_total{reason="backlog_full"} 1.0' in metrics
