"""The intake's transactions in a process of their own, so the store's work cannot take the GIL from
the requests being answered.

`IntakeProcess` has `Intake.ingest_many`'s signature: server/intake_writer.py's one thread hands it
each batch and waits while a child process writes the batch in one transaction (server/db/intake.py,
on its own connection to the same database) and answers with the results. Nothing is answered before
the child said it committed: an accepted notification is durable, as with the writer in a thread.
Profiled on 2 cores (bench/intake.py, py-spy), the writer thread's SQLAlchemy work held about as much
of the GIL as the HTTP handling of the requests it wrote.

The child decides a resolution's notices with a copy of the delivery planner (the route tree and
the sinks' names; no sink, client or secret of theirs goes to it). It is started with the
`forkserver` method: a clean process (no threads or locks inherited from the server), and the second
one (after a death) starts in milliseconds.

When the child dies (killed, out of memory), the batch in hand fails with `StoreBusy` (503 with
Retry-After: the sender sends again; if that batch had committed, the repeat is stored as one more
notification whose alerts join the incidents it made: no second incident or investigation), and the
next batch starts a new child. When the server dies, the child sees its pipe close and
exits.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from agent.models import AlertInfo
from server.db.deliveries import Plan
from server.db.intake import IngestRequest, IngestResult, Intake, IntakeRules
from server.delivery.plan import Planner
from tools.errors import AlertsleuthError, StoreBusy

log = logging.getLogger("alertsleuth.intake")

START_SECONDS = 60.0  # longest wait for a new child to open the database and say it is ready
RESTART_RETRY_SECONDS = 1.0  # the Retry-After of a batch whose child died under it
_READY = "ready"


class IntakeProcess:
    """`ingest_many` in a child process. Called from one thread (the intake writer's) at a time."""

    def __init__(
        self, database_url: str, planner: Planner | None, *, log_level: str = "INFO", log_format: str = "text"
    ) -> None:
        """`planner`: the resolution notices' plan (None: none are queued)."""
        self.database_url = database_url
        # Routes and names only: the sinks themselves hold clients and secrets.
        self.planner = (
            Planner(planner.tree, tuple(planner.sinks), tuple(planner.trackers)) if planner else None
        )
        self.log_level = log_level
        self.log_format = log_format
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def start(self) -> None:
        """A child, ready to write (raises when it did not start within START_SECONDS)."""
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_serve,
            args=(child, self.database_url, self.planner, self.log_level, self.log_format),
            name="alertsleuth-intake",
            daemon=True,
        )
        process.start()
        child.close()
        try:
            if not parent.poll(START_SECONDS) or parent.recv() != _READY:
                raise RuntimeError(f"the intake's writer process did not start within {START_SECONDS:g} s")
        except BaseException:
            process.kill()
            process.join(5)
            parent.close()
            raise
        self._process, self._conn = process, parent
        log.debug("intake writer process started", extra={"pid": process.pid})

    def stop(self, timeout: float = 10.0) -> None:
        """The child finishes the batch in hand (none: the writer thread stopped first) and exits."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(None)
            conn.close()
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(5)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def ingest_many(
        self, requests: Sequence[IngestRequest], rules: IntakeRules
    ) -> list[IngestResult | Exception]:
        """As `Intake.ingest_many`; `StoreBusy` when the child died before it answered."""
        if self._conn is None or self._process is None or not self._process.is_alive():
            self._reap()
            self.start()
        assert self._conn is not None
        # The callbacks stay here: the child plans a resolution's notices with its own planner.
        batch = [replace(r, on_resolved=None) for r in requests]
        resolving = [r.on_resolved is not None for r in requests]
        try:
            self._conn.send((batch, resolving, rules))
            reply = self._conn.recv()
        except (EOFError, OSError) as exc:
            code = self._reap()
            log.error(
                "the intake's writer process died under a batch", extra={"size": len(requests), "exit": code}
            )
            raise StoreBusy(
                "alertsleuth's intake writer stopped before it answered; nothing was acknowledged, send it "
                "again",
                retry_after=RESTART_RETRY_SECONDS,
            ) from exc
        if isinstance(reply, BaseException):
            raise reply
        results: list[IngestResult | Exception] = reply
        return results

    def _reap(self) -> int | None:
        """Forget a dead (or never started) child; its exit code."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        process.join(1)
        if process.is_alive():
            process.kill()
            process.join(5)
        return process.exitcode


def _serve(
    conn: Connection, database_url: str, planner: Planner | None, log_level: str, log_format: str
) -> None:
    """The child: batches in, results out, until told to stop or the server is gone."""
    from server.db.database import Database
    from server.logs import setup_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the server stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    setup_logging(log_level, log_format)
    db = Database(database_url)
    intake = Intake(db)
    on_resolved = _resolution_plan(planner)
    conn.send(_READY)
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the server is gone
                break
            if message is None:
                break
            batch, resolving, rules = message
            requests = [
                replace(r, on_resolved=on_resolved) if wants else r
                for r, wants in zip(batch, resolving, strict=True)
            ]
            out: Any
            try:
                out = [_portable(r) for r in intake.ingest_many(requests, rules)]
            except Exception as exc:  # the whole batch (StoreBusy, or the store is broken)
                out = _portable(exc)
            conn.send(out)
    finally:
        db.engine.dispose()


def _resolution_plan(planner: Planner | None) -> Callable[[AlertInfo], Plan] | None:
    if planner is None:
        return None
    return lambda alert: planner.for_resolution(alert.labels)


def _portable(outcome: Any) -> Any:
    """An outcome that crosses the pipe: our own errors as they are (they pickle), any other (a driver's
    error may hold a connection) as its text."""
    if isinstance(outcome, BaseException) and not isinstance(outcome, AlertsleuthError):
        return RuntimeError(f"{type(outcome).__name__}: {outcome}")
    return outcome
