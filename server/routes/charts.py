"""Signed chart links: a report's chart as PNG without the API's credentials, for chat platforms that
fetch images by URL (Slack's image blocks, DingTalk's markdown images). The signature in the link
(server/chart_links.py) is the capability; without ALERTSLEUTH_CHART_LINK_KEY every link is 404."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Response, status

from server.chart_links import verify
from server.deps import ServicesDep
from server.openapi import Problem, answers
from server.routes.incidents import ChartKey, chart_png

router = APIRouter(tags=["reports"])  # no GuardedRoute: the signature is the credential


@router.get(
    "/charts/{report_id}/{key}.png",
    response_class=Response,
    responses={
        200: {
            "description": "the chart as PNG, drawn from the report's evidence",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        },
        403: {"model": Problem, "description": "the signature is missing or wrong, or the link expired"},
        **answers(
            404,
            422,
            s404={
                "description": "chart links are off (no ALERTSLEUTH_CHART_LINK_KEY), no such report, "
                "or the report has no chart of that key"
            },
        ),
    },
)
async def get_signed_chart(
    report_id: str,
    key: ChartKey,
    services: ServicesDep,
    exp: str | None = Query(None, description="when the link stops working, in Unix seconds"),
    sig: str | None = Query(None, description="the link's signature"),
) -> Response:
    """One chart of a report as PNG, by a signed expiring link that alertsleuth put in a chat message;
    no credentials are needed (or accepted)."""
    secret = services.settings.chart_link_key
    if secret is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "chart links are not enabled")
    verdict = verify(secret.get_secret_value(), report_id, key, exp, sig)
    if verdict == "expired":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "link expired")
    if verdict != "ok":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "bad signature")
    return await chart_png(services, report_id, key)
