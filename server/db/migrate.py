"""Schema migrations: Alembic, driven from code (no alembic.ini), run by `Database` when it opens.

The revisions are in server/db/migrations/versions/: 0001 makes the schema of release 0.1 (frozen in
server/db/migrations/release_0_1.py), each later one changes it, and the head matches
server/db/models.py (`schema_differences` finds nothing; tests/server/test_migrations.py checks it on
both backends).

`upgrade(engine)`:
1. reads the database's revision: at the head, that is all (no lock, no write);
2. otherwise takes the migration lock, in one transaction, and reads it again (another process starting
   on the same database may have migrated it meanwhile). On PostgreSQL the lock is a transaction-scoped
   advisory lock (`MIGRATION_LOCK`), so several processes starting at once migrate once, one after the
   other; on SQLite it is the write lock (BEGIN IMMEDIATE);
3. a database without `alembic_version` that holds `notifications` was made by release 0.1 or earlier,
   by `create_all`: its missing 0.1 tables are created, as that release's start-up did (a database
   made before `notification_incidents` gets it, empty), and it is stamped 0001; its rows stay as they
   are. An empty database starts from nothing;
4. upgrades to the head and commits, DDL and data together (both backends have transactional DDL).

A database at a revision this code does not know, made by a newer release, is refused
(`SchemaTooNew`) rather than guessed at.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import NameFilterParentNames, NameFilterType
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, MetaData, inspect, text

from server.db.migrations import release_0_1
from server.db.models import Base, search_metadata

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 0x616C657274736C  # pg_advisory_xact_lock's key: "alertsl" in ASCII
RELEASE_0_1 = "0001"  # the revision of a database made by release 0.1, once adopted
_ALEMBIC = threading.Lock()  # Alembic's `op` and `context` are one per process: one run at a time


class SchemaTooNew(RuntimeError):
    """The database is at a revision this release does not know: a newer release migrated it."""


def config(conn: Connection | None = None) -> Config:
    """Alembic's configuration, without a file; env.py runs the migrations on `conn`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))  # ConfigParser's escape
    cfg.attributes["connection"] = conn
    return cfg


@functools.cache
def scripts() -> ScriptDirectory:
    """The revisions (read once: they are files of the package)."""
    return ScriptDirectory.from_config(config())


def head() -> str:
    rev = scripts().get_current_head()
    assert rev is not None
    return rev


def revision(conn: Connection) -> str | None:
    """The database's revision (None: not under migrations)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the database to the head revision (see the module's docstring)."""
    target = head()
    with engine.connect() as conn:
        if revision(conn) == target:
            return
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock: one process migrates at a time
        elif conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        current = revision(conn)
        if current == target:
            return
        if current is not None and not _known(current):
            raise SchemaTooNew(
                f"the database is at schema revision {current}, which this release does not know "
                f"(its newest is {target}): a newer alertsleuth migrated it"
            )
        cfg = config(conn)
        with _ALEMBIC:
            if current is None and inspect(conn).has_table("notifications"):
                release_0_1.create(conn, checkfirst=True)
                command.stamp(cfg, RELEASE_0_1)
            command.upgrade(cfg, "head")
        conn.commit()


def _known(rev: str) -> bool:
    try:
        return scripts().get_revision(rev) is not None
    except CommandError:
        return False


def include_name(dialect: str) -> Callable[[str | None, NameFilterType, NameFilterParentNames], bool]:
    """What `schema_differences` (and autogenerate) compares on `dialect`: on SQLite, not the FTS5
    table `report_search` and its shadow tables (`report_search_data`, ...), which no model describes."""

    def include(name: str | None, kind: NameFilterType, _parent: NameFilterParentNames) -> bool:
        searching = name is not None and (name == "report_search" or name.startswith("report_search_"))
        return not (kind == "table" and searching and dialect == "sqlite")

    return include


@functools.cache
def target_metadata(dialect: str) -> MetaData:
    """The schema the head should hold on `dialect`: the models, and on PostgreSQL `report_search`."""
    out = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(out)
    if dialect == "postgresql":
        for table in search_metadata.sorted_tables:
            table.to_metadata(out)
    return out


def schema_differences(conn: Connection) -> list[Any]:
    """What differs between the database and the models (Alembic's `compare_metadata`; empty at the
    head)."""
    dialect = conn.dialect.name
    opts = {"include_name": include_name(dialect), "compare_type": True}
    return list(compare_metadata(MigrationContext.configure(conn, opts=opts), target_metadata(dialect)))
