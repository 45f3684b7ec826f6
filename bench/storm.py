"""Benchmark: an alert storm, and how long it delays an unrelated critical alert's report.

    uv run python bench/storm.py [--alerts 7000] [--rounds 3] [--storm-min-alerts 10] [--database-url URL]

Needs Debian's `prometheus` and `promtool`. A real Prometheus holds bench/intake.py's login-failure
burst. For each round, two fresh `alertsleuth serve` processes (workers on, the offline writer):
- the reference: one critical alert of another rule (`DiskFull`, its own group) is posted alone, and the
  bench waits until its incident is investigated;
- the storm: one Alertmanager notification with `--alerts` firing alerts of one rule and one group
  (the login-failure rule, one `shard` label each), then the same critical alert.
Prints, per round and as medians: seconds from the critical alert's post to its finished investigation
with and without the storm (and the difference), how long the storm's notification took to be accepted,
when the storm's own report was done, and how many investigations the server ran (jobs that ended
without following a storm's lead): with storms on, the storm is one. `--storm-min-alerts 0` turns
storms off (each alert investigated alone) for comparison: the critical alert then waits behind
whatever the workers hold, though it is still taken first by its severity when the storm is warnings.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.intake import MARK, WEBHOOK, Bench, notification, with_burst  # noqa: E402

DONE = sqlalchemy.text("SELECT investigation FROM incidents WHERE id = :id")
# investigations that ran: jobs that ended and followed no storm's lead
RAN = sqlalchemy.text("SELECT count(*) FROM jobs WHERE lead_job_id IS NULL AND state IN ('done', 'failed')")


def storm_body(template: str, prefix: str, alerts: int, severity: str) -> dict[str, object]:
    """One notification holding `alerts` alerts of the login rule, one group, distinct shards."""
    one = json.loads(template.replace(MARK, prefix))
    alert = one["alerts"][0]
    one["groupKey"] = f"storm/{prefix}"
    one["alerts"] = [
        {
            **alert,
            "labels": {**alert["labels"], "severity": severity, "shard": f"{prefix}-{i}"},
            "fingerprint": f"{prefix}{i:08x}",
        }
        for i in range(alerts)
    ]
    return one


def critical_body(prefix: str, starts: str) -> dict[str, object]:
    body = notification(f"{prefix}disk", "node_filesystem_avail_bytes < 1e9", starts)
    alert = body["alerts"][0]  # type: ignore[index]
    alert["labels"] = {"alertname": "DiskFull", "severity": "critical", "instance": "db-1"}
    body["groupKey"] = f"disk/{prefix}"
    body["commonLabels"] = alert["labels"]
    return body


def wait_done(engine: sqlalchemy.Engine, incident: int, limit: float) -> float | None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        with engine.connect() as c:
            if c.execute(DONE, {"id": incident}).scalar_one() in ("done", "degraded", "failed"):
                return time.perf_counter() - t0
        time.sleep(0.05)
    return None


def one_run(bench: Bench, name: str, storm: int, args: argparse.Namespace, starts: str) -> dict[str, float]:
    prefix = f"{bench.session}{next(bench.runs):02x}"
    server, url, _ = bench.alertsleuth(name, None, intake_only=False)
    engine = sqlalchemy.create_engine(url)
    out: dict[str, float] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            lead = None
            if storm:
                t0 = time.perf_counter()
                r = c.post(WEBHOOK, json=storm_body(bench.template, prefix, storm, args.storm_severity))
                assert r.status_code == 202, r.text
                out["storm_accept_s"] = time.perf_counter() - t0
                lead = r.json()["incidents_created"][0]
            r = c.post(WEBHOOK, json=critical_body(prefix, starts))
            assert r.status_code == 202, r.text
            waited = wait_done(engine, r.json()["incidents_created"][0], args.max_seconds)
            out["critical_s"] = waited if waited is not None else float("nan")
            if lead is not None:
                lead_done = wait_done(engine, lead, args.max_seconds)
                out["storm_report_s"] = lead_done if lead_done is not None else float("nan")
            with engine.connect() as conn:
                out["investigations"] = float(conn.execute(RAN).scalar_one())
    finally:
        engine.dispose()
        server.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=7000, help="alerts in the storm's one notification")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--storm-severity", default="critical", help="the storm's alerts' severity label")
    ap.add_argument("--storm-min-alerts", type=int, default=10, help="ALERTSLEUTH_STORM_MIN_ALERTS (0: off)")
    ap.add_argument("--database-url", help="instead of a fresh SQLite file: ALERTSLEUTH_DATABASE_URL")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="longest wait for one investigation")
    args = ap.parse_args()
    print(f"$ {shlex.join(sys.orig_argv)}")
    os.environ["ALERTSLEUTH_STORM_MIN_ALERTS"] = str(args.storm_min_alerts)
    os.environ.setdefault("ALERTSLEUTH_MAX_BACKLOG", str(max(10_000, 2 * args.alerts)))
    os.environ.setdefault("ALERTSLEUTH_MAX_BODY_BYTES", str(16 << 20))  # 7,000 alerts are ~3.5 MB
    work, prom, template = with_burst("alertsleuth-storm-")
    starts = json.loads(template)["alerts"][0]["startsAt"]
    bench = Bench(work, prom.url, args.database_url, template, os.urandom(4).hex())
    print(
        f"{os.cpu_count()} CPUs; storm: {args.alerts} {args.storm_severity} alerts of one rule (the login "
        f"burst's) in one notification; ALERTSLEUTH_STORM_MIN_ALERTS={args.storm_min_alerts}; "
        f"{args.rounds} round(s)"
    )
    rows: list[tuple[dict[str, float], dict[str, float]]] = []
    try:
        for r in range(args.rounds):
            alone = one_run(bench, f"alone-{r}", 0, args, starts)
            stormy = one_run(bench, f"storm-{r}", args.alerts, args, starts)
            rows.append((alone, stormy))
            print(
                f"  round {r + 1}: critical alone {alone['critical_s']:.2f}s, during the storm "
                f"{stormy['critical_s']:.2f}s; storm accepted in {stormy['storm_accept_s']:.2f}s, "
                f"its report after {stormy['storm_report_s']:.2f}s; investigations run "
                f"{stormy['investigations']:.0f}",
                flush=True,
            )
    finally:
        prom.stop()

    def med(key: str, which: int) -> float:
        return statistics.median(row[which][key] for row in rows)

    delay = statistics.median(s["critical_s"] - a["critical_s"] for a, s in rows)
    print()
    print(
        f"median critical alert, post to finished investigation: alone {med('critical_s', 0):.2f}s, "
        f"during a storm of {args.alerts} {med('critical_s', 1):.2f}s (delay {delay:+.2f}s)"
    )
    print(
        f"median storm notification accepted in {med('storm_accept_s', 1):.2f}s; storm report after "
        f"{med('storm_report_s', 1):.2f}s; investigations run during the storm run: "
        f"{med('investigations', 1):.0f} (the storm and the critical alert: 2 with storms on)"
    )
    print(f"work directory (logs, databases): {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
