"""Delivery through the real app over HTTP: the outbox, routing, a real Redmine and a real SMTP server.

The investigation runs against the session's real Prometheus; tickets are checked through Redmine's
own API and mail as the SMTP server received it. The outbox's flows run on both backends (SQLite,
PostgreSQL: tests/conftest.py `database_url`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from exporter import launch as procs
from server.settings import Settings
from tests.conftest import PromEnv, serve
from tests.fakes.smtp import FakeSMTP
from tests.server.test_api import wait_report, webhook

EXTERNAL = "https://alertsleuth.example.com"


@pytest.fixture
def smtp() -> Iterator[FakeSMTP]:
    with FakeSMTP() as server:
        yield server


def redmine_sink(redmine: procs.Process, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "redmine",
        "url": redmine.url,
        "api_key": redmine.extra["api_key"],
        "project": "ops",
    } | overrides


def settings_with(
    make_settings: Callable[..., Settings], prom: PromEnv, delivery: dict[str, Any], **kw: Any
) -> Settings:
    return make_settings(
        prometheus_url=prom.url,
        external_url=EXTERNAL,
        delivery=delivery,
        delivery_backoff_seconds=0.05,
        delivery_backoff_max_seconds=0.2,
        **kw,
    )


def backend(database_url: str) -> str:
    return "postgres" if database_url.startswith("postgresql") else "sqlite"


def wait_deliveries(c: httpx.Client, incident_id: int, count: int, timeout: float = 30) -> dict[str, Any]:
    """The incident once it has `count` deliveries, all done or failed."""
    deadline = time.monotonic() + timeout
    inc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        inc = c.get(f"/api/v1/incidents/{incident_id}").json()
        ds = inc["deliveries"]
        if len(ds) >= count and all(d["state"] in ("done", "failed") for d in ds):
            return inc
        time.sleep(0.05)
    raise AssertionError(
        f"deliveries of incident {incident_id} not finished in {timeout}s: {inc.get('deliveries')}"
    )


def redmine_issues(redmine: procs.Process, **params: Any) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{redmine.url}/issues.json",
        params={"project_id": "ops", "status_id": "*", "include": "attachments,journals", **params},
        headers={"X-Redmine-API-Key": redmine.extra["api_key"]},
    )
    r.raise_for_status()
    return list(r.json()["issues"])


def redmine_issue(redmine: procs.Process, issue_id: str) -> dict[str, Any]:
    r = httpx.get(
        f"{redmine.url}/issues/{issue_id}.json",
        params={"include": "attachments,journals"},
        headers={"X-Redmine-API-Key": redmine.extra["api_key"]},
    )
    r.raise_for_status()
    return dict(r.json()["issue"])


def test_ticket_and_mail_from_firing_to_resolved(
    make_settings: Callable[..., Settings],
    prom: PromEnv,
    redmine: procs.Process,
    smtp: FakeSMTP,
    database_url: str,
) -> None:
    d1 = f"d1-{backend(database_url)}"  # one Redmine for the session: an issue per backend
    delivery = {
        "sinks": {"ops-redmine": redmine_sink(redmine), "mail": smtp.sink_config(to=["oncall@example.com"])},
        "route": {
            "sinks": ["ops-redmine"],
            "routes": [
                {"matchers": ['severity="page"'], "sinks": ["mail"]},  # does not match: severity=critical
                {"matchers": ['severity=~"crit.*"'], "sinks": ["ops-redmine"], "continue": True},
                {"matchers": ['alertname="HighLoginFailureRate"'], "sinks": ["mail"], "send_resolved": False},
            ],
        },
    }
    env, stop = serve(settings_with(make_settings, prom, delivery))
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            created = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint=d1)).json()
            incident_id = created["incidents_created"][0]
            wait_report(c, incident_id)
            inc = wait_deliveries(c, incident_id, 2)
            by_sink = {d["sink"]: d for d in inc["deliveries"]}
            assert set(by_sink) == {"ops-redmine", "mail"}
            assert all(d["event"] == "firing" and d["state"] == "done" for d in inc["deliveries"])
            assert by_sink["ops-redmine"]["detail"].endswith("with 6 attachments")  # HTML, JSON, 4 charts

            # The ticket is on the incident, in the report's JSON, and linked from its HTML and Markdown.
            [ticket] = inc["tickets"]
            assert (
                ticket["sink"] == "ops-redmine"
                and ticket["url"] == f"{redmine.url}/issues/{ticket['key'][1:]}"
            )
            report = c.get(inc["report_url"]).json()
            assert report["tickets"] == [ticket]
            html = c.get(inc["report_url"], params={"format": "html"}).text
            assert f'<a href="{ticket["url"]}" rel="noopener noreferrer">{ticket["key"]}</a>' in html
            assert (
                f"[{ticket['key']}](<{ticket['url']}>)"
                in c.get(inc["report_url"], params={"format": "md"}).text
            )

            issue = redmine_issue(redmine, ticket["key"][1:])
            assert issue["subject"] == "[FIRING] HighLoginFailureRate: ip_region=shanghai, user_type=admin"
            names = {a["filename"] for a in issue["attachments"]}
            assert {f"alertsleuth-{inc['report_id']}.html", f"alertsleuth-{inc['report_id']}.json"} <= names
            charts = {n.rsplit(".", 2)[1] for n in names if n.endswith(".png")}  # from the report's series
            assert {"signal", "cause-1", "breakdown-ip_region", "breakdown-user_type"} == charts, names
            png = next(a for a in issue["attachments"] if a["filename"].endswith(".signal.png"))
            assert png["content_type"] == "image/png" and png["filesize"] > 5000
            [mail] = smtp.wait_for(1)
            assert mail.rcpt_tos == ["oncall@example.com"] and mail.tls and mail.authenticated
            assert mail.message["Subject"] == f"[alertsleuth] {issue['subject']}"
            assert f"{EXTERNAL}/api/v1/reports/{inc['report_id']}?format=html" in mail.text("text/plain")
            assert "HighLoginFailureRate" in mail.text("text/html")

            # A re-investigation with the same analysis tells nobody again.
            assert c.post(f"/api/v1/incidents/{incident_id}/investigate").status_code == 202
            deadline = time.monotonic() + 30
            while c.get(f"/api/v1/incidents/{incident_id}").json()["report_id"] == inc["report_id"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            refreshed = wait_report(c, incident_id)
            assert len(refreshed["deliveries"]) == 2
            assert c.get(refreshed["report_url"]).json()["tickets"] == [ticket]  # shown in later reports too

            # Resolution: the ticket gets the duration and is closed; mail's route skips resolved.
            c.post("/api/v1/webhook/alertmanager", json=webhook(prom, status="resolved", fingerprint=d1))
            inc = wait_deliveries(c, incident_id, 3)
            resolved = inc["deliveries"][-1]
            assert (resolved["sink"], resolved["event"], resolved["state"]) == (
                "ops-redmine",
                "resolved",
                "done",
            )
            issue = redmine_issue(redmine, ticket["key"][1:])
            assert issue["status"]["name"] == "Closed"
            closing = [j["notes"] for j in issue["journals"] if j["notes"]][-1]
            assert closing.startswith("Resolved after ")
            # how it ended is recorded on the ticket: the API, the report and the incidents seen before
            [closed] = c.get(f"/api/v1/incidents/{incident_id}").json()["tickets"]
            assert closed["closing_comment"] == closing.removesuffix(" — alertsleuth") and closed["closed_at"]
            assert c.get(inc["report_url"]).json()["tickets"] == [closed]
            assert [i["id"] for i in redmine_issues(redmine, description=f"~alertsleuth-{d1}-")] == [
                issue["id"]
            ]
            time.sleep(0.3)
            assert len(smtp.messages) == 1

            metrics = c.get("/metrics").text
            assert 'alertsleuth_deliveries{sink="ops-redmine",state="pending"} 0.0' in metrics  # not history
            assert 'alertsleuth_delivery_attempts_total{outcome="sent",sink="ops-redmine"} 2.0' in metrics
            assert 'alertsleuth_delivery_attempts_total{outcome="sent",sink="mail"} 1.0' in metrics
    finally:
        stop()


def test_resolution_before_the_report_waits_for_the_ticket(
    make_settings: Callable[..., Settings], prom: PromEnv, redmine: procs.Process, database_url: str
) -> None:
    """Resolved arrives while the investigation still runs: the ticket is opened, then closed, in order."""
    d2 = f"d2-{backend(database_url)}"
    delivery = {"sinks": {"ops-redmine": redmine_sink(redmine)}}
    env, stop = serve(settings_with(make_settings, prom, delivery))
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            created = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint=d2)).json()
            incident_id = created["incidents_created"][0]
            c.post("/api/v1/webhook/alertmanager", json=webhook(prom, status="resolved", fingerprint=d2))
            inc = wait_deliveries(c, incident_id, 2)
            assert [(d["event"], d["state"]) for d in inc["deliveries"]] == [
                ("resolved", "done"),
                ("firing", "done"),
            ]
            firing, resolved = inc["deliveries"][1], inc["deliveries"][0]
            assert firing["sent_at"] < resolved["sent_at"]
            [ticket] = inc["tickets"]
            assert redmine_issue(redmine, ticket["key"][1:])["status"]["name"] == "Closed"
    finally:
        stop()


def test_failed_delivery_is_visible_retried_by_api_and_resumed_after_restart(
    make_settings: Callable[..., Settings], prom: PromEnv, redmine: procs.Process, database_url: str
) -> None:
    d3 = f"d3-{backend(database_url)}"
    closed = f"http://127.0.0.1:{procs.free_port()}"
    broken = {"sinks": {"ops-redmine": redmine_sink(redmine, url=closed)}}
    env, stop = serve(settings_with(make_settings, prom, broken, delivery_max_attempts=2))
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            created = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint=d3)).json()
            incident_id = created["incidents_created"][0]
            inc = wait_report(c, incident_id)
            assert inc["investigation"] == "done"  # a broken sink never fails the investigation
            inc = wait_deliveries(c, incident_id, 1)
            [d] = inc["deliveries"]
            assert d["state"] == "failed" and d["attempts"] == 2 and "ConnectError" in d["last_error"]
            assert redmine.extra["api_key"] not in d["last_error"]
            assert 'alertsleuth_deliveries{sink="ops-redmine",state="failed"} 1.0' in c.get("/metrics").text
            assert (
                'alertsleuth_delivery_attempts_total{outcome="retried",sink="ops-redmine"} 1.0'
                in c.get("/metrics").text
            )

            retry = f"/api/v1/incidents/{incident_id}/deliveries/{d['id']}/retry"
            r = c.post(retry)
            assert r.status_code == 202 and r.json()["state"] == "pending" and r.json()["attempts"] == 0
            inc = wait_deliveries(c, incident_id, 1)
            assert inc["deliveries"][0]["state"] == "failed"
            assert c.post(f"/api/v1/incidents/{incident_id}/deliveries/9999/retry").status_code == 404
            assert (
                c.post(f"/api/v1/incidents/{incident_id + 1}/deliveries/{d['id']}/retry").status_code == 404
            )

            # Resolved, while the sink never heard of the incident: nothing to tell it.
            c.post("/api/v1/webhook/alertmanager", json=webhook(prom, status="resolved", fingerprint=d3))
            resolved = wait_deliveries(c, incident_id, 2)["deliveries"][1]
            assert resolved["event"] == "resolved" and resolved["state"] == "done"
            assert resolved["detail"] == "skipped: this sink was never told the incident was firing"
    finally:
        stop()

    # Queued again by a server that dispatches nothing (as if it stopped before the attempt)...
    env, stop = serve(settings_with(make_settings, prom, broken), start_workers=False)
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            assert c.post(retry).json()["state"] == "pending"
    finally:
        stop()

    # Restart with the sink fixed: the pending delivery resumes and opens exactly one ticket.
    fixed = {"sinks": {"ops-redmine": redmine_sink(redmine)}}
    env, stop = serve(settings_with(make_settings, prom, fixed))
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            inc = wait_deliveries(c, incident_id, 2)
            assert inc["deliveries"][0]["state"] == "done", inc["deliveries"]
            [ticket] = inc["tickets"]
            r = c.post(f"/api/v1/incidents/{incident_id}/deliveries/{inc['deliveries'][0]['id']}/retry")
            assert r.status_code == 409
            assert [i["id"] for i in redmine_issues(redmine, description=f"~alertsleuth-{d3}-")] == [
                int(ticket["key"][1:])
            ]
    finally:
        stop()


def test_bad_delivery_config_is_refused_at_start_naming_the_key(
    make_settings: Callable[..., Settings],
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        make_settings(delivery={"sinks": {"r": {"type": "redmine", "url": "http://x", "api_key": "k"}}})
    assert ("delivery", "sinks", "r", "redmine", "project") in [e["loc"] for e in err.value.errors()]
    with pytest.raises(ValidationError) as err:
        make_settings(delivery={"sinks": {}, "route": {"routes": [{"sinks": ["nope"]}]}})
    assert "unknown sink 'nope'" in str(err.value)


def test_sinks_test_command_checks_credentials(redmine: procs.Process, tmp_path: Any) -> None:
    """`alertsleuth sinks test NAME` against the real Redmine: OK with the right key, FAILED (exit 1)
    with a wrong one, and the key never printed."""
    import os
    import subprocess
    import sys

    import yaml

    def run(api_key: str, name: str = "ops-redmine") -> subprocess.CompletedProcess[str]:
        config = tmp_path / "alertsleuth.yaml"
        config.write_text(
            yaml.safe_dump({"delivery": {"sinks": {"ops-redmine": redmine_sink(redmine, api_key=api_key)}}})
        )
        env = {**os.environ, "ALERTSLEUTH_CONFIG": str(config)}
        return subprocess.run(
            [sys.executable, "-m", "server.cli", "sinks", "test", name],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    ok = run(redmine.extra["api_key"])
    assert ok.returncode == 0, ok.stderr
    assert (
        ok.stdout.strip()
        == "ops-redmine (redmine): OK: credentials ok: user admin, project Ops (nothing created)"
    )

    bad = run("wrong-key-0123456789")
    assert (
        bad.returncode == 1
        and "ops-redmine (redmine): FAILED: GET /users/current.json: HTTP 401" in bad.stderr
    )
    assert "check the sink's settings" in bad.stderr and "wrong-key-0123456789" not in bad.stderr + bad.stdout

    unknown = run(redmine.extra["api_key"], name="nope")
    assert unknown.returncode == 2 and "no sink named 'nope' (ops-redmine)" in unknown.stderr
