"""The intake's transactions in a process of their own, so the store's work cannot take the GIL from
the requests being answered.

`IntakeProcess` is server/intake_writer.py's `Pipeline`, all of it in the server's event loop: `write`
queues the batch, one sender task hands the batches to a child process in the order they came (over
the child's socket, framed as multiprocessing's `Connection` frames its messages, which the child reads
with one), and the child's answers settle them in that order as they arrive (`_Answers`, an asyncio
protocol on the same socket). The child writes the batch in one transaction (server/db/intake.py, on
its own connection to the same database) and writes the next, already in its socket, while the last
one's requests are answered. Nothing is answered before the child said it committed: an accepted
notification is durable, as with the writer in a thread.
Profiled on 2 cores (bench/intake.py, py-spy), the writer thread's SQLAlchemy work held about as much
of the GIL as the HTTP handling of the requests it wrote; the threads that then fed the child and
read its answers took about a quarter of the server process's CPU, now the loop's few reads and writes.

The child decides a resolution's notices with a copy of the delivery planner (the route tree and
the sinks' names; no sink, client or secret of theirs goes to it). It is started with the
`forkserver` method: a clean process (no threads or locks inherited from the server), and the second
one (after a death) starts in milliseconds (in a thread: the loop goes on answering meanwhile).

When the child dies (killed, out of memory), the batches it holds fail with `StoreBusy` (503 with
Retry-After: the sender sends again; if such a batch had committed, the repeat is stored as one more
notification whose alerts join the incidents it made: no second incident or investigation; the
answers it wrote before it died are read and given), and the next batch starts a new child. When
the server dies, the child sees its socket close and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import Any, cast

from agent.models import AlertInfo
from server.db.deliveries import Plan
from server.db.intake import IngestRequest, Intake, IntakeRules
from server.delivery.plan import Planner
from server.intake_writer import Outcome
from tools.errors import AlertsleuthError, StoreBusy

log = logging.getLogger("alertsleuth.intake")

START_SECONDS = 60.0  # longest wait for a new child to open the database and say it is ready
RESTART_RETRY_SECONDS = 1.0  # the Retry-After of a batch whose child died under it
_READY = "ready"
_SIZE = struct.Struct("!i")  # multiprocessing.connection's frame: a signed 4-byte length, then the pickle
_LONG_SIZE = struct.Struct("!Q")  # after a length of -1: an 8-byte one (a pickle over 2 GiB)

_Batch = tuple[list[IngestRequest], list[bool], IntakeRules]


def _frame(message: object) -> bytes:
    """`message` as `Connection.send` writes it, so the child's `Connection.recv` reads it."""
    body = bytes(ForkingPickler.dumps(message))
    if len(body) > 0x7FFFFFFF:
        return _SIZE.pack(-1) + _LONG_SIZE.pack(len(body)) + body
    return _SIZE.pack(len(body)) + body


@dataclass(eq=False)
class _Child:
    """One child, its socket in the loop, and the answers it owes, oldest first (when the socket closes,
    what it still owes fails, and the transport says `is_closing`)."""

    process: BaseProcess
    transport: asyncio.Transport | None = None
    owed: deque[asyncio.Future[list[Outcome]]] = field(default_factory=deque)

    def send(self, batch: _Batch, answer: asyncio.Future[list[Outcome]]) -> None:
        """`batch` written to the child's socket; `answer` settled with what it answers."""
        if self.transport is None or self.transport.is_closing():
            if not answer.done():
                answer.set_exception(_died())
            return
        frame = _frame(batch)  # before it is owed: a batch that does not pickle fails alone
        self.owed.append(answer)
        self.transport.write(frame)


class _Answers(asyncio.Protocol):
    """The parent's end of a child's socket: each complete frame is the answer to the oldest batch."""

    def __init__(self, child: _Child, on_lost: Callable[[_Child], None]) -> None:
        self.child = child
        self.on_lost = on_lost
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if len(self.buffer) < _SIZE.size:
                return
            (size,) = _SIZE.unpack_from(self.buffer)
            head = _SIZE.size
            if size == -1:
                if len(self.buffer) < head + _LONG_SIZE.size:
                    return
                (size,) = _LONG_SIZE.unpack_from(self.buffer, head)
                head += _LONG_SIZE.size
            if len(self.buffer) < head + size:
                return
            reply = pickle.loads(self.buffer[head : head + size])  # a copy: the buffer is cut next
            del self.buffer[: head + size]
            self._settle(reply)

    def _settle(self, reply: Any) -> None:
        if not self.child.owed:  # nothing was asked: the child speaks out of turn, so it is not ours
            log.error("the intake's writer process answered a batch it was not sent")
            if self.child.transport is not None:
                self.child.transport.abort()
            return
        answer = self.child.owed.popleft()
        if answer.cancelled():
            return
        if isinstance(reply, BaseException):
            answer.set_exception(reply)
        else:
            answer.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        child = self.child
        owed = len(child.owed)
        while child.owed:
            answer = child.owed.popleft()
            if not answer.done():
                answer.set_exception(_died())
        self.on_lost(child)
        if owed:
            log.error(
                "the intake's writer process died under a batch",
                extra={"batches": owed, "exit": child.process.exitcode},
            )


