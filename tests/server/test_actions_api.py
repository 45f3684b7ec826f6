"""ChatOps through the HTTP API of the real app (uvicorn on a loopback port, basic auth): silences in a
real Alertmanager, runbook actions through their dry run, approval (by the basic-auth user listed as
"api:<user>") and run by the real runner, the audit trail's filters, and 404 for every ChatOps route
when the `chatops:` section is absent. The app runs without its workers (no investigation is needed:
the runbooks fit the alert itself), so each test takes a second or two; the Alertmanager is started
once for the module."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from exporter import launch as procs
from server.chatops.commands import help_text
from server.settings import Settings
from tests.conftest import ServerEnv, serve, wait_for
from tests.fakes.chat_platforms import SLACK_BOT, FakeSlackAPI, slack_message, slack_request
from tests.fakes.chat_platforms import serve as serve_fake

PASSWORD = "correct-horse-battery"
LABELS = {"alertname": "HighLoginFailureRate", "severity": "critical", "instance": "web-1"}
AM_CONFIG = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'
SLACK_SECRET, SLACK_TOKEN = "8f742231b10e8888abcd99yyyzzz85a5", "xoxb-1111-2222-abcdefabcdef"
SILENCE_ID = "4f1c1bde-9a5e-4b59-9d6f-0d7a8d0c2e11"  # well-formed, unknown to everyone


def _alert_webhook(fingerprint: str = "a11ce") -> dict[str, Any]:
    starts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    alert = {
        "status": "firing",
        "labels": LABELS,
        "annotations": {"summary": "Login failure ratio above 20%"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up&g0.tab=1",
        "fingerprint": fingerprint,
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLoginFailureRate"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "alertsleuth",
        "groupLabels": {"alertname": "HighLoginFailureRate"},
        "commonLabels": LABELS,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }


def _catalog(tmp_path: Path) -> Path:
    marker = tmp_path / "touched"
    path = tmp_path / "catalog.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            allowed_commands: [/usr/bin/touch]
            default_approvers: ["api:alice"]
            runbooks:
              - name: touch-marker
                description: Touch the marker of the faulty instance
                fits: {{alerts: [HighLoginFailureRate], labels: {{instance: {{matches: "web-.*"}}}}}}
                runs: {{command: {{argv: [/usr/bin/touch, "{marker}"]}}}}
              - name: beijing-only
                description: Fits other incidents
                fits: {{labels: {{ip_region: {{equals: beijing}}}}}}
                runs: {{command: {{argv: [/usr/bin/touch, "{marker}.beijing"]}}}}
            """
        )
    )
    return path


class Api:
    """One running app and a client signed in as `user`."""

    def __init__(self, env: ServerEnv, stop: Callable[[], None], user: str) -> None:
        self.env, self.stop = env, stop
        self.c = httpx.Client(base_url=env.url, auth=(user, PASSWORD), timeout=15)

    def close(self) -> None:
        self.c.close()
        self.stop()

    def incident(self, fingerprint: str = "a11ce") -> int:
        r = self.c.post("/api/v1/webhook/alertmanager", json=_alert_webhook(fingerprint))
        assert r.status_code == 202, r.text
        created: list[int] = r.json()["incidents_created"]
        return created[0]

    def wait_action(self, action_id: int, state: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            action: dict[str, Any] = self.c.get(f"/api/v1/actions/{action_id}").json()
            if action["state"] == state:
                return action
            time.sleep(0.05)
        raise AssertionError(f"action {action_id} not {state} in {timeout}s: {action}")

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        r = self.c.get("/api/v1/audit", params=params)
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = r.json()
        return events


@pytest.fixture
def start(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Api]]:
    """Starts apps on the test's database (each call: one more app, the same database)."""
    started: list[Api] = []

    def run(user: str = "alice", chatops: dict[str, Any] | None = None) -> Api:
        overrides: dict[str, Any] = {"basic_auth_username": user, "basic_auth_password": PASSWORD}
        if chatops is not None:
            overrides["chatops"] = chatops
        env, stop = serve(make_settings(**overrides), start_workers=False)
        started.append(Api(env, stop, user))
        return started[-1]

    yield run
    for api in reversed(started):
        api.close()


