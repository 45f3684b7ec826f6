"""Two-way ChatOps through the real app: the incident's Slack thread (a local server speaking Slack's
Web API, requests signed as Slack signs them), silences in a real Alertmanager, a runbook run by the
real ansible-playbook after its dry run and an approval, the notes on a real Redmine ticket, and the
audit trail. Under CI=true a missing binary fails (tests/binaries.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx

from exporter import launch as procs
from server.settings import Settings
from tests.conftest import PromEnv, serve, wait_for
from tests.fakes.chat_platforms import SLACK_CHANNEL, SLACK_USER, FakeSlackAPI, slack_event, slack_request
from tests.server.test_api import wait_report, webhook
from tests.server.test_delivery import redmine_issue, redmine_sink

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-1111-2222-abcdefabcdef"
BOSS = "U0BOSS0001"

PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write the marker for the region
      ansible.builtin.copy:
        dest: "{{ marker }}"
        content: "restarted {{ region }}\\n"
"""


def catalog(tmp_path: Path) -> Path:
    (tmp_path / "mark.yml").write_text(PLAYBOOK)
    marker = tmp_path / "marker.txt"
    path = tmp_path / "catalog.yaml"
    path.write_text(
        f"""\
version: 1
default_approvers: ["slack:{SLACK_USER}", "slack:{BOSS}", "api:*"]
runbooks:
  - name: restart-region
    description: Restart the login service of the faulty region
    fits:
      alerts: [HighLoginFailureRate]
      labels:
        ip_region: {{equals: shanghai}}
    runs:
      ansible:
        playbook: mark.yml
        extra_vars:
          region: {{label: ip_region}}
          marker: {{value: "{marker}"}}
    timeout_seconds: 60
    second_approver: true
"""
    )
    return path


def test_chatops_thread_silence_and_an_approved_runbook(
    make_settings: Callable[..., Settings],
    prom: PromEnv,
    alertmanager: procs.Process,
    redmine: procs.Process,
    tmp_path: Path,
) -> None:
    with FakeSlackAPI(bot_token=TOKEN) as slack:
        settings = make_settings(
            prometheus_url=prom.url,
            delivery={
                "sinks": {
                    "ops-slack": {
                        "type": "slack",
                        "bot_token": TOKEN,
                        "channel": SLACK_CHANNEL,
                        "api_url": slack.api_url,
                    },
                    "ops-redmine": redmine_sink(redmine),
                },
                "route": {"sinks": ["ops-slack", "ops-redmine"]},
            },
            delivery_backoff_seconds=0.05,
            chatops={
                "platforms": {
                    "slack": {"signing_secret": SECRET, "bot_token": TOKEN, "api_url": slack.api_url}
                },
                "access": {
                    "slack": {
                        "read": ["*"],
                        "silence": [SLACK_USER],
                        "run": [SLACK_USER],
                        "approve": [SLACK_USER, BOSS],
                    }
                },
                "alertmanager": {"urls": [alertmanager.url]},
                "runbooks": {"catalog": str(catalog(tmp_path)), "work_dir": str(tmp_path / "runs")},
            },
        )
        env, stop = serve(settings)
        try:
            with httpx.Client(base_url=env.url, timeout=15) as c:
                _the_loop(c, prom, slack, alertmanager, redmine, tmp_path)
        finally:
            stop()


def _say(c: httpx.Client, text: str, thread: str, *, user: str = SLACK_USER, n: int) -> httpx.Response:
    """A message in the incident's thread, signed as Slack signs it."""
    event = {"type": "message", "user": user, "channel": SLACK_CHANNEL, "ts": f"1763709{n:03d}.000100"}
    body = slack_event({**event, "text": text, "thread_ts": thread}, event_id=f"Ev{n:08d}")
    raw = slack_request(SECRET, body, now=time.time())
    return c.post("/api/v1/chat/slack", content=raw.body, headers=dict(raw.headers))


