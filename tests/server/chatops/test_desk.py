"""The runbook desk with a real runner (the venv's ansible-playbook on localhost, the local connection,
playbooks written here; allow-listed commands) and a real store (SQLite in the test's folder): what may
be proposed, who may approve and deny, a dry run that fails, a run that fails, two approvals at once
running the runbook once, and `notify` after each step. A missing ansible-playbook skips, or fails
under CI=true."""

from __future__ import annotations

import json
import queue
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.models import AlertInfo, utcnow
from agent.texts import say
from server.chatops.desk import CatalogMenu, RunbookDesk
from server.db import Store
from server.db.chatops import Actor
from server.db.models import RunbookAction
from server.runbooks import RunbookRunner, load_catalog
from tests.server.runbooks.test_runner import require_ansible_playbook
from tools.errors import RunbookError

ALERT = "HighLoginFailureRate"
LABELS = {"alertname": ALERT, "severity": "critical"}
CAUSES = [{"ip_region": "shanghai", "user_type": "admin"}]
ALICE, BOSS, CAROL, MALLORY = (
    Actor("slack", "U0ALICE01"),
    Actor("slack", "U0BOSS001"),
    Actor("feishu", "ou_carol"),
    Actor("slack", "U0MALLORY"),
)
STEP_TIMEOUT = 60.0

MARK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Append the region to the marker (skipped in check mode)
      ansible.builtin.shell: "echo {{ region }} >> {{ marker }}"
"""
FAILS_FOR_REAL = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: A command that fails (skipped in check mode, so the dry run passes)
      ansible.builtin.command: /bin/false
"""
FAILS_IN_CHECK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Refuse, in check mode too
      ansible.builtin.fail:
        msg: the region is not ready
"""


def _catalog(tmp_path: Path) -> Path:
    (tmp_path / "mark.yml").write_text(MARK)
    (tmp_path / "fails_for_real.yml").write_text(FAILS_FOR_REAL)
    (tmp_path / "fails_in_check.yml").write_text(FAILS_IN_CHECK)
    (tmp_path / "token").write_text("first-secret-value")
    marker = tmp_path / "marker.txt"
    fits = f"fits: {{alerts: [{ALERT}], labels: {{ip_region: {{equals: shanghai}}}}}}"
    path = tmp_path / "catalog.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            allowed_commands: [/bin/true]
            default_approvers: ["slack:{ALICE.user}", "slack:{BOSS.user}", "feishu:*"]
            runbooks:
              - name: mark-region
                description: Mark the faulty region
                {fits}
                runs:
                  ansible:
                    playbook: mark.yml
                    extra_vars:
                      region: {{label: ip_region}}
                      marker: {{value: "{marker}"}}
                timeout_seconds: 60
              - name: mark-beijing
                description: Only for Beijing
                fits: {{labels: {{ip_region: {{equals: beijing}}}}}}
                runs: {{command: {{argv: [/bin/true]}}}}
              - name: boss-only
                description: Only the boss approves this one
                {fits}
                runs: {{command: {{argv: [/bin/true, "{{label:ip_region}}"]}}}}
                approvers: ["slack:{BOSS.user}"]
              - name: careful
                description: Wants a second pair of eyes
                {fits}
                runs: {{command: {{argv: [/bin/true]}}}}
                second_approver: true
              - name: with-secret
                description: Reads a secret file at run time
                {fits}
                runs:
                  command:
                    argv: [/bin/true]
                    env: {{TOKEN: {{file: "{tmp_path / "token"}"}}}}
              - name: fails-for-real
                description: Its run fails
                {fits}
                runs: {{ansible: {{playbook: fails_for_real.yml}}}}
                timeout_seconds: 60
              - name: fails-in-check
                description: Its dry run fails
                {fits}
                runs: {{ansible: {{playbook: fails_in_check.yml}}}}
                timeout_seconds: 60
            """
        )
    )
    return path


