"""The demo's ChatOps step (`alertsleuth-demo --redmine`): the incident handled from its Slack thread.

A loopback Slack (exporter/fake_slack.py) runs in the demo's process. The Slack sink `demo-slack`, in bot
mode beside Redmine, posts the firing notice there, and its ts becomes the incident's thread; the demo's
people then speak in that thread, each message signed as Slack signs it and posted to alertsleuth's
`POST /api/v1/chat/slack`:

    U0ONCALL01  why?                           alertsleuth answers from the incident's report
    U0ONCALL01  run restart-faulty-component   proposed: the dry run (ansible-playbook --check --diff)
                                               says what it would end; the fault is still active
    U0LEAD0001  approve <action id>            a second approver (the requester may not approve):
                                               deploy/runbooks/restart_component.yml ends the faulty
                                               component's anomalies through the exporter's control API

The runbook fits the demo's alert and the root cause's `user_type` (the component all the demo's faults
share, after the spread as before it) and takes its `component` from that label. alertsleuth notes the
run's output on the Redmine ticket; the alert then resolves through Alertmanager as before. The step is
bounded by BUDGET seconds (it takes about 10 s, most of it the two ansible-playbook runs).
"""

from __future__ import annotations

import copy
import html
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from exporter.fake_slack import FakeSlackAPI, signed_headers, slack_message

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PLAYBOOK = DEPLOY / "runbooks" / "restart_component.yml"
SINK = "demo-slack"
CHANNEL = "C0DEMOOPS1"
ONCALL, LEAD = "U0ONCALL01", "U0LEAD0001"  # the on-call engineer asks and runs; the lead approves
RUNBOOK = "restart-faulty-component"
BUDGET = 120.0  # seconds for the whole step: every wait in it shares this deadline
QUOTED_LINES = 24  # lines of a message shown, the rest counted

Say = Callable[[str], None]


