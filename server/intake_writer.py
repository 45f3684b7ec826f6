"""Group commit: the one writer of the webhook's notifications.

A request awaits `write`; the writer takes every notification waiting (up to `max_batch`) and writes
them in one transaction (server/db/intake.py `Intake.ingest_many`), so many requests share one commit
instead of queueing on the store's write lock one by one. Nothing is answered before its transaction
committed: an accepted notification is durable. There is no timer: a batch is whatever arrived while
the batches before it were being written, so one lone notification is written at once. The
transaction itself runs in a child process by default (server/intake_process.py,
ALERTSLEUTH_INTAKE_PROCESS), or in one thread of its own.

All of it runs in the server's event loop: no thread of the server hands requests to another, and a
batch's results settle its requests in one step of the loop. (The writer had a sending and an
answering thread: profiled at 32 connections (bench/intake.py, py-spy), the two took about a quarter
of the server process's CPU, mostly handing requests and the GIL between them and the loop.)

Pipelined: up to `in_flight` batches are out at once (two for the child, so it writes batch N+1
while the loop answers batch N and reads the requests of batch N+2; one for the thread, which writes
one at a time). Batches are handed over, and written, in the order they were taken.

Bounded: at most `max_pending` notifications wait to be taken into a batch; past that `write` refuses
(`IntakeFull`, 503 with Retry-After: Alertmanager sends again), and nothing is stored. `stop` writes
what is waiting, then refuses.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, runtime_checkable

from server.db.intake import IngestRequest, IngestResult, IntakeRules
from tools.errors import IntakeFull, StoreBusy

log = logging.getLogger("alertsleuth.intake")

PENDING_RETRY_SECONDS = 1.0  # the Retry-After of a notification refused because too many wait

Outcome = IngestResult | Exception


class Transactions(Protocol):
    """What writes a batch in the calling thread: `Intake` itself."""

    def ingest_many(self, requests: Sequence[IngestRequest], rules: IntakeRules) -> list[Outcome]: ...


@runtime_checkable
class Pipeline(Protocol):
    """What writes batches elsewhere (server/intake_process.py's child). `write` takes the batch at
    once, when its coroutine first runs (so batches written one after the other are written in that
    order), and returns the results, or raises what failed the whole batch. `in_flight`: how many
    batches it usefully holds at once."""

    in_flight: int

    async def write(self, requests: Sequence[IngestRequest], rules: IntakeRules) -> list[Outcome]: ...


class _InThread:
    """`Transactions` as a `Pipeline`: each batch written in one thread of its own, one after the other."""

    in_flight = 1

    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="intake-writer")

    async def write(self, requests: Sequence[IngestRequest], rules: IntakeRules) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self.transactions.ingest_many, requests, rules)

    def close(self) -> None:
        self._thread.shutdown(wait=False)


_Item = tuple[IngestRequest, "asyncio.Future[IngestResult]"]


class IntakeWriter:
    def __init__(
        self,
        intake: Transactions | Pipeline,
        rules: IntakeRules,
        *,
        max_pending: int,
        max_batch: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """`on_batch(n)`: told the size of each batch written (for /metrics)."""
        self._thread: _InThread | None = None
        if isinstance(intake, Pipeline):
            self.pipeline: Pipeline = intake
        else:
            self.pipeline = self._thread = _InThread(intake)
        self.rules = rules
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.on_batch = on_batch
        self._waiting: deque[_Item] = deque()
        self._out = 0
        self._batches: set[asyncio.Task[None]] = set()
        self._open = False

    def start(self) -> None:
        self._open = True

    async def stop(self) -> None:
        """Write every notification waiting, then refuse new ones. (The server stops taking requests,
        and waits for those it has, before it stops the writer.)"""
        self._open = False
        while self._batches:  # a batch that ends takes what waits into the next one
            await asyncio.wait(set(self._batches))
        if self._thread is not None:
            self._thread.close()

    async def write(self, request: IngestRequest) -> IngestResult:
        """`request` written with the others waiting: its result once committed, or raises what refused
        it (`IntakeFull` at once when too many wait or the writer stopped, `StoreBusy`, ...)."""
        if not self._open:
            raise IntakeFull(
                "alertsleuth is shutting down; nothing was stored, send it again",
                retry_after=PENDING_RETRY_SECONDS,
                reason="pending",
            )
        pending = len(self._waiting)
        if pending >= self.max_pending:
            raise IntakeFull(
                f"intake is saturated: {pending} notifications wait to be written "
                f"(ALERTSLEUTH_INTAKE_MAX_PENDING={self.max_pending}); nothing was stored, send it "
                "again later",
                retry_after=PENDING_RETRY_SECONDS,
                reason="pending",
            )
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        self._take()
        return await future

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def _take(self) -> None:
        """A batch of what waits, as long as fewer than the pipeline's `in_flight` are out."""
        while self._waiting and self._out < self.pipeline.in_flight:
            batch = [self._waiting.popleft() for _ in range(min(len(self._waiting), self.max_batch))]
            self._out += 1
            task = asyncio.get_running_loop().create_task(self._write(batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _write(self, batch: list[_Item]) -> None:
        try:
            try:
                outcomes: list[Outcome] = await self.pipeline.write([r for r, _ in batch], self.rules)
            except Exception as exc:  # the whole batch: the store was busy (StoreBusy), or broken
                if not isinstance(exc, StoreBusy):
                    log.exception("a batch of notifications was not stored", extra={"size": len(batch)})
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.cancelled():  # the client went away; the notification is stored all the same
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            if self.on_batch is not None:
                self.on_batch(len(batch))
        finally:
            self._out -= 1
            self._take()
