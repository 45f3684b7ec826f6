"""Test-only script: the worker's real write path (`WorkerPool.run_job`), in a process the test kills -9.

    python -m tests.server.archive_crash DATABASE_URL REPORTS_DIR once   # one job; waits for a line first
    python -m tests.server.archive_crash DATABASE_URL REPORTS_DIR loop   # jobs one after another, forever

Each job is a new alert, ingested and claimed, then run by the real worker code with the offline writer
against a Prometheus that does not answer (one attempt): a degraded report, archived and stored. `once`
prints "claimed" and waits for a line on stdin before `run_job`, so the test can hold the database's
write lock first; `loop` prints "stored <n>" after each job.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from agent.investigator import make_investigator
from agent.models import AlertInfo
from server.db import Store
from server.metrics import Metrics
from server.settings import Settings
from server.worker import WorkerPool
from tools.prom import Prometheus


def main(database_url: str, reports_dir: str, mode: str) -> None:
    settings = Settings(
        database_url=database_url,
        reports_dir=reports_dir,
        prometheus_url="http://127.0.0.1:9",
        llm_provider="none",
    )
    store = Store(database_url)
    prom = Prometheus(settings.prometheus_url, timeout=1)
    pool = WorkerPool(
        store,
        make_investigator(prom, settings.investigation(), settings.llm()),
        Metrics(store.jobs.depth),
        workers=1,
        reports_dir=reports_dir,
        max_attempts=1,
        retry_backoff=0,
        lease_seconds=600,
        heartbeat_seconds=0.5,  # its leases run out 1.5 s after the kill: the restarted app takes over
        poll_interval=1,
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    n = 0
    while True:
        n += 1
        alert = AlertInfo(
            name="CrashTest",
            status="firing",
            labels={"alertname": "CrashTest", "n": str(n)},
            annotations={},
            starts_at=start + timedelta(seconds=n),
            fingerprint=f"crash{n}",
        )
        store.intake.ingest("test", "{}", "", [alert])
        job = store.jobs.claim("crash-test", pool.claim_lease)  # renewed by nobody: runs out 1.5 s on
        assert job is not None
        if mode == "once":
            print("claimed", flush=True)
            sys.stdin.readline()
        pool.run_job(job)
        print(f"stored {n}", flush=True)
        if mode == "once":
            return


if __name__ == "__main__":
    main(*sys.argv[1:4])
