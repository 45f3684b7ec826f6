"""Synthetic incidents with their ground truth, for the localization tests and bench/synthetic.py.

The RS dataset is one kind of incident: the failure ratio of a video service over
cdn/bitrate/p2p/device/isp. This generates about forty other ones from a seeded `random.Random`, in six
families:

- ratio: `http_requests_total{service, route, method, version, status}`, the 5xx ratio; causes of one,
  two and three labels, incidents with two separate causes, a retry surge, and the trap of a large
  stable segment (60 % of the traffic, most of the errors) next to a small one (5 %) that breaks;
- global: the error ratio (or a failure rate) rises the same everywhere: nothing may be localized;
- gauge: `queue_depth{cluster, instance, queue}` and `node_memory_used_bytes{az, node}` summed;
- counter: `sum(rate(orders_failed_total{region, payment_provider, client}[5m]))`;
- histogram: the p99 of `http_request_duration_seconds_bucket{route, pod, le}`;
- labels: other label names (az, tenant, shard) with UTF-8 values (Chinese zone names, quotes,
  backslashes), as a ratio of two metrics and as a sum of rates.

Every incident has a `scenario="sN"` label pinned in its alert expression, so all of them live in one
Prometheus: 80 minutes of 15 s samples ending now (10 of warm-up so `rate[5m]` is defined, a 60-minute
baseline, a 10-minute incident), with Poisson counts, per-leaf jitter, a slow daily-like swing and the
odd counter reset. The alert fires two minutes into the incident, as a rule with `for: 2m` would.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from agent.investigate import InvestigationConfig, Investigator
from agent.models import AlertInfo
from server import procs
from tools.prom import Prometheus

STEP = 15
WARMUP = 10 * 60  # data before the baseline, so that rate(...[5m]) is defined from the baseline's start
BASELINE = 60 * 60
INCIDENT = 10 * 60
FOR = 120  # the alert fires this long after the incident starts, as a rule with `for: 2m`

FAMILIES = ("ratio", "global", "gauge", "counter", "histogram", "labels")
POD_CHARS = "bcdfghjklmnpqrstvwxz2456789"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Labels = dict[str, str]
Element = tuple[tuple[str, str], ...]
Points = list[tuple[int, float]]


# ---------------------------------------------------------------- time, noise, exposition


@dataclass(frozen=True)
class Timeline:
    now: int  # the last sample, aligned to STEP

    @classmethod
    def ending_at(cls, t: float) -> Timeline:
        return cls(int(t) // STEP * STEP)

    @property
    def start(self) -> int:
        return self.now - WARMUP - BASELINE - INCIDENT

    @property
    def incident_start(self) -> int:
        return self.now - INCIDENT

    @property
    def alert_start(self) -> int:
        return self.incident_start + FOR

    def times(self) -> range:
        return range(self.start, self.now + 1, STEP)


@dataclass(frozen=True)
class Season:
    """A slow daily-like swing: 1 + amplitude * sin(2 pi t / period + phase), t from the data's start (so a
    seed gives the same values whenever it runs)."""

    period: float
    amplitude: float
    phase: float

    @classmethod
    def draw(cls, rnd: random.Random, scale: float = 1.0) -> Season:
        return cls(rnd.uniform(3, 8) * 3600, rnd.uniform(0.08, 0.25) * scale, rnd.uniform(0, 2 * math.pi))

    def __call__(self, t: float) -> float:
        return 1 + self.amplitude * math.sin(2 * math.pi * t / self.period + self.phase)


def poisson(rnd: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rnd.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rnd.random()
    while p > limit:
        k += 1
        p *= rnd.random()
    return k


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Samples:
    """OpenMetrics sample lines grouped by metric family (a family's lines must stay together)."""

    def __init__(self) -> None:
        self.families: dict[str, list[str]] = {}

    def add(self, metric: str, labels: Labels, points: Iterable[tuple[int, float]]) -> None:
        text = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
        self.families.setdefault(metric, []).extend(f"{metric}{{{text}}} {v:.10g} {t}" for t, v in points)


def openmetrics(incidents: Sequence[Incident]) -> str:
    """All incidents' samples, one gauge family per metric name across incidents."""
    merged: dict[str, list[str]] = {}
    for incident in incidents:
        for name, lines in incident.samples.families.items():
            merged.setdefault(name, []).extend(lines)
    out: list[str] = []
    for name, lines in merged.items():
        out.append(f"# TYPE {name} gauge")
        out.extend(lines)
    return "\n".join(out) + "\n# EOF\n"


# ---------------------------------------------------------------- incidents and their truth


@dataclass
class Incident:
    kind: str  # "family/variant#n": stable for a seed, whatever subset is generated
    family: str
    name: str  # the value of its `scenario` label
    alertname: str
    expr: str
    causes: list[Labels]  # empty: a global change, nothing should be localized
    description: str
    samples: Samples = field(repr=False, default_factory=Samples)


def element_key(labels: Labels) -> Element:
    return tuple(sorted(labels.items()))


def fmt_el(element: Labels | Element) -> str:
    items = element.items() if isinstance(element, dict) else element
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(items)) + "}"


