"""The intake's transactions in a process of their own, so the store's work cannot take the GIL from
the requests being answered.

`IntakeProcess` is server/intake_writer.py's `Pipeline`: the writer's sending thread hands it each
batch (`send`), a child process writes the batch in one transaction (server/db/intake.py, on its own
connection to the same database) and answers with the results, which the writer's answering thread
waits for (`receive`), in the order sent; the child writes the next batch, already in its pipe, while
the last one's requests are answered. Nothing is answered before the child said it committed: an
accepted notification is durable, as with the writer in a thread.
Profiled on 2 cores (bench/intake.py, py-spy), the writer thread's SQLAlchemy work held about as much
of the GIL as the HTTP handling of the requests it wrote.

The child decides a resolution's notices with a copy of the delivery planner (the route tree and
the sinks' names; no sink, client or secret of theirs goes to it). It is started with the
`forkserver` method: a clean process (no threads or locks inherited from the server), and the second
one (after a death) starts in milliseconds.

When the child dies (killed, out of memory), the batches it holds fail with `StoreBusy` (503 with
Retry-After: the sender sends again; if such a batch had committed, the repeat is stored as one more
notification whose alerts join the incidents it made: no second incident or investigation; the
answers it wrote before it died are read and given), and the next batch starts a new child. When
the server dies, the child sees its pipe close and exits.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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


@dataclass(eq=False)
class _Child:
    """One child and its pipe. `out`: batches sent and not yet answered; `retired`: a newer child
    writes, this one is buried once its answers are read (a batch it committed before it died is
    answered, not failed); `lost`: its pipe closed under a batch."""

    process: BaseProcess
    conn: Connection
    out: int = 0
    retired: bool = False
    lost: bool = False


class IntakeProcess:
    """The intake writer's `Pipeline` (server/intake_writer.py): `send` from one thread, `receive` from
    another, in order; `ingest_many` does both."""

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
        self._child: _Child | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """A child, ready to write (raises when it did not start within START_SECONDS)."""
        child = self._spawn()
        with self._lock:
            self._child = child

    def _spawn(self) -> _Child:
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
        log.debug("intake writer process started", extra={"pid": process.pid})
        return _Child(process, parent)

    def stop(self, timeout: float = 10.0) -> None:
        """The child finishes the batch in hand (none: the writer stopped first) and exits."""
        with self._lock:
            child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(OSError):
            child.conn.send(None)
        child.conn.close()
        child.process.join(timeout)
        if child.process.is_alive():
            child.process.kill()
            child.process.join(5)

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.process.pid if child is not None else None

    def ingest_many(
        self, requests: Sequence[IngestRequest], rules: IntakeRules
    ) -> list[IngestResult | Exception]:
        """As `Intake.ingest_many`; `StoreBusy` when the child died before it answered."""
        return self.receive(self.send(requests, rules))

    def send(self, requests: Sequence[IngestRequest], rules: IntakeRules) -> _Child:
        """Hand the batch to the child (a new one when it died); the ticket for `receive`."""
        with self._lock:
            child = self._child
            if child is not None and (child.lost or not child.process.is_alive()):
                self._child = None
                self._retire(child)
                child = None
        if child is None:
            child = self._spawn()
            with self._lock:
                self._child = child
        # The callbacks stay here: the child plans a resolution's notices with its own planner.
        batch = [replace(r, on_resolved=None) for r in requests]
        resolving = [r.on_resolved is not None for r in requests]
        with self._lock:
            child.out += 1
        try:
            child.conn.send((batch, resolving, rules))
        except OSError as exc:
            self._lose(child, len(requests))
            raise _died() from exc
        return child

    def receive(self, ticket: object) -> list[IngestResult | Exception]:
        """The results of the batch `ticket` was sent with; `StoreBusy` when its child died first."""
        assert isinstance(ticket, _Child)
        child = ticket
        try:
            if child.lost:
                raise EOFError
            reply = child.conn.recv()
        except (EOFError, OSError) as exc:
            self._lose(child, 1)
            raise _died() from exc
        with self._lock:
            child.out -= 1
            if child.retired and not child.out:
                self._bury(child)
        if isinstance(reply, BaseException):
            raise reply
        results: list[IngestResult | Exception] = reply
        return results

    def _lose(self, child: _Child, size: int) -> None:
        """The child's pipe closed under a batch: that batch failed, and every other it holds."""
        with self._lock:
            child.out -= 1
            first = not child.lost
            child.lost = True
            if self._child is child:
                self._child = None
            self._retire(child)
        if first:
            log.error(
                "the intake's writer process died under a batch",
                extra={"size": size, "exit": child.process.exitcode},
            )

    def _retire(self, child: _Child) -> None:
        """(Under the lock.) Buried now, or once the answers it owes are read."""
        child.retired = True
        if not child.out:
            self._bury(child)

    @staticmethod
    def _bury(child: _Child) -> None:
        child.conn.close()
        child.process.join(1)
        if child.process.is_alive():
            child.process.kill()
            child.process.join(5)


def _died() -> StoreBusy:
    return StoreBusy(
        "alertsleuth's intake writer stopped before it answered; nothing was acknowledged, send it again",
        retry_after=RESTART_RETRY_SECONDS,
    )


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
