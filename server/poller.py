"""One loop for the worker pool and the outbox: threads that claim work from the database and handle it.

Each thread claims an item; with none due it sleeps `poll_interval` seconds, or less when `wake()` says
new work was queued. `stop()` lets the threads finish the item in hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Poller(Generic[T]):
    def __init__(
        self,
        name: str,
        size: int,
        claim: Callable[[str], T | None],
        handle: Callable[[T], None],
        poll_interval: float,
        *,
        log: logging.Logger,
        source: str,
    ) -> None:
        """`claim(thread_name)` takes one due item or None; `handle(item)` must not raise. `source`
        names what is read, for the log line when claiming fails ("cannot read the queue")."""
        self.name = name
        self.size = size
        self.claim = claim
        self.handle = handle
        self.poll_interval = poll_interval
        self.log = log
        self.source = source
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.size):
            t = threading.Thread(target=self._run, name=f"{self.name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def wake(self) -> None:
        """New work was queued: wake an idle thread now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Stop the threads, waiting up to `timeout` seconds in all for the items in hand."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def _run(self) -> None:
        me = threading.current_thread().name
        while not self._stop.is_set():
            try:
                item = self.claim(me)
            except Exception:
                self.log.exception(f"cannot read {self.source}")
                item = None
            if item is None:
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            self.handle(item)
