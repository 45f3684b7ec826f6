"""The database handle: the engine, a transaction per unit of work, and a ping.

Opening it brings the schema to the current revision (server/db/migrate.py: Alembic, with a lock, so
several processes may start at once on one PostgreSQL), a database of the release before migrations
included.

Blocking: call from worker threads (FastAPI's threadpool or the worker pool), never on the event loop.

A transaction may bound its wait for another writer's lock (`session(lock_timeout=...)`): on SQLite the
connection's busy timeout for that transaction (restored after), on PostgreSQL `SET LOCAL lock_timeout`.
Running out raises an `OperationalError` that `is_lock_timeout` recognizes; the transaction is rolled back.

A read that takes several queries and must see one state (`snapshot()`) needs its own transaction on
SQLite: the driver runs SELECTs outside any transaction until the first write, so each query would see
whatever was committed by then (an incident read as "running" whose job, read next, is "done"). On
PostgreSQL it is a REPEATABLE READ transaction, whose default READ COMMITTED would do the same.

Writers that must not interleave (`serialize`): SQLite's one write lock already orders every writer;
on PostgreSQL, where writers of different rows run side by side, a transaction-scoped advisory lock per
key does (intake, per alert fingerprint), waiting no longer than the transaction's `lock_timeout`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from server.db.migrate import upgrade
from server.db.models import make_engine


class Database:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        try:
            upgrade(self.engine)
        except BaseException:
            self.engine.dispose()
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self, *, lock_timeout: float | None = None) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises. With `lock_timeout`
        (seconds), waiting for another writer's lock longer raises (see `is_lock_timeout`)."""
        if lock_timeout is None:
            with self._sessions.begin() as s:
                yield s
        elif self.engine.dialect.name == "sqlite":
            with (
                self.engine.connect() as conn,
                _busy_timeout(conn, lock_timeout),
                self._sessions(bind=conn) as s,
                s.begin(),
            ):
                yield s
        else:
            with self._sessions.begin() as s:
                if self.engine.dialect.name == "postgresql":
                    s.execute(text(f"SET LOCAL lock_timeout = '{max(1, round(lock_timeout * 1000))}ms'"))
                yield s

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A transaction whose queries all see the database as it was at its first one, for reading: any
        write in it is rolled back at the end, on both backends."""
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")  # deferred: a shared snapshot at the first read, no lock
            elif self.engine.dialect.name == "postgresql":
                # Not READ ONLY: a write would raise there, and is rolled back on SQLite.
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            try:
                with self._sessions(bind=conn) as s:  # closed, not rolled back: its objects stay loaded
                    yield s
            finally:
                conn.rollback()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        self.engine.dispose()


# The locks taken one after the other in the keys' order: the sorted subquery feeds the function row
# by row (OFFSET 0 keeps the planner from flattening it), so two batches never wait on each other
# crosswise.
_ADVISORY_LOCKS = text(
    "SELECT count(pg_advisory_xact_lock(:scope, k)) FROM "
    "(SELECT k FROM unnest(CAST(:keys AS integer[])) AS k ORDER BY k OFFSET 0) AS ordered"
)


def serialize(s: Session, scope: int, keys: Iterable[str]) -> None:
    """Order this transaction after any other holding one of `keys` in `scope` (a 32-bit number of the
    caller's), until it ends: on PostgreSQL a transaction-scoped advisory lock per key, taken in a fixed
    order (two transactions never wait on each other crosswise); on SQLite nothing, its write lock
    orders every writer already. A wait beyond the session's `lock_timeout` raises as any lock does."""
    if s.get_bind().dialect.name != "postgresql":
        return
    hashed = {hashlib.blake2b(k.encode("utf-8", "surrogatepass"), digest_size=4).digest() for k in keys}
    ordered = sorted(int.from_bytes(h, "big", signed=True) for h in hashed)
    if ordered:  # one statement for all (a round trip per key cost more than the batch's own writes)
        s.execute(_ADVISORY_LOCKS, {"scope": scope, "keys": ordered})


def is_lock_timeout(exc: OperationalError) -> bool:
    """Whether `exc` is a wait for a lock that ran out (SQLite's "database is locked", PostgreSQL's
    lock_not_available), as opposed to a broken database."""
    orig: Any = exc.orig
    if getattr(orig, "sqlstate", None) == "55P03" or getattr(orig, "pgcode", None) == "55P03":
        return True
    return "database is locked" in str(orig)


@contextmanager
def _busy_timeout(conn: Connection, seconds: float) -> Iterator[None]:
    """The SQLite connection's busy timeout set to `seconds` while the block runs, then restored (the
    connection goes back to the pool). Set on the driver's connection, outside any transaction."""
    raw: Any = conn.connection.dbapi_connection
    before = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
    raw.execute(f"PRAGMA busy_timeout = {max(1, round(seconds * 1000))}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA busy_timeout = {before}")
