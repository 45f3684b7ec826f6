"""The ground on which the synthetic incidents stand: time line, noise, exposition, cubes of labelled
leaves with their ground truth, and the simulation of request, counter, gauge and histogram series."""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

STEP = 15
WARMUP = 10 * 60  # data before the baseline, so that rate(...[5m]) is defined from the baseline's start
BASELINE = 60 * 60
INCIDENT = 10 * 60
FOR = 120  # the alert fires this long after the incident starts, as a rule with `for: 2m`

# The first six families, then the four added after them (numerator-only labels, small segments, other
# aggregations, drops); the first six are generated exactly as before the others existed.
ORIGINAL_FAMILIES = ("ratio", "global", "gauge", "counter", "histogram", "labels")
FAMILIES = (*ORIGINAL_FAMILIES, "numerator", "small-segment", "aggregation", "drop")
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


def fmt_threshold(x: float) -> str:
    """A threshold as a rule would write it: two significant digits."""
    v = float(f"{x:.2g}")
    return f"{v:.0f}" if v >= 100 else f"{v:g}"


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
    # Secondary elements, not causes: what kind of failure the cause has (the status its new errors carry,
    # a label only the numerator has); a report may name them in or beside the cause.
    also: list[Labels] = field(default_factory=list)
    # The verdict the report should reach: "localized" (the causes are its root causes), "not_localized"
    # (the localization ran and found nothing), or a key of agent/text/offline.yaml's `skipped` table (it
    # did not run, for that reason); None: the one the causes imply.
    expect: str | None = None

    @property
    def expected(self) -> str:
        """`expect`, else "localized" with causes and "not_localized" without."""
        if self.expect is not None:
            return self.expect
        return "localized" if self.causes else "not_localized"


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
    incident_volume: dict[int, float] | None = None,
    buckets: Sequence[float] = BUCKETS,
) -> list[HistogramSeries]:
    """Per leaf cumulative bucket counters of requests whose durations are lognormal (median, sigma); in
    the incident, the given leaves change latency and volume (retries)."""
    incident_latency = incident_latency or {}
    incident_volume = incident_volume or {}
    les = [f"{b:g}" for b in buckets] + ["+Inf"]
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
                volume = incident_volume.get(i, 1.0) if t > tl.incident_start else 1.0
                mu = math.log(med)
                n_mean = rate * season(t - tl.start) * STEP * rnd.lognormvariate(0, 0.05) * volume
                prev = 0.0
                for j, bound in enumerate((*buckets, math.inf)):
                    cdf = 1.0 if math.isinf(bound) else _lognormal_cdf(bound, mu, sig)
                    k = poisson(rnd, n_mean * (cdf - prev))
                    counts[j] += k
                    upper = bound if not math.isinf(bound) else buckets[-1] * 2
                    lower = buckets[j - 1] if j else 0.0
                    total_sum += k * min(max(med, lower), upper)  # a rough per-bucket mean
                    prev = cdf
            cumulative = list(itertools.accumulate(counts))
            for le, c in zip(les, cumulative, strict=True):
                series.buckets[le].append((t, c))
            series.count.append((t, cumulative[-1]))
            series.sum.append((t, total_sum))
        out.append(series)
    return out
