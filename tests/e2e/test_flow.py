"""End to end with the real binaries: Alertmanager delivering to the server, and the whole demo."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from exporter import launch as procs
from server.settings import Settings
from tests.conftest import PromEnv, serve

pytestmark = pytest.mark.e2e

AM_CONFIG = """route:
  receiver: alertsleuth
  group_by: ["alertname"]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: alertsleuth
    webhook_configs:
      - url: {url}/api/v1/webhook/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: am-token
"""


def test_alertmanager_delivers_and_resolves(
    alertmanager_bin: str, prom: PromEnv, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    env, stop = serve(make_settings(prometheus_url=prom.url, auth_token="am-token"))
    am = procs.start_alertmanager(tmp_path / "am", AM_CONFIG.format(url=env.url))
    try:
        sc = prom.scenarios["burst"]
        labels = {"alertname": "HighLoginFailureRate", "severity": "critical", "team": "identity"}
        alert = {
            "labels": labels,
            "annotations": {"summary": "Login failure ratio above 20%"},
            "startsAt": datetime.fromtimestamp(sc.anomaly_start + 120, UTC).isoformat(),
            "generatorURL": f"http://prometheus:9090/graph?g0.expr={quote(sc.expr())}&g0.tab=1",
        }
        httpx.post(f"{am.url}/api/v2/alerts", json=[alert]).raise_for_status()
        am_fp = httpx.get(f"{am.url}/api/v2/alerts").json()[0]["fingerprint"]

        client = httpx.Client(base_url=env.url, headers={"Authorization": "Bearer am-token"}, timeout=10)
        incident = _wait(lambda: _first(client), "an incident from Alertmanager")
        assert incident["fingerprint"] == am_fp
        done = _wait(lambda: _done(client, incident["id"]), "the report")
        report = client.get(done["report_url"]).json()
        assert report["root_causes"][0]["labels"] == {"ip_region": "shanghai", "user_type": "admin"}
        assert report["alert"]["labels"]["team"] == "identity"

        # Resolve it in Alertmanager: a resolved notification marks the incident resolved, no new work.
        httpx.post(
            f"{am.url}/api/v2/alerts", json=[alert | {"endsAt": datetime.now(UTC).isoformat()}]
        ).raise_for_status()
        resolved = _wait(lambda: _resolved(client, incident["id"]), "the resolved notification", timeout=30)
        assert len(resolved["jobs"]) == 1
        assert client.get("/api/v1/incidents").json()["total"] == 1
    finally:
        am.stop()
        stop()


def _first(client: httpx.Client) -> dict[str, Any] | None:
    items: list[dict[str, Any]] = client.get("/api/v1/incidents").json()["items"]
    return items[0] if items else None


def _done(client: httpx.Client, incident_id: int) -> dict[str, Any] | None:
    inc: dict[str, Any] = client.get(f"/api/v1/incidents/{incident_id}").json()
    return inc if inc["report_id"] else None


def _resolved(client: httpx.Client, incident_id: int) -> dict[str, Any] | None:
    inc: dict[str, Any] = client.get(f"/api/v1/incidents/{incident_id}").json()
    return inc if inc["status"] == "resolved" else None


def _wait(fn: Callable[[], dict[str, Any] | None], what: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_cli_investigate_prints_the_json_contract(prom: PromEnv, tmp_path: Path) -> None:
    sc = prom.scenarios["burst"]
    payload = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {"status": "resolved", "labels": {"alertname": "Other"}, "startsAt": "2026-01-01T00:00:00Z"},
            {
                "status": "firing",
                "labels": {"alertname": "HighLoginFailureRate"},
                "startsAt": datetime.fromtimestamp(sc.anomaly_start + 120, UTC).isoformat(),
                "generatorURL": f"http://p/graph?g0.expr={quote(sc.expr())}",
            },
        ],
    }
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payload))
    cmd = [
        sys.executable,
        "-m",
        "server.cli",
        "investigate",
        "--payload",
        str(path),
        "--prometheus-url",
        prom.url,
        "--llm",
        "none",
        "--format",
    ]
    out = subprocess.run([*cmd, "json"], capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(out.stdout)
    assert report["alert"]["name"] == "HighLoginFailureRate"
    assert set(report["alert"]) >= {"name", "labels", "annotations", "starts_at", "ends_at", "fingerprint"}
    assert set(report["windows"]) == {"baseline", "incident"}
    assert report["localized"] is True and report["llm"] is None
    top = report["root_causes"][0]
    assert top["labels"] == {"ip_region": "shanghai", "user_type": "admin"} and top["evidence_ids"]
    assert {"id", "promql", "start", "end", "step", "summary"} <= set(report["evidence"][0])
    md = subprocess.run([*cmd, "md"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert md.startswith("#") and "shanghai" in md
    bad = subprocess.run([*cmd[:5], "/nonexistent.json", *cmd[6:], "json"], capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot read payload" in bad.stderr


@pytest.mark.timeout(480)  # Redmine's start-up (about a minute) counts, and the demo takes two more
def test_demo_runs_the_whole_flow(
    tmp_path: Path, alertmanager_bin: str, redmine: procs.Process, capsys: pytest.CaptureFixture[str]
) -> None:
    """exporter -> Prometheus rules -> Alertmanager -> server -> archived report -> a Redmine ticket
    opened, updated and closed, and one email, as `make demo` runs it (plus the mail); between the
    update and the resolution, ChatOps in the incident's Slack thread: "why?" answered, and the runbook
    proposed, dry-run, approved by a second person and run, which clears the fault."""
    from exporter.demo import ALERT, demo_delivery, run_demo
    from exporter.demo_chatops import LEAD, RUNBOOK
    from tests.fakes.smtp import FakeSMTP

    key = {"X-Redmine-API-Key": redmine.extra["api_key"]}
    issues = f"{redmine.url}/issues.json"
    query: dict[str, str | int] = {
        "project_id": redmine.extra["project"],
        "status_id": "*",
        "subject": f"~{ALERT}",
        "limit": 100,
    }
    # The session's Redmine is shared: issues other tests opened for the same alert are not the demo's.
    before = {i["id"] for i in httpx.get(issues, params=query, headers=key).json()["issues"]}
    with FakeSMTP() as smtp:
        delivery = demo_delivery(redmine)
        delivery["sinks"]["oncall-mail"] = smtp.sink_config(to=["oncall@example.com"])
        delivery["route"]["routes"].append(
            {
                "matchers": [f'alertname="{ALERT}"'],
                "sinks": ["oncall-mail"],
                "send_resolved": False,
                "send_updates": False,
            }
        )
        delivery["route"]["routes"][0]["continue"] = True
        assert run_demo(timeout=150, reports_dir=str(tmp_path / "reports"), delivery=delivery) == 0
        [mail] = smtp.wait_for(1)
        time.sleep(0.5)
        assert len(smtp.messages) == 1, [m.message["Subject"] for m in smtp.messages]
    out = capsys.readouterr().out

    # The first report, and the re-investigations of the repeats (the demo refreshes every 4 s).
    files = [p.suffix for p in (tmp_path / "reports").glob("HighLoginFailureRate_*")]
    assert set(files) == {".html", ".json", ".md"} and len(files) % 3 == 0

    assert mail.message["Subject"].startswith(f"[alertsleuth] [FIRING] {ALERT}: ")
    assert "shanghai" in mail.message["Subject"] and "shanghai" in mail.text("text/html")

    # ChatOps in the thread (the demo prints what alertsleuth posted to its loopback Slack): the answer to
    # "why?" names the root cause; the dry run left the fault active; the run, approved by the lead,
    # succeeded and left the exporter without an anomaly; the demo did not clear the fault itself.
    asked = out.split("in the thread: why?\n", 1)[1].split(f"in the thread: run {RUNBOOK}\n", 1)[0]
    assert "alertsleuth answers in the thread:" in asked and 'user_type="admin"' in asked, asked
    # The action's id is whatever the store gave it: read from the dry run's news, then followed.
    dry_run = re.search(rf"Action (\d+), {re.escape(RUNBOOK)}: dry run successful, exit status 0\.", out)
    assert dry_run is not None, out
    action = dry_run.group(1)
    assert "the fault is still active after the dry run" in out
    assert f"Slack, {LEAD} in the thread: approve {action}\n" in out
    assert f"Action {action}, {RUNBOOK}, approved by slack:{LEAD}: successful, exit status 0." in out, out
    assert "the exporter reports no active anomaly: the runbook cleared the fault" in out
    assert "the demo cleared the fault itself" not in out and "\nChatOps OK: " in out

    found = httpx.get(issues, params=query, headers=key).json()["issues"]
    subject = mail.message["Subject"].removeprefix("[alertsleuth] ")
    [issue] = [i for i in found if i["subject"] == subject and i["id"] not in before]
    issue = httpx.get(
        f"{redmine.url}/issues/{issue['id']}.json", params={"include": "attachments,journals"}, headers=key
    ).json()["issue"]
    assert issue["status"]["name"] == "Closed"
    assert {a["filename"].rsplit(".", 1)[1] for a in issue["attachments"]} == {
        "html",
        "json",
        "png",
    }  # + charts
    notes = [j["notes"] for j in issue["journals"] if j["notes"]]
    assert notes[0].startswith("Analysis changed: root causes ip_region=shanghai, user_type=admin → ")
    assert notes[-1].startswith("Resolved after ")
    # alertsleuth noted the run on the ticket, before it closed: the playbook ended the anomalies
    [ran] = [i for i, n in enumerate(notes) if f"{RUNBOOK}, approved by slack:{LEAD}: successful" in n]
    assert 0 < ran < len(notes) - 1, notes
    assert "End the component's anomalies" in notes[ran] and "changed: [localhost] => (item=" in notes[ran]
