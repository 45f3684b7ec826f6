"""Silences and runbooks from the web UI, over real HTTP against the real app: a real Alertmanager on a
free loopback port, a runbook catalog with a small playbook run by the real ansible-playbook (its dry
run, then its run once approved), signed-in UI users acting as "ui:<user>", CSRF on every form, errors as
the message page with a precise status, and hostile label values rendered as text."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any

import httpx

from exporter import launch as procs
from server.settings import Settings
from server.ui.session import UISession, _sign
from tests.conftest import PromEnv, serve, wait_for
from tests.server.test_api import wait_report, webhook
from tests.server.test_ui import csrf_of, sign_in

TOKEN = "ui-chatops-token"
USER, PASSWORD = "ops", "pw"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
LABELS = {"alertname": "HighLoginFailureRate", "severity": "critical", "team": SCRIPT}

PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Say whose it is
      ansible.builtin.debug:
        msg: "team {{ team }}"
    - name: Write the marker for the region
      ansible.builtin.copy:
        dest: "{{ marker }}"
        content: "restarted {{ region }}\\n"
"""


def catalog(tmp_path: Path) -> Path:
    (tmp_path / "mark.yml").write_text(PLAYBOOK)
    path = tmp_path / "catalog.yaml"
    path.write_text(
        f"""\
version: 1
default_approvers: ["ui:{USER}"]
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
          team: {{label: team}}
          marker: {{value: "{tmp_path / "marker.txt"}"}}
    timeout_seconds: 60
"""
    )
    return path


def sign_in_basic(c: httpx.Client) -> None:
    form = c.get("/ui/login")
    data = {"csrf": csrf_of(form.text), "username": USER, "password": PASSWORD}
    assert c.post("/ui/login", data=data).status_code == 303


def events(html: str) -> list[str]:
    """The timeline's lines, as text."""
    table = html.partition('<table class="events">')[2].partition("</table>")[0]
    cells = re.findall(r"<tr class=\"event-[a-z]+\"><td[^>]*>[^<]*</td><td[^>]*>(.*?)</td></tr>", table)
    return [unescape(re.sub(r"<[^>]+>", "", c)) for c in cells]


def section(html: str) -> str:
    return html.partition('<section id="chatops"')[2].partition("</section>")[0]


def test_silence_expire_propose_and_approve_from_the_ui(
    make_settings: Callable[..., Settings], prom: PromEnv, alertmanager: procs.Process, tmp_path: Path
) -> None:
    settings = make_settings(
        prometheus_url=prom.url,
        auth_token=TOKEN,
        basic_auth_username=USER,
        basic_auth_password=PASSWORD,
        chatops={
            "alertmanager": {"urls": [alertmanager.url]},
            "max_silence": "1d",
            "runbooks": {"catalog": str(catalog(tmp_path)), "work_dir": str(tmp_path / "runs")},
        },
    )
    env, stop = serve(settings)
    try:
        with (
            httpx.Client(base_url=env.url, timeout=30, headers=BASIC) as api,
            httpx.Client(base_url=env.url, timeout=30) as ops,
            httpx.Client(base_url=env.url, timeout=30) as tok,
        ):
            r = api.post("/api/v1/webhook/alertmanager", json=webhook(prom, labels=LABELS))
            assert r.status_code == 202, r.text
            incident = r.json()["incidents_created"][0]
            assert wait_report(api, incident)["investigation"] == "done"
            sign_in_basic(ops)
            assert sign_in(tok, token=TOKEN).status_code == 303
            _silences(api, ops, incident, alertmanager)
            _runbooks(api, ops, tok, incident, tmp_path)
            # an Authorization header the API would take acts as its user, with the page's CSRF token
            with httpx.Client(base_url=env.url, timeout=30, headers=BASIC) as header:
                page = header.get(f"/ui/incidents/{incident}").text
                assert '<code id="actor">ui:ops</code>' in page
    finally:
        stop()


