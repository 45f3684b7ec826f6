"""Deterministic metric scenarios written as OpenMetrics for promtool backfill."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from agent.models import AlertInfo

REGIONS = {"beijing": 0.3, "shanghai": 0.25, "guangzhou": 0.2, "shenzhen": 0.15, "hangzhou": 0.1}
USERS = {"normal": (0.9, 0.03), "admin": (0.1, 0.05)}

# anomaly(region, user_type, t_seconds_from_start) -> (extra events/s, failure ratio or None)
Anomaly = Callable[[str, str, float], tuple[float, float | None]]


@dataclass
class Scenario:
    name: str
    start: float  # unix seconds of the first sample
    end: float
    anomaly_start: float
    text: str  # OpenMetrics, without the final '# EOF'

    def expr(self) -> str:
        sel = f'scenario="{self.name}"'
        return (
            f'sum(rate(user_login_total{{{sel},login_status="failed"}}[5m])) / '
            f"sum(rate(user_login_total{{{sel}}}[5m])) > 0.2"
        )


def login_scenario(
    name: str,
    end: float,
    anomaly: Anomaly,
    *,
    minutes: int = 90,
    anomaly_minutes: int = 10,
    rate: float = 20.0,
    step: int = 15,
    seed: int = 7,
) -> Scenario:
    """Counters user_login_total{scenario, ip_region, user_type, login_status} sampled every `step` s."""
    rnd = random.Random(seed)
    start = end - minutes * 60
    anomaly_start = end - anomaly_minutes * 60
    counts: dict[tuple[str, str, str], float] = {}
    lines = []
    t = start
    while t <= end:
        for region, rw in REGIONS.items():
            for user, (uw, fail) in USERS.items():
                n = rate * rw * uw * step * (1 + 0.05 * math.sin(t / 600 + rw)) * rnd.uniform(0.95, 1.05)
                ratio = fail
                if t >= anomaly_start:
                    extra, forced = anomaly(region, user, t - anomaly_start)
                    n += extra * step
                    ratio = forced if forced is not None else fail
                for status, share in (("failed", ratio), ("success", 1 - ratio)):
                    key = (region, user, status)
                    counts[key] = counts.get(key, 0.0) + n * share
                    lines.append(
                        f'user_login_total{{scenario="{name}",ip_region="{region}",user_type="{user}",'
                        f'login_status="{status}",job="login-exporter",instance="exporter:9105"}} '
                        f"{counts[key]:.3f} {t:.0f}"
                    )
        t += step
    return Scenario(name, start, end, anomaly_start, "\n".join(lines))


def openmetrics(*scenarios: Scenario) -> str:
    # OpenMetrics wants all samples of a metric family together: one family for all scenarios.
    return "# TYPE user_login_total gauge\n" + "\n".join(s.text for s in scenarios) + "\n# EOF\n"


def burst(region: str, user: str, extra: float = 40.0, ratio: float = 0.9) -> Anomaly:
    def f(r: str, u: str, _t: float) -> tuple[float, float | None]:
        return (extra, ratio) if (r, u) == (region, user) else (0.0, None)

    return f


def everywhere(ratio: float) -> Anomaly:
    return lambda _r, _u, _t: (0.0, ratio)


def demo_alert(sc: Scenario, name: str = "HighLoginFailureRate") -> AlertInfo:
    """The alert the demo's rule fires for `sc`: two minutes (its `for`) after the anomaly began, with
    Prometheus' generatorURL naming the expression."""
    return AlertInfo(
        name=name,
        labels={"alertname": name, "severity": "critical"},
        starts_at=datetime.fromtimestamp(sc.anomaly_start + 120, UTC),
        generator_url=f"http://prometheus:9090/graph?g0.expr={quote(sc.expr())}",
    )


@contextmanager
def burst_prometheus(work: Path) -> Iterator[tuple[str, float, Scenario]]:
    """A real Prometheus in `work` with the demo's burst (failing admin logins from shanghai) backfilled
    up to now: (its URL, the scenario's "now", the scenario). Stopped on exit."""
    from exporter import launch as procs

    now = time.time() // 15 * 15
    sc = login_scenario("burst", now, burst("shanghai", "admin"))
    procs.backfill_openmetrics(openmetrics(sc), work / "data", work)
    prom = procs.start_prometheus(work, "global:\n  scrape_interval: 15s\n", data_dir=work / "data")
    try:
        yield prom.url, now, sc
    finally:
        prom.stop()
