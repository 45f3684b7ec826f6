"""Schema migrations on both backends (a SQLite file, a database of the session's PostgreSQL): a new
database is made by them and matches the models; a database of the last release without migrations
(made with its frozen DDL and written as that release wrote: tests/server/old_release.py)
keeps its rows, is stamped and upgraded, and matches the models too; several stores, or processes on
PostgreSQL, starting at once on one database migrate it once; a database from a newer release is
refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from agent.models import AlertInfo, Report
from server.db import Store
from server.db.migrate import SchemaTooNew, config, head, revision, schema_differences
from tests.postgres import PostgresCluster
from tests.server.old_release import REPORT, T0, make_database, write_rows

ROOT = Path(__file__).resolve().parents[2]


def _matches_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        assert revision(conn) == head()
        assert schema_differences(conn) == []


def test_a_new_database_is_made_by_the_migrations_and_matches_the_models(empty_database_url: str) -> None:
    store = Store(empty_database_url)
    try:
        _matches_the_models(store)
        names = set(inspect(store.engine).get_table_names())
        assert {"alembic_version", "incidents", "notification_incidents", "report_search"} <= names
        if store.engine.dialect.name == "postgresql":
            columns = {c["name"]: c for c in inspect(store.engine).get_columns("report_search")}
            assert str(columns["document"]["type"]) == "TSVECTOR"
            fingerprint = {c["name"]: c for c in inspect(store.engine).get_columns("incidents")}[
                "fingerprint"
            ]
            assert str(fingerprint["type"]) == "TEXT"
        else:
            with store.session() as s:
                ddl = s.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'report_search'"))
            assert "fts5" in str(ddl).lower()
    finally:
        store.close()
    again = Store(empty_database_url)  # at the head: nothing to do
    try:
        _matches_the_models(again)
    finally:
        again.close()


@pytest.mark.parametrize("without", [(), ("notification_incidents",)], ids=["release-0.1", "before-links"])
def test_a_database_of_the_last_release_keeps_its_rows_and_is_upgraded(
    empty_database_url: str, without: tuple[str, ...]
) -> None:
    make_database(empty_database_url, without=without)
    write_rows(empty_database_url)
    engine = create_engine(empty_database_url)
    with engine.connect() as conn:
        assert revision(conn) is None and not inspect(conn).has_table("alembic_version")
    engine.dispose()

    store = Store(empty_database_url)
    try:
        _matches_the_models(store)
        found = store.incidents.detail(1)
        assert found is not None
        inc = found.incident
        assert (inc.fingerprint, inc.alertname, inc.starts_at, inc.report_id) == (
            "fp-old",
            "LoginFailures",
            T0,
            "r-old-1",
        )
        assert inc.labels == {"alertname": "LoginFailures", "region": "eu"}
        assert [j.state for j in found.jobs] == ["done"]
        assert [(d.sink, d.state, d.analysis) for d in found.deliveries] == [
            ("ops-redmine", "done", {"causes": ["ip_region=zurich"]})
        ]
        assert [(t.key, t.url) for t in found.tickets] == [("#7", "http://r/7")]
        assert found.notifications == []  # notifications before the link table: counted, not listed
        stored = store.reports.get("r-old-1")
        assert stored is not None and Report.model_validate_json(stored[0].body) == REPORT
        session = store.ask_sessions.get("s1")
        assert session is not None and [m.content for m in session[1]] == ["why?"]
        # the old searchable text, searched the new way (refilled on PostgreSQL by revision 0002)
        assert store.history.search("sso rollout") == ([1], 1)
        assert store.history.search("zurich") == ([1], 1)  # "Zürich", diacritics aside
        assert store.incidents.page(labels=[("region", "eu")])[1] == 1

        # and it keeps working: a repeat is deduplicated into the old incident, a new alert is a new one
        old = AlertInfo(name="LoginFailures", labels={}, starts_at=T0, fingerprint="fp-old")
        assert store.intake.ingest("alertmanager", "{}", "g", [old]).deduplicated == [1]
        # longer than 0.1's VARCHARs, which PostgreSQL enforced and SQLite never did
        new = old.model_copy(update={"fingerprint": "f" * 100, "name": "N" * 300})
        [created] = store.intake.ingest("alertmanager", "{}", "g", [new]).created
        assert created == 2 and store.incidents.page(alertname="N" * 300)[1] == 1
        found = store.incidents.detail(1)
        assert found is not None and found.incident.notifications == 2
        assert [n.outcome for n in found.notifications] == ["deduplicated"]
    finally:
        store.close()


def test_downgrade_to_the_release_and_upgrade_again(database_url: str) -> None:
    Store(database_url).close()
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            command.downgrade(config(conn), "0001")
            conn.commit()
            assert revision(conn) == "0001"
    finally:
        engine.dispose()
    store = Store(database_url)
    try:
        _matches_the_models(store)
    finally:
        store.close()


def test_a_database_migrated_by_a_newer_release_is_refused(database_url: str) -> None:
    store = Store(database_url)
    with store.session() as s:
        s.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    store.close()
    with pytest.raises(SchemaTooNew, match="ffff"):
        Store(database_url)


def _migrated_once(url: str) -> None:
    store = Store(url)
    try:
        _matches_the_models(store)
        with store.session() as s:
            assert s.scalars(text("SELECT version_num FROM alembic_version")).all() == [head()]
    finally:
        store.close()


def test_several_stores_opening_at_once_migrate_once(empty_database_url: str) -> None:
    """Four stores (each its own engine and connections) open a database of release 0.1 at the same
    moment: one adopts and upgrades it, the others wait for it (PostgreSQL's advisory lock, SQLite's
    write lock) and find it done; without the lock the others would migrate it again and fail."""
    make_database(empty_database_url)
    write_rows(empty_database_url)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_store() -> None:
        barrier.wait()
        try:
            Store(empty_database_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    _migrated_once(empty_database_url)


OPEN_ON_GO = """
import sys
from server.db import Store
print("ready", flush=True)
sys.stdin.readline()
Store(sys.argv[1]).close()
"""


def test_several_processes_starting_at_once_on_postgres_migrate_once(postgres: PostgresCluster) -> None:
    """Three processes open one new PostgreSQL database at the same moment (each imported, then told to
    go): one migrates it, the others wait on the advisory lock and find it done."""
    url = postgres.create_database()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_ON_GO, url],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * 3, errors
    _migrated_once(url)
    postgres.drop_database(url)