def _am_silence(am: procs.Process, silence_id: str) -> dict[str, Any]:
    got: dict[str, Any] = httpx.get(f"{am.url}/api/v2/silence/{silence_id}", timeout=5).json()
    return got


# ------------------------------------------------------------------------------------------ silences


def test_silences_are_made_listed_and_expired_in_alertmanager(
    start: Callable[..., Api], alertmanager: procs.Process
) -> None:
    api = start(chatops={"alertmanager": {"urls": [alertmanager.url]}, "max_silence": "1d"})
    incident = api.incident()
    path = f"/api/v1/incidents/{incident}/silences"

    r = api.c.post(path, json={"duration": "2h", "comment": "deploying the fix"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["created_by"] == "api:alice" and made["comment"] == "deploying the fix"
    assert made["expired_at"] is None
    got = _am_silence(alertmanager, made["silence_id"])
    assert got["status"]["state"] == "active" and got["createdBy"] == "api:alice"
    assert {(m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in got["matchers"]} == {
        (k, v, False, True) for k, v in LABELS.items()
    }
    lasts = datetime.fromisoformat(made["ends_at"]) - datetime.fromisoformat(made["starts_at"])
    assert lasts == timedelta(hours=2)

    r = api.c.post(
        path, json={"duration": "30m", "matchers": 'alertname="HighLoginFailureRate", instance=~"web-.*"'}
    )
    assert r.status_code == 201, r.text
    chosen = _am_silence(alertmanager, r.json()["silence_id"])
    assert {(m["name"], m["value"], m["isRegex"]) for m in chosen["matchers"]} == {
        ("alertname", "HighLoginFailureRate", False),
        ("instance", "web-.*", True),
    }
    assert chosen["comment"] == f"alertsleuth incident #{incident}"  # the default comment
    listed = api.c.get(path).json()
    assert [s["silence_id"] for s in listed] == [made["silence_id"], r.json()["silence_id"]]

    expired = api.c.delete(f"{path}/{made['silence_id']}")
    assert expired.status_code == 200, expired.text
    assert _am_silence(alertmanager, made["silence_id"])["status"]["state"] == "expired"
    [first, _] = api.c.get(path).json()
    assert first["expired_by"] == "api:alice" and first["expired_at"] is not None
    again = api.c.delete(f"{path}/{made['silence_id']}")  # ours, but no longer active
    assert again.status_code == 404 and "no silence" in again.json()["detail"]

    kinds = [(e["kind"], e["actor"], e["via"]) for e in api.audit(incident_id=incident)]
    assert kinds == [
        ("silence", "api:alice", "api"),
        ("silence", "api:alice", "api"),
        ("unsilence", "api:alice", "api"),
    ]


def test_silence_requests_refused_before_and_by_alertmanager(
    start: Callable[..., Api], alertmanager: procs.Process
) -> None:
    api = start(chatops={"alertmanager": {"urls": [alertmanager.url]}, "max_silence": "1d"})
    incident = api.incident()
    path = f"/api/v1/incidents/{incident}/silences"
    for body, names in (
        ({"duration": "2x"}, "bad duration '2x'"),
        ({"duration": "30s"}, "too short"),
        ({"duration": "2d"}, "too long"),  # over max_silence
        ({"duration": "1h", "matchers": 'env!="dev"'}, "would silence every alert"),
        ({"duration": "1h", "matchers": '9lives="x"'}, "bad matcher '9lives=\"x\"'"),
        ({"duration": "1h", "matchers": 'alertname="unterminated'}, "unterminated quote"),
    ):
        r = api.c.post(path, json=body)
        assert r.status_code == 422 and names in r.json()["detail"], (body, r.text)
    assert api.c.post(path, json={"duration": "1h", "ttl": 3}).status_code == 422  # an unknown key

    # Python's re takes a lookahead, Alertmanager's RE2 does not: Alertmanager refuses, with its reason
    r = api.c.post(path, json={"duration": "1h", "matchers": 'alertname=~"(?=High)High.*"'})
    assert r.status_code == 400 and "Alertmanager refused it" in r.json()["detail"], r.text

    assert api.c.post("/api/v1/incidents/999999/silences", json={"duration": "1h"}).status_code == 404
    assert api.c.get("/api/v1/incidents/999999/silences").status_code == 404
    assert api.c.delete(f"/api/v1/incidents/999999/silences/{SILENCE_ID}").status_code == 404
    assert api.c.delete(f"{path}/{SILENCE_ID}").status_code == 404  # not one alertsleuth made
    assert api.c.delete(f"{path}/not-a-uuid").status_code == 422
    assert api.c.get(path).json() == [] and api.audit(incident_id=incident) == []  # nothing recorded

    unsigned = httpx.post(f"{api.env.url}{path}", json={"duration": "1h"}, timeout=5)
    assert unsigned.status_code == 401


def test_silences_answer_503_when_no_alertmanager_answers(start: Callable[..., Api]) -> None:
    dead = f"http://127.0.0.1:{procs.free_port()}"
    api = start(chatops={"alertmanager": {"urls": [dead], "timeout": 2}})
    incident = api.incident()
    r = api.c.post(f"/api/v1/incidents/{incident}/silences", json={"duration": "1h"})
    assert r.status_code == 503 and "no Alertmanager answered" in r.json()["detail"], r.text
    assert "could not be reached" in r.json()["detail"]
    assert api.c.get(f"/api/v1/incidents/{incident}/silences").json() == []
    assert api.audit(incident_id=incident) == []


def test_silences_without_an_alertmanager_configured_are_refused(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    api = start(chatops={"runbooks": {"catalog": str(_catalog(tmp_path))}})
    incident = api.incident()
    r = api.c.post(f"/api/v1/incidents/{incident}/silences", json={"duration": "1h"})
    assert r.status_code == 400 and "chatops.alertmanager" in r.json()["detail"], r.text


# ------------------------------------------------------------------------------------------ actions


def test_actions_are_proposed_approved_by_a_listed_user_and_refused_to_others(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    chatops = {"runbooks": {"catalog": str(_catalog(tmp_path)), "work_dir": str(tmp_path / "runs")}}
    alice = start("alice", chatops)
    bob = start("bob", chatops)  # another app on the same database, signed in as bob
    incident = alice.incident()
    marker = tmp_path / "touched"

    fits = alice.c.get(f"/api/v1/incidents/{incident}/runbooks").json()
    assert [f["name"] for f in fits] == ["touch-marker"] and 'instance="web-1"' in fits[0]["why"]
    path = f"/api/v1/incidents/{incident}/actions"
    for name, detail in (("beijing-only", "does not fit"), ("nope", "no runbook 'nope' in the catalog")):
        r = alice.c.post(path, json={"runbook": name})
        assert r.status_code == 409 and detail in r.json()["detail"], r.text
    assert (
        alice.c.post("/api/v1/incidents/999999/actions", json={"runbook": "touch-marker"}).status_code == 404
    )
    assert alice.c.post(path, json={"runbook": "touch-marker", "now": True}).status_code == 422
    assert alice.c.get(path).json() == []

    # bob may propose (anyone with the API's credentials may); he may not approve
    r = bob.c.post(path, json={"runbook": "touch-marker"})
    assert r.status_code == 202, r.text
    action = r.json()
    assert (action["state"], action["requested_by"], action["approved_by"]) == (
        "dry_running",
        "api:bob",
        None,
    )
    proposed = bob.wait_action(action["id"], "proposed")
    assert "dry run: would run /usr/bin/touch" in proposed["dry_run"]["output"] and not marker.exists()

    refused = bob.c.post(f"/api/v1/actions/{action['id']}/approve")
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == "api:bob may not approve touch-marker: not among its approvers"
    last = bob.audit(action_id=action["id"])[-1]
    assert (last["kind"], last["actor"], last["via"]) == ("refused", "api:bob", "api")
    assert last["incident_id"] == incident and "not among its approvers" in last["detail"]["why"]
    assert bob.c.get(f"/api/v1/actions/{action['id']}").json()["state"] == "proposed"

    approved = alice.c.post(f"/api/v1/actions/{action['id']}/approve")
    assert approved.status_code == 202, approved.text
    assert (approved.json()["state"], approved.json()["approved_by"]) == ("running", "api:alice")
    done = alice.wait_action(action["id"], "succeeded")
    assert done["run"]["rc"] == 0 and done["run"]["command"] == ["/usr/bin/touch", str(marker)]
    assert marker.exists()
    again = alice.c.post(f"/api/v1/actions/{action['id']}/approve")
    assert again.status_code == 409 and "is succeeded, not waiting for approval" in again.json()["detail"]
    assert alice.c.post("/api/v1/actions/999999/approve").status_code == 404
    assert alice.c.get("/api/v1/actions/999999").status_code == 404

    # deny: bob is neither an approver nor the requester of alice's action; alice may
    second = alice.c.post(path, json={"runbook": "touch-marker"}).json()
    alice.wait_action(second["id"], "proposed")
    r = bob.c.post(f"/api/v1/actions/{second['id']}/deny", json={"reason": "not now"})
    assert r.status_code == 409 and "may not deny" in r.json()["detail"], r.text
    r = alice.c.post(f"/api/v1/actions/{second['id']}/deny", json={"reason": "not now"})
    assert r.status_code == 200 and r.json()["state"] == "denied", r.text
    r = alice.c.post(f"/api/v1/actions/{second['id']}/approve")
    assert r.status_code == 409 and "is denied" in r.json()["detail"], r.text
    assert [a["state"] for a in alice.c.get(path).json()] == ["succeeded", "denied"]

    # the audit trail, by incident, by action, bounded
    trail = alice.audit(incident_id=incident)
    assert [(e["kind"], e["actor"]) for e in trail if e["action_id"] == action["id"]] == [
        ("run_requested", "api:bob"),
        ("dry_run", "alertsleuth:runner"),
        ("refused", "api:bob"),
        ("approved", "api:alice"),
        ("run_finished", "alertsleuth:runner"),
        ("refused", "api:alice"),  # approving it again
    ]
    finished = [e for e in trail if e["kind"] == "run_finished"][0]
    assert finished["detail"]["output_digest"] == done["run"]["output_digest"]
    by_action = alice.audit(action_id=second["id"])
    assert {e["action_id"] for e in by_action} == {second["id"]}
    assert [e["kind"] for e in by_action] == ["run_requested", "dry_run", "refused", "denied", "refused"]
    assert by_action[3]["detail"] == {"reason": "not now"}
    assert alice.audit(incident_id=incident, limit=2) == trail[:2]
    assert alice.audit(incident_id=incident, action_id=second["id"]) == by_action
    assert len(alice.audit()) == len(trail)  # no other incident here
    other = alice.incident("0ther")
    assert alice.audit(incident_id=other) == []
    for bad in ({"limit": 0}, {"limit": 1001}, {"incident_id": 0}, {"action_id": "x"}):
        assert alice.c.get("/api/v1/audit", params=bad).status_code == 422, bad


# ------------------------------------------------------------------------------------------ no section


def _answers(api: Api, routes: list[tuple[str, str, dict[str, Any] | None]]) -> dict[tuple[str, str], int]:
    return {(m, p): api.c.request(m, p, json=body).status_code for m, p, body in routes}


def test_the_chat_and_action_routes_answer_404_without_the_section(start: Callable[..., Api]) -> None:
    api = start()
    incident = api.incident()
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/api/v1/chat/slack", {}),
        ("POST", "/api/v1/chat/feishu", {}),
        ("POST", "/api/v1/chat/wecom", {}),
        ("GET", "/api/v1/chat/wecom", None),
        ("POST", "/api/v1/chat/dingtalk", {}),
        ("POST", f"/api/v1/incidents/{incident}/silences", {"duration": "1h"}),
        ("DELETE", f"/api/v1/incidents/{incident}/silences/{SILENCE_ID}", None),
        ("GET", f"/api/v1/incidents/{incident}/runbooks", None),
        ("POST", f"/api/v1/incidents/{incident}/actions", {"runbook": "touch-marker"}),
        ("POST", "/api/v1/actions/1/approve", None),
        ("POST", "/api/v1/actions/1/deny", {"reason": ""}),
        ("GET", "/api/v1/actions/1", None),
    ]
    assert _answers(api, routes) == {(m, p): 404 for m, p, _ in routes}
    assert "chatops" in api.c.post(f"/api/v1/incidents/{incident}/silences", json={"duration": "1h"}).text


def test_the_chatops_reads_answer_404_without_the_section(start: Callable[..., Api]) -> None:
    """The reads of silences, actions and the audit trail are ChatOps routes too: without the section
    they answer 404 like the others, not an empty 200 that says "nothing happened"."""
    api = start()
    incident = api.incident()
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/api/v1/incidents/{incident}/silences", None),
        ("GET", f"/api/v1/incidents/{incident}/actions", None),
        ("GET", "/api/v1/audit", None),
    ]
    assert _answers(api, routes) == {(m, p): 404 for m, p, _ in routes}


# ------------------------------------------------------------------------------------------ chat events


def test_a_chat_event_the_store_cannot_record_is_answered_503_and_taken_on_the_platforms_retry(
    start: Callable[..., Api], database_url: str
) -> None:
    """Whether an event was taken already is in the store (replicas share it); when the store cannot say,
    nothing is done and the platform is told to send it again, not acknowledged and lost (nor a 500)."""
    with serve_fake(FakeSlackAPI(bot_token=SLACK_TOKEN)) as slack:
        api = start(
            chatops={
                "platforms": {
                    "slack": {
                        "signing_secret": SLACK_SECRET,
                        "bot_token": SLACK_TOKEN,
                        "api_url": slack.api_url,
                    }
                },
                "access": {"slack": {"read": ["*"]}},
            }
        )
        body = slack_message(f"<@{SLACK_BOT}> help", kind="app_mention", event_id="EvStoreDown")

        def send() -> httpx.Response:
            raw = slack_request(SLACK_SECRET, body, now=time.time())
            return api.c.post("/api/v1/chat/slack", content=raw.body, headers=dict(raw.headers))

        engine = create_engine(database_url)
        try:
            with engine.begin() as conn:  # the table the event ids are kept in, gone
                conn.execute(text("ALTER TABLE chat_events RENAME TO chat_events_away"))
            refused = send()
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "5"
            assert "send it again" in refused.json()["detail"]
            with engine.begin() as conn:
                conn.execute(text("ALTER TABLE chat_events_away RENAME TO chat_events"))
            assert send().status_code == 200  # the platform's retry: taken
            assert send().status_code == 200  # and its retry of that: acknowledged, dropped
        finally:
            engine.dispose()
        wait_for("the answer in Slack", slack.posted, timeout=15)
        time.sleep(0.5)  # a second answer, were there one, would be posted by now
        answers = slack.posted()
        assert len(answers) == 1, answers
        assert help_text().splitlines()[-1] in answers[0]["text"]  # the usage, once
