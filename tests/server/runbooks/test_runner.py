"""The runbook runner with the real ansible-playbook (localhost, the local connection, a playbook the test
writes) and real commands: dry runs, changes, failures, timeouts, cancels, secrets kept out of everything
that stays, and the concurrency limit. A missing ansible-playbook skips, or fails under CI=true."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from server.runbooks import MASK, Catalog, RunbookRunner, RunResult, load_catalog, resolve_vars
from tools.errors import RunbookError


def require_ansible_playbook() -> str:
    """ansible-playbook beside this Python (the project's venv) or on PATH; skip without it, fail under
    CI=true (like tests/binaries.py)."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("ansible-playbook")
    if found:
        return found
    message = "ansible-playbook not found beside this Python nor on PATH (uv sync installs ansible-core)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: missing binaries fail, never skip)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def ansible_playbook() -> str:
    return require_ansible_playbook()


@pytest.fixture
def runner(tmp_path: Path, ansible_playbook: str) -> RunbookRunner:
    return RunbookRunner(tmp_path / "work", ansible_playbook=ansible_playbook)


def catalog(
    tmp_path: Path, playbooks: dict[str, str], runbooks: str, allowed: tuple[str, ...] = ()
) -> Catalog:
    for name, text in playbooks.items():
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    entries = textwrap.indent(textwrap.dedent(runbooks), "  ")
    path = tmp_path / "catalog.yaml"
    path.write_text(
        f"version: 1\nallowed_commands: {json.dumps(allowed)}\nrunbooks:\n{entries}", encoding="utf-8"
    )
    return load_catalog(path)


def everything_left(work: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(work.rglob("*")) if p.is_file())


WRITE = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Write the component
      ansible.builtin.copy:
        dest: "{{ dest }}"
        content: "component={{ component }}\\n"
        mode: "0600"
"""


def test_a_dry_run_shows_the_diff_and_changes_nothing_then_the_real_run_does(
    tmp_path: Path, runner: RunbookRunner
) -> None:
    target = tmp_path / "out" / "component.txt"
    target.parent.mkdir()
    book = catalog(
        tmp_path,
        {"write.yml": WRITE},
        f"""\
        - name: write
          description: Write the component's name
          runs:
            ansible:
              playbook: write.yml
              extra_vars:
                component: {{label: ip_region}}
                dest: {{value: "{target}"}}
        """,
    ).get("write")
    hostile = "shanghai {{ 6 * 7 }} {% raw %}"  # a label is data: Jinja never renders it
    resolved = resolve_vars(book, {"ip_region": hostile})
    lines: list[str] = []
    started = time.monotonic()
    dry = runner.execute(book, resolved, dry_run=True, on_output=lines.append)
    assert dry.status == "successful" and dry.rc == 0 and dry.dry_run, dry.output
    assert not target.exists()
    assert f"+component={hostile}" in dry.output  # the diff
    assert "--check" in dry.command and "--diff" in dry.command
    assert dry.command[0] == runner.ansible_playbook()
    assert dry.changed == 1
    assert any(line.startswith("TASK [Write the component]") for line in lines)
    assert "\n".join(lines) + "\n" == dry.output
    assert dry.output_digest == hashlib.sha256(dry.output.encode()).hexdigest()
    assert dry.started_at.tzinfo is not None and dry.started_at <= dry.finished_at

    real = runner.execute(book, resolved, dry_run=False)
    assert real.status == "successful" and real.rc == 0 and not real.dry_run, real.output
    assert target.read_text(encoding="utf-8") == f"component={hostile}\n"
    assert real.changed == 1 and "--check" not in real.command
    print(f"two ansible runs in {time.monotonic() - started:.1f} s")


def test_a_failing_task_fails_with_its_output(tmp_path: Path, runner: RunbookRunner) -> None:
    book = catalog(
        tmp_path,
        {
            "fail.yml": """\
            - hosts: all
              gather_facts: false
              tasks:
                - ansible.builtin.fail:
                    msg: "the component {{ component }} would not restart"
            """
        },
        """\
        - name: fail
          description: Fails
          runs: {ansible: {playbook: fail.yml, extra_vars: {component: {label: job}}}}
        """,
    ).get("fail")
    result = runner.execute(book, resolve_vars(book, {"job": "login"}), dry_run=False)
    assert result.status == "failed" and result.rc not in (0, None)
    assert "the component login would not restart" in result.output
    assert "failed=1" in result.output


PAUSE = """\
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: about to wait
    - ansible.builtin.pause:
        seconds: 60
"""


SLEEP = """\
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: about to wait
    - ansible.builtin.command:
        argv: [sleep, "60"]
        chdir: "{{ here }}"
"""


def leftovers(tmp_path: Path) -> list[str]:
    """The live processes of the test's runs (the run folder on their command line, or working in the test's
    folder), after giving the killed ones a moment to go."""
    marker = str(tmp_path)
    found: list[str] = []
    for _ in range(30):
        found = []
        for process in psutil.process_iter(["cmdline", "cwd", "status"]):
            info = process.info
            if info["status"] == psutil.STATUS_ZOMBIE or process.pid == os.getpid():
                continue
            command = " ".join(info["cmdline"] or [])
            if marker in command or (info["cwd"] or "").startswith(marker):
                found.append(f"{process.pid} {command}")
        if not found:
            return found
        time.sleep(0.1)
    return found


def test_a_run_past_its_timeout_is_stopped_with_all_its_processes(
    tmp_path: Path, runner: RunbookRunner
) -> None:
    book = catalog(
        tmp_path,
        {"sleep.yml": SLEEP},
        f"""\
        - name: slow
          description: Waits
          runs: {{ansible: {{playbook: sleep.yml, extra_vars: {{here: {{value: "{tmp_path}"}}}}}}}}
          timeout_seconds: 8
        """,
    ).get("slow")
    # 8 s: ansible-playbook needs a few seconds to reach its first task on a loaded machine
    started = time.monotonic()
    result = runner.execute(book, resolve_vars(book, {}), dry_run=False)
    took = time.monotonic() - started
    assert result.status == "timeout", result.output
    assert took < 20, took
    assert "about to wait" in result.output and "timed out after 8 s" in result.output
    assert (result.finished_at - result.started_at).total_seconds() < 20
    assert leftovers(tmp_path) == []  # Ansible's worker and its `sleep` too


def test_a_second_run_over_the_limit_is_refused_and_a_run_can_be_canceled(
    tmp_path: Path, runner: RunbookRunner
) -> None:
    book = catalog(
        tmp_path,
        {"pause.yml": PAUSE},
        """\
        - name: slow
          description: Waits
          runs: {ansible: {playbook: pause.yml}}
          timeout_seconds: 60
        """,
    ).get("slow")
    resolved = resolve_vars(book, {})
    waiting, cancel = threading.Event(), threading.Event()
    results: list[RunResult] = []

    def watch(line: str) -> None:
        if "about to wait" in line:
            waiting.set()

    def first() -> None:
        results.append(runner.execute(book, resolved, dry_run=False, cancel=cancel, on_output=watch))

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert waiting.wait(30), "the first run did not start"
        with pytest.raises(RunbookError) as caught:
            runner.execute(book, resolved, dry_run=True)
        assert str(caught.value) == "runbook 'slow' already has 1 runs in progress"
    finally:
        cancel.set()
        started = time.monotonic()
        thread.join(30)
    assert time.monotonic() - started < 5
    (result,) = results
    assert result.status == "canceled" and "canceled: stopped" in result.output
    assert leftovers(tmp_path) == []  # the worker running `pause` too
    # the slot is free again: another run is not refused (canceled before it starts: nothing runs)
    cancel_now = threading.Event()
    cancel_now.set()
    again = runner.execute(book, resolved, dry_run=True, cancel=cancel_now)
    assert (again.status, again.rc, again.output) == ("canceled", None, "canceled before it started\n")


SECRET = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Use the token
      ansible.builtin.debug:
        msg: "the token is {{ token }}"
    - name: Write it where the test can see it got there
      ansible.builtin.copy:
        dest: "{{ dest }}"
        content: "{{ token }}|{{ lookup('env', 'RUNBOOK_TEST_SERVICE_KEY') }}"
      diff: true
"""


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    secret = "s3cr3t-T0ken-9f8e7d"
    monkeypatch.setenv("RUNBOOK_TEST_TOKEN", secret)
    monkeypatch.setenv("RUNBOOK_TEST_SERVICE_KEY", "service-api-key-1234")  # the service's, not the runbook's
    yield secret


