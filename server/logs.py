"""Structured logging: one line per event; JSON in production, readable in a terminal.

Off the hot path: a request's thread only puts the record on a queue (`QueueHandler`); one thread
formats and writes it (`QueueListener`), so the JSON and the write to stderr never hold a request up.
The listener is flushed and stopped at exit, or when logging is set up again. An event that may come
thousands of times a second (a notification accepted) is logged through `Summarized`: one line each
up to a few a minute, then one line at the minute's end with how many there were in all.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import logging.handlers
import queue
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _RESERVED)
        line = (
            f"{datetime.fromtimestamp(record.created).strftime('%H:%M:%S')} {record.levelname:<7} "
            f"{record.name}: {record.getMessage()}" + (f" [{extra}]" if extra else "")
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _Enqueue(logging.handlers.QueueHandler):
    """Puts the record itself on the queue: formatting, the traceback included, is the listener's."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


_listener: logging.handlers.QueueListener | None = None


def _stop_listener() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()  # writes what is queued first
        _listener = None


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    global _listener
    _stop_listener()
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, handler, respect_handler_level=True)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(records)]
    root.setLevel(level.upper())
    for noisy in ("httpx", "urllib3", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


atexit.register(_stop_listener)

_rejections = logging.getLogger("alertsleuth.http")


def log_rejected(path: str, status: int, reason: str, **fields: object) -> None:
    """One line for a refused request: its path (never the query string), the status, and the reason in
    the words of the answer. Callers pass no body content and no credentials."""
    _rejections.warning(
        "request rejected", extra={"path": path[:200], "status": status, "reason": reason, **fields}
    )


class Summarized:
    """One kind of event, one line each for the first `lines` of a `window` (seconds), then counted: when
    the window ends, one line says how many there were in all and the sums of their counts. A line per
    event at thousands a second would cost intake more than the rest of its work; a summary tells the
    same story. Called from one event loop (the summary is timed with `call_later`); `flush()` writes a
    pending summary at once (at shutdown)."""

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        *,
        lines: int = 20,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.message = message
        self.lines = lines
        self.window = window
        self._clock = clock
        self._start: float | None = None
        self._events = 0
        self._quiet = 0
        self._sums: Counter[str] = Counter()
        self._timer: asyncio.TimerHandle | None = None

    def log(self, extra: Mapping[str, object], counts: Mapping[str, int]) -> None:
        """The event: its own line (`extra` its fields) while the window allows, else counted; `counts`
        are summed into the window's summary."""
        now = self._clock()
        if self._start is None or now - self._start >= self.window:
            self.flush()
            self._start = now
        self._events += 1
        self._sums.update(counts)
        if self._events <= self.lines:
            self.logger.info(self.message, extra=dict(extra))
            return
        self._quiet += 1
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # outside a loop: the next event, or flush(), writes the summary
                return
            self._timer = loop.call_later(max(0.0, self._start + self.window - now), self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._quiet and self._start is not None:
            self.logger.info(
                f"{self.message}: {self._events} in {self._clock() - self._start:.0f} s, "
                f"{self._quiet} of them not logged one by one",
                extra={"events": self._events, "not_logged": self._quiet, **self._sums},
            )
        self._start = None
        self._events = self._quiet = 0
        self._sums.clear()
