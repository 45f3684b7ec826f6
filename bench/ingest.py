"""Benchmark: webhook intake and investigation time, against a real Prometheus and a real SQLite file.

    uv run python bench/ingest.py [--alerts 500] [--investigations 20]

Prints the median and p95 latency of accepting one Alertmanager notification (validated, persisted
with its queue job, answered 202; workers off so only intake is measured), the intake throughput,
and the median wall time and query count of one investigation of a backfilled login-failure burst.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.investigator import Investigator  # noqa: E402
from agent.models import AlertInfo  # noqa: E402
from bench.intake import notification  # noqa: E402
from exporter import launch as procs  # noqa: E402
from exporter.scenarios.login import burst, login_scenario, openmetrics  # noqa: E402
from server.app import create_app  # noqa: E402
from server.settings import Settings  # noqa: E402
from tools.prom import Prometheus  # noqa: E402


def payload(i: int, expr: str, starts: str) -> dict[str, object]:
    """Notification `i`: one firing login-failure alert with a fingerprint of its own."""
    return notification(f"{i:016x}", expr, starts)


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=500)
    ap.add_argument("--investigations", type=int, default=20)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="alertsleuth-bench-"))
    now = time.time() // 15 * 15
    sc = login_scenario("bench", now, burst("shanghai", "admin"))
    procs.backfill_openmetrics(openmetrics(sc), work / "data", work)
    prom = procs.start_prometheus(work, "global:\n  scrape_interval: 15s\n", data_dir=work / "data")
    starts = datetime.fromtimestamp(sc.anomaly_start + 120, UTC)
    try:
        settings = Settings(
            database_url=f"sqlite:///{work / 'bench.db'}",
            reports_dir=str(work / "reports"),
            prometheus_url=prom.url,
        )
        url, stop = procs.serve_in_thread(create_app(settings, start_workers=False))
        latencies = []
        with httpx.Client(base_url=url, timeout=30) as client:
            client.get("/healthz")
            t0 = time.perf_counter()
            for i in range(args.alerts):
                body = payload(i, sc.expr(), starts.isoformat())
                t = time.perf_counter()
                r = client.post("/api/v1/webhook/alertmanager", json=body)
                latencies.append(time.perf_counter() - t)
                assert r.status_code == 202, r.text
            wall = time.perf_counter() - t0
        stop()
        print(
            f"intake: {args.alerts} notifications, median {statistics.median(latencies) * 1000:.1f} ms, "
            f"p95 {pct(latencies, 0.95) * 1000:.1f} ms, {args.alerts / wall:.0f} notifications/s (sequential)"
        )

        inv = Investigator(Prometheus(prom.url), settings.investigation())
        alert = AlertInfo(
            name="HighLoginFailureRate",
            labels={"alertname": "HighLoginFailureRate"},
            starts_at=starts,
            generator_url=f"http://p/graph?g0.expr={quote(sc.expr())}",
        )
        seconds, queries = [], []
        for _ in range(args.investigations):
            t = time.perf_counter()
            report = inv.investigate(alert)
            seconds.append(time.perf_counter() - t)
            queries.append(report.timings["queries"])
            assert report.root_causes and report.root_causes[0].labels == {
                "ip_region": "shanghai",
                "user_type": "admin",
            }
        print(
            f"investigation: {args.investigations} runs, median {statistics.median(seconds) * 1000:.0f} ms, "
            f"p95 {pct(seconds, 0.95) * 1000:.0f} ms, {statistics.median(queries):.0f} queries each"
        )
    finally:
        prom.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
