"""Two families of ratio incidents whose segments set traps: a label only the numerator carries
(numerator), and a small segment that explodes beside a big one holding most of the errors
(small-segment)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from exporter.scenarios.synthetic.base import (
    Cube,
    Incident,
    Labels,
    Points,
    Season,
    Timeline,
    fmt_el,
    fmt_threshold,
    simulate_requests,
    zipf_weights,
)

REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-northeast", "sa-east"]
EDGE_SERVICES = ["images", "video", "api-gateway", "static", "downloads", "websocket"]
STATUSES = ("500", "502", "503", "504")
TENANTS = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark-industries",
    "wayne-enterprises",
    "wonka",
    "soylent",
    "tyrell",
    "cyberdyne",
    "massive-dynamic",
    "aperture",
    "oscorp",
]
TENANT_REGIONS = ["eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1"]


def binomial(rnd: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if n < 40:
        return sum(rnd.random() < p for _ in range(n))
    return min(n, max(0, round(rnd.gauss(n * p, math.sqrt(n * p * (1 - p))))))


def split(rnd: random.Random, n: int, probs: Sequence[float]) -> list[int]:
    """`n` events over categories of probabilities `probs` (summing to 1): a multinomial draw."""
    out, left, mass = [], n, 1.0
    for p in probs[:-1]:
        k = binomial(rnd, left, p / mass if mass > 0 else 0.0)
        out.append(k)
        left -= k
        mass -= p
    out.append(left)
    return out


def ratio_threshold(weights: Sequence[float], before: Sequence[float], after: Sequence[float]) -> float:
    """A quarter of the way from the volume-weighted error ratio of the baseline to that of the incident,
    so that a ratio over rate(...[5m]) crosses it about a minute in (the rule has `for: 2m`)."""
    base = sum(w * r for w, r in zip(weights, before, strict=True))
    inc = sum(w * r for w, r in zip(weights, after, strict=True))
    return base + (inc - base) / 4


def add_counter(inc: Incident, metric: str, labels: Labels, pts: Points) -> None:
    """A counter series, left out when it never moves in the data (a client library creates a labelled
    series on its first increment)."""
    if pts[-1][1] > pts[0][1]:
        inc.samples.add(metric, labels, pts)


# ---------------------------------------------------------------- numerator-only label


def _status_split(
    rnd: random.Random,
    tl: Timeline,
    failed: Points,
    mix: Sequence[float],
    incident_mix: Sequence[float],
) -> list[Points]:
    """The failures of one leaf as one counter per status: each step's new failures split by `mix` (by
    `incident_mix` in the incident)."""
    values = [float(rnd.randint(0, 300)) for _ in STATUSES]
    out: list[Points] = [[] for _ in STATUSES]
    prev = failed[0][1]
    for t, total in failed:
        n = int(total - prev) if total >= prev else int(total)  # a reset starts again from zero
        prev = total
        for j, k in enumerate(split(rnd, n, incident_mix if t > tl.incident_start else mix)):
            values[j] += k
        for j, v in enumerate(values):
            out[j].append((t, v))
    return out


def numerator_incident(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`sum(rate(origin_errors_total)) / sum(rate(requests_total))`, the errors with a `status` the
    requests lack; `variant`: 1-label / 2-labels (the cause over region and service, its new errors in
    each leaf's usual mix of statuses), status (a region whose new errors are all 503s: `also`)."""
    season = Season.draw(rnd)
    regions = rnd.sample(REGIONS, rnd.randint(3, 5))
    services = rnd.sample(EDGE_SERVICES, rnd.randint(3, 4))
    leaves = [{"region": r, "service": s} for r in regions for s in services]
    cube = Cube(leaves, zipf_weights(rnd, leaves))
    ratios = [min(0.02, max(0.001, 0.006 * rnd.lognormvariate(0, 0.5))) for _ in leaves]
    mixes = []
    for _ in leaves:
        raw = [rnd.uniform(0.5, 3.0), rnd.uniform(0.5, 2.0), rnd.uniform(0.1, 1.0), rnd.uniform(0.1, 0.6)]
        mixes.append([x / sum(raw) for x in raw])
    size, share, names = {
        "1-label": (1, (0.1, 0.4), None),
        "2-labels": (2, (0.04, 0.2), None),
        "status": (1, (0.1, 0.4), ["region"]),
    }[variant]
    labels, idx = cube.pick(rnd, size, share, names=names)
    s = cube.share(idx)
    target = min(0.9, max(0.08, rnd.uniform(0.05, 0.09) / s + 0.01))
    after = [target if i in idx else r for i, r in enumerate(ratios)]
    total_rate = rnd.uniform(150, 600)
    series = simulate_requests(
        rnd,
        tl,
        [total_rate * w for w in cube.weights],
        ratios,
        season,
        incident_ratio=dict.fromkeys(idx, target),
    )
    sel = f'scenario="{name}"'
    threshold = ratio_threshold(cube.weights, ratios, after)
    expr = (
        f"sum(rate(origin_errors_total{{{sel}}}[5m])) / sum(rate(requests_total{{{sel}}}[5m])) "
        f"> {fmt_threshold(threshold)}"
    )
    inc = Incident(variant, "numerator", name, "OriginErrorRatio", expr, [labels], "")
    hot = STATUSES.index("503")
    for i, (leaf, (ok, failed)) in enumerate(zip(leaves, series, strict=True)):
        mix = mixes[i]
        incident_mix = mix
        if variant == "status" and i in idx:  # the old errors keep their mix, the new ones are 503s
            old = ratios[i] / target
            incident_mix = [m * old + ((1 - old) if j == hot else 0.0) for j, m in enumerate(mix)]
        base = {"scenario": name, "job": "edge", **leaf}
        inc.samples.add(
            "requests_total", base, [(t, a + b) for (t, a), (_, b) in zip(ok, failed, strict=True)]
        )
        for status, pts in zip(STATUSES, _status_split(rnd, tl, failed, mix, incident_mix), strict=True):
            add_counter(inc, "origin_errors_total", {**base, "status": status}, pts)
    text = f"{fmt_el(labels)} ({s:.0%} of the volume) errs at {target:.0%}"
    if variant == "status":
        inc.also = [{"status": "503"}]
        text += ', its new errors all status="503"'
    else:
        text += " in its usual mix of statuses"
    inc.description = f"{len(leaves)} leaves, {total_rate:.0f} req/s, errors by status; {text}"
    return inc