def test_a_secret_never_stays_in_the_output_the_command_or_the_run_dir(
    tmp_path: Path, runner: RunbookRunner, secret_env: str
) -> None:
    dest = tmp_path / "secret.txt"
    book = catalog(
        tmp_path,
        {"secret.yml": SECRET},
        f"""\
        - name: secret
          description: Uses a token
          runs:
            ansible:
              playbook: secret.yml
              extra_vars:
                token: {{env: RUNBOOK_TEST_TOKEN}}
                dest: {{value: "{dest}"}}
        """,
    ).get("secret")
    resolved = resolve_vars(book, {})
    assert resolved.public["token"] == MASK
    lines: list[str] = []
    result = runner.execute(book, resolved, dry_run=False, on_output=lines.append)
    assert result.status == "successful", result.output
    # it reached the playbook (and the service's own environment did not)
    assert dest.read_text(encoding="utf-8") == f"{secret_env}|"
    assert f"the token is {MASK}" in result.output
    assert secret_env not in result.output and secret_env not in "\n".join(lines)
    assert not any(secret_env in part for part in result.command)
    left = everything_left(tmp_path / "work")
    assert left and secret_env.encode() not in left and b"service-api-key-1234" not in left
    (run_dir,) = (tmp_path / "work").iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["inventory", "output.log"]
    full = (run_dir / "output.log").read_bytes()
    assert hashlib.sha256(full).hexdigest() == result.output_digest


