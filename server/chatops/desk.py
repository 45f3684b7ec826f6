"""The runbook desk: proposing a runbook for an incident, its dry run, the approval, the run.

    propose(incident, runbook, requester)   the runbook must fit the incident (Catalog.best_fits); its
                                            variables are resolved from the fit's labels, the action
                                            recorded (dry_running) and its dry run started
    dry run finished                        proposed (waiting for approval) or dry_run_failed
    approve(action, approver)               the approver must be listed for the runbook (its `approvers`,
                                            else the catalog's `default_approvers`), and not the
                                            requester when the runbook wants a second approver; the
                                            variables must be those the dry run used (same digest)
    run finished                            succeeded or failed, its output and exit status recorded

Nothing runs without an approval: the only way to `RunbookRunner.execute(dry_run=False)` is `approve`,
and only from the `proposed` state (a conditional update: two approvals at once run it once). Dry runs
and runs go on in a bounded pool of this process; their output is written to the action as it grows
(every second), and `notify` is called after each step so the requester hears of it where they asked.
An action left running by a process that stopped is marked `interrupted` at the next start.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from agent.models import RunbookSuggestion
from agent.texts import said
from server.db.actions import Actions
from server.db.chatops import Actor
from server.db.models import RunbookAction
from server.runbooks import Catalog, ResolvedVars, Runbook, RunbookRunner, RunResult, resolve_vars
from tools.errors import RunbookError

log = logging.getLogger("alertsleuth.runbooks")

FLUSH_SECONDS = 1.0  # how often the output so far is written to the action
STALE = timedelta(seconds=3600 + 300)  # longer than any runbook's timeout


class CatalogMenu:
    """The catalog as the investigation asks it (agent/runbooks.py `RunbookMenu`): the report lists
    what fits; the LLM writer may pick one of those, nothing else."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def fitting(
        self, alertname: str, root_causes: Sequence[Mapping[str, str]], labels: Mapping[str, str]
    ) -> list[RunbookSuggestion]:
        return [
            RunbookSuggestion(name=f.runbook.name, description=f.runbook.description, why=f.reason)
            for f in self.catalog.best_fits(alertname, root_causes, labels)
        ]


def may_approve(approvers: Sequence[str], approver: Actor) -> bool:
    """Whether `approver` is listed: "slack:U999" names one user, "api:*" everyone signed in to the API."""
    return str(approver) in approvers or f"{approver.via}:*" in approvers


