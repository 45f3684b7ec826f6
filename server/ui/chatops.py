"""The web UI's ChatOps forms: silences and runbook actions from an incident's page ("Silences and
runbooks", shown when the `chatops:` section is configured; server/ui/views.py `ChatOpsPanel`).

    POST /ui/incidents/{id}/silence                       silence it in Alertmanager: duration, matchers
                                                          (empty: the incident's labels), comment
    POST /ui/incidents/{id}/silences/{silence_id}/expire  expire one of its silences
    POST /ui/incidents/{id}/runbooks/{name}               propose a runbook that fits it: its dry run starts
    POST /ui/actions/{action_id}/approve                  approve a proposed action: it runs
    POST /ui/actions/{action_id}/deny                     deny it (a reason)

The same operations as chat and the API (server/chatops/service.py), acting as "ui:<user>": the user the
session was signed in as (the basic-auth user, or "token" for the bearer token), else the user of the
Authorization header the request came with, else "anonymous" when the UI has no authentication. Runbook
approvers name UI users as "ui:<user>" (or "ui:*"). Each form needs the session's CSRF token
(`_post_guard`: 403 otherwise). A done operation answers 303 to the incident's page; a refused one the
message page with the status the API would answer (server/errors.py `status_of`): 404 (no such
incident, active silence or action, or no `chatops:` section), 409 (a runbook that does not fit, an
action not waiting for approval, an approver not listed), 422 (a duration, matchers, comment or reason
that cannot be used), 400 (Alertmanager refused the silence) or 503 (no Alertmanager answered).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from server.chatops.service import ChatOps
from server.db.chatops import Actor
from server.deps import get_services
from server.errors import status_of
from server.logs import log_rejected
from server.silences import Matcher, parse_duration, parse_matchers
from server.ui.routes import _incident_id, _message, _not_found, _post_guard, _redirect, ui_actor
from server.ui.session import UISession
from tools.errors import RunbookError, SilenceError

router = APIRouter(include_in_schema=False)

SILENCE_ID = re.compile(r"[0-9a-fA-F-]{36}")  # Alertmanager's ids, as the API takes them
RUNBOOK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # the catalog's names (server/runbooks/catalog.py)
MAX_COMMENT = 1000  # characters of a silence's comment, as the API takes
MAX_REASON = 500  # characters of a denial's reason, as the API takes


@dataclass(frozen=True)
class _Form:
    """A form let through: its session, its fields, the ChatOps service and who acts ("ui:<user>")."""

    session: UISession
    fields: dict[str, str]
    chatops: ChatOps
    actor: Actor


async def _guard(request: Request) -> _Form | Response:
    """`_post_guard` (signed in, CSRF), then the ChatOps service (404 without the `chatops:` section)."""
    guarded = await _post_guard(request)
    if isinstance(guarded, Response):
        return guarded
    session, fields = guarded
    chatops = get_services(request).chatops
    if chatops is None:
        return _not_found(request, session, "ChatOps is not configured (the chatops: section).")
    return _Form(session, fields, chatops, ui_actor(request, session))


async def _perform(request: Request, form: _Form, refused: str, operation: Callable[[], str]) -> Response:
    """Run `operation` in a worker thread; it answers where to go next (303 there). What it does not
    find (LookupError: the incident went away, no such active silence) is 404 in its words; a refusal
    (a SilenceError or RunbookError, a ValueError for a field that cannot be used) is the message page
    titled `refused`, with the API's status for it (server/errors.py)."""
    try:
        where = await run_in_threadpool(operation)
    except LookupError as exc:
        text = str(exc.args[0]) if exc.args else "Not found."
        return _not_found(request, form.session, text[:300])
    except (SilenceError, RunbookError, ValueError) as exc:
        code, detail = status_of(exc)
        log_rejected(request.url.path, code, detail[:300])
        return _message(request, form.session, code, refused, detail)
    return _redirect(where)


async def _on_incident(
    request: Request, incident_id: str, refused: str, operation: Callable[[_Form, int], str]
) -> Response:
    """A form about an incident: guarded, the incident known (404 otherwise), then `_perform`."""
    form = await _guard(request)
    if isinstance(form, Response):
        return form
    number = _incident_id(incident_id)
    store = get_services(request).store
    if number is None or not await run_in_threadpool(store.incidents.exists, number):
        return _not_found(request, form.session, f"There is no incident {incident_id[:40]}.")
    known = number
    return await _perform(request, form, refused, lambda: operation(form, known))


@router.post("/ui/incidents/{incident_id}/silence")
async def silence(request: Request, incident_id: str) -> Response:
    def operation(form: _Form, number: int) -> str:
        text, comment = form.fields.get("matchers", "").strip(), form.fields.get("comment", "").strip()
        if len(comment) > MAX_COMMENT:
            raise ValueError(f"the comment is too long ({len(comment)} characters; at most {MAX_COMMENT})")
        max_duration = form.chatops.config.max_silence_delta
        duration = parse_duration(form.fields.get("duration", ""), max_duration=max_duration)
        matchers: list[Matcher] | None = parse_matchers(text) if text else None  # none: the labels
        form.chatops.silence(number, form.actor, duration, matchers, comment)
        return f"/ui/incidents/{number}#chatops"

    return await _on_incident(request, incident_id, "Not silenced", operation)


@router.post("/ui/incidents/{incident_id}/silences/{silence_id}/expire")
async def expire_silence(request: Request, incident_id: str, silence_id: str) -> Response:
    def operation(form: _Form, number: int) -> str:
        if not SILENCE_ID.fullmatch(silence_id):
            raise LookupError("There is no such silence.")
        form.chatops.unsilence(number, form.actor, silence_id)
        return f"/ui/incidents/{number}#chatops"

    return await _on_incident(request, incident_id, "Not expired", operation)


@router.post("/ui/incidents/{incident_id}/runbooks/{name}")
async def propose(request: Request, incident_id: str, name: str) -> Response:
    def operation(form: _Form, number: int) -> str:
        if not RUNBOOK_NAME.fullmatch(name):
            raise LookupError("There is no such runbook.")
        action = form.chatops.propose(number, name, form.actor)
        return f"/ui/incidents/{number}#action-{action.id}"

    return await _on_incident(request, incident_id, "Not proposed", operation)


async def _decide(request: Request, action_id: str, approve: bool) -> Response:
    form = await _guard(request)
    if isinstance(form, Response):
        return form
    number = _incident_id(action_id)
    store = get_services(request).store
    action = await run_in_threadpool(store.actions.get, number) if number else None
    if action is None:
        return _not_found(request, form.session, f"There is no runbook action {action_id[:40]}.")
    found = action

    def operation() -> str:
        reason = form.fields.get("reason", "").strip()
        if approve:
            form.chatops.approve(found.id, form.actor)
        elif len(reason) > MAX_REASON:
            raise ValueError(f"the reason is too long ({len(reason)} characters; at most {MAX_REASON})")
        else:
            form.chatops.deny(found.id, form.actor, reason)
        return f"/ui/incidents/{found.incident_id}#action-{found.id}"

    return await _perform(request, form, "Not approved" if approve else "Not denied", operation)


@router.post("/ui/actions/{action_id}/approve")
async def approve(request: Request, action_id: str) -> Response:
    return await _decide(request, action_id, approve=True)


@router.post("/ui/actions/{action_id}/deny")
async def deny(request: Request, action_id: str) -> Response:
    return await _decide(request, action_id, approve=False)