def canonical_elements(leaves: Sequence[Labels], max_labels: int = 3) -> dict[Element, frozenset[int]]:
    """Label sets (up to `max_labels` labels) that are the one shortest description of what they cover.

    {route="/login"} qualifies only if no other label set of one label covers exactly the same leaves
    (such as {service="auth"} when auth has only that route), and {route, method} only if neither
    label alone covers the same leaves. Label sets covering every leaf are left out.
    """
    names = sorted({n for leaf in leaves for n in leaf})
    cover: dict[Element, set[int]] = defaultdict(set)
    for i, leaf in enumerate(leaves):
        for k in range(1, max_labels + 1):
            for combo in itertools.combinations(names, k):
                cover[tuple((n, leaf[n]) for n in combo)].add(i)
    by_cover: dict[frozenset[int], list[Element]] = defaultdict(list)
    for element, members in cover.items():
        by_cover[frozenset(members)].append(element)
    out: dict[Element, frozenset[int]] = {}
    for covered, elements in by_cover.items():
        shortest = min(len(e) for e in elements)
        best = [e for e in elements if len(e) == shortest]
        if len(best) == 1 and len(covered) < len(leaves):
            out[best[0]] = covered
    return dict(sorted(out.items()))


@dataclass
class Cube:
    """The leaves of an incident (its finest label combinations) and each one's share of the volume."""

    leaves: list[Labels]
    weights: list[float]
    canonical: dict[Element, frozenset[int]] = field(init=False)

    def __post_init__(self) -> None:
        total = sum(self.weights)
        self.weights = [w / total for w in self.weights]
        self.canonical = canonical_elements(self.leaves)

    def share(self, idx: Iterable[int]) -> float:
        return sum(self.weights[i] for i in idx)

    def pick(
        self,
        rnd: random.Random,
        size: int,
        share: tuple[float, float],
        *,
        avoid: frozenset[int] = frozenset(),
        names: Sequence[str] | None = None,
        where: Callable[[Labels], bool] | None = None,
    ) -> tuple[Labels, frozenset[int]]:
        """A random canonical element of `size` labels, only of `names` if given and satisfying `where`,
        with a volume share in range (else the nearest)."""
        pool = [
            (e, idx)
            for e, idx in self.canonical.items()
            if len(e) == size
            and not idx & avoid
            and (names is None or {n for n, _ in e} <= set(names))
            and (where is None or where(dict(e)))
        ]
        if not pool:
            raise RuntimeError(f"no canonical element of {size} labels in this cube")
        lo, hi = share
        inside = [p for p in pool if lo <= self.share(p[1]) <= hi]
        if inside:
            element, idx = rnd.choice(inside)
        else:
            element, idx = min(pool, key=lambda p: max(lo - self.share(p[1]), self.share(p[1]) - hi, 0.0))
        return dict(element), idx

    def is_element(self, idx: frozenset[int]) -> bool:
        return idx in set(self.canonical.values())


def zipf_weights(rnd: random.Random, leaves: Sequence[Labels], spread: float = 0.3) -> list[float]:
    """Skewed volumes: each label value weighs 1/rank^a (a random order), times per-leaf jitter."""
    factor: dict[tuple[str, str], float] = {}
    for name in sorted({n for leaf in leaves for n in leaf}):
        values = sorted({leaf[name] for leaf in leaves})
        rnd.shuffle(values)
        a = rnd.uniform(0.3, 1.1)
        for rank, value in enumerate(values, 1):
            factor[(name, value)] = rank**-a
    return [
        math.prod(factor[item] for item in leaf.items()) * rnd.lognormvariate(0, spread) for leaf in leaves
    ]


