"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from server.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


class Readiness(BaseModel):
    status: str  # ready | not ready
    checks: dict[str, object]  # database, prometheus: "ok" or what is wrong; llm: what is configured


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready: the database or Prometheus is not"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready to investigate: database reachable, Prometheus reachable; reports whether an LLM is set."""
    checks: dict[str, object] = {}
    try:
        await run_in_threadpool(services.store.ping)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    prom_ok = await run_in_threadpool(services.prometheus.ready)
    checks["prometheus"] = "ok" if prom_ok else f"unreachable: {services.settings.prometheus_url}"
    s = services.settings
    checks["llm"] = {
        "configured": s.llm_configured,
        "provider": s.llm_provider,
        "writer": "llm" if s.llm_configured else "offline",
    }
    ready = checks["database"] == "ok" and prom_ok
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(services: ServicesDep) -> Response:
    """alertsleuth's own metrics in the Prometheus text format."""
    body = await run_in_threadpool(generate_latest, services.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
