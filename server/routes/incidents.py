"""Incidents and their reports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StringConstraints

from agent.charts import charts_of
from agent.history import HistorySummary
from agent.models import Report
from server.archive import report_output
from server.db import Delivery, Incident, Job
from server.db.incidents import FIRST_NOTIFICATIONS, LAST_NOTIFICATIONS
from server.deps import Services, ServicesDep
from server.openapi import answers
from server.payloads import MAX_ID
from server.routes.lookup import found, present
from server.security import GuardedRoute

router = APIRouter(tags=["incidents"], route_class=GuardedRoute)

# An id outside 1..2^63-1 (what the database stores) is refused with 422 naming the parameter, like any
# other invalid parameter; an id in range that names nothing is 404.
IncidentId = Annotated[int, Path(ge=1, le=MAX_ID, description="the incident's id")]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID, description="the delivery's id")]
# A chart's key (agent/charts.py): "signal", "cause-1", "breakdown-ip_region", a repeat suffixed "-2".
ChartKey = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9_-]{1,200}$",
        description="the chart's key: `signal`, `cause-<rank>` or `breakdown-<labels>`",
    ),
]
# `name=value`: a Prometheus label name, then any value.
LabelFilter = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*=", max_length=300)]


class JobOut(BaseModel):
    id: int
    state: str = Field(
        description="queued | running | done | failed | attached (a storm member's job, following its lead's)"
    )
    attempts: int
    lead_job_id: int | None = Field(
        default=None, description="a storm member's job: the lead's job it follows"
    )
    priority: int = Field(default=2, description="0 first: from the alert's severity label")
    not_before: datetime
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class TicketOut(BaseModel):
    sink: str
    key: str
    url: str
    closed_at: datetime | None = Field(default=None, description="when the sink closed it on resolution")
    closing_comment: str | None = Field(default=None, description="the comment it was closed with")


class DeliveryOut(BaseModel):
    id: int
    sink: str
    event: str  # firing | update | resolved
    state: str  # pending | sending | done | failed
    attempts: int
    not_before: datetime
    detail: str | None  # what happened, when done ("created #12 with 2 attachments")
    last_error: str | None
    change: str | None
    report_id: str | None
    created_at: datetime
    sent_at: datetime | None


class NotificationOut(BaseModel):
    """A notification (webhook post) that touched the incident."""

    id: int
    received_at: datetime
    source: str = Field(description="alertmanager | prometheus: the endpoint it came to")
    receiver: str = Field(description="the Alertmanager receiver that sent it; empty from Prometheus")
    group_key: str
    alerts: int = Field(description="alerts in the whole notification")
    status: str = Field(description="firing | resolved: the status of this incident's alert in it")
    outcome: str = Field(
        description="what it did to the incident: created | deduplicated (a repeat) | resolved | refreshed "
        "(a repeat that queued a new investigation)"
    )


class IncidentOut(BaseModel):
    id: int
    alertname: str
    fingerprint: str
    status: str
    starts_at: datetime
    resolved_at: datetime | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str | None
    notifications: int
    investigation: str
    report_id: str | None
    report_url: str | None
    error: str | None
    storm_lead_id: int | None = Field(
        default=None,
        description="in an alert storm (many alerts of one rule and group investigated once): the "
        "incident whose investigation and report are this one's too (its own id when it led it)",
    )
    created_at: datetime
    updated_at: datetime


class IncidentDetail(IncidentOut):
    jobs: list[JobOut]
    report_files: dict[str, str]
    tickets: list[TicketOut]
    deliveries: list[DeliveryOut]
    received_notifications: list[NotificationOut] = Field(
        description=f"the notifications that touched it, oldest first: the first {FIRST_NOTIFICATIONS} and "
        f"the last {LAST_NOTIFICATIONS} (none for those stored before this list was kept)"
    )
    received_notifications_left_out: int = Field(
        description="how many more touched it, between the first and the last ones listed"
    )


class IncidentPage(BaseModel):
    total: int
    items: list[IncidentOut]


def _out(inc: Incident) -> dict[str, Any]:
    data = {k: getattr(inc, k) for k in IncidentOut.model_fields if hasattr(inc, k)}
    data["report_url"] = f"/api/v1/reports/{inc.report_id}" if inc.report_id else None
    return data


def _job(job: Job) -> JobOut:
    return JobOut(**{k: getattr(job, k) for k in JobOut.model_fields})


def _delivery(d: Delivery) -> DeliveryOut:
    return DeliveryOut(**{k: getattr(d, k) for k in DeliveryOut.model_fields})


@router.get("/api/v1/incidents", response_model=IncidentPage)
async def list_incidents(
    services: ServicesDep,
    status_: Literal["firing", "resolved"] | None = Query(None, alias="status"),
    alertname: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_ID),
    q: str | None = Query(
        None,
        max_length=200,
        description="full-text search of the incidents' current good reports (summary, root causes, "
        "labels, the report's text): every word must match; blank is no filter, and a query without a "
        "letter or digit matches nothing",
    ),
    label: list[LabelFilter] = Query(
        [], max_length=10, description="`name=value`, repeatable: the alert has each of these labels"
    ),
) -> IncidentPage:
    """Incidents, newest first, filtered by status, alert name, report text (`q`) and alert labels."""
    labels = [(pair.partition("=")[0], pair.partition("=")[2]) for pair in label]
    rows, total = await run_in_threadpool(
        lambda: services.store.incidents.page(status_, alertname, limit, offset, text=q, labels=labels)
    )
    return IncidentPage(total=total, items=[IncidentOut(**_out(r)) for r in rows])


@router.get("/api/v1/incidents/{incident_id}", response_model=IncidentDetail, responses=answers(404))
async def get_incident(incident_id: IncidentId, services: ServicesDep) -> IncidentDetail:
    record = await found(f"no incident {incident_id}", services.store.incidents.detail, incident_id)
    return IncidentDetail(
        **_out(record.incident),
        jobs=[_job(j) for j in record.jobs],
        report_files=record.report_files,
        tickets=[
            TicketOut(
                sink=t.sink, key=t.key, url=t.url, closed_at=t.closed_at, closing_comment=t.closing_comment
            )
            for t in record.tickets
        ],
        deliveries=[_delivery(d) for d in record.deliveries],
        received_notifications=[NotificationOut(**vars(n)) for n in record.notifications],
        received_notifications_left_out=record.notifications_left_out,
    )


@router.get("/api/v1/incidents/{incident_id}/similar", response_model=HistorySummary, responses=answers(404))
async def similar_incidents(
    incident_id: IncidentId,
    services: ServicesDep,
    limit: int = Query(5, ge=1, le=50, description="at most this many similar incidents"),
) -> HistorySummary:
    """The incidents before this one most like it (same root cause, overlapping causes, same alert, then
    other alerts reading the same metrics), and how often its alert fired. Compared on what its current
    good report found; without one, on its alert alone."""

    def find() -> HistorySummary | None:
        like = services.store.history.likeness(incident_id)
        return services.store.history.similar(like, limit) if like is not None else None

    return await found(f"no incident {incident_id}", find)


@router.post(
    "/api/v1/incidents/{incident_id}/investigate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IncidentDetail,
    responses=answers(404),
)
async def reinvestigate(incident_id: IncidentId, services: ServicesDep) -> IncidentDetail:
    """Queue a new investigation of an incident (after a failure, or to refresh the report)."""
    await found(f"no incident {incident_id}", services.store.jobs.requeue, incident_id)
    services.workers.wake()
    return await get_incident(incident_id, services)


@router.post(
    "/api/v1/incidents/{incident_id}/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses=answers(
        404,
        409,
        s404={"description": "no such delivery"},
        s409={"description": "the delivery has not failed"},
    ),
)
async def retry_delivery(
    incident_id: IncidentId, delivery_id: DeliveryId, services: ServicesDep
) -> DeliveryOut:
    """Send a failed delivery again, with a fresh set of attempts. Ticket sinks comment on or close the
    ticket they already opened: a retry never opens a second one."""
    maybe, requeued = await run_in_threadpool(services.store.deliveries.retry, incident_id, delivery_id)
    d = present(maybe, f"no delivery {delivery_id} for incident {incident_id}")
    if not requeued:
        raise HTTPException(status.HTTP_409_CONFLICT, f"delivery {delivery_id} is {d.state}, not failed")
    services.outbox.wake()
    return _delivery(d)


@router.get(
    "/api/v1/reports/{report_id}",
    tags=["reports"],
    responses={
        200: {
            "model": Report,
            "description": "the report in the format asked for",
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
        },
        **answers(404),
    },
)
async def get_report(
    report_id: str,
    services: ServicesDep,
    format: Literal["json", "md", "html"] = "json",
) -> Response:
    """The report as JSON (the stable contract), Markdown (`?format=md`) or HTML (`?format=html`),
    showing the tickets opened for its incident."""
    row, tickets = await found(f"no report {report_id}", services.store.reports.get, report_id)
    shown = await run_in_threadpool(report_output, row, tickets)
    if format == "md":
        return Response(shown.markdown, media_type="text/markdown; charset=utf-8")
    if format == "html":
        return Response(shown.html, media_type="text/html; charset=utf-8")
    return Response(shown.json, media_type="application/json")


@router.get(
    "/api/v1/reports/{report_id}/charts/{key}.png",
    tags=["reports"],
    response_class=Response,
    responses={
        200: {
            "description": "the chart as PNG, drawn from the report's evidence",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        },
        **answers(404, s404={"description": "no such report, or the report has no chart of that key"}),
    },
)
async def get_report_chart(report_id: str, key: ChartKey, services: ServicesDep) -> Response:
    """One chart of a report as PNG: `signal` (the alert's signal), `cause-<rank>` (a root cause against
    the rest), `breakdown-<labels>` (one row per value); the keys are those of the report's HTML page."""
    return await chart_png(services, report_id, key)


async def chart_png(services: Services, report_id: str, key: str) -> Response:
    """The PNG of chart `key` of report `report_id`; 404 naming what is missing. Shared with the signed
    chart links (server/routes/charts.py)."""
    row, _ = await found(f"no report {report_id}", services.store.reports.get, report_id)

    def draw() -> bytes | None:
        charts = charts_of(Report.model_validate_json(row.body), "png")
        return next((c.data for c in charts if c.key == key and isinstance(c.data, bytes)), None)

    png = await found(f"report {report_id} has no chart {key}", draw)
    return Response(png, media_type="image/png")
