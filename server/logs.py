"""Structured logging: one line per event; JSON in production, readable in a terminal.

Off the hot path: a request's thread only puts the record on a queue (`QueueHandler`); one thread
formats and writes it (`QueueListener`), so the JSON and the write to stderr never hold a request up.
The listener is flushed and stopped at exit, or when logging is set up again.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
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