def test_no_ansible_playbook_is_a_runbook_error(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text("- hosts: all\n  tasks: []\n", encoding="utf-8")
    book = catalog(tmp_path, {}, "- name: p\n  description: d\n  runs: {ansible: {playbook: p.yml}}\n").get(
        "p"
    )
    lonely = RunbookRunner(tmp_path / "work", ansible_playbook=str(tmp_path / "no-ansible-playbook"))
    with pytest.raises(RunbookError, match="ansible-playbook not found"):
        lonely.execute(book, resolve_vars(book, {}), dry_run=False)
    assert not (tmp_path / "work").exists()


PROBE = (
    "import os, sys; print('hello', sys.argv[1]); print('token', os.environ.get('TOKEN'), file=sys.stderr); "
    "print('env', ','.join(sorted(set(os.environ) - {'LC_CTYPE'}))); "
    "open(sys.argv[2], 'w').write(sys.argv[1])"
)


def command_catalog(tmp_path: Path, script: str, timeout: int = 30) -> Catalog:
    argv = [sys.executable, "-c", script, "{label:instance}", str(tmp_path / "marker")]
    runbook = {
        "name": "probe",
        "description": "A command",
        "runs": {"command": {"argv": argv, "env": {"TOKEN": {"env": "RUNBOOK_TEST_TOKEN"}}}},
        "timeout_seconds": timeout,
    }
    return catalog(tmp_path, {}, f"- {json.dumps(runbook)}\n", allowed=(sys.executable,))


def test_a_command_runbook_runs_with_its_label_and_its_dry_run_runs_nothing(
    tmp_path: Path, runner: RunbookRunner, secret_env: str
) -> None:
    book = command_catalog(tmp_path, PROBE).get("probe")
    resolved = resolve_vars(book, {"instance": "web-1:9100; rm -rf /"})
    dry = runner.execute(book, resolved, dry_run=True)
    assert dry.status == "successful" and dry.dry_run and dry.rc is None
    assert dry.output.startswith(f"dry run: would run {sys.executable} -c ")
    assert "'web-1:9100; rm -rf /'" in dry.output and "TOKEN" in dry.output
    assert dry.command == list(resolved.argv)
    assert not (tmp_path / "marker").exists() and not (tmp_path / "work").exists()

    lines: list[str] = []
    result = runner.execute(book, resolved, dry_run=False, on_output=lines.append)
    assert result.status == "successful" and result.rc == 0, result.output
    assert (tmp_path / "marker").read_text(encoding="utf-8") == "web-1:9100; rm -rf /"
    assert "hello web-1:9100; rm -rf /" in lines
    assert f"token {MASK}" in result.output and secret_env not in result.output
    assert "env LANG,PATH,TOKEN" in result.output  # nothing else of the service's environment
    assert result.command == list(resolved.argv) and result.changed is None


def test_a_command_that_fails_or_hangs(tmp_path: Path, runner: RunbookRunner, secret_env: str) -> None:
    failing = command_catalog(tmp_path, "import sys; print('no luck'); sys.exit(3)").get("probe")
    result = runner.execute(failing, resolve_vars(failing, {"instance": "a"}), dry_run=False)
    assert (result.status, result.rc) == ("failed", 3) and "no luck" in result.output

    hanging = command_catalog(tmp_path, "import time; print('sleeping', flush=True); time.sleep(60)", 1)
    book = hanging.get("probe")
    started = time.monotonic()
    result = runner.execute(book, resolve_vars(book, {"instance": "a"}), dry_run=False)
    assert result.status == "timeout" and time.monotonic() - started < 5
    assert "sleeping" in result.output and "timed out after 1 s" in result.output


def test_the_output_keeps_its_last_64_kb_and_digests_all_of_it(
    tmp_path: Path, runner: RunbookRunner, secret_env: str
) -> None:
    book = command_catalog(tmp_path, "for i in range(20000): print(f'line {i:05d}')").get("probe")
    result = runner.execute(book, resolve_vars(book, {"instance": "a"}), dry_run=False)
    full = "".join(f"line {i:05d}\n" for i in range(20000))
    assert result.output_digest == hashlib.sha256(full.encode()).hexdigest()
    head, rest = result.output.split("\n", 1)
    assert head == f"[… {len(full) - 64 * 1024} bytes cut]"
    assert full.endswith(rest) and len(rest.encode()) == 64 * 1024
    assert rest.endswith("line 19999\n")
