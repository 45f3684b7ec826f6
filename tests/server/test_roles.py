"""The two roles of the process: `alertsleuth serve --no-workers` takes notifications and answers the
API, `alertsleuth worker` investigates and delivers from the same database; each answers the probes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from exporter import launch as procs
from server.app import create_app
from server.settings import Settings
from tests.conftest import PromEnv, serve
from tests.server.test_api import wait_report, webhook


def test_a_server_without_workers_and_a_worker_share_the_work(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    settings = make_settings(prometheus_url=prom.url)
    env, stop_server = serve(settings, start_workers=False)
    worker_url, stop_worker = procs.serve_in_thread(create_app(settings, role="worker"))
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            created = c.post("/api/v1/webhook/alertmanager", json=webhook(prom)).json()
            [incident] = created["incidents_created"]
            done = wait_report(c, incident)
            assert done["investigation"] == "done" and done["report_id"]
        with httpx.Client(base_url=worker_url, timeout=10) as w:
            assert w.get("/healthz").json() == {"status": "ok"}
            assert w.get("/readyz").status_code == 200
            assert "alertsleuth_investigations" in w.get("/metrics").text
            # a worker takes no notifications and serves no API or UI
            for path in ("/api/v1/incidents", "/", "/docs"):
                assert w.get(path).status_code == 404, path
            assert w.post("/api/v1/webhook/alertmanager", json=webhook(prom)).status_code == 404
    finally:
        stop_worker()
        stop_server()


def test_a_server_without_workers_queues_and_does_not_investigate(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    env, stop = serve(make_settings(prometheus_url=prom.url), start_workers=False)
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            [incident] = c.post("/api/v1/webhook/alertmanager", json=webhook(prom)).json()[
                "incidents_created"
            ]
            assert c.get(f"/api/v1/incidents/{incident}").json()["investigation"] == "queued"
    finally:
        stop()


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="role must be one of"):
        create_app(Settings(), role="scheduler")


def test_the_command_line_has_both_roles() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "serve" in out and "worker" in out
    serve_help = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--no-workers" in serve_help
