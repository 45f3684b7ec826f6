"""The FastAPI application: settings in, routes out; clients and workers live in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from agent.ask import Asker
from agent.investigate import make_investigator
from server.context import AppContext
from server.delivery.outbox import Outbox
from server.metrics import Metrics
from server.routes import alerts, ask, health, incidents
from server.security import BodyLimitMiddleware
from server.settings import Settings
from server.store import Store
from server.worker import WorkerPool
from tools.prom import Prometheus

log = logging.getLogger("alertsleuth")

DESCRIPTION = """alertsleuth turns a Prometheus alert into an investigated, evidence-backed root-cause report.

Send alerts from Alertmanager (`/api/v1/webhook/alertmanager`) or from Prometheus directly
(`/api/v2/alerts`); read incidents and reports under `/api/v1`.
"""


def create_app(settings: Settings | None = None, *, start_workers: bool = True) -> FastAPI:
    settings = settings or Settings()
    holder: dict[str, AppContext] = {}

    def queue_depth() -> dict[str, int]:
        return holder["ctx"].store.queue_depth() if "ctx" in holder else {}

    def delivery_counts() -> dict[tuple[str, str], int]:
        return holder["ctx"].store.delivery_counts() if "ctx" in holder else {}

    metrics = Metrics(queue_depth, delivery_counts)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.database_url)
        prom = Prometheus(settings.prometheus_url, timeout=settings.prometheus_timeout)
        investigator = make_investigator(prom, settings.investigation(), settings.llm())
        outbox = Outbox(
            store,
            settings.delivery,
            metrics,
            external_url=settings.external_url,
            reports_dir=settings.reports_dir,
            workers=settings.delivery_workers,
            max_attempts=settings.delivery_max_attempts,
            backoff_seconds=settings.delivery_backoff_seconds,
            backoff_max_seconds=settings.delivery_backoff_max_seconds,
            poll_interval=settings.poll_interval,
        )
        pool = WorkerPool(
            store,
            investigator,
            metrics,
            workers=settings.workers,
            reports_dir=settings.reports_dir,
            max_attempts=settings.max_attempts,
            retry_backoff=settings.retry_backoff_seconds,
            lease_seconds=settings.lease_seconds,
            poll_interval=settings.poll_interval,
            outbox=outbox,
        )
        ctx = AppContext(
            settings, store, prom, investigator, metrics, pool, Asker(investigator, settings.llm()), outbox
        )
        holder["ctx"] = app.state.ctx = ctx
        if start_workers:
            pool.start()
            outbox.start()
        log.info(
            "alertsleuth ready",
            extra={
                "prometheus": settings.prometheus_url,
                "workers": settings.workers,
                "sinks": ",".join(outbox.sinks) or "none",
                "database": settings.database_url.split("@")[-1],
            },
        )
        try:
            yield
        finally:
            pool.stop()
            outbox.stop()
            prom.close()
            store.engine.dispose()

    app = FastAPI(title="alertsleuth", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        on_reject=lambda: metrics.requests_rejected.labels("too_large").inc(),
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        malformed = any(e["type"] == "json_invalid" for e in errors)
        metrics.requests_rejected.labels("malformed" if malformed else "invalid").inc()
        code = status.HTTP_400_BAD_REQUEST if malformed else status.HTTP_422_UNPROCESSABLE_CONTENT
        summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:10])
        return JSONResponse({"detail": summary, "errors": errors}, status_code=code)

    app.include_router(alerts.router)
    app.include_router(incidents.router)
    app.include_router(ask.router)
    app.include_router(health.router)
    return app
