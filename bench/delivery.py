"""Benchmark: the outbox, from a stored report to a delivered notice, on a real SQLite file.

    uv run python bench/delivery.py [--incidents 300] [--workers 2] [--fail-every 5]

Stores N reports the way the worker does (each queues one webhook delivery in the report's
transaction), then lets the outbox deliver them to a local HTTP receiver that answers 503 to every
`--fail-every`-th first attempt (so retries with backoff are part of the figures). Prints the time to
store a report with its delivery, the outbox throughput, and the median/p95 latency from queued to
delivered for first-attempt and retried deliveries.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.models import AlertInfo, Report  # noqa: E402
from server.db import Delivery, Store  # noqa: E402
from server.delivery.config import DeliveryConfig  # noqa: E402
from server.delivery.outbox import Outbox  # noqa: E402
from server.metrics import Metrics  # noqa: E402


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fail_every: int) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.fail_every = fail_every
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("Idempotency-Key", "")
        with self.server.lock:
            n = self.server.seen[key] = self.server.seen.get(key, 0) + 1
            index = len(self.server.seen)
        fail = self.server.fail_every and index % self.server.fail_every == 0 and n == 1
        body = b"busy" if fail else b"ok"
        self.send_response(503 if fail else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--incidents", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--fail-every", type=int, default=5, help="every Nth notice fails once with 503; 0: never"
    )
    ap.add_argument("--single", type=int, default=30, help="then this many one at a time, the outbox idle")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the retries log a warning each

    receiver = Receiver(args.fail_every)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    tmp = Path(tempfile.mkdtemp(prefix="alertsleuth-bench-delivery-"))
    store = Store(f"sqlite:///{tmp / 'bench.db'}")
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    config = DeliveryConfig.model_validate({"sinks": {"hook": {"type": "webhook", "url": url}}})
    outbox = Outbox(
        store,
        config,
        Metrics(lambda: {}),
        external_url="https://alertsleuth.example.com",
        workers=args.workers,
        backoff_seconds=0.05,
        backoff_max_seconds=0.5,
        poll_interval=0.05,
    )

    now = datetime.now(UTC)

    def queue(i: int) -> float:
        """Store report i as the worker does (queuing its delivery); the milliseconds it took."""
        alert = AlertInfo(
            name="HighLoginFailureRate",
            status="firing",
            labels={"alertname": "HighLoginFailureRate", "shard": str(i)},
            annotations={},
            starts_at=now,
            fingerprint=f"{i:016x}",
        )
        store.intake.ingest("bench", "{}", "g", [alert])
        job = store.jobs.claim("bench", 60)
        assert job is not None
        report = Report(id=f"r{i}", alert=alert, expression=None, summary=f"report {i}", localized=False)
        t = time.perf_counter()
        plan = outbox.planner.for_report(alert.labels, report)  # routes to the one sink, "hook"
        store.jobs.complete(job.id, report, "# report", "<html></html>", {}, plan=plan)
        return (time.perf_counter() - t) * 1000

    store_ms = [queue(i) for i in range(args.incidents)]

    t0 = time.perf_counter()
    outbox.start()
    while True:
        counts = store.deliveries.counts()
        if counts.get(("hook", "done"), 0) + counts.get(("hook", "failed"), 0) >= args.incidents:
            break
        time.sleep(0.02)
    wall = time.perf_counter() - t0

    receiver.fail_every = 0
    single = []
    for i in range(args.incidents, args.incidents + args.single):
        queue(i)
        t = time.perf_counter()
        outbox.wake()  # as the worker does after storing a report
        while store.deliveries.counts().get(("hook", "done"), 0) < i + 1:
            time.sleep(0.001)
        single.append(time.perf_counter() - t)
    outbox.stop()

    with store.session() as s:
        rows = [d for d in s.query(Delivery).all() if d.id <= args.incidents]  # the backlog phase
        first = [(d.sent_at - d.created_at).total_seconds() for d in rows if d.attempts == 1 and d.sent_at]
        retried = [(d.sent_at - d.created_at).total_seconds() for d in rows if d.attempts > 1 and d.sent_at]
        failed = sum(1 for d in rows if d.state == "failed")

    def q(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")

    print(f"incidents: {args.incidents}, outbox workers: {args.workers}, one in {args.fail_every} fails once")
    print(
        f"store report + queue delivery: median {statistics.median(store_ms):.2f} ms, "
        f"p95 {q(store_ms, 0.95):.2f} ms"
    )
    print(
        f"backlog: {args.incidents} delivered in {wall:.2f} s = {args.incidents / wall:.0f}/s, "
        f"failed {failed}"
    )
    print(f"requests to the receiver: {sum(receiver.seen.values())} for {len(receiver.seen)} notices")
    print("queued → delivered (includes the backlog, since all were queued before the outbox started):")
    print(f"  first attempt: {len(first)}, median {statistics.median(first):.3f} s")
    if retried:
        print(f"  retried once:  {len(retried)}, median {statistics.median(retried):.3f} s")
    print(
        f"one at a time (outbox idle, {len(single)}): queued → delivered median "
        f"{statistics.median(single) * 1000:.1f} ms, p95 {q(single, 0.95) * 1000:.1f} ms"
    )
    receiver.shutdown()


if __name__ == "__main__":
    main()
