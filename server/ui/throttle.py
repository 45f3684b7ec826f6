"""Sign-in attempts, throttled: after `limit` failures from one address within `window` seconds, further
attempts from it are refused (429 with Retry-After) until the oldest failure leaves the window. Kept in
memory, per process (a restart forgets it); a successful sign-in clears the address."""

from __future__ import annotations

import threading
from collections import deque

LIMIT = 5
WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000  # the addresses tracked at most; the oldest are forgotten first


class FailureThrottle:
    def __init__(self, limit: int = LIMIT, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until `key` may try again, or None when it may now."""
        with self._lock:
            times = self._recent(key, now)
            if len(times) < self.limit:
                return None
            return max(1.0, times[0] + self.window - now)

    def failed(self, key: str, now: float) -> None:
        with self._lock:
            times = self._recent(key, now)
            times.append(now)
            self._failures.pop(key, None)
            self._failures[key] = times  # the most recent last: the oldest are forgotten first
            while len(self._failures) > MAX_ADDRESSES:
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
