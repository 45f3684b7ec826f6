"""What the routes need, built once by the app's lifespan and reached through FastAPI dependencies."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from agent.ask import Asker
from agent.investigator import Investigator
from server.chatops.service import ChatOps
from server.db import Store
from server.delivery.outbox import Outbox
from server.intake_writer import IntakeWriter
from server.logs import Summarized
from server.metrics import Metrics
from server.settings import Settings
from server.worker import WorkerPool
from tools.prom import Prometheus


@dataclass
class Services:
    """The app's long-lived services (one set per app, in `app.state.services`)."""

    settings: Settings
    store: Store
    prometheus: Prometheus
    investigator: Investigator
    metrics: Metrics
    workers: WorkerPool
    asker: Asker
    outbox: Outbox
    intake: IntakeWriter  # the webhook's notifications, written by one thread in batches
    chatops: ChatOps | None = None  # chat in, silences, runbooks (None: no `chatops:` section)
    # "notification accepted": a line each up to 20 a minute, then a summary line at the minute's end
    accepted_log: Summarized = field(
        default_factory=lambda: Summarized(logging.getLogger("alertsleuth.intake"), "notification accepted")
    )


async def services_of(request: Request) -> Services:
    """The dependency (async: FastAPI runs a plain function's dependency in its thread pool)."""
    return get_services(request)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(services_of)]
