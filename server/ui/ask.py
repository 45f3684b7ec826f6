"""The web UI's ask pages: questions answered as `POST /api/v1/ask` and `/api/v1/ask/stream` answer them,
with the session cookie and CSRF token instead of the API's credentials.

    GET  /ui/ask[?session=ID][&incident=ID]  the ask page: the conversation so far, the question box
    POST /ui/ask                             without JavaScript: the page again, with the answer
    POST /ui/ask/stream                      for static/ask.js: the API stream's server-sent events

The two POSTs take an urlencoded form (or a JSON object) of `question`, `incident_id`, `session_id` and
`csrf`: without the session's CSRF token they are 403, without a session 303 to sign in, as every POST
of the UI. The flow is the API's (server/routes/ask.py: `prepare`, `answer`, `answer_events`); a failure
is the status and detail server/errors.py gives it, on the page or as the stream's `error` event (an
unknown session or incident: that one event, with its status, before anything is answered).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import StreamingResponse

from agent.ask import NO_LLM
from server.deps import Services, get_services
from server.errors import status_of
from server.routes.ask import AskIn, AskOut, answer, answer_events, prepare
from server.ui.routes import (
    ASK_CSP,
    HEADERS,
    _form,
    _incident_id,
    _message,
    _page,
    _page_guard,
    _post_guard,
)
from server.ui.session import UISession, set_session

router = APIRouter(include_in_schema=False)

SESSION_ID_MAX = 32


@dataclass
class Said:
    """One message of a conversation, as the page shows it."""

    role: str  # user | assistant
    content: str
    queries: list[dict[str, Any]] = field(default_factory=list)  # evidence: id, title, promql, error


def _said(msg: Any) -> Said:
    queries = [q for q in (msg.queries or []) if isinstance(q, dict)]
    return Said(msg.role, msg.content, queries)


def conversation(services: Services, session_id: str | None) -> tuple[int | None, list[Said]] | None:
    """The incident and the messages of an ask session; None when there is no such session."""
    if not session_id or len(session_id) > SESSION_ID_MAX:
        return None
    found = services.store.ask_sessions.get(session_id)
    if found is None:
        return None
    sess, msgs = found
    return sess.incident_id, [_said(m) for m in msgs]


def ask_ctx(services: Services) -> dict[str, Any]:
    """What every page with a question box needs: whether an LLM answers, and what can be asked without."""
    return {"llm": services.settings.llm_configured, "no_llm": NO_LLM}


async def _fields(request: Request) -> dict[str, str]:
    """The form's fields, or a JSON object's (its string and integer values)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            doc = json.loads(await request.body())
        except ValueError:
            return {}
        if not isinstance(doc, dict):
            return {}
        return {
            str(k): str(v) for k, v in doc.items() if isinstance(v, str | int) and not isinstance(v, bool)
        }
    return await _form(request)


async def _guard(request: Request) -> tuple[UISession, dict[str, str]] | Response:
    """As routes._post_guard, for a form or a JSON body."""
    return await _post_guard(request, _fields)


