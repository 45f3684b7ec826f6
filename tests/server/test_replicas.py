"""Three real `alertsleuth serve` processes on one real PostgreSQL: notifications spread over them,
one killed with SIGKILL under load. No acknowledged notification is lost, the dead replica's leased
work is taken over once its leases run out, and each incident gets one investigation's report and one
message (the sink counts distinct idempotency keys)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from exporter import launch as procs
from tests.conftest import PromEnv
from tests.fakes.webhook import FakeWebhook
from tests.postgres import PostgresCluster
from tests.server.test_api import webhook

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def postgres_url(postgres: PostgresCluster, postgres_template: str) -> Iterator[str]:
    url = postgres.create_database(template=postgres_template)
    yield url
    postgres.drop_database(url)


class Replica:
    def __init__(self, work: Path, name: str, env: dict[str, str]) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / f"{name}.log"
        full = {**os.environ, **env, "ALERTSLEUTH_PORT": str(self.port), "PYTHONPATH": str(ROOT)}
        full["ALERTSLEUTH_REPORTS_DIR"] = str(work / f"{name}-reports")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve"], env=full, cwd=work, stdout=out, stderr=out
            )
        procs.wait_http(f"{self.url}/healthz", timeout=60, proc=self.proc)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def test_three_replicas_one_killed_under_load_lose_nothing_and_duplicate_nothing(
    tmp_path: Path, postgres_url: str, prom: PromEnv
) -> None:
    hook = FakeWebhook()
    with hook:
        config = tmp_path / "alertsleuth.yaml"
        config.write_text(
            yaml.safe_dump({"delivery": {"sinks": {"hook": {"type": "webhook", "url": hook.hook_url}}}})
        )
        env = {
            "ALERTSLEUTH_DATABASE_URL": postgres_url,
            "ALERTSLEUTH_HOST": "127.0.0.1",
            "ALERTSLEUTH_PROMETHEUS_URL": prom.url,
            "ALERTSLEUTH_CONFIG": str(config),
            "ALERTSLEUTH_LLM_PROVIDER": "none",
            "ALERTSLEUTH_HEARTBEAT_SECONDS": "1",  # a dead replica's jobs are taken over 3 s on
            "ALERTSLEUTH_POLL_INTERVAL": "0.1",
            "ALERTSLEUTH_WORKERS": "2",
            # 32 alerts of one rule and group would be a storm, investigated once (tests/server/
            # test_storms.py): here each is investigated alone, one per incident across replicas.
            "ALERTSLEUTH_STORM_MIN_ALERTS": "0",
        }
        replicas = [Replica(tmp_path / f"r{i}", f"replica{i}", env) for i in range(3)]
        acknowledged: dict[str, int] = {}  # fingerprint -> incident
        try:
            order = itertools.cycle(range(3))
            alive = [True, True, True]

            def post(fp: str) -> None:
                # Round-robin, the next replica when one does not answer (a load balancer's retry).
                start = next(order)
                for k in range(3):
                    r = replicas[(start + k) % 3]
                    if not alive[(start + k) % 3]:
                        continue
                    try:
                        resp = httpx.post(
                            f"{r.url}/api/v1/webhook/alertmanager",
                            json=webhook(prom, fingerprint=fp),
                            timeout=30,
                        )
                    except httpx.TransportError:
                        continue
                    if resp.status_code == 202:
                        body = resp.json()
                        [incident] = body["incidents_created"] or body["incidents_updated"]
                        acknowledged[fp] = incident
                        return
                raise AssertionError(f"no replica took {fp}")

            with ThreadPoolExecutor(6) as pool:
                list(pool.map(post, [f"rep{i:03d}" for i in range(16)]))
                alive[0] = False
                replicas[0].kill()  # under load: its workers hold jobs, its requests are in flight
                list(pool.map(post, [f"rep{i:03d}" for i in range(16, 32)]))
            assert len(acknowledged) == 32

            engine = create_engine(postgres_url)
            try:
                deadline = time.monotonic() + 120
                while True:
                    with engine.connect() as c:
                        left = c.execute(
                            text("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
                        ).scalar_one()
                        pending = c.execute(
                            text("SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending')")
                        ).scalar_one()
                    if not left and not pending:
                        break
                    assert time.monotonic() < deadline, f"{left} jobs and {pending} deliveries unfinished"
                    time.sleep(0.2)
                with engine.connect() as c:
                    incidents = c.execute(text("SELECT id, fingerprint FROM incidents")).all()
                    jobs = c.execute(text("SELECT incident_id, state FROM jobs")).all()
                    reports = c.execute(
                        text("SELECT incident_id, count(*) FROM reports GROUP BY incident_id")
                    ).all()
                    sent = c.execute(
                        text(
                            "SELECT incident_id, count(*) FROM deliveries WHERE event = 'firing' "
                            "GROUP BY incident_id"
                        )
                    ).all()
            finally:
                engine.dispose()
        finally:
            for r in replicas:
                r.stop()

        # every acknowledged notification is an incident, investigated once, told once
        assert {fp for _, fp in incidents} >= set(acknowledged)
        assert set(acknowledged.values()) <= {i for i, _ in incidents}
        assert len(jobs) == len(incidents) and {s for _, s in jobs} == {"done"}, jobs
        assert all(n == 1 for _, n in reports) and len(reports) == len(incidents), reports
        assert all(n == 1 for _, n in sent) and len(sent) == len(incidents), sent
        keys = set(hook.deliveries)
        assert len(keys) == len(incidents), (len(keys), len(incidents), hook.duplicates)
