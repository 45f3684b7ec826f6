"""What the routes need, built once by the app's lifespan and reached through FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from agent.ask import Asker
from agent.investigate import Investigator
from server.delivery.outbox import Outbox
from server.metrics import Metrics
from server.settings import Settings
from server.store import Store
from server.worker import WorkerPool
from tools.prom import Prometheus


@dataclass
class AppContext:
    settings: Settings
    store: Store
    prometheus: Prometheus
    investigator: Investigator
    metrics: Metrics
    workers: WorkerPool
    asker: Asker
    outbox: Outbox


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_context)]
