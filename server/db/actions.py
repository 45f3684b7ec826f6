"""Runbook actions: one runbook proposed for an incident, through its dry run, approval and run.

    dry_running ──▶ proposed ──approve──▶ running ──▶ succeeded | failed
         │              └──deny──▶ denied
         └──▶ dry_run_failed ──deny──▶ denied
    dry_running | running ──(its process stopped)──▶ interrupted

Every move is a conditional UPDATE from the state it leaves (two approvers at once: one wins, the other
is told the action is no longer waiting), written in one transaction with its audit event. Who may
approve is decided by the caller (server/chatops/); this module only keeps the states."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from agent.models import utcnow
from server.db.chatops import Actor, audit
from server.db.database import Database
from server.db.models import RunbookAction
from tools.errors import RunbookError

ACTIVE = ("dry_running", "running")
FINAL = ("succeeded", "failed", "denied", "dry_run_failed", "interrupted")


class Actions:
    def __init__(self, db: Database) -> None:
        self.db = db

    def request(
        self,
        incident_id: int,
        runbook: str,
        actor: Actor,
        *,
        reply_to: dict[str, Any],
        variables: dict[str, Any],
        variables_digest: str,
        command: list[str],
    ) -> RunbookAction:
        """A new action, its dry run about to start."""
        with self.db.session() as s:
            row = RunbookAction(
                incident_id=incident_id,
                runbook=runbook,
                state="dry_running",
                requested_by=str(actor)[:255],
                reply_to=reply_to,
                variables=variables,
                variables_digest=variables_digest,
                command=command,
            )
            s.add(row)
            s.flush()
            detail = {"runbook": runbook, "variables": variables, "variables_digest": variables_digest}
            audit(s, actor, "run_requested", detail, incident_id=incident_id, action_id=row.id)
            s.expunge(row)
            return row

    def dry_run_done(self, action_id: int, result: dict[str, Any]) -> RunbookAction:
        ok = result.get("status") == "successful"
        return self._move(
            action_id,
            ("dry_running",),
            "proposed" if ok else "dry_run_failed",
            Actor("alertsleuth", "runner"),
            "dry_run",
            _outcome(result),
            dry_run=result,
        )

    def approve(self, action_id: int, approver: Actor) -> RunbookAction:
        """proposed → running, approved by `approver` (already checked against the allow-list)."""
        return self._move(
            action_id, ("proposed",), "running", approver, "approved", {}, approved_by=str(approver)[:255]
        )

    def deny(self, action_id: int, actor: Actor, reason: str) -> RunbookAction:
        return self._move(
            action_id, ("proposed", "dry_run_failed"), "denied", actor, "denied", {"reason": reason[:500]}
        )

    def finish(self, action_id: int, result: dict[str, Any]) -> RunbookAction:
        state = "succeeded" if result.get("status") == "successful" else "failed"
        return self._move(
            action_id,
            ("running",),
            state,
            Actor("alertsleuth", "runner"),
            "run_finished",
            _outcome(result),
            run=result,
        )

    def progress(self, action_id: int, output: str) -> None:
        """The output so far of the dry run or run in progress (the incident page shows it as it grows);
        nothing once the action has moved on."""
        with self.db.session() as s:
            row = s.get(RunbookAction, action_id)
            if row is None or row.state not in ACTIVE:
                return
            step = "dry_run" if row.state == "dry_running" else "run"
            setattr(row, step, {**(getattr(row, step) or {}), "status": "running", "output": output})

    def refuse(self, action_id: int | None, incident_id: int | None, actor: Actor, why: str) -> None:
        """Someone was refused (not allowed, not the second approver, ...): recorded, nothing moves."""
        with self.db.session() as s:
            audit(s, actor, "refused", {"why": why[:500]}, incident_id=incident_id, action_id=action_id)

    def interrupt_stale(self, older_than: timedelta) -> int:
        """Actions left dry-running or running by a process that stopped (not updated for `older_than`,
        longer than any runbook's timeout) become `interrupted`: they will not finish by themselves."""
        cutoff = utcnow() - older_than
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    select(RunbookAction).where(
                        RunbookAction.state.in_(ACTIVE), RunbookAction.updated_at < cutoff
                    )
                )
            )
            for row in rows:
                audit(
                    s,
                    Actor("alertsleuth", "start-up"),
                    "interrupted",
                    {"was": row.state},
                    incident_id=row.incident_id,
                    action_id=row.id,
                )
                row.state = "interrupted"
            return len(rows)

    def get(self, action_id: int) -> RunbookAction | None:
        with self.db.session() as s:
            row = s.get(RunbookAction, action_id)
            if row is not None:
                s.expunge(row)
            return row

    def of_incident(self, incident_id: int) -> list[RunbookAction]:
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    select(RunbookAction)
                    .where(RunbookAction.incident_id == incident_id)
                    .order_by(RunbookAction.id)
                )
            )
            s.expunge_all()
            return rows

    def _move(
        self,
        action_id: int,
        sources: tuple[str, ...],
        target: str,
        actor: Actor,
        kind: str,
        detail: dict[str, Any],
        **values: Any,
    ) -> RunbookAction:
        with self.db.session() as s:
            res = s.execute(
                update(RunbookAction)
                .where(RunbookAction.id == action_id, RunbookAction.state.in_(sources))
                .values(state=target, updated_at=utcnow(), **values)
                .execution_options(synchronize_session=False)
            )
            moved = (res.rowcount or 0) == 1  # type: ignore[attr-defined]
            row = s.get(RunbookAction, action_id)
            if row is None:
                raise RunbookError(f"no runbook action {action_id}")
            if not moved:
                raise RunbookError(f"action {action_id} is {row.state}, not {' or '.join(sources)}")
            audit(s, actor, kind, detail, incident_id=row.incident_id, action_id=action_id)
            s.refresh(row)
            s.expunge(row)
            return row


def _outcome(result: dict[str, Any]) -> dict[str, Any]:
    """What the audit keeps of a dry run or run: never its output, only the output's digest."""
    keep = ("status", "rc", "output_digest", "command", "changed", "started_at", "finished_at")
    return {k: result.get(k) for k in keep}