def _click(c: httpx.Client, action_id: str, value: str, thread: str, ts: str, *, user: str) -> httpx.Response:
    """A button clicked in the thread: Slack's interactivity payload, form-encoded and signed."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "lead"},
        "channel": {"id": SLACK_CHANNEL},
        "message": {"type": "message", "ts": ts, "thread_ts": thread, "text": "…"},
        "response_url": "https://hooks.slack.com/actions/T0/1/x",
        "actions": [{"action_id": action_id, "block_id": "b1", "type": "button", "value": value}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    raw = slack_request(SECRET, body, now=time.time(), content_type="application/x-www-form-urlencoded")
    return c.post("/api/v1/chat/slack", content=raw.body, headers=dict(raw.headers))


def _replies(slack: FakeSlackAPI, thread: str, count: int) -> list[str]:
    """The first `count` messages alertsleuth posted in the thread (its notices and its answers)."""
    found = wait_for(
        f"{count} messages in thread {thread}",
        lambda: (m := [x["text"] for x in slack.messages if x.get("thread_ts") == thread])[count - 1 :] and m,
    )
    return list(found[:count])


def _the_loop(
    c: httpx.Client,
    prom: PromEnv,
    slack: FakeSlackAPI,
    am: procs.Process,
    redmine: procs.Process,
    tmp_path: Path,
) -> None:
    r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="c0ffee"))
    assert r.status_code == 202, r.text
    incident_id = r.json()["incidents_created"][0]
    assert wait_report(c, incident_id)["investigation"] == "done"
    first = wait_for("the firing message", lambda: [m for m in slack.messages if "thread_ts" not in m])
    thread = first[0]["ts"]
    assert first[0]["channel"] == SLACK_CHANNEL and "HighLoginFailureRate" in first[0]["text"]
    # The report and the notice propose the runbook that fits the root cause (the catalog's, nothing else).
    inc = c.get(f"/api/v1/incidents/{incident_id}").json()
    report = c.get(inc["report_url"]).json()
    assert [r["name"] for r in report["runbooks"]] == ["restart-region"]
    assert 'ip_region="shanghai"' in report["runbooks"][0]["why"]
    assert "Runbooks that fit" in c.get(inc["report_url"], params={"format": "md"}).text
    blocks = " ".join(str(b) for b in first[0]["blocks"])
    assert "Runbooks that fit: restart-region" in blocks, blocks

    # A question in the thread is answered there, from the incident's report (no LLM configured).
    assert _say(c, "why?", thread, n=1).status_code == 200
    (answer,) = _replies(slack, thread, 1)
    assert "shanghai" in answer, answer

    # Silence from chat: a real silence in Alertmanager, on the incident and on its ticket.
    assert _say(c, "silence 2h -- deploying the fix", thread, n=2).status_code == 200
    said = _replies(slack, thread, 2)[1]
    assert "silenced until" in said, said
    [silence] = c.get(f"/api/v1/incidents/{incident_id}/silences").json()
    assert silence["created_by"] == f"slack:{SLACK_USER}" and silence["comment"] == "deploying the fix"
    got = httpx.get(f"{am.url}/api/v2/silence/{silence['silence_id']}").json()
    assert got["status"]["state"] == "active" and got["createdBy"] == f"slack:{SLACK_USER}"
    assert {"name": "alertname", "value": "HighLoginFailureRate", "isRegex": False, "isEqual": True} in got[
        "matchers"
    ]
    ticket = wait_for("the ticket", lambda: c.get(f"/api/v1/incidents/{incident_id}").json()["tickets"])[0]
    wait_for(
        "the silence noted on the ticket",
        lambda: any(
            silence["silence_id"] in (j["notes"] or "")
            for j in redmine_issue(redmine, ticket["key"][1:])["journals"]
        ),
    )

    # unsilence expires it
    assert _say(c, "unsilence", thread, n=3).status_code == 200
    assert "expired" in _replies(slack, thread, 3)[2]
    got = httpx.get(f"{am.url}/api/v2/silence/{silence['silence_id']}").json()
    assert got["status"]["state"] == "expired"

    # The runbook that fits is proposed; its dry run changes nothing; the requester may not approve it
    # (a second approver is wanted); the boss approves; it runs and its output lands in the thread.
    assert _say(c, "runbooks", thread, n=4).status_code == 200
    assert "restart-region" in _replies(slack, thread, 4)[3]
    assert _say(c, "run restart-region", thread, n=5).status_code == 200
    assert "dry run started" in _replies(slack, thread, 5)[4]
    proposed = _replies(slack, thread, 6)[5]
    assert "dry run successful" in proposed and "approve" in proposed, proposed
    marker = tmp_path / "marker.txt"
    assert not marker.exists()
    [action] = c.get(f"/api/v1/incidents/{incident_id}/actions").json()
    assert action["state"] == "proposed" and action["variables"]["values"]["region"] == "shanghai"
    assert "--check" in " ".join(action["dry_run"]["command"])
    assert _say(c, f"approve {action['id']}", thread, n=6).status_code == 200
    assert "second approver" in _replies(slack, thread, 7)[6]
    # the proposal carries Approve and Deny buttons; the boss clicks Approve (a signed block_actions)
    [buttons] = [m for m in slack.messages if m.get("blocks") and "dry run successful" in m["text"]]
    elements = buttons["blocks"][-1]["elements"]
    assert [(e["action_id"], e["value"]) for e in elements] == [
        ("approve", str(action["id"])),
        ("deny", str(action["id"])),
    ]
    assert _click(c, "approve", str(action["id"]), thread, buttons["ts"], user=BOSS).status_code == 200
    assert "running" in _replies(slack, thread, 8)[7]
    done = _replies(slack, thread, 9)[8]
    assert "successful, exit status 0" in done, done
    assert marker.read_text() == "restarted shanghai\n"
    action = c.get(f"/api/v1/actions/{action['id']}").json()
    assert action["state"] == "succeeded" and action["approved_by"] == f"slack:{BOSS}"
    wait_for(
        "the run's output noted on the ticket",
        lambda: any(
            "restart-region" in (j["notes"] or "")
            for j in redmine_issue(redmine, ticket["key"][1:])["journals"]
        ),
    )

    # The audit trail, append-only, has every step.
    kinds = [e["kind"] for e in c.get("/api/v1/audit", params={"incident_id": incident_id}).json()]
    for kind in (
        "ask",
        "silence",
        "unsilence",
        "run_requested",
        "dry_run",
        "refused",
        "approved",
        "run_finished",
    ):
        assert kind in kinds, kinds
    finished = c.get("/api/v1/audit", params={"action_id": action["id"]}).json()[-1]
    assert finished["kind"] == "run_finished" and finished["detail"]["rc"] == 0
    assert finished["detail"]["output_digest"] == action["run"]["output_digest"]

    # A forged signature and a replayed request are refused; nothing is answered for them.
    before = len(slack.messages)
    raw = slack_request("not-the-secret", b'{"type":"event_callback"}', now=time.time())
    assert c.post("/api/v1/chat/slack", content=raw.body, headers=dict(raw.headers)).status_code == 401
    old = slack_request(SECRET, b'{"type":"event_callback"}', now=time.time() - 3600)
    refused = c.post("/api/v1/chat/slack", content=old.body, headers=dict(old.headers))
    assert refused.status_code == 401 and "replay" in refused.json()["detail"]
    time.sleep(0.3)
    assert len(slack.messages) == before
