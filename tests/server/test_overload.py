"""Overload at intake, over real HTTP against the real app and a real SQLite file: when the store's write
lock is held longer than ALERTSLEUTH_INTAKE_TIMEOUT_SECONDS, intake answers 503 with Retry-After (the
sender retries), stores nothing, and accepts again once the lock is free."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from server.settings import Settings
from tests.conftest import serve


def _webhook(fingerprint: str) -> dict[str, Any]:
    starts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    alert = {
        "status": "firing",
        "labels": {"alertname": "Overload", "severity": "critical"},
        "annotations": {},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="Overload"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "alertsleuth",
        "groupLabels": {"alertname": "Overload"},
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }


def _count(path: str, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _busy(c: httpx.Client, url: str, body: Any, timeout: float) -> None:
    t0 = time.monotonic()
    r = c.post(url, json=body)
    took = time.monotonic() - t0
    assert r.status_code == 503, (r.status_code, r.text, took)
    assert int(r.headers["Retry-After"]) >= 1
    assert "busy" in r.json()["detail"]
    assert timeout - 0.5 <= took <= timeout + 3, took  # waited the intake timeout, no longer


def test_locked_store_answers_503_then_accepts(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()  # the default ALERTSLEUTH_INTAKE_TIMEOUT_SECONDS: 5
    env, stop = serve(settings, start_workers=False)
    path = settings.database_url.removeprefix("sqlite:///")
    try:
        with httpx.Client(base_url=env.url, timeout=60) as c:
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
            try:
                _busy(c, "/api/v1/webhook/alertmanager", _webhook("b05y"), 5.0)
                assert _count(path, "incidents") == 0 and _count(path, "notifications") == 0
                metrics = c.get("/metrics").text
                assert 'alertsleuth_requests_rejected_total{reason="busy"} 1.0' in metrics
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            r = c.post("/api/v1/webhook/alertmanager", json=_webhook("b05y"))
            assert r.status_code == 202, r.text
            assert len(r.json()["incidents_created"]) == 1
            assert _count(path, "incidents") == 1 and _count(path, "jobs") == 1  # committed
    finally:
        stop()


def test_prometheus_intake_bounded_by_setting(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(intake_timeout_seconds=1)
    env, stop = serve(settings, start_workers=False)
    path = settings.database_url.removeprefix("sqlite:///")
    body = [{"labels": {"alertname": "Overload"}, "startsAt": datetime.now(UTC).isoformat()}]
    try:
        with httpx.Client(base_url=env.url, timeout=60) as c:
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            try:
                _busy(c, "/api/v2/alerts", body, 1.0)
                assert _count(path, "incidents") == 0
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            assert c.post("/api/v2/alerts", json=body).status_code == 202
    finally:
        stop()