def _silences(api: httpx.Client, c: httpx.Client, incident: int, am: procs.Process) -> None:
    url = f"/ui/incidents/{incident}"
    page = c.get(url)
    assert page.status_code == 200
    text = page.text
    assert 'id="chatops"' in text and "Silences and runbooks" in text
    assert text.index('id="chatops"') < text.index('id="timeline"')  # above the timeline
    assert '<code id="actor">ui:ops</code>' in text
    assert "None made by alertsleuth." in section(text)
    # the hint: what empty matchers mean (the incident's labels), the hostile one as text
    assert f"team=&#34;{ESCAPED}&#34;" in section(text), section(text)
    assert re.findall(r"<script[^>]*>", text) == ['<script src="/ui/static/ask.js" defer>']
    csrf = csrf_of(text)

    # every form wants the CSRF token; nothing is done without it
    for path in (f"{url}/silence", f"{url}/runbooks/restart-region", "/ui/actions/1/approve"):
        refused = c.post(path, data={"duration": "2h"})
        assert refused.status_code == 403 and "did not come from this site" in refused.text, path
        assert c.post(path, data={"csrf": "x" * 43, "duration": "2h"}).status_code == 403
    assert api.get(f"/api/v1/incidents/{incident}/silences").json() == []

    # what cannot be used: 422 with the reason; unknown incidents: 404
    for data, said in (
        ({"duration": "forever"}, "bad duration"),
        ({"duration": "2d"}, "too long"),
        ({"duration": "2h", "matchers": 'env!="dev"'}, "would silence every alert"),
        ({"duration": "2h", "matchers": "{a="}, ""),
        ({"duration": "2h", "comment": "x" * 1001}, "comment is too long"),
    ):
        bad = c.post(f"{url}/silence", data={"csrf": csrf, **data})
        assert bad.status_code == 422, (data, bad.text)
        assert "Not silenced" in bad.text and said in unescape(bad.text), bad.text
    assert c.post("/ui/incidents/999999/silence", data={"csrf": csrf, "duration": "2h"}).status_code == 404
    assert c.post("/ui/incidents/abc/silence", data={"csrf": csrf, "duration": "2h"}).status_code == 404
    assert api.get(f"/api/v1/incidents/{incident}/silences").json() == []

    # silence from the form: in Alertmanager, as ui:ops, on the incident's labels
    done = c.post(
        f"{url}/silence", data={"csrf": csrf, "duration": "2h", "matchers": "", "comment": "fixing"}
    )
    assert done.status_code == 303 and done.headers["location"] == f"{url}#chatops"
    [silence] = api.get(f"/api/v1/incidents/{incident}/silences").json()
    sid = silence["silence_id"]
    assert silence["created_by"] == "ui:ops" and silence["comment"] == "fixing"
    got = httpx.get(f"{am.url}/api/v2/silence/{sid}").json()
    assert got["status"]["state"] == "active" and got["createdBy"] == "ui:ops"
    assert {"name": "team", "value": SCRIPT, "isRegex": False, "isEqual": True} in got["matchers"]
    text = c.get(url).text
    listed = section(text)
    assert sid in listed and "fixing" in listed and "ui:ops" in listed and ESCAPED in listed
    expire = f"{url}/silences/{sid}/expire"
    assert f'action="{expire}"' in listed and ">Expire</button>" in listed
    assert any(e.startswith(f"silence {sid} created by ui:ops until ") and SCRIPT in e for e in events(text))
    assert SCRIPT not in text  # only ever escaped

    # expire it: expired in Alertmanager, by ui:ops; no Expire button any more; once only
    assert c.post(expire, data={}).status_code == 403
    gone = c.post(expire, data={"csrf": csrf})
    assert gone.status_code == 303, gone.text
    assert httpx.get(f"{am.url}/api/v2/silence/{sid}").json()["status"]["state"] == "expired"
    [silence] = api.get(f"/api/v1/incidents/{incident}/silences").json()
    assert silence["expired_by"] == "ui:ops"
    text = c.get(url).text
    assert f'action="{expire}"' not in text and " by ui:ops</td>" in section(text)
    assert f"silence {sid} expired by ui:ops" in events(text)
    again = c.post(expire, data={"csrf": csrf})
    # no such active silence any more: ChatOps says so (a LookupError, 404; a SilenceError, 400, before)
    assert again.status_code == 404 and "has no silence" in again.text, again.text
    assert c.post(f"{url}/silences/not-an-id/expire", data={"csrf": csrf}).status_code == 404


