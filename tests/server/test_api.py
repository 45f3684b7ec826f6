"""The HTTP API, driven over real HTTP against the real app, a real Prometheus and a real database: the
tests of what the API stores and reads run on both backends (SQLite, PostgreSQL: tests/conftest.py
`database_url`), the others on SQLite."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from server.db import Notification, Store
from server.settings import Settings
from tests.conftest import PromEnv, ServerEnv, serve


def webhook(
    prom: PromEnv, scenario: str = "burst", status: str = "firing", fingerprint: str = "f00d", **extra: Any
) -> dict[str, Any]:
    sc = prom.scenarios[scenario]
    starts = datetime.fromtimestamp(sc.anomaly_start + 120, UTC).isoformat().replace("+00:00", "Z")
    alert = {
        "status": status,
        "labels": {"alertname": "HighLoginFailureRate", "severity": "critical"},
        "annotations": {"summary": "Login failure ratio above 20%"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else datetime.now(UTC).isoformat(),
        "generatorURL": f"http://prometheus:9090/graph?g0.expr={quote(sc.expr())}&g0.tab=1",
        "fingerprint": fingerprint,
        **extra,
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLoginFailureRate"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "alertsleuth",
        "groupLabels": {"alertname": "HighLoginFailureRate"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }


def wait_report(client: httpx.Client, incident_id: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inc = client.get(f"/api/v1/incidents/{incident_id}").json()
        if inc["investigation"] in ("done", "degraded", "failed"):
            return inc
        time.sleep(0.05)
    raise AssertionError(f"incident {incident_id} not investigated in {timeout}s: {inc}")


@pytest.mark.usefixtures("database_url")
def test_webhook_to_report(server: ServerEnv, prom: PromEnv) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom))
        assert r.status_code == 202, r.text
        body = r.json()
        assert len(body["incidents_created"]) == 1 and body["deduplicated"] == []
        inc = wait_report(c, body["incidents_created"][0])
        assert inc["investigation"] == "done"
        assert inc["fingerprint"] == "f00d" and inc["status"] == "firing"
        assert inc["jobs"][0]["state"] == "done" and inc["jobs"][0]["attempts"] == 1
        report = c.get(inc["report_url"]).json()
        assert report["root_causes"][0]["labels"] == {"ip_region": "shanghai", "user_type": "admin"}
        for key in (
            "id",
            "alert",
            "expression",
            "windows",
            "summary",
            "localized",
            "root_causes",
            "evidence",
            "remediation",
            "prevention",
            "llm",
            "created_at",
        ):
            assert key in report
        assert report["llm"] is None
        md = c.get(inc["report_url"], params={"format": "md"})
        assert md.headers["content-type"].startswith("text/markdown") and "shanghai" in md.text
        html = c.get(inc["report_url"], params={"format": "html"})
        assert html.headers["content-type"].startswith("text/html") and "<html" in html.text
        files = inc["report_files"]
        assert set(files) == {"md", "html", "json"}
        for path in files.values():
            assert Path(path).is_file() and Path(path).parent == Path(server.settings.reports_dir)
        assert json.loads(Path(files["json"]).read_text())["id"] == report["id"]
        assert c.get("/api/v1/reports/nope").status_code == 404


@pytest.mark.usefixtures("database_url")
def test_repeats_deduplicate_and_resolved_closes(server: ServerEnv, prom: PromEnv) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        first = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="aa")).json()
        incident = first["incidents_created"][0]
        # repeat_interval, and a second Alertmanager replica sending the same group
        for _ in range(2):
            again = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="aa")).json()
            assert again["incidents_created"] == [] and again["deduplicated"] == [incident]
        resolved = c.post(
            "/api/v1/webhook/alertmanager", json=webhook(prom, status="resolved", fingerprint="aa")
        )
        assert resolved.json()["resolved"] == [incident] and resolved.json()["incidents_created"] == []
        inc = wait_report(c, incident)
        assert inc["status"] == "resolved" and inc["resolved_at"] is not None
        assert inc["notifications"] == 4 and len(inc["jobs"]) == 1
        page = c.get("/api/v1/incidents", params={"status": "resolved"}).json()
        assert [i["id"] for i in page["items"]] == [incident]
        metrics = c.get("/metrics").text
        assert "alertsleuth_alerts_deduplicated_total 2.0" in metrics
        assert 'alertsleuth_alerts_received_total{source="alertmanager",status="resolved"} 1.0' in metrics


@pytest.mark.usefixtures("database_url")
def test_resolved_without_firing_starts_no_investigation(server: ServerEnv, prom: PromEnv) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post(
            "/api/v1/webhook/alertmanager", json=webhook(prom, status="resolved", fingerprint="bb")
        ).json()
        inc = c.get(f"/api/v1/incidents/{r['resolved'][0]}").json()
        assert inc["investigation"] == "none" and inc["jobs"] == []


@pytest.mark.usefixtures("database_url")
def test_prometheus_direct_alert_list(server: ServerEnv, prom: PromEnv) -> None:
    alert = webhook(prom)["alerts"][0]
    posted = [
        {k: alert[k] for k in ("labels", "annotations", "startsAt", "generatorURL")}
        | {"endsAt": "2999-01-01T00:00:00Z"}
    ]
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/api/v2/alerts", json=posted)
        assert r.status_code == 202, r.text
        inc = wait_report(c, r.json()["incidents_created"][0])
        report = c.get(inc["report_url"]).json()
        assert report["root_causes"], report["summary"] + str(report["notes"])
        assert report["root_causes"][0]["labels"]["ip_region"] == "shanghai"
        again = c.post("/api/v2/alerts", json=posted).json()
        assert again["deduplicated"] == [inc["id"]]
        gone = [posted[0] | {"endsAt": datetime.now(UTC).isoformat()}]
        assert c.post("/api/v2/alerts", json=gone).json()["resolved"] == [inc["id"]]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b'{"version": "4", "alerts": [', 400, "JSON"),
        (b"[1, 2]", 422, "body"),
        (json.dumps({"version": "4", "status": "firing", "alerts": "nope"}).encode(), 422, "alerts"),
        (json.dumps({"version": "4", "status": "burning", "alerts": []}).encode(), 422, "status"),
        (json.dumps({"version": "3", "status": "firing", "alerts": [{}]}).encode(), 422, "version"),
    ],
)
def test_bad_input_is_refused_with_the_problem_named(
    server: ServerEnv, body: bytes, status: int, needle: str
) -> None:
    r = httpx.post(
        f"{server.url}/api/v1/webhook/alertmanager",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert needle.lower() in r.json()["detail"].lower()


def test_alert_without_alertname_and_wrong_types(server: ServerEnv, prom: PromEnv) -> None:
    payload = webhook(prom)
    payload["alerts"][0]["labels"] = {"severity": "critical"}
    r = httpx.post(f"{server.url}/api/v1/webhook/alertmanager", json=payload)
    assert r.status_code == 422 and "alertname" in r.json()["detail"]
    payload = webhook(prom)
    payload["alerts"][0]["startsAt"] = "yesterday"
    r = httpx.post(f"{server.url}/api/v1/webhook/alertmanager", json=payload)
    assert r.status_code == 422 and "startsAt" in r.json()["detail"]


@pytest.mark.usefixtures("database_url")
def test_unknown_fields_are_kept(server: ServerEnv, prom: PromEnv) -> None:
    payload = webhook(prom, fingerprint="cc", silencedBy=["x"])
    payload["newTopLevelField"] = {"a": 1}
    r = httpx.post(f"{server.url}/api/v1/webhook/alertmanager", json=payload)
    assert r.status_code == 202
    store = Store(server.settings.database_url)
    with store.session() as s:
        note = s.get(Notification, r.json()["notification_id"])
        assert note is not None and "newTopLevelField" in note.body and "silencedBy" in note.body


def test_oversized_body_gets_413(make_settings: Callable[..., Settings], prom: PromEnv) -> None:
    env, stop = serve(make_settings(prometheus_url=prom.url, max_body_bytes=2048), start_workers=False)
    try:
        payload = webhook(prom)
        payload["alerts"][0]["annotations"]["description"] = "x" * 5000
        r = httpx.post(f"{env.url}/api/v1/webhook/alertmanager", json=payload)
        assert r.status_code == 413 and "2048" in r.json()["detail"]

        def chunks():  # no Content-Length: counted while streaming
            yield json.dumps(payload).encode()

        r = httpx.post(
            f"{env.url}/api/v1/webhook/alertmanager",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        assert (
            'alertsleuth_requests_rejected_total{reason="too_large"} 2.0'
            in httpx.get(f"{env.url}/metrics").text
        )
    finally:
        stop()


def test_bearer_and_basic_auth(make_settings: Callable[..., Settings], prom: PromEnv) -> None:
    settings = make_settings(
        prometheus_url=prom.url, auth_token="s3cret", basic_auth_username="am", basic_auth_password="pw"
    )
    env, stop = serve(settings, start_workers=False)
    url = f"{env.url}/api/v1/webhook/alertmanager"
    try:
        r = httpx.post(url, json=webhook(prom, fingerprint="d1"))
        assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"]
        assert (
            httpx.post(url, json=webhook(prom), headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        assert httpx.get(f"{env.url}/api/v1/incidents").status_code == 401
        ok = httpx.post(url, json=webhook(prom, fingerprint="d1"), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 202
        basic = base64.b64encode(b"am:pw").decode()
        ok = httpx.post(
            url, json=webhook(prom, fingerprint="d2"), headers={"Authorization": f"Basic {basic}"}
        )
        assert ok.status_code == 202
        bad = base64.b64encode(b"am:nope").decode()
        assert (
            httpx.post(url, json=webhook(prom), headers={"Authorization": f"Basic {bad}"}).status_code == 401
        )
        assert httpx.get(f"{env.url}/healthz").status_code == 200  # probes stay open
    finally:
        stop()


@pytest.mark.usefixtures("database_url")
def test_restart_resumes_queued_and_interrupted_work(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    settings = make_settings(prometheus_url=prom.url)
    env, stop = serve(settings, start_workers=False)  # accepts, never investigates: a crash before work
    try:
        ids = [
            httpx.post(
                f"{env.url}/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint=f"r{i}")
            ).json()["incidents_created"][0]
            for i in range(3)
        ]
    finally:
        stop()
    store = Store(settings.database_url)
    # a worker that died mid-investigation: nothing re-queues its job, its lease runs out a second later
    claimed = store.jobs.claim("dead-worker", lease_seconds=1.0)
    assert claimed is not None
    env, stop = serve(settings)
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            for incident in ids:
                inc = wait_report(c, incident)
                assert inc["investigation"] == "done"
    finally:
        stop()


@pytest.mark.usefixtures("database_url")
def test_prometheus_down_retries_then_writes_a_degraded_report(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    settings = make_settings(max_attempts=2, retry_backoff_seconds=0.1)  # Prometheus URL is a closed port
    env, stop = serve(settings)
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="down"))
            assert r.status_code == 202  # accepted and stored even though Prometheus is down
            inc = wait_report(c, r.json()["incidents_created"][0])
            assert inc["investigation"] == "degraded"
            assert inc["jobs"][0]["attempts"] == 2
            report = c.get(inc["report_url"]).json()
            assert "Prometheus could not be reached" in report["summary"]
            ready = c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["database"] == "ok"
    finally:
        stop()


def test_health_ready_metrics_and_docs(server: ServerEnv) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz").json()
        assert ready["status"] == "ready"
        assert ready["checks"]["llm"]["configured"] is False
        text = c.get("/metrics").text
        for family in (
            "alertsleuth_alerts_received_total counter",
            "alertsleuth_investigations_total counter",
            "alertsleuth_investigation_seconds histogram",
            "alertsleuth_queue_depth gauge",
        ):
            assert f"# TYPE {family}" in text
        assert "alertsleuth_queue_depth 0.0" in text
        assert 'alertsleuth_queue_jobs{state="queued"} 0.0' in text
        spec = c.get("/openapi.json").json()
        for path in (
            "/api/v1/webhook/alertmanager",
            "/api/v2/alerts",
            "/api/v1/incidents",
            "/api/v1/incidents/{incident_id}",
            "/api/v1/reports/{report_id}",
            "/readyz",
            "/metrics",
        ):
            assert path in spec["paths"]
        assert c.get("/docs").status_code == 200


def test_every_log_line_on_the_alert_path_can_be_written(
    server: ServerEnv, prom: PromEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """At INFO (as `alertsleuth serve` logs), no `extra` key may collide with LogRecord's own fields:
    one did ("created"), and every webhook answered 500 after its alerts were stored."""
    import logging

    from server.logs import JSONFormatter, TextFormatter

    caplog.set_level(logging.DEBUG)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        created = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="logs"))
        assert created.status_code == 202, created.text
        wait_report(c, created.json()["incidents_created"][0])
        resolved = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, "burst", "resolved", "logs"))
        assert resolved.status_code == 202, resolved.text
    accepted = [r for r in caplog.records if r.getMessage() == "notification accepted"]
    assert len(accepted) == 2
    for record in caplog.records:
        assert TextFormatter().format(record) and JSONFormatter().format(record)


@pytest.mark.usefixtures("database_url")
def test_a_second_incident_with_the_same_cause_is_told_the_first(server: ServerEnv, prom: PromEnv) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        first = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="past-1"))
        first_id = first.json()["incidents_created"][0]
        wait_report(c, first_id)
        later = webhook(prom, fingerprint="past-2")
        starts = datetime.fromisoformat(later["alerts"][0]["startsAt"].replace("Z", "+00:00"))
        later["alerts"][0]["startsAt"] = (starts + timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
        second_id = c.post("/api/v1/webhook/alertmanager", json=later).json()["incidents_created"][0]
        inc = wait_report(c, second_id)
        report = c.get(inc["report_url"]).json()
        similar = c.get(f"/api/v1/incidents/{second_id}/similar").json()
        found = c.get("/api/v1/incidents", params={"q": "shanghai admin"}).json()
    past = report["history"]["similar"]
    assert past[0]["incident_id"] == first_id and past[0]["match"] == "same_cause"
    assert report["history"]["same_cause_30_days"] == 1
    assert "The same cause was found once in the 30 days before" in report["summary"]
    assert similar["similar"][0]["incident_id"] == first_id
    assert {first_id, second_id} <= {i["id"] for i in found["items"]}
