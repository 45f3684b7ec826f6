"""Synthetic incidents with their ground truth, for the localization tests and bench/synthetic.py.

The RS dataset is one kind of incident: the failure ratio of a video service over
cdn/bitrate/p2p/device/isp. This generates about sixty-five other ones from a seeded `random.Random`, in
ten families; the first six:

- ratio: `http_requests_total{service, route, method, version, status}`, the 5xx ratio; causes of one,
  two and three labels, incidents with two separate causes, a retry surge, and the trap of a large
  stable segment (60 % of the traffic, most of the errors) next to a small one (5 %) that breaks;
- global: the error ratio (or a failure rate) rises the same everywhere: nothing may be localized;
- gauge: `queue_depth{cluster, instance, queue}` and `node_memory_used_bytes{az, node}` summed;
- counter: `sum(rate(orders_failed_total{region, payment_provider, client}[5m]))`;
- histogram: the p99 of `http_request_duration_seconds_bucket{route, pod, le}`;
- labels: other label names (az, tenant, shard) with UTF-8 values (Chinese zone names, quotes,
  backslashes), as a ratio of two metrics and as a sum of rates.

and the four added after them (`segments.py`, `aggregations.py`, `drops.py`), generated after the first
six so that those keep their names and data:

- numerator: `origin_errors_total{region, service, status}` over `requests_total{region, service}`, a
  label only the numerator has; the cause is a region/service element, and in one variant its new
  errors are all status="503" (recorded as `also`, not as a cause);
- small-segment: a tenant with 2 % of the traffic fails at 85 % beside the biggest tenant (60 %, 1 %
  errors), alone, with a region, or as one tenant in one region;
- aggregation: `max`, `min by ()`, `avg`, `count` and `topk` over per-instance gauges (a filesystem
  filling, a node out of memory, a saturated pool, a zone down, a stuck consumer group);
- drop: alerts on `<`: a region's traffic, a route's success ratio, a p50 collapsing under instant
  errors.

Each incident has the verdict it expects (`Incident.expected`: localized, not_localized, or why the
localization should not run).

Every incident has a `scenario="sN"` label pinned in its alert expression, so all of them live in one
Prometheus: 80 minutes of 15 s samples ending now (10 of warm-up so `rate[5m]` is defined, a 60-minute
baseline, a 10-minute incident), with Poisson counts, per-leaf jitter, a slow daily-like swing and the
odd counter reset. The alert fires two minutes into the incident, as a rule with `for: 2m` would.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from agent.evidence import InvestigationConfig
from agent.investigator import Investigator
from agent.models import AlertInfo
from exporter import launch as procs
from exporter.scenarios.synthetic.aggregations import aggregation_incident
from exporter.scenarios.synthetic.base import (
    BASELINE,
    FAMILIES,
    FOR,
    ORIGINAL_FAMILIES,
    STEP,
    Incident,
    Labels,
    Timeline,
    element_key,
    fmt_el,
    openmetrics,
)
from exporter.scenarios.synthetic.drops import drop_incident
from exporter.scenarios.synthetic.families import (
    counter_incident,
    gauge_incident,
    global_incident,
    histogram_incident,
    labels_incident,
    ratio_incident,
)
from exporter.scenarios.synthetic.segments import numerator_incident, small_segment_incident
from tools.prom import Prometheus

__all__ = [
    "FAMILIES",
    "Incident",
    "Labels",
    "ORIGINAL_FAMILIES",
    "Timeline",
    "alert_for",
    "element_key",
    "fmt_el",
    "generate",
    "investigator",
    "kinds",
    "replay",
    "replay_victoria_metrics",
]

Builder = Callable[[random.Random, str, Timeline, str], Incident]

# (family, variant, instances); about sixty-five incidents in all. New kinds go at the end: an incident's
# data depends only on (seed, kind), but its name (sN) on its place in the list.
SUITE: list[tuple[str, str, int]] = [
    ("ratio", "1-label", 2),
    ("ratio", "2-labels", 2),
    ("ratio", "3-labels", 2),
    ("ratio", "surge", 1),
    ("ratio", "two-causes", 3),
    ("ratio", "trap", 2),
    ("global", "multiplicative", 2),
    ("global", "additive", 1),
    ("global", "orders", 1),
    ("gauge", "queue-1", 2),
    ("gauge", "queue-2", 2),
    ("gauge", "memory-node", 1),
    ("gauge", "memory-az", 1),
    ("counter", "1-label", 2),
    ("counter", "2-labels", 2),
    ("counter", "3-labels", 2),
    ("histogram", "pod", 2),
    ("histogram", "route", 2),
    ("histogram", "route+pod", 2),
    ("labels", "ratio-1", 1),
    ("labels", "ratio-2", 1),
    ("labels", "ratio-2-odd", 1),
    ("labels", "sum-1", 1),
    ("labels", "sum-2-odd", 1),
    ("labels", "sum-3", 1),
    # the families added later
    ("numerator", "1-label", 2),
    ("numerator", "2-labels", 1),
    ("numerator", "status", 2),
    ("small-segment", "tenant", 2),
    ("small-segment", "tenant+region", 2),
    ("small-segment", "layer-2", 2),
    ("aggregation", "max", 2),
    ("aggregation", "min", 1),
    ("aggregation", "avg", 2),
    ("aggregation", "count", 2),
    ("aggregation", "topk", 1),
    ("drop", "traffic", 2),
    ("drop", "success-rate", 2),
    ("drop", "quantile", 2),
]

BUILDERS: dict[str, Builder] = {
    "ratio": ratio_incident,
    "global": global_incident,
    "gauge": gauge_incident,
    "counter": counter_incident,
    "histogram": histogram_incident,
    "labels": labels_incident,
    "numerator": numerator_incident,
    "small-segment": small_segment_incident,
    "aggregation": aggregation_incident,
    "drop": drop_incident,
}


def kinds(per_variant: int | None = None) -> list[str]:
    """Every incident kind of the suite, "family/variant#n"; at most `per_variant` of each variant."""
    return [
        f"{family}/{variant}#{n}"
        for family, variant, count in SUITE
        for n in range(min(count, per_variant) if per_variant is not None else count)
    ]


def generate(seed: int, tl: Timeline, only: Sequence[str] | None = None) -> list[Incident]:
    """The incidents of `only` (kinds, default all), named s0, s1, ... Each is drawn from its own
    generator seeded by (seed, kind), so a subset holds exactly the same data as the full suite."""
    out = []
    for index, kind in enumerate(only if only is not None else kinds()):
        family, rest = kind.split("/", 1)
        variant = rest.split("#", 1)[0]
        rnd = random.Random(f"{seed}/{kind}")
        incident = BUILDERS[family](rnd, f"s{index}", tl, variant)
        incident.kind = kind
        out.append(incident)
    return out


# ---------------------------------------------------------------- replay and investigation


def replay(incidents: Sequence[Incident], work: Path) -> procs.Process:
    """Backfill the incidents with promtool and start a Prometheus on them."""
    procs.backfill_openmetrics(openmetrics(incidents), work / "data", work)
    return procs.start_prometheus(work, f"global:\n  scrape_interval: {STEP}s\n", data_dir=work / "data")


def replay_victoria_metrics(incidents: Sequence[Incident], work: Path) -> procs.Process:
    """The same incidents imported into a VictoriaMetrics started on them (a Prometheus-compatible
    query backend)."""
    vm = procs.start_victoria_metrics(work)
    try:
        procs.import_openmetrics(vm.url, openmetrics(incidents))
    except Exception:
        vm.stop()
        raise
    return vm


def alert_for(incident: Incident, tl: Timeline) -> AlertInfo:
    return AlertInfo(
        name=incident.alertname,
        labels={"alertname": incident.alertname, "severity": "page"},
        starts_at=datetime.fromtimestamp(tl.alert_start, UTC),
        generator_url=f"http://prometheus:9090/graph?g0.expr={quote(incident.expr)}&g0.tab=1",
    )


def investigator(prom: Prometheus, tl: Timeline) -> Investigator:
    """The alert's rule has `for: 2m` (there is no rules API here, so it is the default); the baseline is
    the hour before the incident."""
    config = InvestigationConfig(
        baseline_seconds=float(BASELINE),
        min_incident_seconds=60.0,
        default_for_seconds=float(FOR),
        min_step_seconds=float(STEP),
    )
    at = datetime.fromtimestamp(tl.now, UTC)

    def clock() -> datetime:
        return at

    return Investigator(prom, config, clock=clock)
