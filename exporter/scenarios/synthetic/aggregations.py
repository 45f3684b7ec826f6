"""The aggregation family: alerts on `max`, `min by ()`, `avg`, `count` and `topk` over per-instance
gauges, where the instance or label set responsible is the cause."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from exporter.scenarios.synthetic.base import (
    INCIDENT,
    Cube,
    Incident,
    Labels,
    Points,
    Season,
    Timeline,
    fmt_el,
    fmt_threshold,
)

# the value of a leaf in the incident: f(seconds since the incident's start, the value it would have had)
Change = Callable[[float, float], float]


def gauges(
    rnd: random.Random,
    tl: Timeline,
    levels: Sequence[float],
    season: Season,
    *,
    noise: float,
    changes: dict[int, Change] | None = None,
    bounds: tuple[float, float] | None = None,
) -> list[Points]:
    """Per leaf a gauge around its level (times the season and lognormal noise), changed in the incident
    for the leaves of `changes`, kept within `bounds` (a ratio's 0 and 1)."""
    changes = changes or {}
    out = []
    for i, level in enumerate(levels):
        pts: Points = []
        for t in tl.times():
            v = level * season(t - tl.start) * rnd.lognormvariate(0, noise)
            if t > tl.incident_start and i in changes:
                v = changes[i](t - tl.incident_start, v)
            if bounds is not None:
                v = min(bounds[1], max(bounds[0], v))
            pts.append((t, v))
        out.append(pts)
    return out


def towards(rnd: random.Random, value: float, seconds: float, noise: float) -> Change:
    """From the usual value to `value` in `seconds`, then there (a disk filling, a pool saturating)."""

    def change(dt: float, v: float) -> float:
        progress = min(1.0, dt / seconds)
        return v + (value * rnd.lognormvariate(0, noise) - v) * progress

    return change


def _instances(rnd: random.Random, n: int, subnet: int, port: int) -> list[str]:
    seen: set[str] = set()
    while len(seen) < n:
        seen.add(f"10.{subnet}.{rnd.randint(0, 255)}.{rnd.randint(2, 254)}:{port}")
    return sorted(seen)


def _emit(inc: Incident, metric: str, job: str, leaves: Sequence[Labels], series: Sequence[Points]) -> None:
    for leaf, pts in zip(leaves, series, strict=True):
        inc.samples.add(metric, {"scenario": inc.name, "job": job, **leaf}, pts)


def _filesystem(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`max(node_filesystem_usage_ratio) > 0.9`: one mountpoint of one instance fills up."""
    season = Season.draw(rnd, scale=0.1)
    instances = _instances(rnd, rnd.randint(4, 8), rnd.randint(0, 9), 9100)
    mountpoints = rnd.sample(
        ["/", "/var/lib/docker", "/data", "/var/log", "/boot", "/srv"], rnd.randint(2, 4)
    )
    leaves = [{"instance": i, "mountpoint": m} for i in instances for m in mountpoints]
    levels = [rnd.uniform(0.15, 0.75) for _ in leaves]
    cause = rnd.randrange(len(leaves))
    full, seconds = rnd.uniform(0.95, 0.995), rnd.uniform(60, 120)
    series = gauges(
        rnd,
        tl,
        levels,
        season,
        noise=0.005,
        changes={cause: towards(rnd, full, seconds, 0.001)},
        bounds=(0.0, 0.999),
    )
    labels = leaves[cause]
    expr = f'max(node_filesystem_usage_ratio{{scenario="{name}"}}) > 0.9'
    inc = Incident(variant, "aggregation", name, "FilesystemAlmostFull", expr, [dict(labels)], "")
    _emit(inc, "node_filesystem_usage_ratio", "node", leaves, series)
    inc.description = (
        f"{len(leaves)} filesystems at 15-75 % used; {fmt_el(labels)} (from {levels[cause]:.0%}) fills to "
        f"{full:.1%} in {seconds:.0f} s"
    )
    return inc


def _memory(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`min by () (node_memory_available_ratio) < 0.1`: one instance leaks until little is left."""
    season = Season.draw(rnd, scale=0.2)
    leaves = []
    for ci, cluster in enumerate(rnd.sample(["prod-eu", "prod-us", "prod-ap"], 2)):
        leaves += [{"cluster": cluster, "instance": i} for i in _instances(rnd, rnd.randint(3, 6), ci, 9100)]
    levels = [rnd.uniform(0.3, 0.7) for _ in leaves]
    cause = rnd.randrange(len(leaves))
    low, seconds = rnd.uniform(0.02, 0.06), rnd.uniform(90, 180)
    series = gauges(
        rnd,
        tl,
        levels,
        season,
        noise=0.02,
        changes={cause: towards(rnd, low, seconds, 0.05)},
        bounds=(0.001, 1.0),
    )
    labels = {"instance": leaves[cause]["instance"]}
    expr = f'min by () (node_memory_available_ratio{{scenario="{name}"}}) < 0.1'
    inc = Incident(variant, "aggregation", name, "NodeMemoryLow", expr, [labels], "")
    _emit(inc, "node_memory_available_ratio", "node", leaves, series)
    inc.description = (
        f"{len(leaves)} nodes with 30-70 % of their memory available; {fmt_el(labels)} (from "
        f"{levels[cause]:.0%}) falls to {low:.0%} in {seconds:.0f} s"
    )
    return inc


def _cpu(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`avg(instance:node_cpu_utilisation:rate5m) > T`: one pool's instances saturate."""
    season = Season.draw(rnd, scale=0.5)
    leaves = []
    pool_level = {}
    for pi, pool in enumerate(
        rnd.sample(["web", "api", "batch", "search", "ingest", "cache"], rnd.randint(3, 4))
    ):
        pool_level[pool] = rnd.uniform(0.35, 0.6)
        leaves += [{"pool": pool, "instance": i} for i in _instances(rnd, rnd.randint(2, 6), pi, 9100)]
    levels = [pool_level[leaf["pool"]] * rnd.lognormvariate(0, 0.12) for leaf in leaves]
    cube = Cube(leaves, [1.0] * len(leaves))
    labels, idx = cube.pick(rnd, 1, (0.25, 0.5), names=["pool"])
    busy, seconds = rnd.uniform(0.93, 0.99), rnd.uniform(45, 120)
    series = gauges(
        rnd,
        tl,
        levels,
        season,
        noise=0.04,
        changes={i: towards(rnd, busy, seconds, 0.01) for i in idx},
        bounds=(0.0, 1.0),
    )
    base = sum(levels) / len(levels)
    incident = (sum(levels) + sum(busy - levels[i] for i in idx)) / len(levels)
    threshold = fmt_threshold((base + incident) / 2)
    expr = f'avg(instance:node_cpu_utilisation:rate5m{{scenario="{name}"}}) > {threshold}'
    inc = Incident(variant, "aggregation", name, "CPUSaturated", expr, [labels], "")
    _emit(inc, "instance:node_cpu_utilisation:rate5m", "node", leaves, series)
    inc.description = (
        f"{len(leaves)} instances in {len(pool_level)} pools, average CPU {base:.0%}; {fmt_el(labels)} "
        f"({len(idx)} instances) saturates at {busy:.0%} in {seconds:.0f} s (average {incident:.0%})"
    )
    return inc


def _up(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`count(up == 1) < T`: the instances of one zone go down (and another blinks once, earlier)."""
    job = rnd.choice(["memcached", "redis-cache", "etcd", "zookeeper"])
    region = rnd.choice(["eu-west-1", "us-east-1", "ap-northeast-1"])
    zones = [f"{region}{z}" for z in rnd.sample("abcd", 3)]
    leaves = []
    for zi, zone in enumerate(zones):
        leaves += [{"zone": zone, "instance": i} for i in _instances(rnd, rnd.randint(3, 5), zi, 9150)]
    cube = Cube(leaves, [1.0] * len(leaves))
    labels, idx = cube.pick(rnd, 1, (0.0, 1.0), names=["zone"])
    blink = rnd.choice([i for i in range(len(leaves)) if i not in idx])
    blink_at = rnd.choice(tl.times()[40 : -INCIDENT // 15 - 20])
    down_at = {i: tl.incident_start + rnd.choice([0, 15, 15, 30]) for i in idx}
    series = []
    for i in range(len(leaves)):
        pts: Points = []
        for t in tl.times():
            down = (i in down_at and t > down_at[i]) or (i == blink and t == blink_at)
            pts.append((t, 0.0 if down else 1.0))
        series.append(pts)
    n = len(leaves)
    threshold = n - max(1, len(idx) // 2)
    expr = f'count(up{{scenario="{name}",job="{job}"}} == 1) < {threshold}'
    inc = Incident(variant, "aggregation", name, "TooFewInstancesUp", expr, [labels], "")
    _emit(inc, "up", job, leaves, series)
    inc.description = (
        f"{n} {job} instances in {len(zones)} zones; the {len(idx)} of {fmt_el(labels)} go down "
        f"(up == 0), {leaves[blink]['instance']} blinks down once in the baseline"
    )
    return inc


def _lag(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`topk(3, kafka_consumergroup_lag) > 5000`: one consumer group stops consuming one topic."""
    season = Season.draw(rnd, scale=0.3)
    groups = rnd.sample(
        ["billing", "search-indexer", "notifier", "analytics", "fraud-check"], rnd.randint(2, 3)
    )
    topics = rnd.sample(["orders", "payments", "clicks", "user-events", "inventory"], rnd.randint(2, 3))
    partitions = {t: rnd.choice([4, 6, 8]) for t in topics}
    leaves = []
    for group in groups:
        for topic in rnd.sample(topics, rnd.randint(2, len(topics))):
            leaves += [
                {"consumergroup": group, "topic": topic, "partition": str(p)}
                for p in range(partitions[topic])
            ]
    cube = Cube(leaves, [1.0] * len(leaves))
    group = rnd.choice(groups)
    topic = rnd.choice(sorted({leaf["topic"] for leaf in leaves if leaf["consumergroup"] == group}))
    idx = frozenset(
        i for i, leaf in enumerate(leaves) if leaf["consumergroup"] == group and leaf["topic"] == topic
    )
    labels = next(dict(e) for e, cover in cube.canonical.items() if cover == idx)
    levels = [rnd.uniform(10, 300) for _ in leaves]
    produce = {i: rnd.uniform(30, 90) for i in idx}  # messages per second into each partition

    def grows(rate: float) -> Change:
        return lambda dt, v: v + rate * dt

    series = gauges(rnd, tl, levels, season, noise=0.3, changes={i: grows(r) for i, r in produce.items()})
    series = [[(t, float(round(v))) for t, v in pts] for pts in series]
    expr = f'topk(3, kafka_consumergroup_lag{{scenario="{name}"}}) > 5000'
    inc = Incident(variant, "aggregation", name, "ConsumerLagHigh", expr, [labels], "")
    _emit(inc, "kafka_consumergroup_lag", "kafka-exporter", leaves, series)
    inc.description = (
        f"{len(leaves)} partitions consumed, lag 10-300; consumer group {group} stops on topic {topic}: "
        f"{fmt_el(labels)} ({len(idx)} partitions) grows by 30-90 messages/s each"
    )
    return inc


VARIANTS: dict[str, Callable[[random.Random, str, Timeline, str], Incident]] = {
    "max": _filesystem,
    "min": _memory,
    "avg": _cpu,
    "count": _up,
    "topk": _lag,
}


def aggregation_incident(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`variant`: max (a filesystem fills), min (an instance's memory runs out), avg (a pool's CPU
    saturates), count (a zone's instances are down), topk (a consumer group's lag on a topic). The cause
    is the element responsible, and the report should localize it (`expect`)."""
    inc = VARIANTS[variant](rnd, name, tl, variant)
    inc.expect = "localized"
    return inc
