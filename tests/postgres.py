"""A private PostgreSQL cluster for one test session, and a fresh database in it for each test.

`PostgresCluster.start` runs `initdb` into a temporary folder (trust authentication, UTF-8, the C
locale; no fsync, no synchronous commit, no full-page writes: a test cluster need not survive a crash)
and `pg_ctl start` on a free loopback port, with its unix socket in the same folder; `stop` shuts it
down and removes the folder. initdb refuses to run as root, so as root the cluster belongs to Debian's
`postgres` system user (created by the `postgresql` package), or to `nobody` without it.

Each test gets a database of its own (`create_database`, dropped after it by `drop_database`), so tests
stay isolated without a cluster each; copying a template database (tests/conftest.py keeps one that
the migrations made) saves each test the migrations. The binaries are found by tests/binaries.py
`require_postgres`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

import psycopg

from exporter import launch as procs

SUPERUSER = "alertsleuth"
SETTINGS = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=300",  # each store keeps a pool; a test may hold several stores
)


def _owner() -> pwd.struct_passwd | None:
    """The user the cluster runs as: None (ourselves) unless we are root, whom initdb refuses."""
    if os.getuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, with neither a `postgres` nor a `nobody` user to run initdb as")


class PostgresCluster:
    def __init__(self, bin_dir: Path, root: Path, port: int, owner: pwd.struct_passwd | None) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self.owner = owner
        self._names = count(1)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, bin_dir: str) -> PostgresCluster:
        owner = _owner()
        root = Path(tempfile.mkdtemp(prefix="alertsleuth-postgres-"))  # 0700, in /tmp: the owner's alone
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        cluster = cls(Path(bin_dir), root, 0, owner)
        try:
            cluster._run(
                "initdb",
                "-D",
                str(cluster.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            for attempt in range(3):  # the free port may be taken before the server binds it
                cluster.port = procs.free_port()
                options = " ".join(
                    [
                        f"-p {cluster.port}",
                        "-c listen_addresses=127.0.0.1",
                        f"-c unix_socket_directories={root}",
                        *(f"-c {s}" for s in SETTINGS),
                    ]
                )
                try:
                    cluster._run(
                        "pg_ctl",
                        "-D",
                        str(cluster.data),
                        "-l",
                        str(cluster.log),
                        "-o",
                        options,
                        "-w",
                        "start",
                    )
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
            return cluster
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @contextmanager
    def admin(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection to the `postgres` database, in autocommit (CREATE and DROP DATABASE need it)."""
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            yield conn

    def create_database(self, *, template: str | None = None, name: str | None = None) -> str:
        """A new database, empty or a copy of the database `template` (which nobody may be connected
        to); its SQLAlchemy URL."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database`, closing whatever connections remain to it."""
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _run(self, binary: str, *args: str) -> None:
        started = time.monotonic()
        done = subprocess.run(
            [str(self.bin_dir / binary), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            user=self.owner.pw_uid if self.owner else None,
            group=self.owner.pw_gid if self.owner else None,
            extra_groups=[] if self.owner else None,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{binary} exited with {done.returncode} after {time.monotonic() - started:.1f} s: "
                f"{done.stderr.strip()[-2000:]}\n{log}"
            )
