"""ChatOps through the API: silences, runbook actions (dry run, approval, run) and the audit trail.

The same operations as chat (server/chatops/service.py). Whoever holds the API's credentials may
silence and propose; approving needs the actor among the runbook's approvers: "api:<basic user>", or
"api:token" with a bearer token ("api:*" lists everyone signed in to the API). The UI acts as
"ui:<user>" through the same operations.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from server.chatops.service import ChatOps
from server.db.chatops import Actor
from server.db.models import AuditEvent, RunbookAction, SilenceRow
from server.deps import ServicesDep
from server.openapi import answers
from server.payloads import MAX_ID
from server.routes.lookup import found
from server.security import GuardedRoute
from server.silences import Matcher, parse_duration, parse_matchers

router = APIRouter(tags=["chatops"], route_class=GuardedRoute)

IncidentId = Annotated[int, Path(ge=1, le=MAX_ID, description="the incident's id")]
ActionId = Annotated[int, Path(ge=1, le=MAX_ID, description="the runbook action's id")]


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duration: str = Field(min_length=1, max_length=32, description='"2h", "30m", "1d"')
    matchers: str | None = Field(
        None, max_length=4000, description='e.g. `alertname="X", instance=~"web-.*"`; default: the labels'
    )
    comment: str = Field("", max_length=1000)


class SilenceOut(BaseModel):
    silence_id: str = Field(description="Alertmanager's id")
    matchers: list[dict[str, Any]]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    expired_at: datetime | None
    expired_by: str | None


class ProposeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    runbook: str = Field(min_length=1, max_length=64)


class DenyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=500)


class RunbookFitOut(BaseModel):
    name: str
    description: str
    why: str


class ActionOut(BaseModel):
    id: int
    incident_id: int
    runbook: str
    state: str = Field(
        description="dry_running | proposed (waiting for approval) | dry_run_failed | running | succeeded "
        "| failed | denied | interrupted"
    )
    requested_by: str
    approved_by: str | None
    variables: dict[str, Any] = Field(description="the labels used and the variables, secrets as ••••")
    variables_digest: str = Field(description="sha256 of the variables, secrets included")
    dry_run: dict[str, Any] | None = Field(description="status, rc, output, output_digest, command, ...")
    run: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class AuditOut(BaseModel):
    id: int
    at: datetime
    incident_id: int | None
    action_id: int | None
    actor: str
    via: str
    kind: str
    detail: dict[str, Any]


def _chatops(services: ServicesDep) -> ChatOps:
    if services.chatops is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "ChatOps is not configured (the chatops: section)")
    return services.chatops


def api_actor(request: Request) -> Actor:
    """Who is calling: the basic-auth user, "token" for a bearer token, "anonymous" without auth."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        return Actor("api", user[:200] or "anonymous")
    return Actor("api", "token" if scheme.lower() == "bearer" else "anonymous")


def _silence(row: SilenceRow) -> SilenceOut:
    return SilenceOut.model_validate(row, from_attributes=True)


def _action(row: RunbookAction) -> ActionOut:
    return ActionOut.model_validate(row, from_attributes=True)


async def _known(services: ServicesDep, incident_id: int) -> None:
    """404 unless the incident exists."""
    await found(f"no incident {incident_id}", services.store.incidents.exists, incident_id)


@router.get(
    "/api/v1/incidents/{incident_id}/silences", response_model=list[SilenceOut], responses=answers(404)
)
async def list_silences(incident_id: IncidentId, services: ServicesDep) -> list[SilenceOut]:
    """The silences alertsleuth made for the incident, oldest first."""
    _chatops(services)
    await _known(services, incident_id)
    rows = await run_in_threadpool(services.store.chatops.silences, incident_id)
    return [_silence(r) for r in rows]


