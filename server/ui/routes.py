"""The web UI's routes: server-rendered pages of incidents and their reports, sign-in, two actions.

    GET  /                                   303 to /ui/incidents
    GET  /ui/login, POST /ui/login           sign in with the API's credentials (token, or user and password)
    POST /ui/logout                          end the session
    GET  /ui/incidents                       the incidents, filtered (label=name=value, repeatable: all
                                             must match) and paged
    GET  /ui/incidents/{id}                  one incident: its report, its silences and runbooks (with
                                             the `chatops:` section), then its timeline
    POST /ui/incidents/{id}/investigate      re-investigate (as POST /api/v1/incidents/{id}/investigate)
    POST /ui/incidents/{id}/deliveries/{d}/retry   send a failed delivery again
    POST /ui/incidents/{id}/silence..., /runbooks/{name}, /ui/actions/{a}/approve|deny
                                             silences and runbook actions, with the `chatops:` section
                                             (server/ui/chatops.py)
    /ui/ask...                               questions, streamed or not (server/ui/ask.py)
    /ui/settings...                          routes, sinks, settings, read-only (server/ui/settings.py)

None is in the OpenAPI document. With authentication configured (server/settings.py), a page needs a
signed-in session (server/ui/session.py) or an Authorization header the API would take; without, it
answers 303 to /ui/login. A POST also needs the CSRF token of the session its cookie holds (403
otherwise). A wrong sign-in is 401 with the form again. Every answer carries the CSP of `HEADERS`,
but for the pages that load the UI's one script (`static/ask.js`: the ask page and an incident's page),
whose `ASK_CSP` adds `script-src 'self'` and `connect-src 'self'`.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, RedirectResponse

from agent.markup import environment
from server.db.chatops import Actor
from server.deps import Services, get_services
from server.logs import log_rejected
from server.payloads import MAX_ID
from server.routes.actions import api_actor
from server.security import credentials_ok
from server.ui.session import UISession, clear_session, read_session, set_session
from server.ui.throttle import FailureThrottle
from server.ui.views import TEMPLATE_GLOBALS, incident_detail, incident_rows

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
ASK_CSP = CSP + "; script-src 'self'; connect-src 'self'"
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PAGE_SIZES = (25, 50, 100)
LABEL_FILTER = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*=.{0,250}", re.DOTALL)
MAX_LABEL_FILTERS = 10  # label filters at once, as the API takes
SAFE_NEXT = re.compile(r"/ui/[A-Za-z0-9/_.~%?=&+-]{0,400}")
ID = re.compile(r"[1-9][0-9]{0,18}")

router = APIRouter(include_in_schema=False)

_env = environment(HERE / "templates")
_env.globals.update(TEMPLATE_GLOBALS)


def install(app: FastAPI, *routers: APIRouter) -> None:
    """Add the UI's routes, those of `routers` (its other pages) and its static files (the stylesheet,
    ask.js) to the app; failed sign-ins are throttled per app (`app.state.sign_ins`)."""
    app.state.sign_ins = FailureThrottle()
    app.include_router(router)
    for other in routers:
        app.include_router(other)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")


# ---------------------------------------------------------------------------------------------------
# answers


def _page(
    name: str,
    ctx: dict[str, Any],
    request: Request,
    session: UISession | None,
    *,
    status: int = 200,
    issue: bool = False,
    csp: str = CSP,
) -> HTMLResponse:
    services = get_services(request)
    ctx = {
        "auth_enabled": services.settings.auth_enabled,
        "session": session,
        "csrf": session.csrf_token() if session else "",
        "refresh": None,
        "scripted": csp == ASK_CSP,  # the page loads static/ask.js, which then does its refresh
        **ctx,
    }
    headers = HEADERS if csp == CSP else {**HEADERS, "Content-Security-Policy": csp}
    response = HTMLResponse(_env.get_template(name).render(ctx), status_code=status, headers=headers)
    if issue and session is not None:
        set_session(response, request, session)
    return response


def _redirect(url: str, request: Request | None = None, session: UISession | None = None) -> Response:
    response = RedirectResponse(url, status_code=303, headers=HEADERS)
    if request is not None and session is not None:
        set_session(response, request, session)
    return response


def _message(request: Request, session: UISession | None, status: int, title: str, text: str) -> Response:
    return _page("message.html.j2", {"title": title, "text": text}, request, session, status=status)


def _not_found(request: Request, session: UISession | None, text: str) -> Response:
    """404: the message page saying what is not there ("There is no incident 7.")."""
    return _message(request, session, 404, "Not found", text)


def _safe_next(value: str | None) -> str:
    return value if value and SAFE_NEXT.fullmatch(value) and "//" not in value else "/ui/incidents"


def _login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/ui/login?" + urlencode({"next": _safe_next(target)})


# ---------------------------------------------------------------------------------------------------
# who is asking


def _who(request: Request, services: Services) -> tuple[UISession, bool] | None:
    """The request's session and whether it is new (its cookie to set), when the request may see the
    UI; None when it must sign in first."""
    session = read_session(request)
    settings = services.settings
    allowed = (
        not settings.auth_enabled
        or (session is not None and session.signed_in)
        or ("authorization" in request.headers and credentials_ok(settings, request.headers["authorization"]))
    )
    if not allowed:
        return None
    if session is None:
        return UISession.new(signed_in=False), True  # binds the CSRF tokens of this browser's forms
    return session, False


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each); {} for anything else."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    try:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=20)
    except ValueError:
        return {}
    return {k: v[0] for k, v in fields.items() if v}


def _page_guard(request: Request) -> tuple[Services, UISession, bool] | Response:
    """For a page: the services, the session and whether it is new (its cookie to set), or the 303 to
    sign-in when the request may not see the UI."""
    services = get_services(request)
    who = _who(request, services)
    if who is None:
        return _redirect(_login_url(request))
    return services, *who


async def _post_guard(
    request: Request, read: Callable[[Request], Awaitable[dict[str, str]]] | None = None
) -> tuple[UISession, dict[str, str]] | Response:
    """For a state-changing POST: signed in (else 303 to sign-in) and the session's CSRF token (403).
    The fields are read by `read` (default: the urlencoded form)."""
    services = get_services(request)
    who = _who(request, services)
    if who is None:
        return _redirect("/ui/login")
    session, issued = who
    form = await (read or _form)(request)
    if issued or not session.csrf_ok(form.get("csrf")):
        log_rejected(request.url.path, 403, "missing or invalid CSRF token")
        return _message(request, None, 403, "Forbidden", "The form expired or did not come from this site.")
    return session, form


def ui_actor(request: Request, session: UISession) -> Actor:
    """Who acts through the UI (silences, runbooks: server/ui/chatops.py): "ui:<user>" of the signed-in
    session, else of the Authorization header the request was let in with, else "ui:anonymous" (no
    authentication configured)."""
    if not get_services(request).settings.auth_enabled:
        return Actor("ui", "anonymous")
    if session.signed_in:
        return Actor("ui", session.user)
    return Actor("ui", api_actor(request).user)


def _incident_id(value: str) -> int | None:
    return int(value) if ID.fullmatch(value) and int(value) <= MAX_ID else None


# ---------------------------------------------------------------------------------------------------
# sign-in


@router.get("/")
async def root() -> Response:
    return _redirect("/ui/incidents")


@router.get("/ui", name="ui")
async def ui_root() -> Response:
    return _redirect("/ui/incidents")


@router.get("/ui/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    services = get_services(request)
    target = _safe_next(next)
    session = read_session(request)
    if not services.settings.auth_enabled or (session is not None and session.signed_in):
        return _redirect(target)
    issue = session is None
    session = session or UISession.new(signed_in=False)
    return _page("login.html.j2", _login_ctx(services, target, ""), request, session, issue=issue)


def _login_ctx(services: Services, target: str, error: str) -> dict[str, Any]:
    s = services.settings
    return {
        "title": "Sign in",
        "next": target,
        "error": error,
        "token_login": s.auth_token is not None,
        "basic_login": bool(s.basic_auth_username and s.basic_auth_password),
    }


@router.post("/ui/login")
async def login(request: Request) -> Response:
    services = get_services(request)
    session = read_session(request)
    form = await _form(request)
    target = _safe_next(form.get("next"))
    if session is None or not session.csrf_ok(form.get("csrf")):
        log_rejected(request.url.path, 403, "missing or invalid CSRF token")
        return _message(request, None, 403, "Forbidden", "The sign-in form expired: open it again.")
    if not services.settings.auth_enabled:
        return _redirect(target)
    address = request.client.host if request.client else "?"
    sign_ins: FailureThrottle = request.app.state.sign_ins
    wait = sign_ins.retry_after(address, time.monotonic())
    if wait is not None:
        services.metrics.requests_rejected.labels("throttled").inc()
        log_rejected(request.url.path, 429, "too many failed sign-ins")
        page = _message(
            request, None, 429, "Too many attempts", f"Too many failed sign-ins: try again in {wait:.0f} s."
        )
        page.headers["Retry-After"] = str(int(wait + 0.999))
        return page
    token, user = form.get("token", "").strip(), form.get("username", "")
    if token:
        header = f"Bearer {token}"
    elif user:
        header = "Basic " + base64.b64encode(f"{user}:{form.get('password', '')}".encode()).decode()
    else:
        header = ""
    if header and credentials_ok(services.settings, header):
        sign_ins.succeeded(address)
        signed = UISession.new(signed_in=True, user="token" if token else user)  # who acts: "ui:<user>"
        return _redirect(target, request, signed)  # a new id: no session fixation
    sign_ins.failed(address, time.monotonic())
    services.metrics.requests_rejected.labels("unauthorized").inc()
    log_rejected(request.url.path, 401, "missing or invalid credentials")
    ctx = _login_ctx(services, target, "Wrong credentials.")
    return _page("login.html.j2", ctx, request, session, status=401)


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    guarded = await _post_guard(request)
    if isinstance(guarded, Response):
        return guarded
    response = _redirect("/ui/login")
    clear_session(response, request)
    return response


# ---------------------------------------------------------------------------------------------------
# pages


@router.get("/ui/incidents")
async def incidents_page(request: Request) -> Response:
    seen = _page_guard(request)
    if isinstance(seen, Response):
        return seen
    services, session, issue = seen
    qp = request.query_params
    status = qp.get("status") if qp.get("status") in ("firing", "resolved") else None
    alertname = (qp.get("alertname") or "").strip()[:255] or None
    text = (qp.get("q") or "").strip()[:200] or None
    problems: list[str] = []
    kept, labels = _label_filters(qp.getlist("label"), problems)
    limit = int(qp["limit"]) if qp.get("limit", "").isdigit() and int(qp["limit"]) in PAGE_SIZES else 50
    offset_raw = qp.get("offset", "")
    offset = min(int(offset_raw), MAX_ID) if offset_raw.isdigit() and len(offset_raw) < 20 else 0
    rows, total = await run_in_threadpool(
        incident_rows, services.store, status, alertname, limit, offset, text, labels
    )
    filters = {"status": status, "alertname": alertname, "q": text, "label": kept, "limit": limit}

    def link(to: int) -> str:
        given = {k: v for k, v in filters.items() if v}
        return "/ui/incidents?" + urlencode({**given, "offset": to}, doseq=True)

    ctx = {
        "title": "Incidents",
        "rows": rows,
        "total": total,
        "offset": offset,
        "limit": limit,
        "filters": filters,
        "problems": problems,
        "page_sizes": PAGE_SIZES,
        "max_labels": MAX_LABEL_FILTERS,
        "prev": link(max(0, offset - limit)) if offset > 0 else None,
        "next": link(offset + limit) if offset + limit < total else None,
        "refresh": 15,
    }
    return _page("incidents.html.j2", ctx, request, session, issue=issue)


def _label_filters(given: list[str], problems: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The `label=name=value` filters kept (as given, blanks dropped, at most MAX_LABEL_FILTERS) and
    their (name, value) pairs; what is refused is said in `problems`."""
    kept: list[str] = []
    for raw in given:
        label = raw.strip()
        if not label or label in kept:
            continue
        if not LABEL_FILTER.fullmatch(label):
            problem = "A label filter is name=value, with a Prometheus label name: ignored."
        elif len(kept) == MAX_LABEL_FILTERS:
            problem = f"At most {MAX_LABEL_FILTERS} label filters: the others are ignored."
        else:
            kept.append(label)
            continue
        if problem not in problems:
            problems.append(problem)
    return kept, [(k.partition("=")[0], k.partition("=")[2]) for k in kept]