# ---------------------------------------------------------------- simulation of series


def simulate_requests(
    rnd: random.Random,
    tl: Timeline,
    rates: Sequence[float],
    ratios: Sequence[float],
    season: Season,
    *,
    incident_ratio: dict[int, float] | None = None,
    incident_volume: dict[int, float] | None = None,
    reset: int | None = None,
) -> list[tuple[Points, Points]]:
    """Per leaf the cumulative (succeeded, failed) request counters: Poisson counts at `rates` per second,
    failures at `ratios`, changed for the given leaves from the incident's start."""
    incident_ratio = incident_ratio or {}
    incident_volume = incident_volume or {}
    reset_at = rnd.choice(range(tl.start + WARMUP, tl.incident_start - 600, STEP)) if reset is not None else 0
    out = []
    for i, (rate, ratio) in enumerate(zip(rates, ratios, strict=True)):
        ok = float(rnd.randint(0, 50_000))
        failed = float(rnd.randint(0, 500))
        leaf_noise = rnd.uniform(0.03, 0.1)
        ok_pts: Points = []
        failed_pts: Points = []
        for t in tl.times():
            if t != tl.start:
                volume, r = 1.0, ratio
                if t > tl.incident_start:
                    volume, r = incident_volume.get(i, 1.0), incident_ratio.get(i, ratio)
                n = poisson(
                    rnd, rate * season(t - tl.start) * volume * STEP * rnd.lognormvariate(0, leaf_noise)
                )
                e = min(n, poisson(rnd, n * r))
                if i == reset and t == reset_at:  # the process restarted
                    ok = failed = 0.0
                ok += n - e
                failed += e
            ok_pts.append((t, ok))
            failed_pts.append((t, failed))
        out.append((ok_pts, failed_pts))
    return out


def simulate_counter(
    rnd: random.Random,
    tl: Timeline,
    rates: Sequence[float],
    season: Season,
    *,
    incident_factor: dict[int, float] | None = None,
    reset: int | None = None,
) -> list[Points]:
    """Per leaf a cumulative counter of Poisson events at `rates` per second, multiplied in the incident."""
    incident_factor = incident_factor or {}
    reset_at = rnd.choice(range(tl.start + WARMUP, tl.incident_start - 600, STEP)) if reset is not None else 0
    out = []
    for i, rate in enumerate(rates):
        value = float(rnd.randint(0, 2_000))
        leaf_noise = rnd.uniform(0.03, 0.1)
        pts: Points = []
        for t in tl.times():
            if t != tl.start:
                factor = incident_factor.get(i, 1.0) if t > tl.incident_start else 1.0
                if i == reset and t == reset_at:
                    value = 0.0
                value += poisson(
                    rnd, rate * season(t - tl.start) * factor * STEP * rnd.lognormvariate(0, leaf_noise)
                )
            pts.append((t, value))
        out.append(pts)
    return out


def simulate_gauge(
    rnd: random.Random,
    tl: Timeline,
    levels: Sequence[float],
    season: Season,
    *,
    noise: float,
    ramp: dict[int, float] | None = None,
    step_factor: dict[int, float] | None = None,
    integer: bool = False,
) -> list[Points]:
    """Per leaf a gauge around its level; in the incident it grows linearly by `ramp` (reached at the end)
    or jumps by `step_factor`."""
    ramp = ramp or {}
    step_factor = step_factor or {}
    out = []
    for i, level in enumerate(levels):
        pts: Points = []
        for t in tl.times():
            v = level * season(t - tl.start) * rnd.lognormvariate(0, noise)
            if t > tl.incident_start:
                progress = (t - tl.incident_start) / INCIDENT
                v = v * step_factor.get(i, 1.0) + ramp.get(i, 0.0) * progress * rnd.lognormvariate(0, noise)
            pts.append((t, float(round(v)) if integer else v))
        out.append(pts)
    return out


def _lognormal_cdf(x: float, mu: float, sigma: float) -> float:
    return 0.5 * (1 + math.erf((math.log(x) - mu) / (sigma * math.sqrt(2))))


@dataclass
class HistogramSeries:
    buckets: dict[str, Points]  # le -> cumulative counts
    count: Points
    sum: Points


