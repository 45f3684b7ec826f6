"""Alert intake: Alertmanager's webhook and Prometheus' own /api/v2/alerts."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import Response
from pydantic import BaseModel

from agent.models import AlertInfo, utcnow
from server.db.intake import IngestRequest
from server.deps import Services, get_services
from server.openapi import RETRY_AFTER, answers
from server.payloads import AlertmanagerWebhook, PostableAlert
from server.security import GuardedRoute

router = APIRouter(tags=["alerts"], route_class=GuardedRoute)
BUSY = answers(
    503,
    s503={
        "description": "nothing was stored; send again after Retry-After (Alertmanager does): the store "
        "stayed locked past ALERTSLEUTH_INTAKE_TIMEOUT_SECONDS, ALERTSLEUTH_MAX_BACKLOG investigations "
        "are queued and this notification would queue another, or ALERTSLEUTH_INTAKE_MAX_PENDING "
        "notifications wait to be written",
        "headers": RETRY_AFTER,
    },
)


class Accepted(BaseModel):
    notification_id: int
    incidents_created: list[int]
    deduplicated: list[int]
    resolved: list[int]
    reinvestigating: list[int] = []  # repeats whose report was older than ALERTSLEUTH_REFRESH_SECONDS


async def _accept(
    services: Services,
    source: str,
    body: bytes,
    group_key: str,
    alerts: list[AlertInfo],
    receiver: str = "",
) -> Response:
    """The notification written (with the others waiting) and the 202 answer. Answered as a Response
    serialized here: the routes declare `Accepted` for the API's schema, and FastAPI would validate
    the model it is given once more before serializing it."""
    for a in alerts:
        services.metrics.alerts_received.labels(source, a.status).inc()
    # Persisted (with its queue job) before we answer: an accepted alert is never lost. The writer
    # commits it with the others waiting (group commit); a full backlog or store refuses it (503).
    request = IngestRequest(
        source,
        body.decode("utf-8", "replace"),
        group_key,
        alerts,
        receiver,
        on_resolved=lambda a: services.outbox.planner.for_resolution(a.labels),  # routed once, here
    )
    result = await services.intake.write(request)
    services.metrics.alerts_deduplicated.inc(len(result.deduplicated))
    if result.created or result.refreshed:
        services.workers.wake()
    if result.resolved:
        services.outbox.wake()
    services.accepted_log.log(
        {
            "source": source,
            "notification": result.notification_id,
            "incidents_created": result.created,
            "deduplicated": result.deduplicated,
            "resolved": result.resolved,
            "refreshed": result.refreshed,
        },
        {
            "incidents_created": len(result.created),
            "deduplicated": len(result.deduplicated),
            "resolved": len(result.resolved),
            "refreshed": len(result.refreshed),
        },
    )
    accepted = Accepted(
        notification_id=result.notification_id,
        incidents_created=result.created,
        deduplicated=result.deduplicated,
        resolved=result.resolved,
        reinvestigating=result.refreshed,
    )
    return Response(accepted.model_dump_json(), status.HTTP_202_ACCEPTED, media_type="application/json")


@router.post(
    "/api/v1/webhook/alertmanager",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=BUSY,
    summary="Alertmanager webhook (version 4)",
)
async def alertmanager_webhook(payload: AlertmanagerWebhook, request: Request) -> Response:
    """Point an Alertmanager `webhook_configs` receiver here (`send_resolved: true`).

    One incident per alert fingerprint and startsAt; repeats are deduplicated; resolved notifications
    mark the incident resolved. The body is stored before the 202 answer.
    """
    alerts = [a.to_alert() for a in payload.alerts]
    body = await request.body()
    services = get_services(request)  # not a dependency: FastAPI solves each one per request
    return await _accept(services, "alertmanager", body, payload.groupKey, alerts, payload.receiver)


@router.post(
    "/api/v2/alerts",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=BUSY,
    summary="Prometheus alert list (Alertmanager API v2 shape)",
)
async def prometheus_alerts(payload: list[PostableAlert], request: Request) -> Response:
    """Prometheus can send here directly (`alerting.alertmanagers` with `path_prefix` pointing at
    alertsleuth). An alert whose endsAt is in the past is resolved. The labels in
    ALERTSLEUTH_DEDUP_IGNORE_LABELS (HA replicas' external labels) are dropped, so both replicas of a
    pair make one incident."""
    now = utcnow()
    services = get_services(request)
    alerts = [a.to_alert(now, services.settings.dedup_ignore_labels) for a in payload]
    return await _accept(services, "prometheus", await request.body(), "", alerts)
