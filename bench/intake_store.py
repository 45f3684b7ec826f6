"""Benchmark: the intake's transactions alone, CPU per notification by batch size, on SQLite or PostgreSQL.

    uv run python bench/intake_store.py [--batches 1,4,10,32] [--notifications 4000] [--database-url URL]

What the intake's child process does for each batch the server hands it (server/db/intake.py
`Intake.ingest_many`, the group commit), without HTTP, the pipe or the event loop: distinct
Alertmanager notifications of bench/intake.py's shape (one firing alert each, a new incident and its
queued investigation), validated as the webhook validates them, written `--notifications` at a time in
batches of each size with the settings' intake rules (`ALERTSLEUTH_*` of the environment apply; the
backlog unbounded, as bench/intake.py runs it). A fresh SQLite file per size, or `--database-url`
(e.g. `postgresql+psycopg://user@host/db`: its rows stay). Prints, per batch size, the process CPU and
the wall time per notification and per transaction (medians of `--rounds`), after a warm-up batch
count of 20. The fixed cost of a transaction is what batch 1 costs; the marginal cost of a
notification is what a large batch adds per notification: bench/intake.py's "notifications per
transaction" says which applies under load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.intake import MARK, ints, notification  # noqa: E402
from server.db.database import Database  # noqa: E402
from server.db.intake import IngestRequest, Intake  # noqa: E402
from server.payloads import AlertmanagerWebhook  # noqa: E402
from server.settings import Settings  # noqa: E402

WARMUP_BATCHES = 20


def requests(count: int, prefix: str) -> list[IngestRequest]:
    """`count` distinct notifications, as the webhook route hands them to intake."""
    starts = datetime.now(UTC).isoformat()
    template = json.dumps(notification(MARK, "sum(rate(x[5m])) > 1", starts), separators=(",", ":"))
    out = []
    for i in range(count):
        body = template.replace(MARK, f"{prefix}{i:010x}")
        payload = AlertmanagerWebhook.model_validate_json(body)
        alerts = [a.to_alert() for a in payload.alerts]
        out.append(IngestRequest("alertmanager", body, payload.groupKey, alerts, payload.receiver))
    return out


def measure(url: str, batch: int, count: int, prefix: str) -> tuple[float, float]:
    """(CPU ms, wall ms) per notification of `count` notifications written `batch` at a time."""
    db = Database(url)
    try:
        intake = Intake(db)
        rules = dataclasses.replace(Settings().intake_rules(), max_backlog=None)
        warm = requests(batch * WARMUP_BATCHES, prefix + "w")
        todo = requests(count, prefix + "m")
        for i in range(0, len(warm), batch):
            intake.ingest_many(warm[i : i + batch], rules)
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(0, len(todo), batch):
            intake.ingest_many(todo[i : i + batch], rules)
        return (time.process_time() - cpu) / count * 1e3, (time.perf_counter() - wall) / count * 1e3
    finally:
        db.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=ints, default=[1, 4, 10, 32], help="batch sizes, comma-separated")
    ap.add_argument("--notifications", type=int, default=4000, help="notifications measured per size")
    ap.add_argument("--rounds", type=int, default=1, help="repeat each size; medians are printed")
    ap.add_argument("--database-url", help="instead of a fresh SQLite file per size")
    args = ap.parse_args()
    session = f"st{int(time.time()):x}"
    with tempfile.TemporaryDirectory(prefix="alertsleuth-store-") as work:
        where = "a fresh SQLite file per size" if not args.database_url else "--database-url"
        print(f"Intake.ingest_many, {args.notifications} notifications per size, {where}")
        head = ("batch", "cpu ms/notification", "wall ms/notification", "cpu ms/transaction")
        print(f"{head[0]:>6} {head[1]:>20} {head[2]:>21} {head[3]:>19}")
        for batch in args.batches:
            rounds = []
            for r in range(args.rounds):
                url = args.database_url or f"sqlite:///{work}/b{batch}-r{r}.db"
                rounds.append(measure(url, batch, args.notifications, f"{session}b{batch}r{r}"))
            cpu = statistics.median(c for c, _ in rounds)
            wall = statistics.median(w for _, w in rounds)
            print(f"{batch:>6} {cpu:>20.4f} {wall:>21.4f} {cpu * batch:>19.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
