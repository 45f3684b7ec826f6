"""The two roles of the process: `alertsleuth serve --no-workers` takes notifications and answers the
API, `alertsleuth worker` investigates and delivers from the same database; each answers the probes;
`alertsleuth serve` with ALERTSLEUTH_WORKER_PROCESSES runs its investigations in such workers, as child
processes it starts again when they die."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from exporter import launch as procs
from server.app import create_app
from server.settings import Settings
from tests.conftest import PromEnv, serve
from tests.server.test_api import wait_report, webhook


def test_a_server_without_workers_and_a_worker_share_the_work(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    settings = make_settings(prometheus_url=prom.url)
    env, stop_server = serve(settings, start_workers=False)
    worker_url, stop_worker = procs.serve_in_thread(create_app(settings, role="worker"))
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            created = c.post("/api/v1/webhook/alertmanager", json=webhook(prom)).json()
            [incident] = created["incidents_created"]
            done = wait_report(c, incident)
            assert done["investigation"] == "done" and done["report_id"]
        with httpx.Client(base_url=worker_url, timeout=10) as w:
            assert w.get("/healthz").json() == {"status": "ok"}
            assert w.get("/readyz").status_code == 200
            assert "alertsleuth_investigations" in w.get("/metrics").text
            # a worker takes no notifications and serves no API or UI
            for path in ("/api/v1/incidents", "/", "/docs"):
                assert w.get(path).status_code == 404, path
            assert w.post("/api/v1/webhook/alertmanager", json=webhook(prom)).status_code == 404
    finally:
        stop_worker()
        stop_server()


def test_a_server_without_workers_queues_and_does_not_investigate(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    env, stop = serve(make_settings(prometheus_url=prom.url), start_workers=False)
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            [incident] = c.post("/api/v1/webhook/alertmanager", json=webhook(prom)).json()[
                "incidents_created"
            ]
            assert c.get(f"/api/v1/incidents/{incident}").json()["investigation"] == "queued"
    finally:
        stop()


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="role must be one of"):
        create_app(Settings(), role="scheduler")


def test_the_command_line_has_both_roles() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "serve" in out and "worker" in out
    serve_help = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--no-workers" in serve_help


def _adjacent_ports() -> int:
    """A free loopback port whose next one is free too (the server's and its one worker process's)."""
    for _ in range(50):
        port = procs.free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two adjacent free ports")


def _children(pid: int) -> list[int]:
    """The `alertsleuth worker` child processes of `pid`, whichever of its threads started them (not
    the intake's writer process and its fork server). A thread or child gone while we look is skipped."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in _read(task / "children").split():
            if b"worker" in _read(Path(f"/proc/{child.decode()}/cmdline")):
                found.add(int(child))
    return sorted(found)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.mark.parametrize(
    ("priority", "expected"),
    [("normal", "0 False"), ("low", "10 False"), ("idle", "0 True")],
)
def test_a_worker_lowers_its_cpu_priority_as_told(priority: str, expected: str) -> None:
    code = (
        "import os; from server.cli import lower_priority; "
        f"lower_priority({priority!r}); "
        "print(os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0) == os.SCHED_IDLE)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == expected.split()


def _wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout}s")


def test_serve_runs_investigations_in_worker_processes_and_restarts_one_that_dies(
    tmp_path: Path, prom: PromEnv
) -> None:
    port = _adjacent_ports()
    env = {
        **os.environ,
        "ALERTSLEUTH_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
        "ALERTSLEUTH_REPORTS_DIR": str(tmp_path / "reports"),
        "ALERTSLEUTH_PROMETHEUS_URL": prom.url,
        "ALERTSLEUTH_LLM_PROVIDER": "none",
        "ALERTSLEUTH_HOST": "127.0.0.1",
        "ALERTSLEUTH_PORT": str(port),
        "ALERTSLEUTH_WORKER_PROCESSES": "1",
        "ALERTSLEUTH_HEARTBEAT_SECONDS": "1",  # a killed child's job is taken over within 3 s
    }
    server = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=tmp_path)
    try:
        _wait_http(f"http://127.0.0.1:{port}/readyz")
        _wait_http(f"http://127.0.0.1:{port + 1}/readyz")  # the worker process, on the next port
        [child] = _children(server.pid)
        assert _nice(child) == 10 and _nice(server.pid) == 0  # ALERTSLEUTH_WORKER_PRIORITY=low
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            first = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="one")).json()
            assert wait_report(c, first["incidents_created"][0], timeout=60)["investigation"] == "done"
            assert (
                "alertsleuth_investigations_total" in httpx.get(f"http://127.0.0.1:{port + 1}/metrics").text
            )
            os.kill(child, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _children(server.pid) in ([], [child]):
                time.sleep(0.2)
            [again] = _children(server.pid)
            assert again != child  # started again
            second = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="two")).json()
            assert wait_report(c, second["incidents_created"][0], timeout=90)["investigation"] == "done"
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
        assert not Path(f"/proc/{again}").exists() or "zombie" in Path(f"/proc/{again}/status").read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