class ChatOpsDemo:
    """The fake Slack, the settings that point alertsleuth at it, and the step itself."""

    def __init__(self, work: Path, *, exporter_url: str, alertname: str, user_type: str) -> None:
        self.work = work
        self.exporter_url = exporter_url
        self.alertname = alertname
        self.user_type = user_type
        self.secret = secrets.token_hex(16)  # the Slack app's signing secret
        self.token = f"xoxb-demo-{secrets.token_hex(12)}"
        self.slack = FakeSlackAPI(bot_token=self.token)
        self.sent = 0  # messages the demo's people posted (their ts and event ids)
        self.passed: bool | None = None  # None: the step did not run
        self.took = 0.0  # seconds the step took

    def start(self) -> ChatOpsDemo:
        self.work.mkdir(parents=True, exist_ok=True)
        self.slack.start()
        return self

    def stop(self) -> None:
        self.slack.stop()

    # ------------------------------------------------------------------ settings

    def delivery(self, delivery: dict[str, Any], *, beside: str) -> dict[str, Any]:
        """`delivery` with the bot-mode Slack sink added to every route that delivers to `beside` (else a
        route of its own for the demo's alert, ahead of the others)."""
        out = copy.deepcopy(delivery)
        out["sinks"][SINK] = {
            "type": "slack",
            "bot_token": self.token,
            "channel": CHANNEL,
            "api_url": self.slack.api_url,
        }
        routes: list[dict[str, Any]] = out.setdefault("route", {}).setdefault("routes", [])
        found = [r for r in routes if beside in r.get("sinks", [])]
        for r in found:
            r["sinks"] = [*r["sinks"], SINK]
        if not found:
            routes.insert(
                0, {"matchers": [f'alertname="{self.alertname}"'], "sinks": [SINK], "continue": True}
            )
        return out

    def settings(self, alertmanager_url: str | None = None) -> dict[str, Any]:
        """The `chatops:` section (server/chatops/config.py): Slack, who may do what, the runbooks."""
        section: dict[str, Any] = {
            "platforms": {
                "slack": {
                    "signing_secret": self.secret,
                    "bot_token": self.token,
                    "api_url": self.slack.api_url,
                }
            },
            "access": {
                "slack": {
                    "read": [ONCALL],
                    "act": [ONCALL],
                    "silence": [ONCALL],
                    "run": [ONCALL],
                    "approve": [ONCALL, LEAD],
                }
            },
            "runbooks": {"catalog": str(self.write_catalog()), "work_dir": str(self.work / "runs")},
        }
        if alertmanager_url:
            section["alertmanager"] = {"urls": [alertmanager_url]}
        return section

    def write_catalog(self) -> Path:
        """The runbook catalog (server/runbooks/catalog.py) with the demo's one runbook."""
        runbook = {
            "name": RUNBOOK,
            "description": "Restart the exporter's faulty component (end its anomalies, by its control API)",
            "fits": {"alerts": [self.alertname], "labels": {"user_type": {"equals": self.user_type}}},
            "runs": {
                "ansible": {
                    "playbook": str(PLAYBOOK),
                    "extra_vars": {
                        "component": {"label": "user_type"},
                        "exporter_url": {"value": self.exporter_url},
                    },
                    "check_supported": True,
                }
            },
            "timeout_seconds": 60,
            "max_concurrent": 1,
            "approvers": [f"slack:{ONCALL}", f"slack:{LEAD}"],
            "second_approver": True,
        }
        path = self.work / "catalog.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "runbooks": [runbook]}, sort_keys=False), "utf-8")
        return path

    # ------------------------------------------------------------------ the step

    def run(self, server_url: str, incident_id: int, say: Say) -> bool:
        """From the incident's thread: "why?", the runbook proposed, dry-run, approved and run; True when
        it ran successfully and the exporter has no active anomaly left."""
        started = time.monotonic()
        try:
            with httpx.Client(base_url=server_url, timeout=10) as client:
                self.passed = self._step(client, incident_id, started + BUDGET, say)
        except httpx.HTTPError as exc:
            say(f"ChatOps: {type(exc).__name__}: {exc}")
            self.passed = False
        self.took = time.monotonic() - started
        say(f"the ChatOps step {'passed' if self.passed else 'FAILED'} in {self.took:.1f}s")
        return self.passed

    def _step(self, client: httpx.Client, incident_id: int, deadline: float, say: Say) -> bool:
        thread = self._thread(incident_id)
        if thread is None:
            say(f"ChatOps: no firing notice of incident {incident_id} in Slack channel {CHANNEL}")
            return False
        say(f"Slack: the firing notice started thread {thread} in {CHANNEL}; the on-call asks there")
        if offered := self._offered(thread):
            say(f"the notice offers: {offered}")

        answer = self._ask(client, thread, ONCALL, "why?", lambda text: True, deadline, say)
        if answer is None:
            return False

        said = self._ask(client, thread, ONCALL, f"run {RUNBOOK}", lambda t: RUNBOOK in t, deadline, say)
        found = re.search(r"action (\d+), runbook", said or "")
        if found is None:
            return False
        action_id = int(found.group(1))
        proposal = self._reply(
            thread, 0, lambda t: t.startswith(f"Action {action_id}, {RUNBOOK}: "), deadline
        )
        if proposal is None or self._action(client, action_id) != "proposed":
            say(f"ChatOps: action {action_id} was not proposed in time: {proposal}")
            return False
        say("alertsleuth posts the dry run:")
        _quote(proposal)
        active = self._anomalies()
        if not active:
            say("ChatOps: the fault ended before the runbook ran: nothing to show")
            return False
        say(f"the fault is still active after the dry run: {_fmt_anomalies(active)}")

        said = self._ask(client, thread, LEAD, f"approve {action_id}", lambda t: True, deadline, say)
        if said is None or not said.startswith(f"Action {action_id} ({RUNBOOK}) approved"):
            return False
        ran = f"Action {action_id}, {RUNBOOK}, approved by"
        done = self._reply(thread, 0, lambda t: t.startswith(ran), deadline)
        state = self._action(client, action_id)
        if done is None or state != "succeeded":
            say(f"ChatOps: action {action_id} did not succeed in time (state {state})")
            return False
        say("alertsleuth posts the run's result:")
        _quote(done)
        left = self._anomalies()
        if left:
            say(f"ChatOps: anomalies still active after the run: {_fmt_anomalies(left)}")
            return False
        say("the exporter reports no active anomaly: the runbook cleared the fault")
        return True

    def _thread(self, incident_id: int) -> str | None:
        """The ts of the incident's firing notice: the channel's message, in no thread, whose context names
        the incident (server/delivery/sinks/slack.py)."""
        named = re.compile(rf"\bincident {incident_id}\b")
        for m in self.slack.posted():
            if m.get("channel") == CHANNEL and "thread_ts" not in m and named.search(_texts(m)):
                return str(m["ts"])
        return None

    def _offered(self, thread: str) -> str | None:
        """The notice's line naming the runbooks that fit (server/delivery/message.py), if it has one."""
        for m in self.slack.posted():
            if m.get("ts") == thread:
                return next((ln.strip() for ln in _texts(m).splitlines() if "Runbooks that fit" in ln), None)
        return None

    def _ask(
        self,
        client: httpx.Client,
        thread: str,
        user: str,
        text: str,
        answered: Callable[[str], bool],
        deadline: float,
        say: Say,
    ) -> str | None:
        """`user` says `text` in the thread; alertsleuth's first reply that `answered` accepts, printed."""
        before = len(self.slack.in_thread(thread))
        self.sent += 1
        now = time.time()
        body = slack_message(
            text,
            ts=f"{int(now)}.{self.sent:06d}",
            user=user,
            channel=CHANNEL,
            event_id=f"EvDEMO{self.sent:06d}",
            thread_ts=thread,
        )
        say(f"Slack, {user} in the thread: {text}")
        r = client.post("/api/v1/chat/slack", content=body, headers=signed_headers(self.secret, body, now))
        if r.status_code != 200:
            say(f"ChatOps: alertsleuth refused the message: HTTP {r.status_code} {r.text[:200]}")
            return None
        reply = self._reply(thread, before, answered, deadline)
        if reply is None:
            say(f"ChatOps: no answer to {text!r} in the thread in time")
            return None
        say("alertsleuth answers in the thread:")
        _quote(reply)
        return reply

    def _reply(self, thread: str, after: int, accept: Callable[[str], bool], deadline: float) -> str | None:
        """The first of alertsleuth's chat replies in the thread (past its first `after` messages) that
        `accept` takes: not the sink's notices (updates, the resolution), which open with a header block."""
        while time.monotonic() < deadline:
            for m in self.slack.in_thread(thread)[after:]:
                text = html.unescape(str(m.get("text", "")))  # Slack escapes &, < and >
                if not _is_notice(m) and accept(text):
                    return text
            time.sleep(0.2)
        return None

    def _action(self, client: httpx.Client, action_id: int) -> str | None:
        r = client.get(f"/api/v1/actions/{action_id}")
        return str(r.json()["state"]) if r.status_code == 200 else None

    def _anomalies(self) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.exporter_url}/api/v1/anomalies", timeout=5)
        r.raise_for_status()
        found: list[dict[str, Any]] = r.json()
        return found


