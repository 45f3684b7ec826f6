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

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from server.chatops.service import ChatOps
from server.deps import get_services
from server.errors import status_of
from server.logs import log_rejected
from server.silences import Matcher, parse_duration, parse_matchers
from server.ui.routes import _incident_id, _message, _post_guard, _redirect, ui_actor
from server.ui.session import UISession
from tools.errors import RunbookError, SilenceError

router = APIRouter(include_in_schema=False)

SILENCE_ID = re.compile(r"[0-9a-fA-F-]{36}")  # Alertmanager's ids, as the API takes them
RUNBOOK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # the catalog's names (server/runbooks/catalog.py)
MAX_COMMENT = 1000  # characters of a silence's comment, as the API takes
MAX_REASON = 500  # characters of a denial's reason, as the API takes


Guarded = tuple[UISession, dict[str, str], ChatOps]


async def _guard(request: Request) -> Guarded | Response:
    """`_post_guard` (signed in, CSRF), then the ChatOps service (404 without the `chatops:` section)."""
    guarded = await _post_guard(request)
    if isinstance(guarded, Response):
        return guarded
    session, form = guarded
    chatops = get_services(request).chatops
    if chatops is None:
        return _message(
            request, session, 404, "Not found", "ChatOps is not configured (the chatops: section)."
        )
    return session, form, chatops


def _refused(request: Request, session: UISession, title: str, exc: Exception) -> Response:
    """The message page for a refused operation, with the API's status for `exc` (server/errors.py)."""
    code, detail = status_of(exc)
    log_rejected(request.url.path, code, detail[:300])
    return _message(request, session, code, title, detail)


def _no_incident(request: Request, session: UISession, incident_id: str) -> Response:
    return _message(request, session, 404, "Not found", f"There is no incident {incident_id[:40]}.")


def _not_found(request: Request, session: UISession, exc: LookupError) -> Response:
    """What ChatOps did not find (the incident went away, no such active silence): 404, in its words."""
    text = str(exc.args[0]) if exc.args else "Not found."
    return _message(request, session, 404, "Not found", text[:300])


async def _known_incident(request: Request, incident_id: str) -> int | None:
    number = _incident_id(incident_id)
    store = get_services(request).store
    if number is None or not await run_in_threadpool(store.incidents.exists, number):
        return None
    return number


@router.post("/ui/incidents/{incident_id}/silence")
async def silence(request: Request, incident_id: str) -> Response:
    guarded = await _guard(request)
    if isinstance(guarded, Response):
        return guarded
    session, form, chatops = guarded
    number = await _known_incident(request, incident_id)
    if number is None:
        return _no_incident(request, session, incident_id)
    text, comment = form.get("matchers", "").strip(), form.get("comment", "").strip()
    try:
        if len(comment) > MAX_COMMENT:
            raise ValueError(f"the comment is too long ({len(comment)} characters; at most {MAX_COMMENT})")
        duration = parse_duration(form.get("duration", ""), max_duration=chatops.config.max_silence_delta)
        matchers: list[Matcher] | None = parse_matchers(text) if text else None  # none: the labels
        actor = ui_actor(request, session)
        await run_in_threadpool(chatops.silence, number, actor, duration, matchers, comment)
    except LookupError as exc:
        return _not_found(request, session, exc)
    except (SilenceError, ValueError) as exc:
        return _refused(request, session, "Not silenced", exc)
    return _redirect(f"/ui/incidents/{number}#chatops")


@router.post("/ui/incidents/{incident_id}/silences/{silence_id}/expire")
async def expire_silence(request: Request, incident_id: str, silence_id: str) -> Response:
    guarded = await _guard(request)
    if isinstance(guarded, Response):
        return guarded
    session, _, chatops = guarded
    number = await _known_incident(request, incident_id)
    if number is None:
        return _no_incident(request, session, incident_id)
    if not SILENCE_ID.fullmatch(silence_id):
        return _message(request, session, 404, "Not found", "There is no such silence.")
    try:
        await run_in_threadpool(chatops.unsilence, number, ui_actor(request, session), silence_id)
    except LookupError as exc:
        return _not_found(request, session, exc)
    except SilenceError as exc:
        return _refused(request, session, "Not expired", exc)
    return _redirect(f"/ui/incidents/{number}#chatops")


@router.post("/ui/incidents/{incident_id}/runbooks/{name}")
async def propose(request: Request, incident_id: str, name: str) -> Response:
    guarded = await _guard(request)
    if isinstance(guarded, Response):
        return guarded
    session, _, chatops = guarded
    number = await _known_incident(request, incident_id)
    if number is None:
        return _no_incident(request, session, incident_id)
    if not RUNBOOK_NAME.fullmatch(name):
        return _message(request, session, 404, "Not found", "There is no such runbook.")
    try:
        action = await run_in_threadpool(chatops.propose, number, name, ui_actor(request, session))
    except LookupError as exc:
        return _not_found(request, session, exc)
    except RunbookError as exc:
        return _refused(request, session, "Not proposed", exc)
    return _redirect(f"/ui/incidents/{number}#action-{action.id}")


async def _decide(request: Request, action_id: str, approve: bool) -> Response:
    guarded = await _guard(request)
    if isinstance(guarded, Response):
        return guarded
    session, form, chatops = guarded
    number = _incident_id(action_id)
    store = get_services(request).store
    action = await run_in_threadpool(store.actions.get, number) if number else None
    if action is None:
        return _message(request, session, 404, "Not found", f"There is no runbook action {action_id[:40]}.")
    actor = ui_actor(request, session)
    reason = form.get("reason", "").strip()
    try:
        if approve:
            await run_in_threadpool(chatops.approve, action.id, actor)
        elif len(reason) > MAX_REASON:
            raise ValueError(f"the reason is too long ({len(reason)} characters; at most {MAX_REASON})")
        else:
            await run_in_threadpool(chatops.deny, action.id, actor, reason)
    except LookupError as exc:
        return _not_found(request, session, exc)
    except (RunbookError, ValueError) as exc:
        return _refused(request, session, "Not approved" if approve else "Not denied", exc)
    return _redirect(f"/ui/incidents/{action.incident_id}#action-{action.id}")


@router.post("/ui/actions/{action_id}/approve")
async def approve(request: Request, action_id: str) -> Response:
    return await _decide(request, action_id, approve=True)


@router.post("/ui/actions/{action_id}/deny")
async def deny(request: Request, action_id: str) -> Response:
    return await _decide(request, action_id, approve=False)
