"""Reliability probe: acknowledged notifications survive `kill -9`.

    uv run python bench/durability.py [--notifications 2000] [--senders 16] [--kills 4] [--seed N]

Starts `alertsleuth serve` as its own process on a SQLite file, with workers on and a Prometheus that
does not answer (investigations fail and are retried: the server is as busy as it gets). Senders post
Alertmanager notifications, one new alert each, from several threads, as Alertmanager does: a
notification that was not answered 202 is sent again later. At random moments the server is killed
with SIGKILL and started again on the same database. At the end every notification was acknowledged
once, and the probe counts the acknowledged alerts that have no incident in the database: lost. It
must be 0. It also counts the jobs left running (a killed worker's lease must bring them back) and
prints the intake figures. Exit status 1 when anything acknowledged was lost.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.launch import free_port, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def notification(i: int) -> dict[str, object]:
    """One firing alert of its own (fingerprint, startsAt): one incident."""
    return {
        "version": "4",
        "status": "firing",
        "receiver": "alertsleuth",
        "groupKey": f"durability/{i}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "DurabilityProbe", "severity": "info", "shard": str(i)},
                "annotations": {"summary": "durability probe"},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph?g0.expr=up%20%3D%3D%200",
                "fingerprint": f"{i:016x}",
            }
        ],
    }


class Server:
    """`alertsleuth serve` in a process of its own, killed with SIGKILL and started again."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ALERTSLEUTH_DATABASE_URL": f"sqlite:///{work / 'alertsleuth.db'}",
            "ALERTSLEUTH_REPORTS_DIR": str(work / "reports"),
            "ALERTSLEUTH_PORT": str(self.port),
            "ALERTSLEUTH_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
            "ALERTSLEUTH_PROMETHEUS_TIMEOUT": "1",
            "ALERTSLEUTH_LLM_PROVIDER": "none",
            "ALERTSLEUTH_LOG_LEVEL": "WARNING",
            "ALERTSLEUTH_LEASE_SECONDS": "5",
        }
        self.log = (work / "server.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_http(f"{self.url}/healthz", timeout=60, proc=self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notifications", type=int, default=2000)
    ap.add_argument("--senders", type=int, default=16)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-seconds", type=float, default=300.0, help="give up sending after this long")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="alertsleuth-durability-"))
    server = Server(work)
    server.start()

    todo = list(range(args.notifications))
    lock = threading.Lock()
    acked: set[int] = set()
    refused: dict[str, int] = {}
    latencies: list[float] = []
    deadline = time.monotonic() + args.max_seconds

    def sender() -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                with lock:
                    if not todo:
                        return
                    i = todo.pop()
                t = time.perf_counter()
                try:
                    r = client.post(f"{server.url}/api/v1/webhook/alertmanager", json=notification(i))
                    ok = r.status_code == 202
                    why = str(r.status_code)
                except httpx.HTTPError as exc:
                    ok, why = False, type(exc).__name__
                with lock:
                    if ok:
                        acked.add(i)
                        latencies.append(time.perf_counter() - t)
                    else:  # as Alertmanager: send it again later
                        refused[why] = refused.get(why, 0) + 1
                        todo.insert(0, i)
                if not ok:
                    time.sleep(0.2)

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(args.senders)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    kills = 0
    try:
        while kills < args.kills and any(t.is_alive() for t in threads):
            with lock:
                done = len(acked)
            # kill somewhere in each share of the run, once that many notifications went in
            target = args.notifications * (kills + rnd.uniform(0.2, 0.9)) / (args.kills + 1)
            if done >= target:
                server.kill()
                kills += 1
                time.sleep(rnd.uniform(0.0, 0.5))
                server.start()
            time.sleep(0.01)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        wall = time.monotonic() - t0
        time.sleep(6)  # past one lease: a killed worker's jobs are claimable again
    finally:
        server.stop()

    db = sqlite3.connect(work / "alertsleuth.db")
    fingerprints = {row[0] for row in db.execute("SELECT fingerprint FROM incidents")}
    jobs = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    incidents = db.execute("SELECT count(*) FROM incidents").fetchone()[0]
    db.close()
    lost = sorted(i for i in acked if f"{i:016x}" not in fingerprints)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000 if latencies else float("nan")
    print(
        f"notifications {args.notifications}, acknowledged {len(acked)}, kills {kills}, "
        f"lost {len(lost)}, incidents {incidents} (duplicates {incidents - len(fingerprints)})"
    )
    print(
        f"intake: {len(acked) / wall:.0f} acknowledged/s over {wall:.1f}s with {args.senders} senders, "
        f"median {p50:.1f} ms, p99 {p99:.1f} ms; not acknowledged and sent again: {refused or 'none'}"
    )
    print(f"jobs by state after the last restart: {jobs}")
    if len(acked) < args.notifications:
        print(f"unfinished: {args.notifications - len(acked)} notifications never acknowledged in time")
    if lost:
        print(f"LOST: {lost[:20]}{' …' if len(lost) > 20 else ''}")
    print(f"work directory: {work}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
