"""Group commit: the one writer of the webhook's notifications.

A request awaits `write` (or hands its notification to `submit` with a callback); one thread takes
every notification waiting (up to `max_batch`) and writes them in one transaction (server/db/intake.py
`Intake.ingest_many`), so many requests share one commit instead of queueing on the store's write lock
one by one. Nothing is answered before its transaction committed: an accepted notification is durable.
There is no timer: a batch is whatever arrived while the previous one was being written, so one lone
notification is written at once. The transaction itself runs in a child process by default
(server/intake_process.py, ALERTSLEUTH_INTAKE_PROCESS).

Pipelined: up to `in_flight` batches are out at once. The sending thread hands the next batch to the
child while the answering thread waits for the one before and tells its requests, so the child writes
batch N+1 while the event loop answers batch N and reads the requests of batch N+2. With one batch
out at a time, closed-loop senders (Alertmanager waits for each answer) and the child took turns:
measured at 32 connections (bench/intake.py), the server's loop and the child were each busy only
about half the time. Batches are written in the order they were taken, one after the other.

Bounded: at most `max_pending` notifications wait for their transaction; past that `submit` refuses
(`IntakeFull`, 503 with Retry-After: Alertmanager sends again), and nothing is stored. `stop` writes
what is waiting, then refuses.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from server.db.intake import IngestRequest, IngestResult, IntakeRules
from tools.errors import IntakeFull, StoreBusy

log = logging.getLogger("alertsleuth.intake")

PENDING_RETRY_SECONDS = 1.0  # the Retry-After of a notification refused because too many wait

Done = Callable[[IngestResult | BaseException], object]  # told the result, or what refused it
Outcome = IngestResult | BaseException


@dataclass(frozen=True, slots=True)
class _Awaited:
    """A request awaiting its result in an event loop (`write`): a batch's results reach each loop in
    one call, not one wake-up of the loop per notification."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[IngestResult]


_Item = tuple[IngestRequest, Done | _Awaited]


class Transactions(Protocol):
    """What writes a batch in the calling thread: `Intake` itself."""

    def ingest_many(
        self, requests: Sequence[IngestRequest], rules: IntakeRules
    ) -> list[IngestResult | Exception]: ...


@runtime_checkable
class Pipeline(Protocol):
    """What writes batches elsewhere (server/intake_process.py's child): `send` hands one over and
    returns its ticket; `receive(ticket)` waits for its results, tickets in the order they were sent.
    Either raises what failed the whole batch."""

    def send(self, requests: Sequence[IngestRequest], rules: IntakeRules) -> object: ...

    def receive(self, ticket: object) -> list[IngestResult | Exception]: ...


class _InThread:
    """`Transactions` as a `Pipeline`: the batch is written when sent, its results are the ticket."""

    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    def send(self, requests: Sequence[IngestRequest], rules: IntakeRules) -> object:
        try:
            return self.transactions.ingest_many(requests, rules)
        except Exception as exc:
            return _Failed(exc)

    def receive(self, ticket: object) -> list[IngestResult | Exception]:
        if isinstance(ticket, _Failed):
            raise ticket.error
        assert isinstance(ticket, list)
        return ticket


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


class IntakeWriter:
    def __init__(
        self,
        intake: Transactions | Pipeline,
        rules: IntakeRules,
        *,
        max_pending: int,
        max_batch: int = 256,
        in_flight: int = 2,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """`on_batch(n)`: told the size of each batch written (for /metrics)."""
        self.pipeline: Pipeline = intake if isinstance(intake, Pipeline) else _InThread(intake)
        self.rules = rules
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._sent: queue.SimpleQueue[tuple[list[_Item], object] | None] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(max(1, in_flight))
        self._open = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._open = True
        self._threads = [
            threading.Thread(target=self._run, name="intake-writer", daemon=True),
            threading.Thread(target=self._answer, name="intake-answers", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write every notification waiting, then refuse new ones. (The server stops taking requests,
        and waits for those it has, before it stops the writer.)"""
        self._open = False
        if self._threads:
            self._queue.put(None)
            for thread in self._threads:
                thread.join(timeout)
            self._threads = []

    async def write(self, request: IngestRequest) -> IngestResult:
        """`request` written with the others waiting: its result once committed, or raises what refused
        it (`IntakeFull`, `StoreBusy`, ...)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._put(request, _Awaited(loop, future))
        return await future

    def submit(self, request: IngestRequest, done: Done) -> None:
        """Queue `request` for the next transaction; `done` is called from the writer's thread with the
        result, or what refused it. Raises `IntakeFull` at once when too many wait, or when stopped."""
        self._put(request, done)

    def _put(self, request: IngestRequest, done: Done | _Awaited) -> None:
        """No lock: the bound is the queue's size when asked (a few over it, at most, under a race)."""
        if not self._open:
            raise IntakeFull(
                "alertsleuth is shutting down; nothing was stored, send it again",
                retry_after=PENDING_RETRY_SECONDS,
                reason="pending",
            )
        pending = self._queue.qsize()
        if pending >= self.max_pending:
            raise IntakeFull(
                f"intake is saturated: {pending} notifications wait to be written "
                f"(ALERTSLEUTH_INTAKE_MAX_PENDING={self.max_pending}); nothing was stored, send it "
                "again later",
                retry_after=PENDING_RETRY_SECONDS,
                reason="pending",
            )
        self._queue.put((request, done))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        """The sending thread: a batch of what waits, as soon as fewer than `in_flight` are out."""
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            self._slots.acquire()  # what arrives meanwhile joins this batch
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    continue  # write what is left first
                batch.append(item)
            self._send(batch)
        # Stopped: anything still queued (submitted just before the stop) is written too.
        rest: list[_Item] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                rest.append(item)
        for i in range(0, len(rest), self.max_batch):
            self._slots.acquire()
            self._send(rest[i : i + self.max_batch])
        self._sent.put(None)

    def _send(self, batch: list[_Item]) -> None:
        try:
            ticket = self.pipeline.send([request for request, _ in batch], self.rules)
        except Exception as exc:  # not sent (the child could not be started, or died on it)
            ticket = _Failed(exc)
        self._sent.put((batch, ticket))

    def _answer(self) -> None:
        """The answering thread: each batch's results, in the order the batches were sent."""
        while (sent := self._sent.get()) is not None:
            batch, ticket = sent
            try:
                if isinstance(ticket, _Failed):
                    raise ticket.error
                outcomes: list[Outcome] = list(self.pipeline.receive(ticket))
            except Exception as exc:  # the whole batch: the store was busy (StoreBusy), or broken
                if not isinstance(exc, StoreBusy):
                    log.exception("a batch of notifications was not stored", extra={"size": len(batch)})
                outcomes = [exc] * len(batch)
            finally:
                self._slots.release()
            self._tell(batch, outcomes)

    def _tell(self, batch: list[_Item], outcomes: list[Outcome]) -> None:
        awaited: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[IngestResult], Outcome]]] = {}
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if isinstance(done, _Awaited):
                awaited.setdefault(done.loop, []).append((done.future, outcome))
                continue
            try:
                done(outcome)
            except Exception:
                log.debug("a notification's result had no one to go to", exc_info=True)
        for loop, settled in awaited.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # the event loop closed under its requests: nothing left to tell
                log.debug("%d notifications' results had no one to go to", len(settled))
        if self.on_batch is not None:
            self.on_batch(len(batch))


def _settle(settled: list[tuple[asyncio.Future[IngestResult], Outcome]]) -> None:
    """In the event loop: each waiting request told its result."""
    for future, outcome in settled:
        if future.cancelled():  # the client went away; the notification is stored all the same
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
