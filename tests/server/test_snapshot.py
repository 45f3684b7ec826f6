"""A read of several queries sees one state of the database (SQLite runs SELECTs outside any
transaction unless told otherwise, and PostgreSQL's READ COMMITTED gives each statement its own
snapshot, so each query saw whatever was committed by then); on both backends."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from agent.models import AlertInfo, utcnow
from server.db import Store
from server.db.models import Incident, Job


def _store_with_an_incident(url: str) -> tuple[Store, int]:
    store = Store(url)
    alert = AlertInfo(
        name="LoginFailures",
        status="firing",
        labels={"alertname": "LoginFailures"},
        starts_at=utcnow() - timedelta(minutes=5),
        fingerprint="fp-1",
    )
    [inc] = store.intake.ingest("alertmanager", "{}", "g", [alert]).created
    return store, inc


def test_a_snapshot_does_not_see_a_commit_made_after_its_first_read(database_url: str) -> None:
    store, inc = _store_with_an_incident(database_url)
    try:
        with store.snapshot() as s:
            before = s.get(Incident, inc)
            assert before is not None and before.investigation == "queued"
            with store.session() as w:  # another writer finishes the job and the incident together
                w.execute(update(Job).where(Job.incident_id == inc).values(state="done"))
                w.execute(update(Incident).where(Incident.id == inc).values(investigation="done"))
            assert list(s.scalars(select(Job.state).where(Job.incident_id == inc))) == ["queued"]
        assert before.investigation == "queued"  # loaded objects stay readable after the block
        found = store.incidents.detail(inc)
        assert found is not None
        assert found.incident.investigation == "done" and [j.state for j in found.jobs] == ["done"]
    finally:
        store.close()


def test_a_write_inside_a_snapshot_is_not_kept(database_url: str) -> None:
    store, inc = _store_with_an_incident(database_url)
    try:
        with store.snapshot() as s:
            s.execute(update(Incident).where(Incident.id == inc).values(investigation="failed"))
        found = store.incidents.detail(inc)
        assert found is not None and found.incident.investigation == "queued"
    finally:
        store.close()
