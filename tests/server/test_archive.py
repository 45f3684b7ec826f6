"""A worker killed -9 while it archives a report: after the next start, no report file lacks its database
row, no row points at a missing file, and no temporary file is left.

The write path runs for real in a subprocess (`tests/server/archive_crash.py` runs `WorkerPool.run_job`);
the recovery is the real app's start-up.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from server.db import Job, ReportRow, Store
from server.settings import Settings
from tests.conftest import serve

ROOT = Path(__file__).resolve().parents[2]


def _script(settings: Settings, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.server.archive_crash",
            settings.database_url,
            settings.reports_dir,
            mode,
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()  # SIGKILL
    proc.wait(10)


def _restart(settings: Settings) -> None:
    """Start the app on the same database and archive (its start-up restores the archive), let it take
    over the jobs the kill interrupted once their leases run out, and finish them; then stop it."""
    _env, stop = serve(settings)
    store = Store(settings.database_url)
    try:
        deadline = time.monotonic() + 60
        while any(store.jobs.depth().get(state) for state in ("queued", "running")):
            assert time.monotonic() < deadline, store.jobs.depth()
            time.sleep(0.05)
    finally:
        store.close()
        stop()


def _check_archive(settings: Settings) -> int:
    """Every file in the archive is a stored report's; every stored report's files exist. Returns the
    number of stored reports."""
    store = Store(settings.database_url)
    try:
        with store.session() as s:
            rows = list(s.query(ReportRow.id, ReportRow.paths))
    finally:
        store.close()
    wanted = {Path(p) for _id, paths in rows for p in paths.values()}
    missing = sorted(str(p) for p in wanted if not p.is_file())
    assert not missing, f"rows pointing at missing files: {missing}"
    present = set(Path(settings.reports_dir).iterdir()) if Path(settings.reports_dir).exists() else set()
    orphans = sorted(p.name for p in present - wanted)
    assert not orphans, f"files without a row (or temporaries): {orphans}"
    for _id, paths in rows:
        assert set(paths) == {"md", "html", "json"}
    return len(rows)


@pytest.fixture
def crash_settings(make_settings: Callable[..., Settings]) -> Settings:
    # The restarted app investigates the re-queued job against a closed Prometheus: one quick attempt.
    return make_settings(max_attempts=1, workers=1)


def test_kill_while_the_report_is_stored_leaves_no_orphan_files(crash_settings: Settings) -> None:
    proc = _script(crash_settings, "once")
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "claimed"
        db = sqlite3.connect(crash_settings.database_url.removeprefix("sqlite:///"), timeout=30)
        db.execute("BEGIN IMMEDIATE")  # the worker's transaction that stores the report must wait
        try:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            time.sleep(4)  # investigated and rendered by now, blocked storing the report
            assert proc.poll() is None
            _kill(proc)
        finally:
            db.rollback()
            db.close()
    finally:
        if proc.poll() is None:
            _kill(proc)
    _restart(crash_settings)
    store = Store(crash_settings.database_url)
    with store.session() as s:
        jobs = [(j.state, j.attempts, j.last_error) for j in s.query(Job)]
    store.close()
    assert [state for state, _, _ in jobs] == ["done"], jobs  # re-queued, investigated by the restart
    assert _check_archive(crash_settings) == 1


def test_kill_at_random_moments_of_the_write_path(crash_settings: Settings) -> None:
    rng = random.Random(11)
    for _ in range(5):
        proc = _script(crash_settings, "loop")
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().startswith("stored")
            time.sleep(rng.uniform(0, 0.2))  # a few reports in: anywhere in the write path
        finally:
            _kill(proc)
    _restart(crash_settings)
    assert _check_archive(crash_settings) >= 5