def _action(api: httpx.Client, incident: int) -> dict[str, Any]:
    return api.get(f"/api/v1/incidents/{incident}/actions").json()[-1]


def _runbooks(api: httpx.Client, ops: httpx.Client, tok: httpx.Client, incident: int, tmp_path: Path) -> None:
    url = f"/ui/incidents/{incident}"
    text = tok.get(url).text
    assert '<code id="actor">ui:token</code>' in text
    fits = section(text).partition('<table class="runbooks">')[2].partition("</table>")[0]
    assert "restart-region" in fits and "Restart the login service of the faulty region" in fits
    assert "ip_region=&#34;shanghai&#34;" in fits  # why it fits
    propose = f"{url}/runbooks/restart-region"
    assert f'action="{propose}"' in fits and ">Dry run</button>" in fits
    csrf = csrf_of(text)

    # refused proposals: not in the catalog (409), not a runbook's name (404)
    nope = tok.post(f"{url}/runbooks/nope", data={"csrf": csrf})
    assert nope.status_code == 409 and "Not proposed" in nope.text and "no runbook" in nope.text
    assert tok.post(f"{url}/runbooks/Bad_Name", data={"csrf": csrf}).status_code == 404
    assert tok.post("/ui/incidents/999999/runbooks/restart-region", data={"csrf": csrf}).status_code == 404

    # propose as ui:token: the dry run starts; the page reloads itself while it runs
    r = tok.post(propose, data={"csrf": csrf})
    assert r.status_code == 303, r.text
    action = _action(api, incident)
    assert r.headers["location"] == f"{url}#action-{action['id']}"
    assert action["requested_by"] == "ui:token"
    page = tok.get(url).text
    running = '<span class="state-dry_running">dry_running</span>' in page
    assert running == ('data-refresh="5"' in page), page[:600]
    action = wait_for("the dry run", lambda: (a := _action(api, incident))["state"] != "dry_running" and a)
    assert action["state"] == "proposed", action
    marker = tmp_path / "marker.txt"
    assert not marker.exists()  # a dry run changes nothing

    page = tok.get(url).text
    assert 'data-refresh="5"' not in page
    shown = section(page).partition(f'id="action-{action["id"]}"')[2]
    assert '<span class="state-proposed">proposed</span>' in shown
    assert "ui:token" in shown and "<code>region=shanghai</code>" in shown
    assert f"team {ESCAPED}" in shown  # the dry run's output, escaped, in <pre>
    assert re.search(r'<pre class="output">[^<]*team &lt;script&gt;', shown)
    approve, deny = f"/ui/actions/{action['id']}/approve", f"/ui/actions/{action['id']}/deny"
    assert f'action="{approve}"' in shown and f'action="{deny}"' in shown

    # ui:token is not among the approvers: 409, nothing runs, the refusal is audited and in the timeline
    refused = tok.post(approve, data={"csrf": csrf})
    assert refused.status_code == 409 and "Not approved" in refused.text
    assert "ui:token may not approve restart-region: not among its approvers" in refused.text
    assert _action(api, incident)["state"] == "proposed"
    time.sleep(0.5)
    assert not marker.exists()
    assert tok.post(approve, data={}).status_code == 403
    assert tok.post("/ui/actions/999999/approve", data={"csrf": csrf}).status_code == 404
    assert tok.post("/ui/actions/abc/deny", data={"csrf": csrf}).status_code == 404

    # ui:ops is: it runs; its output and exit status are shown
    ops_csrf = csrf_of(ops.get(url).text)
    ok = ops.post(approve, data={"csrf": ops_csrf})
    assert ok.status_code == 303 and ok.headers["location"] == f"{url}#action-{action['id']}"
    action = wait_for("the run", lambda: (a := _action(api, incident))["state"] not in ("running",) and a)
    assert action["state"] == "succeeded" and action["approved_by"] == "ui:ops", action
    assert marker.read_text() == "restarted shanghai\n"
    page = ops.get(url).text
    shown = section(page).partition(f'id="action-{action["id"]}"')[2]
    assert '<span class="state-succeeded">succeeded</span>' in shown and "ui:ops" in shown
    assert "<strong>Run</strong>: <span" in shown and "exit status 0" in shown
    assert f'action="{approve}"' not in shown
    lines = events(page)
    name = f"runbook action {action['id']} (restart-region)"
    for line in (
        f"{name} requested by ui:token: dry run started",
        f"{name}: dry run successful, exit status 0; waiting for approval",
        f"{name} approved by ui:ops: running",
        f"{name} finished: successful, exit status 0",
    ):
        assert line in lines, (line, lines)
    assert any(e.startswith(f"{name}: ui:token was refused") for e in lines), lines
    assert lines.index(f"{name} approved by ui:ops: running") > lines.index(
        f"{name}: dry run successful, exit status 0; waiting for approval"
    )
    again = ops.post(approve, data={"csrf": ops_csrf})
    assert again.status_code == 409 and "not waiting for approval" in again.text

    # a second proposal, denied: ui:token is neither an approver nor its requester; ui:ops denies it
    assert ops.post(propose, data={"csrf": ops_csrf}).status_code == 303
    second = wait_for("the dry run", lambda: (a := _action(api, incident))["state"] == "proposed" and a)
    deny = f"/ui/actions/{second['id']}/deny"
    no = tok.post(deny, data={"csrf": csrf, "reason": "no"})
    assert no.status_code == 409 and "Not denied" in no.text
    long = ops.post(deny, data={"csrf": ops_csrf, "reason": "x" * 501})
    assert long.status_code == 422 and "reason is too long" in long.text
    assert ops.post(deny, data={"csrf": ops_csrf, "reason": f"not now {SCRIPT}"}).status_code == 303
    assert _action(api, incident)["state"] == "denied"
    page = ops.get(url).text
    assert f"runbook action {second['id']} (restart-region) denied by ui:ops: not now {SCRIPT}" in events(
        page
    )
    assert f"not now {ESCAPED}" in page
    kinds = [e["kind"] for e in api.get("/api/v1/audit", params={"incident_id": incident}).json()]
    for kind in ("silence", "unsilence", "run_requested", "dry_run", "refused", "approved", "denied"):
        assert kind in kinds, kinds
    actors = {e["actor"] for e in api.get("/api/v1/audit", params={"incident_id": incident}).json()}
    assert {"ui:ops", "ui:token"} <= actors