@router.get("/ui/incidents/{incident_id}")
async def incident_page(request: Request, incident_id: str) -> Response:
    seen = _page_guard(request)
    if isinstance(seen, Response):
        return seen
    services, session, issue = seen
    number = _incident_id(incident_id)
    chatops = services.chatops
    detail = await run_in_threadpool(incident_detail, services.store, number, chatops) if number else None
    if detail is None:
        shown = incident_id[:40]
        response = _not_found(request, session, f"There is no incident {shown}.")
        if issue:
            set_session(response, request, session)
        return response
    ctx = {
        "title": f"#{detail.incident.id} {detail.incident.alertname}",
        "d": detail,
        "llm": services.settings.llm_configured,
    }
    if detail.chatops is not None:
        ctx["actor"] = str(ui_actor(request, session))
    if detail.busy or (detail.chatops is not None and detail.chatops.busy):
        ctx["refresh"] = 5  # until the investigation, or a runbook's dry run or run, ends
    return _page("incident.html.j2", ctx, request, session, issue=issue, csp=ASK_CSP)


@router.post("/ui/incidents/{incident_id}/investigate")
async def reinvestigate(request: Request, incident_id: str) -> Response:
    guarded = await _post_guard(request)
    if isinstance(guarded, Response):
        return guarded
    session, _ = guarded
    services = get_services(request)
    number = _incident_id(incident_id)
    if number is None or not await run_in_threadpool(services.store.jobs.requeue, number):
        return _not_found(request, session, f"There is no incident {incident_id[:40]}.")
    services.workers.wake()
    return _redirect(f"/ui/incidents/{number}#timeline")


@router.post("/ui/incidents/{incident_id}/deliveries/{delivery_id}/retry")
async def retry_delivery(request: Request, incident_id: str, delivery_id: str) -> Response:
    guarded = await _post_guard(request)
    if isinstance(guarded, Response):
        return guarded
    session, _ = guarded
    services = get_services(request)
    number, delivery = _incident_id(incident_id), _incident_id(delivery_id)
    if number is None or delivery is None:
        return _not_found(request, session, "There is no such delivery.")
    d, requeued = await run_in_threadpool(services.store.deliveries.retry, number, delivery)
    if d is None:
        return _not_found(request, session, "There is no such delivery.")
    if not requeued:
        return _message(
            request, session, 409, "Not retried", f"Delivery {delivery} is {d.state}, not failed."
        )
    services.outbox.wake()
    return _redirect(f"/ui/incidents/{number}#timeline")
