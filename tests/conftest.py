"""Fixtures that start the real things: Prometheus (backfilled by promtool), Alertmanager, the server,
and PostgreSQL.

The store runs on SQLite and on PostgreSQL. `database_url` is parametrised over both (ids `sqlite` and
`postgres`, so `pytest -k postgres` selects the PostgreSQL runs): a SQLite file in the test's folder, or
a fresh database in the session's private PostgreSQL cluster (tests/postgres.py), copied from one the
migrations made; `empty_database_url` is the same without any table, for the migrations' tests. A test
that asks for `database_url` (as an argument, or with `@pytest.mark.usefixtures("database_url")`) also
gets it from `make_settings` and `server`; any other test runs on SQLite alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exporter import launch as procs
from exporter.scenarios.login import Scenario, burst, everywhere, login_scenario, openmetrics
from server.app import create_app
from server.db import Store
from server.settings import Settings
from tests.binaries import require_binary, require_postgres, require_redmine
from tests.postgres import PostgresCluster

STEP = 15


def _require(kind: str) -> None:
    require_binary(kind)


@dataclass
class PromEnv:
    url: str
    now: float  # the scenarios' "now": end of data, aligned to STEP
    scenarios: dict[str, Scenario]
    process: procs.Process


RULES = """groups:
  - name: test
    rules:
      - alert: BurstFailureRatio
        expr: {expr}
        for: 2m
        labels:
          severity: critical
"""


@pytest.fixture(scope="session")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromEnv]:
    """One Prometheus for the session with deterministic login scenarios backfilled up to ~now."""
    _require("prometheus")
    _require("promtool")
    work = tmp_path_factory.mktemp("prometheus")
    now = time.time() // STEP * STEP
    scenarios = {
        "burst": login_scenario("burst", now, burst("shanghai", "admin")),
        "global": login_scenario("global", now, everywhere(0.35)),
        "region": login_scenario(
            "region", now, lambda r, _u, _t: (0.0, 0.6) if r == "guangzhou" else (0.0, None)
        ),
        "steady": login_scenario("steady", now, lambda _r, _u, _t: (0.0, None)),
    }
    procs.backfill_openmetrics(openmetrics(*scenarios.values()), work / "data", work)
    rules = RULES.format(expr=scenarios["burst"].expr().replace("'", "''"))
    config = "global:\n  scrape_interval: 15s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n"
    process = procs.start_prometheus(work, config, {"rules.yml": rules}, data_dir=work / "data")
    yield PromEnv(process.url, now, scenarios, process)
    process.stop()


@pytest.fixture(scope="session")
def redmine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[procs.Process]:
    """A private Redmine 5 (Debian's) with its own SQLite file, the REST API on and a project `ops`;
    `extra["api_key"]` is the admin's key."""
    require_redmine()
    process = procs.start_redmine(tmp_path_factory.mktemp("redmine"))
    yield process
    process.stop()


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    _require("alertmanager")
    return procs.find_binary("alertmanager")


@pytest.fixture(scope="module")
def alertmanager(alertmanager_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[procs.Process]:
    """A real Alertmanager routing every alert to nowhere: where silences are made (one per module)."""
    am = procs.start_alertmanager(tmp_path_factory.mktemp("alertmanager"), SILENT_AM_CONFIG)
    yield am
    am.stop()


SILENT_AM_CONFIG = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90) -> Any:
    """What `check` returns once it is truthy, polled every 0.1 s; AssertionError naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's private PostgreSQL cluster (skipped without the binaries, failed under CI=true)."""
    cluster = PostgresCluster.start(require_postgres())
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresCluster) -> str:
    """The name of a database the migrations brought to the head, which tests' databases copy."""
    url = postgres.create_database(name="alertsleuth_template")
    Store(url).close()  # and no connection left: a template must have none
    return "alertsleuth_template"


def _database(request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'alertsleuth.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    template = request.getfixturevalue("postgres_template") if migrated else None
    url = cluster.create_database(template=template)
    yield url
    cluster.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database for this test: a SQLite file (made when first opened), or a new database in the
    PostgreSQL cluster, a copy of `postgres_template` (already at the head revision)."""
    yield from _database(request, tmp_path, migrated=True)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for this test (no table): a SQLite file, or a new PostgreSQL database."""
    yield from _database(request, tmp_path, migrated=False)


@dataclass
class ServerEnv:
    url: str
    settings: Settings
    app: Any


def serve(settings: Settings, start_workers: bool = True) -> tuple[ServerEnv, Callable[[], None]]:
    """Run the real app with uvicorn on a free loopback port; returns it and a stop function."""
    app = create_app(settings, start_workers=start_workers)
    url, stop = procs.serve_in_thread(app)
    return ServerEnv(url, settings, app), stop


@pytest.fixture
def make_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """Settings for a test's server; on the test's `database_url` when it asks for one, else SQLite."""
    url = (
        request.getfixturevalue("database_url")
        if "database_url" in request.fixturenames
        else f"sqlite:///{tmp_path / 'alertsleuth.db'}"
    )

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "database_url": url,
            "reports_dir": str(tmp_path / "reports"),
            "prometheus_url": "http://127.0.0.1:9",  # closed unless a test gives one
            "prometheus_timeout": 3.0,
            "poll_interval": 0.05,
            "retry_backoff_seconds": 0.2,
            "workers": 2,
        }
        base.update(overrides)
        return Settings(**base)

    return make


@pytest.fixture
def server(make_settings: Callable[..., Settings], prom: PromEnv) -> Iterator[ServerEnv]:
    env, stop = serve(make_settings(prometheus_url=prom.url))
    yield env
    stop()
