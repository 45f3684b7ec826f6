"""Access tokens that platforms hand out for a while (Feishu's tenant_access_token, WeCom's access_token):
one cache per client, shared by its threads. Used by the sinks that post with them and by ChatOps'
replies (server/chatops/platforms/)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenCache:
    """One access token shared by threads: fetched when there is none or it is within `margin` seconds
    of expiring, one fetch at a time; `forget` drops a token the platform refused."""

    def __init__(self, margin: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._until = 0.0

    def get(self, fetch: Callable[[], tuple[str, float]]) -> str:
        """The cached token, or the one `fetch` returns as (token, seconds it lives)."""
        with self._lock:
            if self._token is not None and self._clock() < self._until:
                return self._token
            token, lifetime = fetch()
            usable = lifetime - self._margin if lifetime > 2 * self._margin else lifetime / 2
            self._token, self._until = token, self._clock() + usable
            return token

    def forget(self, token: str) -> None:
        with self._lock:
            if self._token == token:  # another thread may already hold a newer one
                self._token = None
