"""`alertsleuth serve` with investigations in worker processes (ALERTSLEUTH_WORKER_PROCESSES > 0).

Investigations are CPU-bound Python; run as threads of the serving process they hold the GIL that the
webhook's intake needs. With worker processes, `serve` takes notifications only (as `--no-workers`) and
starts that many `alertsleuth worker` children on the same database (SQLite or PostgreSQL): they claim
jobs and deliveries with leases as separate replicas do. Child `i` (from 1) answers /healthz, /readyz
and /metrics on ALERTSLEUTH_PORT + i, with ALERTSLEUTH_WORKERS threads of its own.

A child that exits is started again, after a pause that doubles from 1 s to 30 s while it keeps dying
(reset once it ran for a minute); its leased work is taken over when the lease runs out. `stop` sends
SIGTERM to every child, waits for them to finish what they are doing, and kills what is left. On
Linux a child is also sent SIGTERM when `serve` dies without stopping them (killed: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

log = logging.getLogger("alertsleuth.supervisor")

FIRST_PAUSE, MAX_PAUSE, STEADY_SECONDS = 1.0, 30.0, 60.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child, before exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class WorkerProcesses:
    def __init__(self, count: int, port: int, env: Mapping[str, str] | None = None) -> None:
        self.count = count
        self.port = port
        self.env = dict(os.environ if env is None else env)
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "server.cli", "worker"]

    def _start(self, i: int) -> subprocess.Popen[bytes]:
        env = {**self.env, "ALERTSLEUTH_PORT": str(self.port + i), "ALERTSLEUTH_WORKER_PROCESSES": "0"}
        child = subprocess.Popen(self.argv(), env=env, preexec_fn=_die_with_parent)  # noqa: PLW1509
        log.info("worker process started", extra={"worker": i, "pid": child.pid, "port": self.port + i})
        return child

    def start(self) -> None:
        for i in range(1, self.count + 1):
            self._children[i] = self._start(i)
        self._watcher = threading.Thread(target=self._watch, name="worker-processes", daemon=True)
        self._watcher.start()

    @property
    def pids(self) -> dict[int, int]:
        return {i: c.pid for i, c in self._children.items()}

    def _watch(self) -> None:
        pause = dict.fromkeys(self._children, FIRST_PAUSE)
        began = dict.fromkeys(self._children, time.monotonic())
        while not self._stopping.wait(0.5):
            for i, child in list(self._children.items()):
                code = child.poll()
                if code is None:
                    if time.monotonic() - began[i] > STEADY_SECONDS:
                        pause[i] = FIRST_PAUSE
                    continue
                log.error(
                    "worker process exited; starting it again",
                    extra={"worker": i, "pid": child.pid, "exit": code, "in_seconds": pause[i]},
                )
                if self._stopping.wait(pause[i]):
                    return
                pause[i] = min(MAX_PAUSE, pause[i] * 2)
                began[i] = time.monotonic()
                self._children[i] = self._start(i)

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(5)
        for child in self._children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + timeout
        for i, child in self._children.items():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker process did not stop; killed", extra={"worker": i, "pid": child.pid})
                child.kill()
                child.wait(5)
