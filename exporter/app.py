"""The demo login exporter: Prometheus metrics of simulated logins and an API to inject anomalies.

Endpoints:

- `GET /metrics` — Prometheus text exposition: `user_login_total{user_type,login_status,ip_region}`
  (and the `system_*` metrics when started with `--system-metrics`).
- `GET /healthz` — `{"status": "ok"}`.
- `GET /api/v1/config` — rate (events/s), regions and their weights, user types, admin share and
  base failure ratios.
- `GET /api/v1/anomalies` — the active anomalies, oldest first.
- `POST /api/v1/anomalies` — start an anomaly; body fields: `ip_region` (optional, default all
  regions), `user_type` (optional, `normal`|`admin`, default both), `failure_ratio` (0..1, the
  failure ratio of the matching segments while active), `extra_rate` (optional, additional events/s
  over the matching segments, default 0), `duration_seconds` (> 0). Answers 201 with the anomaly
  (`id`, the fields, `starts_at`, `ends_at` in ISO-8601); 422 names the offending field.
- `DELETE /api/v1/anomalies` — end all anomalies (204).
- `DELETE /api/v1/anomalies/{id}` — end one anomaly (204, or 404 when no active anomaly has that id).

A brute-force burst of failing admin logins from Shanghai for five minutes:

    curl -X POST http://localhost:8000/api/v1/anomalies -H 'Content-Type: application/json' \\
         -d '{"ip_region": "shanghai", "user_type": "admin", "failure_ratio": 0.8,
              "extra_rate": 60, "duration_seconds": 300}'
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import uvicorn
from fastapi import FastAPI, HTTPException, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from exporter.simulator import Anomaly, AnomalyValidationError, LoginSimulator, Ticker
from exporter.system import register_system_metrics

API_PREFIX = "/api/v1"


class AnomalyRequest(BaseModel):
    """The body of `POST /api/v1/anomalies`."""

    model_config = ConfigDict(extra="forbid")

    ip_region: str | None = None
    user_type: str | None = None
    failure_ratio: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    extra_rate: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    duration_seconds: float = Field(gt=0.0, le=7 * 24 * 3600.0, allow_inf_nan=False)


class AnomalyOut(BaseModel):
    """An anomaly as the API returns it."""

    id: str
    ip_region: str | None
    user_type: str | None
    failure_ratio: float
    extra_rate: float
    duration_seconds: float
    starts_at: datetime
    ends_at: datetime

    @classmethod
    def of(cls, anomaly: Anomaly) -> AnomalyOut:
        return cls(
            id=anomaly.id,
            ip_region=anomaly.ip_region,
            user_type=anomaly.user_type,
            failure_ratio=anomaly.failure_ratio,
            extra_rate=anomaly.extra_rate,
            duration_seconds=anomaly.duration_seconds,
            starts_at=anomaly.starts_at_datetime,
            ends_at=anomaly.ends_at_datetime,
        )


class ConfigOut(BaseModel):
    """The simulator's traffic settings."""

    rate: float
    regions: list[str]
    region_weights: dict[str, float]
    user_types: list[str]
    admin_share: float
    base_failure_ratios: dict[str, float]


class Health(BaseModel):
    status: str


def create_app(sim: LoginSimulator, system_metrics: bool = False, tick_interval: float = 0.2) -> FastAPI:
    """The exporter app over `sim`; its lifespan runs a `Ticker` advancing the simulator.

    With `system_metrics`, host metrics are registered into the simulator's registry (once per
    simulator: build one app per simulator).
    """
    if system_metrics:
        register_system_metrics(sim.registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ticker = Ticker(sim, interval=tick_interval)
        ticker.start()
        try:
            yield
        finally:
            ticker.stop()

    app = FastAPI(title="alertsleuth demo login exporter", lifespan=lifespan)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(content=generate_latest(sim.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> Health:
        return Health(status="ok")

    @app.get(f"{API_PREFIX}/config")
    def config() -> ConfigOut:
        return ConfigOut(
            rate=sim.rate,
            regions=list(sim.regions),
            region_weights=dict(sim.region_weights),
            user_types=list(sim.user_types),
            admin_share=sim.admin_share,
            base_failure_ratios=dict(sim.base_failure_ratios),
        )

    @app.get(f"{API_PREFIX}/anomalies")
    def list_anomalies() -> list[AnomalyOut]:
        return [AnomalyOut.of(a) for a in sim.active()]

    @app.post(f"{API_PREFIX}/anomalies", status_code=status.HTTP_201_CREATED)
    def create_anomaly(body: AnomalyRequest) -> AnomalyOut:
        try:
            anomaly = sim.inject(
                ip_region=body.ip_region,
                user_type=body.user_type,
                failure_ratio=body.failure_ratio,
                extra_rate=body.extra_rate,
                duration_seconds=body.duration_seconds,
            )
        except AnomalyValidationError as exc:
            raise HTTPException(
                status_code=422,
                detail=[{"type": "value_error", "loc": ["body", exc.field], "msg": str(exc)}],
            ) from exc
        return AnomalyOut.of(anomaly)

    @app.delete(f"{API_PREFIX}/anomalies", status_code=status.HTTP_204_NO_CONTENT)
    def clear_anomalies() -> Response:
        sim.clear()
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.delete(f"{API_PREFIX}/anomalies/{{anomaly_id}}", status_code=status.HTTP_204_NO_CONTENT)
    def clear_anomaly(anomaly_id: str) -> Response:
        if not sim.clear(anomaly_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no active anomaly with id {anomaly_id!r}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return app


def run(host: str, port: int, rate: float, system_metrics: bool, seed: int | None) -> None:
    """Serve the exporter with uvicorn until interrupted."""
    sim = LoginSimulator(rate=rate, seed=seed)
    uvicorn.run(create_app(sim, system_metrics=system_metrics), host=host, port=port, log_level="warning")


def main(argv: Sequence[str] | None = None) -> int:
    """`alertsleuth-exporter [--host H] [--port 9105] [--rate 20] [--system-metrics] [--seed N]`."""
    p = argparse.ArgumentParser(
        prog="alertsleuth-exporter", description="the demo login exporter with its anomaly control API"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9105)
    p.add_argument("--rate", type=float, default=20.0, help="login events per second")
    p.add_argument(
        "--system-metrics", action="store_true", help="also export CPU, memory and network metrics"
    )
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    run(args.host, args.port, args.rate, args.system_metrics, args.seed)
    return 0