def _body(fields: dict[str, str]) -> AskIn | str:
    """The API's request body from the form's fields, or what is wrong with them."""
    incident_raw = fields.get("incident_id", "").strip()
    incident = _incident_id(incident_raw) if incident_raw else None
    if incident_raw and incident is None:
        return f"There is no incident {incident_raw[:40]}."
    try:
        return AskIn(
            question=fields.get("question", "").strip(),
            incident_id=incident,
            session_id=fields.get("session_id", "").strip() or None,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return f"The question cannot be asked: {problems}."


def _failure(exc: Exception) -> tuple[int, str]:
    """The status and detail of a failure of `prepare` or `answer`, as the API would answer it."""
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    if isinstance(exc, RequestValidationError):
        return 422, "; ".join(str(e.get("msg", "")) for e in exc.errors()) or "invalid question"
    return status_of(exc)


def _ask_page(
    request: Request,
    session: UISession,
    *,
    issue: bool = False,
    status: int = 200,
    session_id: str | None = None,
    incident_id: int | None = None,
    messages: list[Said] | None = None,
    error: str | None = None,
    question: str = "",
) -> Response:
    services = get_services(request)
    ctx = {
        "title": "Ask" + (f" about #{incident_id}" if incident_id else ""),
        "session_id": session_id or "",
        "incident_id": incident_id,
        "messages": messages or [],
        "ask_error": error,
        "question": question,
        **ask_ctx(services),
    }
    return _page("ask.html.j2", ctx, request, session, status=status, issue=issue, csp=ASK_CSP)


@router.get("/ui/ask")
async def ask_page(request: Request) -> Response:
    seen = _page_guard(request)
    if isinstance(seen, Response):
        return seen
    services, session, issue = seen
    qp = request.query_params
    incident = _incident_id(qp.get("incident", "")) if qp.get("incident") else None
    wanted = (qp.get("session") or "").strip()
    if wanted:
        found = await run_in_threadpool(conversation, services, wanted)
        if found is None:
            response = _message(
                request, session, 404, "Not found", f"There is no conversation {wanted[:40]}."
            )
            if issue:
                set_session(response, request, session)
            return response
        incident_of, messages = found
        return _ask_page(
            request, session, issue=issue, session_id=wanted, incident_id=incident_of, messages=messages
        )
    return _ask_page(request, session, issue=issue, incident_id=incident)


def _ask_now(services: Services, body: AskIn) -> AskOut:
    history, report = prepare(services, body)
    return answer(services, body, history, report)


@router.post("/ui/ask")
async def ask_form(request: Request) -> Response:
    """Without JavaScript: answer as POST /api/v1/ask does, then show the whole conversation."""
    guarded = await _guard(request)
    if isinstance(guarded, Response):
        return guarded
    session, fields = guarded
    services = get_services(request)
    body = _body(fields)
    question = fields.get("question", "")[:4000]
    kept_session = (fields.get("session_id") or "")[:SESSION_ID_MAX] or None
    kept_incident = _incident_id(fields.get("incident_id", "").strip())
    if isinstance(body, str):
        return _ask_page(
            request,
            session,
            status=422,
            error=body,
            question=question,
            session_id=kept_session,
            incident_id=kept_incident,
        )
    try:
        out = await run_in_threadpool(_ask_now, services, body)
    except Exception as exc:  # noqa: BLE001 - every failure is shown on the page
        code, detail = _failure(exc)
        before = await run_in_threadpool(conversation, services, body.session_id)
        messages = before[1] if before else []
        return _ask_page(
            request,
            session,
            status=code,
            error=detail,
            question=question,
            messages=messages,
            session_id=kept_session,
            incident_id=kept_incident,
        )
    found = await run_in_threadpool(conversation, services, out.session_id)
    messages = found[1] if found else []
    return _ask_page(
        request, session, session_id=out.session_id, incident_id=body.incident_id, messages=messages
    )


def _one_event(code: int, detail: str) -> StreamingResponse:
    event = f"event: error\ndata: {json.dumps({'status': code, 'detail': detail}, ensure_ascii=False)}\n\n"

    async def once() -> Any:
        yield event

    return StreamingResponse(
        once(), status_code=code, media_type="text/event-stream", headers=_stream_headers()
    )


def _stream_headers() -> dict[str, str]:
    return {**HEADERS, "Content-Security-Policy": ASK_CSP, "X-Accel-Buffering": "no"}


@router.post("/ui/ask/stream")
async def ask_stream(request: Request) -> Response:
    """For static/ask.js: the events of POST /api/v1/ask/stream, from the same code."""
    guarded = await _guard(request)
    if isinstance(guarded, Response):
        return guarded
    services = get_services(request)
    body = _body(guarded[1])
    if isinstance(body, str):
        return _one_event(422, body)
    try:
        history, report = await run_in_threadpool(prepare, services, body)
    except (HTTPException, RequestValidationError) as exc:
        return _one_event(*_failure(exc))
    events = answer_events(services, body, history, report)
    return StreamingResponse(events, media_type="text/event-stream", headers=_stream_headers())
