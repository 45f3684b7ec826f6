"""The FastAPI application: settings in, routes out; clients and workers live in the lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from agent.ask import Asker
from agent.investigator import make_investigator
from server.archive import restore_archive
from server.chatops.desk import CatalogMenu
from server.chatops.service import ChatOps
from server.db import Store
from server.delivery.outbox import Outbox
from server.deps import Services
from server.docs import install_docs
from server.errors import install_error_handlers
from server.intake_process import IntakeProcess
from server.intake_writer import IntakeWriter
from server.metrics import Metrics
from server.openapi import document_security
from server.routes import actions, alerts, ask, charts, chat, health, incidents
from server.security import BodyLimitMiddleware
from server.settings import Settings
from server.ui import install as install_ui
from server.worker import WorkerPool

log = logging.getLogger("alertsleuth")

DESCRIPTION = """alertsleuth turns a Prometheus alert into an investigated, evidence-backed root-cause report.

Send alerts from Alertmanager (`/api/v1/webhook/alertmanager`) or from Prometheus directly
(`/api/v2/alerts`); read incidents and reports under `/api/v1`.
"""


def _backfill_history(store: Store) -> None:
    """At start-up: index the good reports stored before the history index existed (server/db/history.py).
    A failure is logged, never fatal: the reports stay unsearchable until the next start."""
    try:
        indexed = store.history.backfill()
    except Exception:
        log.exception(
            "cannot index the reports stored before the history index; tried again at the next start"
        )
        return
    if indexed:
        log.info("history index backfilled", extra={"reports_indexed": indexed})


ROLES = ("server", "worker")


def _waker(pool: WorkerPool, outbox: Outbox) -> Callable[[], None]:
    """Wake the investigations and the deliveries: ChatOps queued one or the other."""

    def wake() -> None:
        pool.wake()
        outbox.wake()

    return wake


def create_app(
    settings: Settings | None = None, *, start_workers: bool = True, role: str = "server"
) -> FastAPI:
    """The application. `role`: "server" answers webhooks, the API and the UI (and investigates and
    delivers unless `start_workers` is False: `alertsleuth serve --no-workers`, replicas that only take
    notifications); "worker" only investigates and delivers, answering /healthz, /readyz and /metrics
    (`alertsleuth worker`). Replicas and workers share one database (PostgreSQL)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    start_workers = start_workers or role == "worker"
    settings = settings or Settings()
    holder: dict[str, Services] = {}

    def queue_depth() -> dict[str, int]:
        return holder["services"].store.jobs.depth() if "services" in holder else {}

    def delivery_counts() -> dict[tuple[str, str], int]:
        return holder["services"].store.deliveries.counts() if "services" in holder else {}

    metrics = Metrics(queue_depth, delivery_counts)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.database_url)
        prom = settings.prometheus(observer=metrics.prometheus_query)
        runbooks = settings.chatops.runbooks
        investigator = make_investigator(
            prom,
            settings.investigation(),
            settings.llm(),
            history=store.history,
            runbooks=CatalogMenu(runbooks.loaded()) if runbooks is not None else None,
        )
        outbox = Outbox(
            store,
            settings.delivery,
            metrics,
            external_url=settings.external_url,
            chart_link=(
                (settings.chart_link_key.get_secret_value(), settings.chart_link_seconds)
                if settings.chart_link_key
                else None
            ),
            workers=settings.delivery_workers,
            max_attempts=settings.delivery_max_attempts,
            backoff_seconds=settings.delivery_backoff_seconds,
            backoff_max_seconds=settings.delivery_backoff_max_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
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
            heartbeat_seconds=settings.heartbeat_seconds,
            poll_interval=settings.poll_interval,
            outbox=outbox,
            storm=settings.storm_rule(),
        )
        transactions = (
            IntakeProcess(
                settings.database_url,
                outbox.planner,
                log_level=settings.log_level,
                log_format=settings.log_format,
            )
            if settings.intake_process and role == "server"
            else None
        )
        writer = IntakeWriter(
            transactions or store.intake,
            settings.intake_rules(),
            max_pending=settings.intake_max_pending,
            on_batch=metrics.intake_batch.observe,
        )
        asker = Asker(investigator, settings.llm())
        chatops = None
        if role == "server" and settings.chatops.enabled:
            chatops = ChatOps(
                settings.chatops,
                store,
                asker,
                planner=outbox.planner,
                wake=_waker(pool, outbox),
                data_dir=Path(settings.reports_dir).resolve().parent,
                external_url=settings.external_url,
                language=settings.language,
            )
        services = Services(
            settings, store, prom, investigator, metrics, pool, asker, outbox, writer, chatops
        )
        holder["services"] = app.state.services = services
        await run_in_threadpool(_backfill_history, store)
        if role == "server":
            if transactions is not None:
                await transactions.start()
            writer.start()
        if chatops is not None:
            await run_in_threadpool(chatops.start)
        if start_workers:
            # Before any worker writes: temporaries a killed writer left, and files missing for stored rows.
            await run_in_threadpool(restore_archive, store, settings.reports_dir)
            pool.start()
            outbox.start()
        log.info(
            "alertsleuth ready",
            extra={
                "role": role,
                "prometheus": settings.prometheus_url,
                "workers": settings.workers if start_workers else 0,
                "sinks": ",".join(outbox.sinks) or "none",
                "database": settings.database_url.split("@")[-1],
            },
        )
        # What start-up made (modules, the app, clients) lives as long as the process: frozen out of the
        # cyclic collector, whose full passes over it would otherwise pause every request now and then.
        gc.freeze()
        try:
            yield
        finally:
            log.info("shutting down", extra={"workers": settings.workers})
            await writer.stop()  # what is waiting is written: those requests get their answers
            if transactions is not None:
                await transactions.stop()
            services.accepted_log.flush()
            if chatops is not None:
                chatops.close()
            pool.stop()
            outbox.stop()
            prom.close()
            store.close()
            log.info("stopped")

    app = FastAPI(
        title="alertsleuth",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from local assets
        redoc_url=None,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        on_reject=lambda: metrics.requests_rejected.labels("too_large").inc(),
    )

    install_error_handlers(app, metrics)
    document_security(app)
    if role == "server":
        app.include_router(alerts.router)  # first: the routes matched most often, under load
    app.include_router(health.router)
    if role == "server":
        app.include_router(incidents.router)
        app.include_router(ask.router)
        app.include_router(charts.router)
        app.include_router(actions.router)
        app.include_router(chat.router)
        install_docs(app)
        install_ui(app)  # the web UI (server/ui/), outside the OpenAPI document
    return app
