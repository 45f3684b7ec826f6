"""Runs a runbook: the one module that starts processes (ansible-runner for playbooks, `subprocess` for
commands). It decides nothing: which runbook, and whether it was approved, is the caller's business.

Every run gets a fresh folder under `work_dir` (`<UTC time>-<runbook>-<id>`). What stays there afterwards
is `output.log` (the full output, secrets masked: its sha256 is `RunResult.output_digest`) and, for a
playbook, `inventory/hosts.yml`. Secrets never stay: the extra vars file (`env/extravars`, mode 0600),
ansible-runner's artifacts (which record the command and its environment) and Ansible's temp folders are
deleted when the run ends, whatever its outcome. Secret values are masked in the output as it streams.

Values are passed as data, never as code: label values and secrets reach Ansible as `!unsafe` YAML
(Jinja never renders them) and a command as argv elements (no shell). The playbook's process gets the
service's locale, HOME, PATH and ANSIBLE_* settings, not its other environment variables (no API keys).

A dry run of a playbook is `ansible-playbook --check --diff`; a dry run of a command does not start it: it
answers "dry run: would run <argv>" (and the names of the environment variables it would set).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil
import yaml
from ansible_runner.interface import init_runner

from server.runbooks.catalog import ResolvedVars, Runbook
from tools.errors import RunbookError

log = logging.getLogger(__name__)

Status = Literal["successful", "failed", "timeout", "canceled", "error"]
OUTPUT_LIMIT = 64 * 1024
MAX_LINE = 64 * 1024
_POLL = 0.2
# what the playbook's process keeps of the service's environment (beside every ANSIBLE_* setting)
_INHERITED = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SSH_AUTH_SOCK",
)


@dataclass(frozen=True)
class RunResult:
    """One run's outcome. `output` is the last 64 kB of the output (secrets masked; "[… N bytes cut]" first
    when longer), `output_digest` the sha256 of all of it; `command` the exact command line, secrets masked;
    `changed` Ansible's count of changed tasks (None for a command, or when no stats came)."""

    status: Status
    rc: int | None
    output: str
    output_digest: str
    command: list[str]
    started_at: datetime
    finished_at: datetime
    changed: int | None
    dry_run: bool


class _Output:
    """The output of one run, line by line: masked, streamed to `on_output`, appended to `output.log`,
    hashed whole and kept bounded (the last OUTPUT_LIMIT bytes)."""

    def __init__(
        self, resolved: ResolvedVars, on_output: Callable[[str], None] | None, log_path: Path | None
    ) -> None:
        self._resolved = resolved
        self._on_output = on_output
        self._log = log_path.open("a", encoding="utf-8") if log_path is not None else None
        self._hash = hashlib.sha256()
        self._tail: deque[bytes] = deque()
        self._kept = 0
        self._cut = 0
        self._lock = threading.Lock()
        self._callback_failed = False

    def text(self, text: str) -> None:
        """Adds `text` (one or several lines, any line ends)."""
        masked = self._resolved.masked(text.replace("\r\n", "\n").replace("\r", "\n"))
        for line in masked.split("\n"):
            self._line(line)

    def _line(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "replace")
        with self._lock:
            self._hash.update(data)
            if self._log is not None:
                self._log.write(line + "\n")
            self._tail.append(data)
            self._kept += len(data)
            while self._kept > OUTPUT_LIMIT:
                first = self._tail.popleft()
                over = self._kept - OUTPUT_LIMIT
                if len(first) > over:  # cut inside the oldest line
                    self._tail.appendleft(first[over:])
                    first = first[:over]
                self._kept -= len(first)
                self._cut += len(first)
        if self._on_output is not None:
            try:
                self._on_output(line)
            except Exception:  # a failing listener must not stop a run half way
                if not self._callback_failed:
                    log.exception("on_output failed; the run goes on without it")
                self._callback_failed = True

    def close(self) -> tuple[str, str]:
        """(the bounded output, the sha256 hex of the whole)."""
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None
            kept = b"".join(self._tail).decode("utf-8", "ignore")
            head = f"[… {self._cut} bytes cut]\n" if self._cut else ""
            return head + kept, self._hash.hexdigest()