class RunbookDesk:
    def __init__(
        self,
        catalog: Catalog,
        runner: RunbookRunner,
        actions: Actions,
        *,
        max_running: int = 4,
        notify: Callable[[RunbookAction], None] = lambda action: None,
    ) -> None:
        self.catalog = catalog
        self.runner = runner
        self.actions = actions
        self.notify = notify
        self.pool = ThreadPoolExecutor(max_workers=max_running, thread_name_prefix="runbook")

    def start(self) -> None:
        # A run killed with its process leaves its variables file (secrets, mode 0600) behind: removed.
        for env in self.runner.work_dir.glob("*/env"):
            shutil.rmtree(env, ignore_errors=True)
        interrupted = self.actions.interrupt_stale(STALE)
        if interrupted:
            log.warning("runbook actions interrupted by a stop", extra={"actions": interrupted})

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ the steps

    def propose(
        self,
        incident_id: int,
        name: str,
        requester: Actor,
        *,
        alertname: str,
        root_causes: Sequence[Mapping[str, str]],
        labels: Mapping[str, str],
        reply_to: dict[str, Any] | None = None,
    ) -> RunbookAction:
        """Record the action and start its dry run. `RunbookError` when the runbook is not in the
        catalog, does not fit this incident, or its variables cannot be resolved: nothing recorded."""
        runbook = self.catalog.get(name)
        fits = self.catalog.best_fits(alertname, root_causes, labels)
        fit = next((f for f in fits if f.runbook.name == name), None)
        if fit is None:
            raise said(RunbookError, "chatops", "does_not_fit", runbook=repr(name), id=incident_id)
        resolved = resolve_vars(runbook, fit.labels)
        action = self.actions.request(
            incident_id,
            name,
            requester,
            reply_to=reply_to or {},
            variables={"labels": dict(fit.labels), "values": dict(resolved.public), "fit": fit.reason},
            variables_digest=resolved.digest,
            command=list(resolved.argv),
        )
        self.pool.submit(self._step, action.id, runbook, resolved, True)
        return action

    def approve(self, action_id: int, approver: Actor) -> RunbookAction:
        """Approve a proposed action and start its run. `RunbookError` (with the refusal recorded) when
        the approver is not listed, is the requester of a runbook that wants a second approver, or the
        action is not waiting for approval."""
        action = self._get(action_id)
        runbook = self.catalog.get(action.runbook)
        refused = self._refusal(action, runbook, approver)
        if refused is not None:
            self.actions.refuse(action.id, action.incident_id, approver, str(refused))
            raise refused
        resolved = resolve_vars(runbook, action.variables.get("labels") or {})
        if resolved.digest != action.variables_digest:
            refused = said(RunbookError, "chatops", "variables_changed", action=action_id)
            self.actions.refuse(action.id, action.incident_id, approver, str(refused))
            raise refused
        try:
            action = self.actions.approve(action_id, approver)
        except RunbookError as exc:  # another approval got there first
            self.actions.refuse(action.id, action.incident_id, approver, str(exc))
            raise
        self.pool.submit(self._step, action.id, runbook, resolved, False)
        return action

    def deny(self, action_id: int, actor: Actor, reason: str = "") -> RunbookAction:
        action = self._get(action_id)
        runbook = self.catalog.get(action.runbook)
        if not may_approve(self.catalog.approvers_of(runbook), actor) and str(actor) != action.requested_by:
            refused = said(RunbookError, "chatops", "may_not_deny", actor=str(actor), runbook=action.runbook)
            self.actions.refuse(action.id, action.incident_id, actor, str(refused))
            raise refused
        denied = self.actions.deny(action_id, actor, reason)
        self.notify(denied)
        return denied

    def _refusal(self, action: RunbookAction, runbook: Runbook, approver: Actor) -> RunbookError | None:
        approvers = self.catalog.approvers_of(runbook)
        if not may_approve(approvers, approver):
            return said(RunbookError, "chatops", "not_approver", approver=str(approver), runbook=runbook.name)
        if runbook.second_approver and str(approver) == action.requested_by:
            return said(
                RunbookError, "chatops", "second_approver", approver=str(approver), runbook=runbook.name
            )
        if action.state != "proposed":
            return said(RunbookError, "chatops", "not_waiting", action=action.id, state=action.state)
        return None

    def _get(self, action_id: int) -> RunbookAction:
        action = self.actions.get(action_id)
        if action is None:
            raise said(RunbookError, "chatops", "no_action", action=action_id)
        return action

    # ------------------------------------------------------------------ the pool's work

    def _step(self, action_id: int, runbook: Runbook, resolved: ResolvedVars, dry_run: bool) -> None:
        flusher = _Flusher(lambda text: self.actions.progress(action_id, text))
        try:
            result = self.runner.execute(runbook, resolved, dry_run=dry_run, on_output=flusher.line)
            outcome = _stored(result)
        except RunbookError as exc:
            outcome = {"status": "error", "rc": None, "output": str(exc), "output_digest": "", "command": []}
        except Exception as exc:  # a bug must not leave the action running forever
            log.exception("runbook step crashed", extra={"action_id": action_id})
            outcome = {
                "status": "error",
                "rc": None,
                "output": repr(exc)[:500],
                "output_digest": "",
                "command": [],
            }
        try:
            done = (
                self.actions.dry_run_done(action_id, outcome)
                if dry_run
                else self.actions.finish(action_id, outcome)
            )
        except RunbookError:
            log.exception("runbook action moved away while it ran", extra={"action_id": action_id})
            return
        self.notify(done)


def _stored(result: RunResult) -> dict[str, Any]:
    out = asdict(result)
    out["started_at"] = result.started_at.isoformat()
    out["finished_at"] = result.finished_at.isoformat()
    return out


class _Flusher:
    """Collects output lines and hands the text so far to `write` at most every FLUSH_SECONDS."""

    def __init__(self, write: Callable[[str], None], limit: int = 64_000) -> None:
        self.write = write
        self.limit = limit
        self.lines: list[str] = []
        self.size = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        with self.lock:
            self.lines.append(text)
            self.size += len(text)
            while self.size > self.limit and len(self.lines) > 1:
                self.size -= len(self.lines.pop(0))
            now = time.monotonic()
            if now - self.last < FLUSH_SECONDS:
                return
            self.last = now
            text = "\n".join(self.lines)
        try:
            self.write(text)
        except Exception:  # the output so far is a courtesy: the final result is written regardless
            log.warning("could not write a runbook's output so far", exc_info=True)
