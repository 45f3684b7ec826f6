"""The ChatOps store on both backends (a SQLite file, a database of the session's PostgreSQL): the audit
trail is append-only (the migration's triggers refuse an UPDATE and a DELETE issued straight through
SQLAlchemy, and the row stays as it was), and runbook actions move only along their states, each move
writing exactly one audit event in its transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

from agent.models import AlertInfo, utcnow
from server.db import Store
from server.db.chatops import Actor
from server.db.models import AuditEvent, RunbookAction
from tools.errors import RunbookError

ALICE, BOB = Actor("slack", "U0ALICE01"), Actor("api", "bob")
RUNNER = "alertsleuth:runner"
OK = {"status": "successful", "rc": 0, "output": "ok: [localhost]", "output_digest": "d1", "command": ["x"]}
BAD = {"status": "failed", "rc": 2, "output": "fatal: [localhost]", "output_digest": "d2", "command": ["x"]}


def _incident(store: Store, fingerprint: str = "fp-actions") -> int:
    alert = AlertInfo(
        name="LoginFailures",
        labels={"alertname": "LoginFailures", "ip_region": "shanghai"},
        starts_at=utcnow().replace(microsecond=0) - timedelta(minutes=5),
        fingerprint=fingerprint,
    )
    return store.intake.ingest("test", "{}", "", [alert]).created[0]


def _request(store: Store, incident_id: int, actor: Actor = ALICE) -> RunbookAction:
    return store.actions.request(
        incident_id,
        "restart-region",
        actor,
        reply_to={"platform": "slack", "channel": "C0CHAN001"},
        variables={"labels": {"ip_region": "shanghai"}, "values": {"region": "shanghai"}},
        variables_digest="ab" * 32,
        command=["ansible-playbook", "mark.yml"],
    )


def _events(store: Store, action_id: int) -> list[AuditEvent]:
    return store.chatops.audit_trail(action_id=action_id)


def _moved(store: Store, action_id: int, before: int, kind: str, actor: str) -> AuditEvent:
    """The one audit event the last move wrote: exactly one more than `before`, of `kind` by `actor`."""
    events = _events(store, action_id)
    assert len(events) == before + 1, [(e.kind, e.actor) for e in events]
    last = events[-1]
    assert (last.kind, last.actor, last.action_id) == (kind, actor, action_id)
    return last


def _state(store: Store, action_id: int) -> str:
    got = store.actions.get(action_id)
    assert got is not None, action_id
    return got.state


def _proposed(store: Store, incident_id: int) -> RunbookAction:
    action = _request(store, incident_id)
    return store.actions.dry_run_done(action.id, OK)


# ------------------------------------------------------------------------------------------ audit trail


def test_the_audit_trail_refuses_update_and_delete_and_keeps_the_row(store: Store) -> None:
    incident_id = _incident(store)
    store.chatops.audit(ALICE, "silence", {"silence_id": "s-1"}, incident_id=incident_id)
    [event] = store.chatops.audit_trail(incident_id=incident_id)
    assert (event.kind, event.actor, event.via, event.detail) == (
        "silence",
        "slack:U0ALICE01",
        "slack",
        {"silence_id": "s-1"},
    )
    statements: list[Any] = [
        update(AuditEvent).where(AuditEvent.id == event.id).values(kind="nothing", actor="someone:else"),
        update(AuditEvent).values(detail={}),
        delete(AuditEvent).where(AuditEvent.id == event.id),
        delete(AuditEvent),
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="audit_events is append-only"), store.engine.begin() as conn:
            conn.execute(statement)
    with store.engine.connect() as conn:
        rows = conn.execute(select(AuditEvent.kind, AuditEvent.actor, AuditEvent.detail)).all()
    assert [tuple(r) for r in rows] == [("silence", "slack:U0ALICE01", {"silence_id": "s-1"})]
    # and the ORM's own UPDATE of a loaded row is refused all the same
    with pytest.raises(DBAPIError, match="append-only"), store.session() as s:
        row = s.get(AuditEvent, event.id)
        assert row is not None
        row.kind = "edited"
    assert store.chatops.audit_trail(incident_id=incident_id)[0].kind == "silence"


def test_audit_trail_filters_by_incident_and_action_oldest_first_and_limits(store: Store) -> None:
    first, second = _incident(store, "fp-a"), _incident(store, "fp-b")
    action = _request(store, first)
    store.chatops.audit(BOB, "ask", {"question": "why?"}, incident_id=second)
    store.chatops.audit(BOB, "reinvestigate", {}, incident_id=first)
    kinds = [e.kind for e in store.chatops.audit_trail(incident_id=first)]
    assert kinds == ["run_requested", "reinvestigate"]
    assert [e.kind for e in store.chatops.audit_trail(incident_id=second)] == ["ask"]
    assert [e.kind for e in store.chatops.audit_trail(action_id=action.id)] == ["run_requested"]
    assert [e.kind for e in store.chatops.audit_trail(limit=2)] == ["run_requested", "ask"]


# ------------------------------------------------------------------------------------------ the states


def test_request_records_dry_running_with_one_audit_event(store: Store) -> None:
    incident_id = _incident(store)
    action = _request(store, incident_id)
    assert (action.state, action.requested_by, action.approved_by) == ("dry_running", "slack:U0ALICE01", None)
    assert action.dry_run is None and action.run is None
    event = _moved(store, action.id, 0, "run_requested", "slack:U0ALICE01")
    assert event.incident_id == incident_id and event.via == "slack"
    assert event.detail["runbook"] == "restart-region" and event.detail["variables_digest"] == "ab" * 32
    assert store.actions.of_incident(incident_id)[0].id == action.id


def test_a_successful_dry_run_proposes_then_approval_runs_and_the_run_finishes(store: Store) -> None:
    incident_id = _incident(store)
    action = _request(store, incident_id)
    proposed = store.actions.dry_run_done(action.id, OK)
    assert proposed.state == "proposed" and proposed.dry_run == OK
    event = _moved(store, action.id, 1, "dry_run", RUNNER)
    assert event.detail["status"] == "successful" and event.detail["rc"] == 0
    assert "output" not in event.detail and event.detail["output_digest"] == "d1"  # the digest only

    running = store.actions.approve(action.id, BOB)
    assert (running.state, running.approved_by) == ("running", "api:bob")
    assert _moved(store, action.id, 2, "approved", "api:bob").detail == {}

    done = store.actions.finish(action.id, OK)
    assert done.state == "succeeded" and done.run == OK and done.dry_run == OK
    assert _moved(store, action.id, 3, "run_finished", RUNNER).detail["rc"] == 0
    assert _state(store, action.id) == "succeeded"


def test_a_failed_run_is_failed_and_a_failed_dry_run_is_dry_run_failed(store: Store) -> None:
    incident_id = _incident(store)
    action = _proposed(store, incident_id)
    store.actions.approve(action.id, BOB)
    failed = store.actions.finish(action.id, BAD)
    assert failed.state == "failed" and failed.run is not None and failed.run["rc"] == 2
    assert _moved(store, action.id, 3, "run_finished", RUNNER).detail["status"] == "failed"

    other = _request(store, incident_id)
    not_passed = store.actions.dry_run_done(other.id, BAD)
    assert not_passed.state == "dry_run_failed"
    assert _moved(store, other.id, 1, "dry_run", RUNNER).detail["rc"] == 2
    with pytest.raises(RunbookError, match="dry_run_failed"):
        store.actions.approve(other.id, BOB)
    assert _events(store, other.id)[-1].kind == "dry_run"  # a refused move writes nothing
    denied = store.actions.deny(other.id, ALICE, "not like this")
    assert denied.state == "denied"
    assert _moved(store, other.id, 2, "denied", "slack:U0ALICE01").detail == {"reason": "not like this"}


def test_approving_twice_names_the_state_and_writes_one_approval(store: Store) -> None:
    action = _proposed(store, _incident(store))
    store.actions.approve(action.id, BOB)
    with pytest.raises(RunbookError) as again:
        store.actions.approve(action.id, ALICE)
    assert f"action {action.id} is running" in str(again.value) and "proposed" in str(again.value)
    kinds = [(e.kind, e.actor) for e in _events(store, action.id)]
    assert kinds == [("run_requested", str(ALICE)), ("dry_run", RUNNER), ("approved", "api:bob")]
    got = store.actions.get(action.id)
    assert got is not None and got.approved_by == "api:bob"


def test_deny_from_proposed_and_then_approve_is_refused(store: Store) -> None:
    action = _proposed(store, _incident(store))
    denied = store.actions.deny(action.id, BOB, "x" * 600)
    assert denied.state == "denied" and denied.approved_by is None
    assert _moved(store, action.id, 2, "denied", "api:bob").detail == {"reason": "x" * 500}
    with pytest.raises(RunbookError, match=f"action {action.id} is denied"):
        store.actions.approve(action.id, BOB)
    with pytest.raises(RunbookError, match="is denied"):
        store.actions.deny(action.id, BOB, "again")
    assert len(_events(store, action.id)) == 3
    assert _state(store, action.id) == "denied"


def test_moves_from_the_wrong_state_or_of_no_action_are_refused(store: Store) -> None:
    action = _request(store, _incident(store))
    with pytest.raises(RunbookError, match="is dry_running, not proposed"):
        store.actions.approve(action.id, BOB)
    with pytest.raises(RunbookError, match="is dry_running, not running"):
        store.actions.finish(action.id, OK)
    with pytest.raises(RunbookError, match="is dry_running"):
        store.actions.deny(action.id, BOB, "")
    store.actions.dry_run_done(action.id, OK)
    with pytest.raises(RunbookError, match="is proposed, not dry_running"):
        store.actions.dry_run_done(action.id, OK)
    assert len(_events(store, action.id)) == 2
    with pytest.raises(RunbookError, match="no runbook action 987654"):
        store.actions.approve(987654, BOB)
    assert store.actions.get(987654) is None


def test_refuse_writes_a_refused_event_and_moves_nothing(store: Store) -> None:
    incident_id = _incident(store)
    action = _proposed(store, incident_id)
    store.actions.refuse(action.id, incident_id, BOB, "api:bob may not approve restart-region")
    event = _moved(store, action.id, 2, "refused", "api:bob")
    assert event.detail == {"why": "api:bob may not approve restart-region"}
    assert event.incident_id == incident_id and _state(store, action.id) == "proposed"


# ------------------------------------------------------------------------------------ progress and stops


def _age(store: Store, action_id: int, by: timedelta) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(RunbookAction).where(RunbookAction.id == action_id).values(updated_at=utcnow() - by)
        )


def test_interrupt_stale_marks_old_active_actions_and_leaves_fresh_and_final_ones(store: Store) -> None:
    incident_id = _incident(store)
    old_dry = _request(store, incident_id)
    old_run = _proposed(store, incident_id)
    store.actions.approve(old_run.id, BOB)
    fresh = _request(store, incident_id)
    old_proposed = _proposed(store, incident_id)
    old_done = _proposed(store, incident_id)
    store.actions.approve(old_done.id, BOB)
    store.actions.finish(old_done.id, OK)
    for action in (old_dry, old_run, old_proposed, old_done):
        _age(store, action.id, timedelta(hours=2))
    counts = {a.id: len(_events(store, a.id)) for a in (old_dry, old_run, fresh, old_proposed, old_done)}

    assert store.actions.interrupt_stale(timedelta(hours=1)) == 2
    states = {a.id: _state(store, a.id) for a in (old_dry, old_run, fresh, old_proposed, old_done)}
    assert states == {
        old_dry.id: "interrupted",
        old_run.id: "interrupted",
        fresh.id: "dry_running",
        old_proposed.id: "proposed",
        old_done.id: "succeeded",
    }
    for action, was in ((old_dry, "dry_running"), (old_run, "running")):
        event = _moved(store, action.id, counts[action.id], "interrupted", "alertsleuth:start-up")
        assert event.detail == {"was": was} and event.incident_id == incident_id
    for action in (fresh, old_proposed, old_done):
        assert len(_events(store, action.id)) == counts[action.id]
    assert store.actions.interrupt_stale(timedelta(hours=1)) == 0  # once only
    with pytest.raises(RunbookError, match="is interrupted"):
        store.actions.dry_run_done(old_dry.id, OK)


def test_progress_writes_output_only_while_the_step_is_active(store: Store) -> None:
    incident_id = _incident(store)
    action = _request(store, incident_id)
    store.actions.progress(action.id, "TASK [Write the marker]")
    got = store.actions.get(action.id)
    assert got is not None and got.dry_run == {"status": "running", "output": "TASK [Write the marker]"}
    assert got.run is None
    store.actions.dry_run_done(action.id, OK)
    store.actions.progress(action.id, "late output")  # proposed: nothing runs, nothing written
    got = store.actions.get(action.id)
    assert got is not None and got.dry_run == OK

    store.actions.approve(action.id, BOB)
    store.actions.progress(action.id, "PLAY [localhost]")
    got = store.actions.get(action.id)
    assert got is not None and got.run == {"status": "running", "output": "PLAY [localhost]"}
    assert got.dry_run == OK
    store.actions.finish(action.id, BAD)
    store.actions.progress(action.id, "after the end")
    got = store.actions.get(action.id)
    assert got is not None and got.run == BAD and got.state == "failed"
    store.actions.progress(987654, "no such action")  # nothing to write to, nothing raised
    kinds = [e.kind for e in _events(store, action.id)]
    assert kinds == ["run_requested", "dry_run", "approved", "run_finished"]