def simulate_histogram(
    rnd: random.Random,
    tl: Timeline,
    rates: Sequence[float],
    latency: Sequence[tuple[float, float]],
    season: Season,
    *,
    incident_latency: dict[int, tuple[float, float]] | None = None,
) -> list[HistogramSeries]:
    """Per leaf cumulative bucket counters of requests whose durations are lognormal (median, sigma)."""
    incident_latency = incident_latency or {}
    les = [f"{b:g}" for b in BUCKETS] + ["+Inf"]
    out = []
    for i, (rate, (median, sigma)) in enumerate(zip(rates, latency, strict=True)):
        counts = [0.0] * len(les)  # per bucket segment, not cumulative
        total_sum = 0.0
        series = HistogramSeries({le: [] for le in les}, [], [])
        for t in tl.times():
            if t != tl.start:
                med, sig = (
                    incident_latency.get(i, (median, sigma)) if t > tl.incident_start else (median, sigma)
                )
                mu = math.log(med)
                n_mean = rate * season(t - tl.start) * STEP * rnd.lognormvariate(0, 0.05)
                prev = 0.0
                for j, bound in enumerate((*BUCKETS, math.inf)):
                    cdf = 1.0 if math.isinf(bound) else _lognormal_cdf(bound, mu, sig)
                    k = poisson(rnd, n_mean * (cdf - prev))
                    counts[j] += k
                    upper = bound if not math.isinf(bound) else BUCKETS[-1] * 2
                    lower = BUCKETS[j - 1] if j else 0.0
                    total_sum += k * min(max(med, lower), upper)  # a rough per-bucket mean
                    prev = cdf
            cumulative = list(itertools.accumulate(counts))
            for le, c in zip(les, cumulative, strict=True):
                series.buckets[le].append((t, c))
            series.count.append((t, cumulative[-1]))
            series.sum.append((t, total_sum))
        out.append(series)
    return out


# ---------------------------------------------------------------- the families


def _threshold(x: float) -> str:
    v = float(f"{x:.2g}")
    return f"{v:.0f}" if v >= 100 else f"{v:g}"


def _share_text(cube: Cube, idx: Iterable[int]) -> str:
    return f"{cube.share(idx):.0%} of the volume"


SERVICES = {
    "checkout": ["/cart", "/pay", "/confirm", "/coupon"],
    "catalog": ["/products", "/product/{id}", "/search", "/reviews"],
    "auth": ["/login", "/logout", "/token", "/register"],
    "profile": ["/me", "/settings", "/avatar"],
    "shipping": ["/quote", "/track", "/labels"],
}


def _http_cube(rnd: random.Random, services: int) -> Cube:
    leaves = []
    versions = ["v1", "v2", "v3"][: rnd.randint(2, 3)]
    for service in rnd.sample(sorted(SERVICES), services):
        for route in rnd.sample(SERVICES[service], rnd.randint(2, 3)):
            methods = rnd.choice([["GET"], ["POST"], ["GET", "POST"], ["GET", "POST"]])
            for method in methods:
                for version in versions:
                    leaves.append({"service": service, "route": route, "method": method, "version": version})
    return Cube(leaves, zipf_weights(rnd, leaves))


def _base_ratios(rnd: random.Random, n: int, median: float = 0.008) -> list[float]:
    return [min(0.04, max(0.0005, median * rnd.lognormvariate(0, 0.6))) for _ in range(n)]


def _emit_http(inc: Incident, cube: Cube, series: Sequence[tuple[Points, Points]], job: str = "api") -> None:
    for leaf, (ok, failed) in zip(cube.leaves, series, strict=True):
        base = {"scenario": inc.name, "job": job, **leaf}
        inc.samples.add("http_requests_total", {**base, "status": "2xx"}, ok)
        inc.samples.add("http_requests_total", {**base, "status": "5xx"}, failed)


def _http_expr(name: str) -> str:
    sel = f'scenario="{name}"'
    return (
        f'sum(rate(http_requests_total{{{sel},status="5xx"}}[5m])) / '
        f"sum(rate(http_requests_total{{{sel}}}[5m])) > 0.05"
    )