# ---------------------------------------------------------------- small segment explodes


def _tenant_weights(
    rnd: random.Random, tenants: Sequence[str], big: str, small: str | None
) -> dict[str, float]:
    """The big tenant with about 60 % of the traffic, `small` with about 2 %, the others sharing the rest
    by a skewed law."""
    shares = {big: rnd.uniform(0.55, 0.65)}
    if small is not None:
        shares[small] = rnd.uniform(0.015, 0.025)
    others = [t for t in tenants if t not in shares]
    a = rnd.uniform(0.5, 1.2)
    raw = {t: rank**-a * rnd.lognormvariate(0, 0.2) for rank, t in enumerate(others, 1)}
    rest = 1 - sum(shares.values())
    shares.update({t: rest * v / sum(raw.values()) for t, v in raw.items()})
    return shares


def small_segment_incident(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """A tenant with about 2 % of the traffic goes from about 0.3 % to 85 % errors, while the biggest
    (about 60 %, at about 1 %, drifting a little) makes most of the errors over the window; `variant`:
    tenant (the one label), tenant+region (the small tenant in every region), layer-2 (the small
    segment is one tenant in one region)."""
    season = Season.draw(rnd)
    tenants = rnd.sample(TENANTS, rnd.randint(6, 10))
    big = tenants[0]
    small = tenants[1] if variant != "layer-2" else None
    shares = _tenant_weights(rnd, tenants, big, small)
    regions = rnd.sample(TENANT_REGIONS, rnd.randint(2, 4)) if variant != "tenant" else []
    leaves: list[Labels] = []
    weights: list[float] = []
    for tenant in tenants:
        if not regions:
            leaves.append({"tenant": tenant})
            weights.append(shares[tenant])
            continue
        split_w = [rnd.lognormvariate(0, 0.5) for _ in regions]
        for region, w in zip(regions, split_w, strict=True):
            leaves.append({"tenant": tenant, "region": region})
            weights.append(shares[tenant] * w / sum(split_w))
    if variant == "layer-2":  # one leaf of a mid-sized tenant resized to about 2 % of the traffic
        mid = [t for t in tenants[1:] if shares[t] >= 0.05] or [max(tenants[1:], key=shares.__getitem__)]
        tenant, region = rnd.choice(mid), rnd.choice(regions)
        own = [i for i, leaf in enumerate(leaves) if leaf["tenant"] == tenant]
        cause_i = next(i for i in own if leaves[i]["region"] == region)
        pair = min(rnd.uniform(0.015, 0.025), shares[tenant] * 0.4)
        others = sum(weights[i] for i in own if i != cause_i)
        for i in own:
            weights[i] = pair if i == cause_i else weights[i] * (shares[tenant] - pair) / others
        labels = {"tenant": tenant, "region": region}
    else:
        assert small is not None
        labels = {"tenant": small}
    cube = Cube(leaves, weights)
    idx = frozenset(i for i, leaf in enumerate(leaves) if all(leaf[k] == v for k, v in labels.items()))
    assert cube.is_element(idx), labels
    big_ratio = rnd.uniform(0.008, 0.013)
    ratios = []
    for leaf in leaves:
        if leaf["tenant"] == big:
            ratios.append(big_ratio * rnd.lognormvariate(0, 0.1))
        else:
            ratios.append(min(0.012, max(0.001, 0.004 * rnd.lognormvariate(0, 0.5))))
    for i in idx:
        ratios[i] = rnd.uniform(0.002, 0.004)
    target = rnd.uniform(0.8, 0.9)
    drift = rnd.uniform(0.95, 1.15)  # the big tenant's slight change, not a cause
    incident_ratio = dict.fromkeys(idx, target)
    incident_ratio.update({i: ratios[i] * drift for i, leaf in enumerate(leaves) if leaf["tenant"] == big})
    after = [incident_ratio.get(i, r) for i, r in enumerate(ratios)]
    total_rate = rnd.uniform(200, 800)
    series = simulate_requests(
        rnd, tl, [total_rate * w for w in cube.weights], ratios, season, incident_ratio=incident_ratio
    )
    sel = f'scenario="{name}"'
    threshold = ratio_threshold(cube.weights, ratios, after)
    expr = (
        f"sum(rate(api_request_errors_total{{{sel}}}[5m])) / sum(rate(api_requests_total{{{sel}}}[5m])) "
        f"> {fmt_threshold(threshold)}"
    )
    inc = Incident(variant, "small-segment", name, "TenantErrorRatio", expr, [labels], "")
    for leaf, (ok, failed) in zip(leaves, series, strict=True):
        base = {"scenario": name, "job": "gateway-mt", **leaf}
        inc.samples.add(
            "api_requests_total", base, [(t, a + b) for (t, a), (_, b) in zip(ok, failed, strict=True)]
        )
        add_counter(inc, "api_request_errors_total", base, failed)
    big_idx = [i for i, leaf in enumerate(leaves) if leaf["tenant"] == big]

    def errors(ratio: Sequence[float], among: Sequence[int] = range(len(leaves))) -> float:
        return sum(cube.weights[i] * ratio[i] for i in among)

    # the big tenant's share of the errors over the alert's hour of baseline and ten minutes of incident
    over_window = (6 * errors(ratios, big_idx) + errors(after, big_idx)) / (
        6 * errors(ratios) + errors(after)
    )
    in_incident = errors(after, big_idx) / errors(after)
    inc.description = (
        f'{len(leaves)} leaves, {total_rate:.0f} req/s; {{tenant="{big}"}} has {shares[big]:.0%} of the '
        f"traffic at {big_ratio:.1%} errors (x{drift:.2f} in the incident: {in_incident:.0%} "
        f"of the incident's errors, {over_window:.0%} over baseline and incident); {fmt_el(labels)} "
        f"({cube.share(idx):.1%} of the volume) fails at {target:.0%}"
    )
    return inc
