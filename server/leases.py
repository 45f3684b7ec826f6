"""Leases held while work runs, renewed every heartbeat: one keeper for investigations and deliveries.

A claim gives its item a lease of three heartbeats. While the item is in hand (`holding`), a thread
renews the leases of every item held here every `heartbeat` seconds, until the item has run for
`max_seconds`: past that its lease is left to run out, so a hung attempt is taken over. A process that
dies stops renewing, and its items are taken over three heartbeats later. `renew(keys)` is the store's
(the keys it still holds come back); a key missing was taken over by another process, and is logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class LeaseKeeper(Generic[K]):
    def __init__(
        self,
        name: str,
        renew: Callable[[Sequence[K], float], set[K]],
        *,
        heartbeat: float,
        max_seconds: float,
        log: logging.Logger,
        what: str,
    ) -> None:
        """`renew(keys, seconds)` extends the leases of `keys` by `seconds` from now and returns those
        still held; `what` names the items in the log ("investigation", "delivery")."""
        self.name = name
        self._renew = renew
        self.heartbeat = heartbeat
        self.max_seconds = max_seconds
        self.log = log
        self.what = what
        self._held: dict[K, float] = {}  # key -> when its attempt began (monotonic)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lease(self) -> float:
        """The lease a claim and each renewal give: three heartbeats, never beyond `max_seconds`."""
        return min(self.max_seconds, 3 * self.heartbeat)

    def start(self) -> None:
        self._stopped.clear()
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-leases", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @contextmanager
    def holding(self, key: K) -> Iterator[None]:
        """`key`'s lease is renewed while the block runs."""
        with self._lock:
            self._held[key] = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(key, None)

    def _loop(self) -> None:
        while not self._stopped.wait(self.heartbeat):
            self.renew()

    def renew(self) -> None:
        """Renew the leases of the items held here that have run less than `max_seconds`."""
        now = time.monotonic()
        with self._lock:
            keys = [k for k, began in self._held.items() if now - began < self.max_seconds]
        if not keys:
            return
        try:
            held = self._renew(keys, self.lease)
        except Exception:
            self.log.exception(f"cannot renew the leases of running {self.what}s", extra={"held": len(keys)})
            return
        for key in set(keys) - held:
            self.log.warning(
                f"{self.what}'s lease was lost: another process took it", extra={"key": str(key)}
            )