def ratio_incident(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """The 5xx ratio of http_requests_total; `variant`: 1/2/3-labels, surge, two-causes, trap."""
    season = Season.draw(rnd)
    total_rate = rnd.uniform(80, 400)
    cube = _http_cube(rnd, rnd.randint(3, 4) if variant != "trap" else 4)
    ratios = _base_ratios(rnd, len(cube.leaves))
    inc = Incident(variant, "ratio", name, "HighErrorRatio", _http_expr(name), [], "")
    incident_ratio: dict[int, float] = {}
    incident_volume: dict[int, float] = {}
    parts = []
    if variant == "trap":
        big = rnd.choice(sorted({leaf["service"] for leaf in cube.leaves}))
        big_idx = frozenset(i for i, leaf in enumerate(cube.leaves) if leaf["service"] == big)
        big_w, rest_w = cube.share(big_idx), 1 - cube.share(big_idx)
        cube.weights = [
            w * (0.6 / big_w if i in big_idx else 0.4 / rest_w) for i, w in enumerate(cube.weights)
        ]
        for i in big_idx:
            ratios[i] = min(0.06, ratios[i] * 4)
        labels, idx = cube.pick(rnd, rnd.choice([1, 2]), (0.035, 0.07), avoid=big_idx)
        target = rnd.uniform(0.8, 0.95)
        incident_ratio = dict.fromkeys(idx, target)
        inc.causes = [labels]
        parts.append(
            f'{{service="{big}"}} carries 60% of the traffic and most errors, stable; {fmt_el(labels)} '
            f"({_share_text(cube, idx)}) fails at {target:.0%}"
        )
    elif variant == "two-causes":
        first, idx1 = cube.pick(rnd, rnd.choice([1, 2]), (0.05, 0.2))
        for _ in range(50):
            second, idx2 = cube.pick(rnd, rnd.choice([1, 2]), (0.05, 0.2), avoid=idx1)
            if not cube.is_element(idx1 | idx2):
                break
        else:
            raise RuntimeError("no second cause apart from the first")
        for labels, idx in ((first, idx1), (second, idx2)):
            s = cube.share(idx)
            target = min(0.95, max(0.1, rnd.uniform(0.035, 0.05) / s + 0.01))
            incident_ratio.update(dict.fromkeys(idx, target))
            inc.causes.append(labels)
            parts.append(f"{fmt_el(labels)} ({_share_text(cube, idx)}) fails at {target:.0%}")
    else:
        size = {"1-label": 1, "2-labels": 2, "3-labels": 3, "surge": 1}[variant]
        labels, idx = cube.pick(rnd, size, (0.04, 0.35))
        s = cube.share(idx)
        target = min(0.95, max(0.1, rnd.uniform(0.07, 0.12) / s + 0.01))
        incident_ratio = dict.fromkeys(idx, target)
        inc.causes = [labels]
        text = f"{fmt_el(labels)} ({_share_text(cube, idx)}) fails at {target:.0%}"
        if variant == "surge":
            factor = rnd.uniform(1.5, 2.5)
            incident_volume = dict.fromkeys(idx, factor)
            text += f" with {factor:.1f}x the requests (retries)"
        parts.append(text)
    rates = [total_rate * w for w in cube.weights]
    reset = rnd.randrange(len(cube.leaves)) if rnd.random() < 0.5 else None
    series = simulate_requests(
        rnd,
        tl,
        rates,
        ratios,
        season,
        incident_ratio=incident_ratio,
        incident_volume=incident_volume,
        reset=reset,
    )
    _emit_http(inc, cube, series)
    inc.description = f"{len(cube.leaves)} leaves, {total_rate:.0f} req/s; " + "; ".join(parts)
    return inc


def global_incident(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """A change shared by everything; `variant`: multiplicative, additive (error ratio), orders (rate)."""
    season = Season.draw(rnd)
    if variant == "orders":
        cube = _orders_cube(rnd)
        total = rnd.uniform(0.5, 5.0)
        factor = rnd.uniform(2.5, 4.0)
        series = simulate_counter(
            rnd,
            tl,
            [total * w for w in cube.weights],
            season,
            incident_factor=dict.fromkeys(range(len(cube.leaves)), factor),
        )
        inc = Incident(variant, "global", name, "OrderFailures", _orders_expr(name, total * 2), [], "")
        _emit_orders(inc, cube, series)
        inc.description = f"{len(cube.leaves)} leaves; every failure rate x{factor:.1f}"
        return inc
    cube = _http_cube(rnd, rnd.randint(3, 4))
    ratios = _base_ratios(rnd, len(cube.leaves))
    if variant == "multiplicative":
        factor = rnd.uniform(4, 8)
        incident_ratio = {i: min(0.9, r * factor) for i, r in enumerate(ratios)}
        text = f"every leaf's error ratio x{factor:.1f}"
    else:
        add = rnd.uniform(0.05, 0.08)
        incident_ratio = {i: r + add for i, r in enumerate(ratios)}
        text = f"every leaf's error ratio +{add:.3f}"
    total_rate = rnd.uniform(80, 400)
    requests = simulate_requests(
        rnd, tl, [total_rate * w for w in cube.weights], ratios, season, incident_ratio=incident_ratio
    )
    inc = Incident(variant, "global", name, "HighErrorRatio", _http_expr(name), [], "")
    _emit_http(inc, cube, requests)
    inc.description = f"{len(cube.leaves)} leaves, {total_rate:.0f} req/s; {text}"
    return inc


def gauge_incident(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`variant`: queue-1 / queue-2 (queue_depth, a cause of 1 or 2 labels), memory-node, memory-az."""
    season = Season.draw(rnd, scale=0.5)
    if variant.startswith("queue"):
        leaves = []
        for ci, cluster in enumerate(
            rnd.sample(["eu-west-1", "us-east-1", "ap-southeast-2", "sa-east-1"], 2)
        ):
            instances = {f"10.{ci}.{rnd.randint(0, 255)}.{rnd.randint(2, 254)}:9100" for _ in range(3)}
            queues = ["orders", "emails", "payments", "thumbnails", "webhooks", "invoices", "search-index"]
            chosen = rnd.sample(queues, rnd.randint(3, 5))
            for instance in sorted(instances):
                for queue in chosen:
                    leaves.append({"cluster": cluster, "instance": instance, "queue": queue})
        levels = [25 * rnd.lognormvariate(0, 0.8) for _ in leaves]
        cube = Cube(leaves, levels)
        labels, idx = cube.pick(rnd, int(variant[-1]), (0.03, 0.4))
        baseline = sum(levels)
        growth = rnd.uniform(1.0, 3.0) * baseline
        cause_level = sum(levels[i] for i in idx)
        ramp = {i: growth * levels[i] / cause_level for i in idx}
        series = simulate_gauge(rnd, tl, levels, season, noise=0.15, ramp=ramp, integer=True)
        expr = f'sum(queue_depth{{scenario="{name}"}}) > {_threshold(baseline * 1.5)}'
        inc = Incident(variant, "gauge", name, "QueueBacklog", expr, [labels], "")
        for leaf, pts in zip(leaves, series, strict=True):
            inc.samples.add("queue_depth", {"scenario": name, "job": "queue-exporter", **leaf}, pts)
        inc.description = (
            f"{len(leaves)} queues, total depth {baseline:.0f}; {fmt_el(labels)} ({_share_text(cube, idx)}) "
            f"grows by {growth:.0f} over the incident"
        )
        return inc
    leaves = []
    for ai, az in enumerate(
        rnd.sample(["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"], rnd.randint(2, 3))
    ):
        for _ in range(rnd.randint(3, 5)):
            leaves.append(
                {"az": az, "node": f"ip-10-{ai}-{rnd.randint(0, 255)}-{rnd.randint(1, 254)}.ec2.internal"}
            )
    gib = 2.0**30
    levels = [rnd.uniform(3, 12) * gib for _ in leaves]
    cube = Cube(leaves, levels)
    baseline = sum(levels)
    if variant == "memory-node":
        labels, idx = cube.pick(rnd, 1, (0.0, 1.0), names=["node"])
        leak = rnd.uniform(6, 12) * gib
        series = simulate_gauge(rnd, tl, levels, season, noise=0.01, ramp=dict.fromkeys(idx, leak))
        added, text = leak / 2, f"leaks {leak / gib:.1f} GiB over the incident"
    else:
        labels, idx = cube.pick(rnd, 1, (0.0, 1.0), names=["az"])
        factor = rnd.uniform(1.25, 1.5)
        series = simulate_gauge(rnd, tl, levels, season, noise=0.01, step_factor=dict.fromkeys(idx, factor))
        added, text = cube.share(idx) * baseline * (factor - 1), f"every node uses {factor:.2f}x the memory"
    expr = f'sum(node_memory_used_bytes{{scenario="{name}"}}) > {_threshold(baseline + added / 2)}'
    inc = Incident(variant, "gauge", name, "NodeMemoryHigh", expr, [labels], "")
    for leaf, pts in zip(leaves, series, strict=True):
        inc.samples.add("node_memory_used_bytes", {"scenario": name, "job": "node", **leaf}, pts)
    inc.description = f"{len(leaves)} nodes, {baseline / gib:.0f} GiB in use; {fmt_el(labels)} {text}"
    return inc


def _orders_cube(rnd: random.Random) -> Cube:
    regions = rnd.sample(["eu", "us", "apac", "latam", "mea", "ca"], rnd.randint(3, 5))
    providers = rnd.sample(["stripe", "adyen", "paypal", "braintree", "klarna"], rnd.randint(2, 4))
    clients = rnd.sample(["web", "ios", "android", "pos"], rnd.randint(2, 3))
    leaves = [
        {"region": r, "payment_provider": p, "client": c}
        for r in regions
        for p in providers
        for c in clients
        if rnd.random() > 0.1
    ]
    return Cube(leaves, zipf_weights(rnd, leaves))


def _orders_expr(name: str, threshold: float) -> str:
    return f'sum(rate(orders_failed_total{{scenario="{name}"}}[5m])) > {_threshold(threshold)}'


def _emit_orders(inc: Incident, cube: Cube, series: Sequence[Points]) -> None:
    for leaf, pts in zip(cube.leaves, series, strict=True):
        inc.samples.add("orders_failed_total", {"scenario": inc.name, "job": "orders", **leaf}, pts)


def counter_incident(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """A surge of `orders_failed_total` in one element; `variant`: the cause's size, 1-3 labels."""
    season = Season.draw(rnd)
    cube = _orders_cube(rnd)
    total = rnd.uniform(0.5, 5.0)
    labels, idx = cube.pick(rnd, int(variant[0]), (0.03, 0.35))
    added = rnd.uniform(1.5, 4.0)
    factor = 1 + added / cube.share(idx)
    series = simulate_counter(
        rnd,
        tl,
        [total * w for w in cube.weights],
        season,
        incident_factor=dict.fromkeys(idx, factor),
        reset=rnd.randrange(len(cube.leaves)) if rnd.random() < 0.5 else None,
    )
    inc = Incident(variant, "counter", name, "OrderFailures", _orders_expr(name, total * 2), [labels], "")
    _emit_orders(inc, cube, series)
    inc.description = (
        f"{len(cube.leaves)} leaves, {total:.2f} failures/s; {fmt_el(labels)} ({_share_text(cube, idx)}) "
        f"x{factor:.1f}"
    )
    return inc


def histogram_incident(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """The p99 of http_request_duration_seconds; `variant`: pod, route or route+pod turns slow."""
    season = Season.draw(rnd)
    routes = rnd.sample(
        ["/api/search", "/api/cart", "/api/orders", "/api/users", "/healthz", "/api/recommendations"],
        rnd.randint(3, 5),
    )
    template = f"web-{rnd.randrange(16**6):06x}"
    pods = [f"{template}-{''.join(rnd.choices(POD_CHARS, k=5))}" for _ in range(rnd.randint(3, 6))]
    leaves = [{"route": r, "pod": p} for r in routes for p in pods]
    cube = Cube(leaves, zipf_weights(rnd, leaves, spread=0.2))
    names = {"pod": ["pod"], "route": ["route"], "route+pod": ["route", "pod"]}[variant]
    labels, idx = cube.pick(rnd, len(names), (0.05, 0.4), names=names)
    latency = [(rnd.uniform(0.02, 0.08), rnd.uniform(0.35, 0.55)) for _ in leaves]
    slow = rnd.uniform(0.6, 2.0)
    total = rnd.uniform(50, 300)
    series = simulate_histogram(
        rnd,
        tl,
        [total * w for w in cube.weights],
        latency,
        season,
        incident_latency=dict.fromkeys(idx, (slow, 0.5)),
    )
    sel = f'scenario="{name}"'
    expr = (
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(http_request_duration_seconds_bucket{{{sel}}}[5m]))) > 0.5"
    )
    inc = Incident(variant, "histogram", name, "SlowRequestsP99", expr, [labels], "")
    for leaf, h in zip(leaves, series, strict=True):
        base = {"scenario": name, "job": "web", **leaf}
        for le, pts in h.buckets.items():
            inc.samples.add("http_request_duration_seconds_bucket", {**base, "le": le}, pts)
        inc.samples.add("http_request_duration_seconds_count", base, h.count)
        inc.samples.add("http_request_duration_seconds_sum", base, h.sum)
    inc.description = (
        f"{len(leaves)} leaves, {total:.0f} req/s, medians 20-80 ms; {fmt_el(labels)} "
        f"({_share_text(cube, idx)}) median {slow:.2f} s"
    )
    return inc


ZONES = ["华东1区", "华北2区", "华南1区", "西南1区", "香港"]
TENANTS = ["租户甲", "租户乙", "acme-corp", "globex", "テナントβ", "initech"]
ODD_TENANTS = ['acme "blue"', "c:\\tenants\\x", "o'brien & co", "空格 tenant", "tab\there"]


def _tenant_cube(rnd: random.Random, odd: bool) -> Cube:
    zones = rnd.sample(ZONES, rnd.randint(2, 4))
    tenants = rnd.sample(TENANTS, rnd.randint(2, 4)) + (rnd.sample(ODD_TENANTS, 2) if odd else [])
    shards = [f"shard-{i:02d}" for i in rnd.sample(range(16), rnd.randint(2, 4))]
    leaves = [{"az": z, "tenant": t, "shard": s} for z in zones for t in tenants for s in shards]
    return Cube(leaves, zipf_weights(rnd, leaves))


def labels_incident(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """Other label names with UTF-8 values; `variant`: ratio-N / sum-N (cause size N), `-odd` adds tenant
    values with quotes, backslashes and spaces."""
    season = Season.draw(rnd)
    kind, size = variant.split("-")[:2]
    odd = variant.endswith("odd")
    cube = _tenant_cube(rnd, odd)
    labels, idx = cube.pick(
        rnd, int(size), (0.04, 0.35), where=(lambda e: e.get("tenant") in ODD_TENANTS) if odd else None
    )
    sel = f'scenario="{name}"'
    if kind == "ratio":
        total_rate = rnd.uniform(100, 600)
        # a third of the leaves never fail: they have no error series at all
        ratios = [0.0 if rnd.random() < 0.33 else r for r in _base_ratios(rnd, len(cube.leaves), 0.004)]
        target = min(0.95, max(0.1, rnd.uniform(0.04, 0.08) / cube.share(idx)))
        series = simulate_requests(
            rnd,
            tl,
            [total_rate * w for w in cube.weights],
            ratios,
            season,
            incident_ratio=dict.fromkeys(idx, target),
        )
        expr = (
            f"sum(rate(db_query_errors_total{{{sel}}}[5m])) / sum(rate(db_queries_total{{{sel}}}[5m])) > 0.02"
        )
        inc = Incident(variant, "labels", name, "DBErrorRatio", expr, [labels], "")
        for leaf, (ok, failed) in zip(cube.leaves, series, strict=True):
            base = {"scenario": name, "job": "db-proxy", **leaf}
            inc.samples.add(
                "db_queries_total", base, [(t, a + b) for (t, a), (_, b) in zip(ok, failed, strict=True)]
            )
            if failed[-1][1] > failed[0][1]:
                inc.samples.add("db_query_errors_total", base, failed)
        inc.description = (
            f"{len(cube.leaves)} leaves, {total_rate:.0f} queries/s; {fmt_el(labels)} "
            f"({_share_text(cube, idx)}) fails at {target:.0%}"
        )
        return inc
    total = rnd.uniform(1.0, 20.0)
    factor = 1 + rnd.uniform(1.5, 4.0) / cube.share(idx)
    series_c = simulate_counter(
        rnd, tl, [total * w for w in cube.weights], season, incident_factor=dict.fromkeys(idx, factor)
    )
    expr = f"sum(rate(api_throttled_requests_total{{{sel}}}[5m])) > {_threshold(total * 2)}"
    inc = Incident(variant, "labels", name, "ApiThrottling", expr, [labels], "")
    for leaf, pts in zip(cube.leaves, series_c, strict=True):
        inc.samples.add("api_throttled_requests_total", {"scenario": name, "job": "gateway", **leaf}, pts)
    inc.description = (
        f"{len(cube.leaves)} leaves, {total:.1f} throttled/s; {fmt_el(labels)} ({_share_text(cube, idx)}) "
        f"x{factor:.1f}"
    )
    return inc


Builder = Callable[[random.Random, str, Timeline, str], Incident]

# (family, variant, instances); about forty incidents in all
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
]

BUILDERS: dict[str, Builder] = {
    "ratio": ratio_incident,
    "global": global_incident,
    "gauge": gauge_incident,
    "counter": counter_incident,
    "histogram": histogram_incident,
    "labels": labels_incident,
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