class _Unsafe(str):
    """A string Ansible must take as data: dumped with YAML's `!unsafe` tag."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Unsafe, lambda d, v: d.represent_scalar("!unsafe", str(v), style='"'))


def _unsafe_yaml(values: Mapping[str, str]) -> str:
    """The extra vars file: every value `!unsafe`."""
    return yaml.dump({k: _Unsafe(v) for k, v in values.items()}, Dumper=_Dumper, allow_unicode=True)


def _inventory_yaml(hosts: Mapping[str, Mapping[str, str]]) -> str:
    """The inventory file: the runbook's host vars `!unsafe`; a host with the local connection runs its
    modules with ansible-playbook's own Python (a trusted template of ours, rendered)."""
    inventory: dict[str, dict[str, Any]] = {}
    for host, hostvars in hosts.items():
        local = hostvars.get("ansible_connection") == "local"
        inventory[host] = {"ansible_python_interpreter": "{{ ansible_playbook_python }}"} if local else {}
        inventory[host].update({k: _Unsafe(v) for k, v in hostvars.items()})
    return yaml.dump({"all": {"hosts": inventory}}, Dumper=_Dumper, allow_unicode=True)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _now() -> datetime:
    return datetime.now(UTC)


class RunbookRunner:
    """Runs runbooks in fresh folders under `work_dir`. `ansible_playbook` names the binary; by default the
    one beside this Python (the project's venv), else the one on PATH. At most `max_concurrent` runs of one
    runbook at a time: one more is refused at once (`RunbookError`), never queued."""

    def __init__(self, work_dir: Path, ansible_playbook: str | None = None) -> None:
        self.work_dir = Path(work_dir)
        self._ansible_playbook = ansible_playbook
        self._lock = threading.Lock()
        self._slots: dict[str, tuple[int, threading.BoundedSemaphore]] = {}

    def ansible_playbook(self) -> str:
        """The ansible-playbook binary this runner starts; `RunbookError` when there is none."""
        if self._ansible_playbook is not None:
            if os.access(self._ansible_playbook, os.X_OK):
                return self._ansible_playbook
            raise RunbookError(f"ansible-playbook not found at {self._ansible_playbook}")
        beside = Path(sys.executable).parent / "ansible-playbook"
        if os.access(beside, os.X_OK):
            return str(beside)
        on_path = shutil.which("ansible-playbook")
        if on_path:
            return on_path
        raise RunbookError(
            f"ansible-playbook not found beside {sys.executable} nor on PATH (install ansible-core)"
        )

    def execute(
        self,
        runbook: Runbook,
        resolved: ResolvedVars,
        *,
        dry_run: bool,
        on_output: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Runs `runbook` with `resolved` (its `resolve_vars`), or with `dry_run` shows what it would do.
        Output lines go to `on_output` as they come (from the calling thread for a playbook, from a reader
        thread for a command). Setting `cancel` stops the run ("canceled"). A `RunbookError` means nothing
        started: a second run over `max_concurrent`, no ansible-playbook, a command not executable, a dry
        run of a playbook without check mode."""
        if resolved.runbook != runbook.name:
            raise RunbookError(f"the variables are {resolved.runbook!r}'s, not runbook {runbook.name!r}'s")
        command = runbook.runs.command
        if command is not None and dry_run:
            return self._command_dry_run(runbook, resolved)
        if runbook.runs.ansible is not None and dry_run and not runbook.runs.ansible.check_supported:
            raise RunbookError(f"runbook {runbook.name!r} has no dry run (check_supported: false)")
        if command is not None and not os.access(resolved.argv[0], os.X_OK):
            raise RunbookError(f"runbook {runbook.name!r}: {resolved.argv[0]} is not an executable file")
        binary = self.ansible_playbook() if runbook.runs.ansible is not None else None
        slot = self._slot(runbook)
        if not slot.acquire(blocking=False):
            raise RunbookError(
                f"runbook {runbook.name!r} already has {runbook.max_concurrent} runs in progress"
            )
        try:
            if cancel is not None and cancel.is_set():
                return self._not_started(dry_run)
            try:
                run_dir = self._run_dir(runbook)
                output = _Output(resolved, on_output, run_dir / "output.log")
            except OSError as exc:
                raise RunbookError(f"runbook {runbook.name!r}: cannot make its run folder: {exc}") from None
            if binary is not None:
                return self._ansible(runbook, resolved, binary, run_dir, output, dry_run, cancel)
            return self._command(runbook, resolved, run_dir, output, cancel)
        finally:
            slot.release()

    def _slot(self, runbook: Runbook) -> threading.BoundedSemaphore:
        """The runbook's semaphore; a new one when its limit changed (a reloaded catalog)."""
        with self._lock:
            held = self._slots.get(runbook.name)
            if held is None or held[0] != runbook.max_concurrent:
                held = (runbook.max_concurrent, threading.BoundedSemaphore(runbook.max_concurrent))
                self._slots[runbook.name] = held
            return held[1]

    def _run_dir(self, runbook: Runbook) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        stamp = _now().strftime("%Y%m%dT%H%M%S.%fZ")
        run_dir = self.work_dir / f"{stamp}-{runbook.name}-{uuid.uuid4().hex[:8]}"
        run_dir.mkdir(mode=0o700)
        return run_dir

    def _not_started(self, dry_run: bool) -> RunResult:
        text = "canceled before it started\n"
        now = _now()
        digest = hashlib.sha256(text.encode()).hexdigest()
        return RunResult("canceled", None, text, digest, [], now, now, None, dry_run)

    def _command_dry_run(self, runbook: Runbook, resolved: ResolvedVars) -> RunResult:
        started = _now()
        argv = [resolved.masked(a) for a in resolved.argv]
        text = f"dry run: would run {shlex.join(argv)}"
        if resolved.values:
            text += (
                f"\nwith the environment variables {', '.join(sorted(resolved.values))} (beside PATH, LANG)"
            )
        text += "\n"
        return RunResult(
            status="successful",
            rc=None,
            output=text,
            output_digest=hashlib.sha256(text.encode()).hexdigest(),
            command=argv,
            started_at=started,
            finished_at=_now(),
            changed=None,
            dry_run=True,
        )

    def _ansible(
        self,
        runbook: Runbook,
        resolved: ResolvedVars,
        binary: str,
        run_dir: Path,
        output: _Output,
        dry_run: bool,
        cancel: threading.Event | None,
    ) -> RunResult:
        spec = runbook.runs.ansible
        assert spec is not None
        started = _now()
        inventory = run_dir / "inventory" / "hosts.yml"
        _write_private(inventory, _inventory_yaml(resolved.hosts))
        if resolved.values:
            _write_private(run_dir / "env" / "extravars", _unsafe_yaml(dict(resolved.values)))
        # a file, not the `settings` parameter: ansible-runner 2.4 drops that one when env/settings is missing
        _write_private(run_dir / "env" / "settings", json.dumps({"pexpect_timeout": _POLL}))
        changed: list[int] = []

        def on_event(event: dict[str, Any]) -> bool:
            text = event.get("stdout")
            if text:
                output.text(text)
            if event.get("event") == "playbook_on_stats":
                counts = (event.get("event_data") or {}).get("changed") or {}
                changed.append(sum(int(v) for v in counts.values()))
            return False  # nothing of the events is written to the artifacts

        tmp = run_dir / "tmp"
        envvars = {
            "PATH": os.pathsep.join(filter(None, (str(Path(binary).parent), os.environ.get("PATH")))),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_LOCAL_TEMP": str(tmp / "local"),
            "ANSIBLE_REMOTE_TEMP": str(tmp / "remote"),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_LOCALHOST_WARNING": "False",
        }
        command = [binary]
        processes = _Descendants(marker=str(inventory))

        def canceled() -> bool:
            processes.scan()
            return cancel is not None and cancel.is_set()

        status: Status = "error"
        rc: int | None = None
        try:
            runner = init_runner(
                private_data_dir=str(run_dir),
                project_dir=str(spec.playbook.parent),
                playbook=str(spec.playbook),
                inventory=str(inventory),
                cmdline="--check --diff" if dry_run else None,
                envvars=envvars,
                suppress_env_files=True,  # envvars and cmdline stay in memory
                suppress_output_file=True,
                quiet=True,
                ident="run",
                timeout=runbook.timeout_seconds,
                event_handler=on_event,
                cancel_callback=canceled,
            )
            runner.config.env = _trimmed_env(runner.config.env)
            command = [binary, *runner.config.command[1:]]
            runner.run()
            status = (
                runner.status if runner.status in ("successful", "failed", "timeout", "canceled") else "error"
            )
            rc = runner.rc
            if status == "timeout":
                output.text(f"timed out after {runbook.timeout_seconds} s: stopped")
            elif status == "canceled":
                output.text("canceled: stopped")
        except Exception as exc:  # ansible-runner could not start or broke: the run is an error
            log.exception("runbook %s: ansible-runner failed", runbook.name)
            output.text(f"error: ansible-runner failed: {type(exc).__name__}: {exc}")
            status = "error"
        finally:
            if status not in ("successful", "failed"):
                processes.kill()
            for leftover in ("env", "artifacts", "tmp"):
                shutil.rmtree(run_dir / leftover, ignore_errors=True)
        text, digest = output.close()
        return RunResult(
            status=status,
            rc=rc,
            output=text,
            output_digest=digest,
            command=[resolved.masked(part) for part in command],
            started_at=started,
            finished_at=_now(),
            changed=changed[-1] if changed else None,
            dry_run=dry_run,
        )

    def _command(
        self,
        runbook: Runbook,
        resolved: ResolvedVars,
        run_dir: Path,
        output: _Output,
        cancel: threading.Event | None,
    ) -> RunResult:
        started = _now()
        argv = list(resolved.argv)
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            **resolved.values,
        }
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=run_dir,
                start_new_session=True,  # its own process group, killed whole on timeout or cancel
            )
        except OSError as exc:
            output.text(f"error: cannot start {argv[0]}: {exc.strerror}")
            text, digest = output.close()
            command = [resolved.masked(a) for a in argv]
            return RunResult("error", None, text, digest, command, started, _now(), None, False)
        reader = threading.Thread(
            target=_pump, args=(proc, output), name=f"runbook-{runbook.name}", daemon=True
        )
        reader.start()
        processes = _Descendants(pid=proc.pid)
        status: Status | None = None
        deadline = time.monotonic() + runbook.timeout_seconds
        while status is None:
            try:
                proc.wait(timeout=_POLL)
                status = "successful" if proc.returncode == 0 else "failed"
            except subprocess.TimeoutExpired:
                processes.scan()
                if cancel is not None and cancel.is_set():
                    status = "canceled"
                elif time.monotonic() > deadline:
                    status = "timeout"
                else:
                    continue
                _kill_group(proc)
                processes.kill()
        reader.join(timeout=5)
        if status == "timeout":
            output.text(f"timed out after {runbook.timeout_seconds} s: stopped")
        elif status == "canceled":
            output.text("canceled: stopped")
        text, digest = output.close()
        return RunResult(
            status=status,
            rc=proc.returncode,
            output=text,
            output_digest=digest,
            command=[resolved.masked(a) for a in argv],
            started_at=started,
            finished_at=_now(),
            changed=None,
            dry_run=False,
        )