class IntakeProcess:
    """The intake writer's `Pipeline` (server/intake_writer.py), in the event loop of whoever calls
    `start`, `write` and `stop` (the server's)."""

    in_flight = 2  # the child writes one batch while the loop answers the last

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
        self._queue: asyncio.Queue[tuple[_Batch, asyncio.Future[list[Outcome]]] | None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._reaping: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """A child, ready to write (raises when it did not start within START_SECONDS)."""
        self._queue = asyncio.Queue()
        self._child = await self._start_child()
        self._sender = asyncio.get_running_loop().create_task(self._send_all(), name="intake-sender")
        self._sender.add_done_callback(_sender_ended)

    async def _start_child(self) -> _Child:
        process, conn = await asyncio.to_thread(self._spawn)
        child = _Child(process)
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        conn.close()
        sock.setblocking(False)
        try:
            transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                lambda: _Answers(child, self._lost), sock
            )
        except BaseException:
            sock.close()
            _bury(process)
            raise
        child.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio's subclasses
        log.debug("intake writer process started", extra={"pid": process.pid})
        return child

    def _spawn(self) -> tuple[BaseProcess, Connection]:
        """(Blocking.) A child process that said it is ready, and the parent's end of its socket."""
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
        return process, parent

    async def stop(self, timeout: float = 10.0) -> None:
        """The child finishes the batches in hand (none: the writer stopped first) and exits."""
        if self._queue is not None and self._sender is not None:
            self._queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await self._sender
        self._sender = None
        child, self._child = self._child, None
        if child is not None:
            if child.transport is not None and not child.transport.is_closing():
                child.transport.write(_frame(None))
                child.transport.close()
            await asyncio.to_thread(_bury, child.process, timeout)
        if self._reaping:
            await asyncio.wait(set(self._reaping))

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.process.pid if child is not None else None

    async def write(self, requests: Sequence[IngestRequest], rules: IntakeRules) -> list[Outcome]:
        """As `Intake.ingest_many`; `StoreBusy` when the child died before it answered."""
        if self._queue is None:
            raise RuntimeError("IntakeProcess.write before start")
        if self._sender is None or self._sender.done():  # stopped (or broken): nothing would send it
            raise _died()
        # The callbacks stay here: the child plans a resolution's notices with its own planner.
        batch: _Batch = (
            [replace(r, on_resolved=None) for r in requests],
            [r.on_resolved is not None for r in requests],
            rules,
        )
        answer: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((batch, answer))
        return await answer

    async def _send_all(self) -> None:
        """The batches handed to the child in the order they came, a new child when it died."""
        assert self._queue is not None
        while (item := await self._queue.get()) is not None:
            batch, answer = item
            if answer.cancelled():  # no one waits for it (the loop is being torn down): not written
                continue
            try:
                if self._child is None:  # none yet, or it died (`_lost`)
                    self._child = await self._start_child()
            except Exception as exc:  # no child: this batch fails, the next one tries again
                log.error("the intake's writer process could not be started: %s", exc)
                if not answer.done():
                    answer.set_exception(_died())
                continue
            try:
                self._child.send(batch, answer)
            except Exception as exc:  # not sent (it does not pickle): this batch fails, the sender goes on
                if not answer.done():
                    answer.set_exception(exc)

    def _lost(self, child: _Child) -> None:
        """A child's socket closed: the next batch starts a new one; this one is reaped meanwhile."""
        if self._child is not child:  # `stop` took it, and reaps it
            return
        self._child = None
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(_bury, child.process))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)


def _sender_ended(task: asyncio.Task[None]) -> None:
    """A sender that ends other than by `stop` is a bug: said loudly (the writes after it get 503)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the intake's sender stopped: %s", exc, exc_info=exc)


def _bury(process: BaseProcess, timeout: float = 1.0) -> None:
    """(Blocking.) The child process reaped: it exits (its socket closed), or is killed."""
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(5)


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