@dataclass
class Desk:
    desk: RunbookDesk
    store: Store
    incident_id: int
    news: queue.Queue[RunbookAction]
    marker: Path

    def propose(self, name: str, requester: Actor = ALICE) -> RunbookAction:
        return self.desk.propose(
            self.incident_id, name, requester, alertname=ALERT, root_causes=CAUSES, labels=LABELS
        )

    def next_news(self, action_id: int, state: str) -> RunbookAction:
        """The next `notify` call, which must be about `action_id` in `state`."""
        try:
            action = self.news.get(timeout=STEP_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no notify for action {action_id} ({state}) in {STEP_TIMEOUT}s") from None
        assert (action.id, action.state) == (action_id, state), (action.id, action.state, action.dry_run)
        return action

    def proposed(self, name: str, requester: Actor = ALICE) -> RunbookAction:
        action = self.propose(name, requester)
        return self.next_news(action.id, "proposed")

    def audit(self, action_id: int) -> list[tuple[str, str]]:
        return [(e.kind, e.actor) for e in self.store.chatops.audit_trail(action_id=action_id)]

    def state(self, action_id: int) -> str:
        action = self.store.actions.get(action_id)
        assert action is not None
        return action.state


@pytest.fixture(scope="module")
def ansible_playbook() -> str:
    return require_ansible_playbook()


@pytest.fixture
def desk(tmp_path: Path, ansible_playbook: str) -> Iterator[Desk]:
    store = Store(f"sqlite:///{tmp_path / 'desk.db'}")
    alert = AlertInfo(
        name=ALERT,
        labels=LABELS,
        starts_at=utcnow().replace(microsecond=0) - timedelta(minutes=5),
        fingerprint="d",
    )
    incident_id = store.intake.ingest("test", "{}", "", [alert]).created[0]
    news: queue.Queue[RunbookAction] = queue.Queue()
    runner = RunbookRunner(tmp_path / "runs", ansible_playbook=ansible_playbook)
    rb = RunbookDesk(load_catalog(_catalog(tmp_path)), runner, store.actions, max_running=4, notify=news.put)
    rb.start()
    yield Desk(rb, store, incident_id, news, tmp_path / "marker.txt")
    rb.pool.shutdown(wait=True)  # nothing of this test still runs when its folder goes
    store.close()


# ------------------------------------------------------------------------------------------ proposing


def test_the_menu_lists_each_fitting_runbook_once_with_its_best_fit(tmp_path: Path) -> None:
    """Two root causes in Shanghai fit each runbook twice; the investigation's menu (and the desk, through
    `Catalog.best_fits`) lists a runbook once, with the fit of the first cause."""
    catalog = load_catalog(_catalog(tmp_path))
    causes = [{"ip_region": "shanghai", "user_type": "admin"}, {"ip_region": "shanghai", "user_type": "vip"}]
    assert len(catalog.fitting(ALERT, causes, LABELS)) == 2 * len(catalog.best_fits(ALERT, causes, LABELS))
    menu = CatalogMenu(catalog).fitting(ALERT, causes, LABELS)
    assert [m.name for m in menu] == [r.name for r in catalog.runbooks if r.name != "mark-beijing"]
    assert all("root cause #1" in m.why for m in menu), [m.why for m in menu]


def test_a_runbook_that_does_not_fit_or_is_not_in_the_catalog_records_nothing(desk: Desk) -> None:
    with pytest.raises(RunbookError, match=r"runbook 'mark-beijing' does not fit incident \d+"):
        desk.propose("mark-beijing")
    with pytest.raises(RunbookError, match="no runbook 'restart-everything' in the catalog"):
        desk.propose("restart-everything")
    with pytest.raises(RunbookError, match="does not fit"):  # the alert named, but not this root cause
        desk.desk.propose(
            desk.incident_id,
            "mark-region",
            ALICE,
            alertname=ALERT,
            root_causes=[{"ip_region": "guangzhou"}],
            labels=LABELS,
        )
    assert desk.store.actions.of_incident(desk.incident_id) == []
    assert desk.store.chatops.audit_trail() == []
    assert desk.news.empty()


def test_propose_records_the_variables_and_the_dry_run_changes_nothing(desk: Desk) -> None:
    action = desk.propose("mark-region")
    assert action.state == "dry_running" and action.requested_by == str(ALICE)
    assert action.variables["values"] == {"region": "shanghai", "marker": str(desk.marker)}
    assert action.variables["labels"]["ip_region"] == "shanghai"
    proposed = desk.next_news(action.id, "proposed")
    assert proposed.dry_run is not None and proposed.dry_run["status"] == "successful"
    assert proposed.dry_run["rc"] == 0 and "--check" in proposed.dry_run["command"]
    assert "skipping: [localhost]" in proposed.dry_run["output"]
    assert not desk.marker.exists()
    assert desk.audit(action.id) == [("run_requested", str(ALICE)), ("dry_run", "alertsleuth:runner")]


# ------------------------------------------------------------------------------------------ approving


def test_an_approver_not_listed_is_refused_and_audited(desk: Desk) -> None:
    action = desk.proposed("boss-only")
    for outsider in (ALICE, CAROL, MALLORY):  # ALICE and feishu:* are default approvers, not this one's
        with pytest.raises(
            RunbookError, match=f"{outsider} may not approve boss-only: not among its approvers"
        ):
            desk.desk.approve(action.id, outsider)
    refused = [e for e in desk.store.chatops.audit_trail(action_id=action.id) if e.kind == "refused"]
    assert [e.actor for e in refused] == [str(ALICE), str(CAROL), str(MALLORY)]
    assert refused[0].detail["why"].startswith("slack:U0ALICE01 may not approve boss-only")
    assert refused[0].incident_id == desk.incident_id
    assert desk.state(action.id) == "proposed" and desk.news.empty()
    running = desk.desk.approve(action.id, BOSS)
    assert (running.state, running.approved_by) == ("running", str(BOSS))
    done = desk.next_news(action.id, "succeeded")
    assert done.run is not None and done.run["rc"] == 0 and done.run["command"] == ["/bin/true", "shanghai"]


def test_a_second_approver_is_wanted_when_the_runbook_says_so(desk: Desk) -> None:
    action = desk.proposed("careful", requester=ALICE)
    with pytest.raises(
        RunbookError, match="careful needs a second approver: slack:U0ALICE01 asked for it"
    ) as info:
        desk.desk.approve(action.id, ALICE)
    # chat says it in the reports' language; the audit trail and the API keep the English
    assert say(info.value, "zh") == "careful 需要另一位审批人：slack:U0ALICE01 发起了它，不能自己批准"
    assert desk.audit(action.id)[-1] == ("refused", str(ALICE))
    assert desk.state(action.id) == "proposed"
    desk.desk.approve(action.id, CAROL)  # "feishu:*": anyone Feishu identified
    assert desk.next_news(action.id, "succeeded").approved_by == str(CAROL)


def test_two_approvals_at_the_same_moment_run_the_runbook_once(desk: Desk) -> None:
    action = desk.proposed("mark-region")
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def approve(i: int, who: Actor) -> None:
        barrier.wait()
        try:
            results[i] = desk.desk.approve(action.id, who)
        except RunbookError as exc:
            results[i] = exc

    threads = [threading.Thread(target=approve, args=(i, who)) for i, who in enumerate((ALICE, BOSS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = [r for r in results if isinstance(r, RunbookAction)]
    lost = [r for r in results if isinstance(r, RunbookError)]
    assert len(won) == 1 and len(lost) == 1, results
    assert won[0].state == "running" and f"action {action.id} is running" in str(lost[0])
    done = desk.next_news(action.id, "succeeded")
    assert done.approved_by == won[0].approved_by
    assert desk.marker.read_text() == "shanghai\n"  # one run, not two
    kinds = [kind for kind, _ in desk.audit(action.id)]
    assert kinds.count("approved") == 1 and kinds.count("run_finished") == 1
    assert desk.news.empty()


def test_deny_by_an_approver_or_the_requester_only(desk: Desk) -> None:
    action = desk.proposed("careful", requester=MALLORY)  # anyone may request; approving is the thing
    with pytest.raises(RunbookError, match="may not deny careful: only its approvers and its requester"):
        desk.desk.deny(action.id, Actor("api", "someone"))
    assert desk.audit(action.id)[-1] == ("refused", "api:someone")
    denied = desk.desk.deny(action.id, MALLORY, "changed my mind")
    assert denied.state == "denied"
    assert desk.next_news(action.id, "denied").id == action.id  # notify hears of a denial too
    with pytest.raises(RunbookError, match=f"action {action.id} is denied, not waiting for approval"):
        desk.desk.approve(action.id, BOSS)
    assert desk.audit(action.id)[-1] == ("refused", str(BOSS))


def test_a_changed_secret_since_the_dry_run_is_refused(desk: Desk, tmp_path: Path) -> None:
    action = desk.proposed("with-secret")
    assert action.variables["values"] == {"TOKEN": "••••"}
    assert "first-secret-value" not in json.dumps(
        desk.store.chatops.audit_trail(action_id=action.id)[0].detail
    )
    (tmp_path / "token").write_text("rotated-secret-value")
    with pytest.raises(RunbookError, match=f"the variables of action {action.id} changed since its dry run"):
        desk.desk.approve(action.id, BOSS)
    assert desk.audit(action.id)[-1] == ("refused", str(BOSS)) and desk.state(action.id) == "proposed"


# ------------------------------------------------------------------------------------------ failures


def test_a_failing_playbook_leaves_the_action_failed_with_its_exit_status(desk: Desk) -> None:
    action = desk.proposed("fails-for-real")
    desk.desk.approve(action.id, BOSS)
    failed = desk.next_news(action.id, "failed")
    assert failed.run is not None and failed.run["status"] == "failed"
    assert failed.run["rc"] not in (0, None) and "/bin/false" in failed.run["output"]
    finished = desk.store.chatops.audit_trail(action_id=action.id)[-1]
    assert finished.kind == "run_finished" and finished.detail["rc"] == failed.run["rc"]
    assert finished.detail["status"] == "failed" and "output" not in finished.detail


def test_a_dry_run_that_fails_cannot_be_approved(desk: Desk) -> None:
    action = desk.propose("fails-in-check")
    failed = desk.next_news(action.id, "dry_run_failed")
    assert failed.dry_run is not None and failed.dry_run["status"] == "failed"
    assert failed.dry_run["rc"] not in (0, None) and "the region is not ready" in failed.dry_run["output"]
    with pytest.raises(RunbookError, match=f"action {action.id} is dry_run_failed, not waiting for approval"):
        desk.desk.approve(action.id, BOSS)
    assert desk.audit(action.id)[-1] == ("refused", str(BOSS))
    assert desk.state(action.id) == "dry_run_failed" and desk.news.empty()