def _pump(proc: subprocess.Popen[bytes], output: _Output) -> None:
    assert proc.stdout is not None
    with proc.stdout:
        while line := proc.stdout.readline(MAX_LINE):
            output.text(line.decode("utf-8", "replace").rstrip("\r\n"))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class _Descendants:
    """The processes of one run: the process `pid`, or this process's child whose command line holds
    `marker` (a path only that run's has), and all they started. ansible-runner kills the playbook's
    process group on a timeout or a cancel, but Ansible's workers start sessions of their own (ansible-core
    2.19 `setsid`s them) and would go on, task and all, as would a command's child in its own session:
    `scan`, called every poll and so just before that kill, remembers them, and `kill` ends those still
    alive (psutil checks that a pid was not reused)."""

    def __init__(self, *, marker: str | None = None, pid: int | None = None) -> None:
        self._marker = marker
        self._pid = pid
        self._seen: dict[int, psutil.Process] = {}

    def _roots(self) -> list[psutil.Process]:
        if self._pid is not None:
            return [psutil.Process(self._pid)]
        return [c for c in psutil.Process().children() if self._marker in c.cmdline()]

    def scan(self) -> None:
        try:
            roots = self._roots()
        except psutil.Error:
            return
        for root in roots:
            try:
                for process in (root, *root.children(recursive=True)):
                    self._seen.setdefault(process.pid, process)
            except psutil.Error:
                continue

    def kill(self) -> None:
        for process in self._seen.values():
            with contextlib.suppress(psutil.Error):
                if process.is_running():
                    process.kill()


def _trimmed_env(env: Mapping[str, Any]) -> dict[str, Any]:
    """ansible-runner's environment for the playbook without the service's own variables (its API keys,
    tokens, passwords): only what ansible-runner set, the ANSIBLE_* settings and `_INHERITED`."""
    return {
        k: v
        for k, v in env.items()
        if k not in os.environ or os.environ[k] != v or k in _INHERITED or k.startswith("ANSIBLE_")
    }