@router.post(
    "/api/v1/incidents/{incident_id}/silences",
    status_code=status.HTTP_201_CREATED,
    response_model=SilenceOut,
    responses=answers(404, 503),
)
async def create_silence(
    incident_id: IncidentId, body: SilenceIn, request: Request, services: ServicesDep
) -> SilenceOut:
    """Silence the incident in Alertmanager (its labels unless `matchers` are given)."""
    chatops = _chatops(services)
    await _known(services, incident_id)
    try:
        duration = parse_duration(body.duration, max_duration=chatops.config.max_silence_delta)
        matchers: list[Matcher] | None = parse_matchers(body.matchers) if body.matchers else None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    row = await run_in_threadpool(
        chatops.silence, incident_id, api_actor(request), duration, matchers, body.comment
    )
    return _silence(row)


@router.delete(
    "/api/v1/incidents/{incident_id}/silences/{silence_id}",
    response_model=SilenceOut,
    responses=answers(404, 503),
)
async def expire_silence(
    incident_id: IncidentId,
    silence_id: Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{36}$", description="Alertmanager's id")],
    request: Request,
    services: ServicesDep,
) -> SilenceOut:
    """Expire one of the incident's silences in Alertmanager."""
    chatops = _chatops(services)
    await _known(services, incident_id)
    try:
        row = await run_in_threadpool(chatops.unsilence, incident_id, api_actor(request), silence_id)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc.args[0])) from None
    return _silence(row)


@router.get(
    "/api/v1/incidents/{incident_id}/runbooks", response_model=list[RunbookFitOut], responses=answers(404)
)
async def fitting_runbooks(incident_id: IncidentId, services: ServicesDep) -> list[RunbookFitOut]:
    """The runbooks of the catalog that fit the incident's root causes (or its alert), best first."""
    chatops = _chatops(services)
    await _known(services, incident_id)
    return [RunbookFitOut(**f) for f in await run_in_threadpool(chatops.runbooks, incident_id)]


@router.post(
    "/api/v1/incidents/{incident_id}/actions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ActionOut,
    responses=answers(404, 409),
)
async def propose_action(
    incident_id: IncidentId, body: ProposeIn, request: Request, services: ServicesDep
) -> ActionOut:
    """Propose a runbook for the incident: its dry run starts; it runs only once approved."""
    chatops = _chatops(services)
    await _known(services, incident_id)
    row = await run_in_threadpool(chatops.propose, incident_id, body.runbook, api_actor(request))
    return _action(row)


@router.get("/api/v1/incidents/{incident_id}/actions", response_model=list[ActionOut], responses=answers(404))
async def incident_actions(incident_id: IncidentId, services: ServicesDep) -> list[ActionOut]:
    _chatops(services)
    await _known(services, incident_id)
    return [_action(r) for r in await run_in_threadpool(services.store.actions.of_incident, incident_id)]


@router.get("/api/v1/actions/{action_id}", response_model=ActionOut, responses=answers(404))
async def get_action(action_id: ActionId, services: ServicesDep) -> ActionOut:
    _chatops(services)
    return _action(await found(f"no runbook action {action_id}", services.store.actions.get, action_id))


@router.post(
    "/api/v1/actions/{action_id}/approve",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ActionOut,
    responses=answers(404, 409),
)
async def approve_action(action_id: ActionId, request: Request, services: ServicesDep) -> ActionOut:
    """Approve a proposed action (the caller must be among its approvers): it runs."""
    chatops = _chatops(services)
    await get_action(action_id, services)
    return _action(await run_in_threadpool(chatops.approve, action_id, api_actor(request)))


@router.post("/api/v1/actions/{action_id}/deny", response_model=ActionOut, responses=answers(404, 409))
async def deny_action(
    action_id: ActionId, body: DenyIn, request: Request, services: ServicesDep
) -> ActionOut:
    chatops = _chatops(services)
    await get_action(action_id, services)
    return _action(await run_in_threadpool(chatops.deny, action_id, api_actor(request), body.reason))


@router.get("/api/v1/audit", response_model=list[AuditOut], responses=answers(404))
async def audit_trail(
    services: ServicesDep,
    incident_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    action_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditOut]:
    """The audit trail (append-only), oldest first: of one incident, one action, or all."""
    _chatops(services)
    rows: list[AuditEvent] = await run_in_threadpool(
        lambda: services.store.chatops.audit_trail(incident_id=incident_id, action_id=action_id, limit=limit)
    )
    return [AuditOut.model_validate(r, from_attributes=True) for r in rows]