def _texts(message: dict[str, Any]) -> str:
    """The text of a message and of its blocks (sections and context elements), unescaped."""
    texts = [str(message.get("text", ""))]
    for block in message.get("blocks") or []:
        if not isinstance(block, dict):
            continue
        for part in [block.get("text"), *(block.get("elements") or [])]:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return html.unescape("\n".join(texts))  # Slack escapes &, < and >


def _is_notice(message: dict[str, Any]) -> bool:
    """A notice of the Slack sink (server/delivery/sinks/slack.py), whose Block Kit message has a header."""
    return any(isinstance(b, dict) and b.get("type") == "header" for b in message.get("blocks") or [])


def _fmt_anomalies(anomalies: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{a.get('user_type') or 'all'} logins from {a.get('ip_region') or 'all'}" for a in anomalies
    )


def _quote(text: str) -> None:
    """A message, indented under the line that announced it: without blank lines and Ansible's rules of
    stars, its first and last lines when it is long (a playbook's recap is last)."""
    lines = [re.sub(r"\s\*{3,}$", "", line.rstrip()) for line in text.strip().splitlines() if line.strip()]
    if len(lines) > QUOTED_LINES:
        cut = len(lines) - QUOTED_LINES + 1
        lines = [*lines[: QUOTED_LINES - 3], f"[… {cut} lines]", *lines[-2:]]
    print("\n".join(f"          │ {line}" for line in lines or [""]), flush=True)