def test_without_chatops_the_section_is_absent_and_old_cookies_sign_out(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    env, stop = serve(make_settings(prometheus_url=prom.url, auth_token=TOKEN), start_workers=False)
    try:
        with httpx.Client(base_url=env.url, timeout=20) as c:
            r = c.post(
                "/api/v1/webhook/alertmanager",
                json=webhook(prom, labels=LABELS),
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            incident = r.json()["incidents_created"][0]
            assert sign_in(c, token=TOKEN).status_code == 303
            page = c.get(f"/ui/incidents/{incident}")
            assert page.status_code == 200
            assert 'id="chatops"' not in page.text and "Silences and runbooks" not in page.text
            csrf = csrf_of(page.text)
            for path in (
                f"/ui/incidents/{incident}/silence",
                f"/ui/incidents/{incident}/runbooks/restart-region",
                "/ui/actions/1/approve",
                "/ui/actions/1/deny",
            ):
                missing = c.post(path, data={"csrf": csrf, "duration": "2h"})
                assert missing.status_code == 404 and "ChatOps is not configured" in missing.text, path

        # a cookie of the earlier format (no user), or a signed-in one without a user: signed out
        now = int(time.time()) + 3600
        old_body = f"sid123.{now}.1"
        for cookie in (f"{old_body}.{_sign(old_body)}", UISession("sid123", now, True, "").encode()):
            with httpx.Client(base_url=env.url, timeout=20) as c:
                c.cookies.set("alertsleuth_session", cookie, domain="127.0.0.1", path="/ui")
                r = c.get(f"/ui/incidents/{incident}")
                assert r.status_code == 303 and r.headers["location"].startswith("/ui/login"), cookie
    finally:
        stop()


def test_the_session_cookie_carries_its_user() -> None:
    for user in ("ops", "token", "a.b.c", "ü ser:x", "x" * 200):
        s = UISession.new(signed_in=True, user=user)
        back = UISession.decode(s.encode())
        assert back == s and back.user == user
    anonymous = UISession.new(signed_in=False, user="ignored")
    assert anonymous.user == "" and UISession.decode(anonymous.encode()) == anonymous
    assert UISession.new(signed_in=True, user="y" * 300).user == "y" * 200
    good = UISession.new(signed_in=True, user="ops").encode()
    sid, expires, auth, user, signature = good.split(".")
    # another user under the same signature, a user field that is not our base64: no session
    other = base64.urlsafe_b64encode(b"root").rstrip(b"=").decode()
    assert UISession.decode(".".join((sid, expires, auth, other, signature))) is None
    body = f"{sid}.{expires}.{auth}.b3Bz="
    assert UISession.decode(f"{body}.{_sign(body)}") is None
    body = f"{sid}.{expires}.0.b3Bz"  # anonymous with a user
    assert UISession.decode(f"{body}.{_sign(body)}") is None


def test_the_settings_page_shows_who_may_do_what_in_chat_and_masks_the_platforms_secrets(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """An on-call engineer refused in chat finds here which list they are missing from: each platform's
    allow-lists by command class, the runbooks with the approvers each takes (its own or the catalog's
    default), and the platforms' settings with every secret masked."""
    signing, bot = "slack-signing-s3cret", "xoxb-s3cret-token"
    settings = make_settings(
        auth_token=TOKEN,
        chatops={
            "platforms": {"slack": {"signing_secret": signing, "bot_token": bot}},
            "access": {"slack": {"read": ["*"], "silence": ["group:C0OPS"], "approve": ["U0LEAD"]}},
            "runbooks": {"catalog": str(catalog(tmp_path)), "work_dir": str(tmp_path / "runs")},
        },
    )
    env, stop = serve(settings)
    try:
        with httpx.Client(base_url=env.url, timeout=30) as c:
            assert sign_in(c, token=TOKEN).status_code == 303
            page = c.get("/ui/settings")
    finally:
        stop()
    assert page.status_code == 200
    assert signing not in page.text and bot not in page.text
    slack = page.text.partition('id="access-slack"')[2].partition("</table>")[0]
    rows = dict(
        re.findall(r"<tr><td><code>(\w+)</code></td><td[^>]*>[^<]*</td><td[^>]*>([^<]*)</td></tr>", slack)
    )
    assert rows == {
        "read": "*",
        "act": "nobody",
        "silence": "group:C0OPS",
        "run": "nobody",
        "approve": "U0LEAD",
    }
    runbooks = unescape(
        re.sub(r"<[^>]+>", "", page.text.partition('class="settings runbooks"')[2].partition("</table>")[0])
    )
    assert "restart-region" in runbooks and f"ui:{USER} (the catalog's default)" in runbooks
    platform = unescape(page.text.partition('id="platform-slack"')[2].partition("</section>")[0])
    assert "signing_secret" in platform and "••••" in platform and "https://slack.com/api" in platform
    assert "not configured: no silences" in unescape(page.text)  # no Alertmanager in the section
