"""The drop family: alerts on `<`, where one element's fall takes the signal under its threshold: a
region's traffic, a route's success ratio, and the median latency collapsing under instant errors."""

from __future__ import annotations

import random

from exporter.scenarios.synthetic.base import (
    Cube,
    Incident,
    Labels,
    Season,
    Timeline,
    fmt_el,
    fmt_threshold,
    simulate_counter,
    simulate_histogram,
    simulate_requests,
    zipf_weights,
)

POPS = {
    "eu-west": ["dub", "lhr", "cdg"],
    "eu-central": ["fra", "waw"],
    "us-east": ["iad", "atl", "yyz"],
    "us-west": ["sjc", "sea", "lax"],
    "ap-northeast": ["nrt", "icn"],
    "ap-south": ["bom", "sin"],
}
EDGE_SERVICES = ["web", "api", "assets", "media"]
APPS = {
    "checkout-service": ["/api/cart", "/api/cart/items", "/api/checkout", "/api/payment-methods"],
    "catalog-service": ["/api/products", "/api/products/{id}", "/api/categories", "/api/search"],
    "account-service": ["/api/login", "/api/me", "/api/addresses", "/api/orders"],
    "review-service": ["/api/reviews", "/api/reviews/{id}", "/api/ratings"],
}
# Prometheus' default buckets, fine enough below 10 ms for a median that collapses
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROUTES = ["/api/search", "/api/cart", "/api/orders", "/api/users", "/api/recommendations", "/api/stock"]


def _traffic(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`sum(rate(edge_requests_total[5m])) < T`: one region's traffic falls to almost nothing."""
    season = Season.draw(rnd, scale=0.3)
    leaves: list[Labels] = []
    services = rnd.sample(EDGE_SERVICES, rnd.randint(2, 3))
    for region in rnd.sample(sorted(POPS), rnd.randint(3, 5)):
        for pop in rnd.sample(POPS[region], rnd.randint(2, len(POPS[region]))):
            leaves += [{"region": region, "pop": pop, "service": s} for s in services]
    cube = Cube(leaves, zipf_weights(rnd, leaves))
    labels, idx = cube.pick(rnd, 1, (0.2, 0.45), names=["region"])
    left = rnd.uniform(0.005, 0.03)
    total = rnd.uniform(300, 2000)
    series = simulate_counter(
        rnd,
        tl,
        [total * w for w in cube.weights],
        season,
        incident_factor=dict.fromkeys(idx, left),
        reset=rnd.randrange(len(leaves)) if rnd.random() < 0.5 else None,
    )
    s = cube.share(idx)
    # a quarter of the way from the baseline's lowest to the incident's highest: crossed about a minute in
    lowest = min(season(t - tl.start) for t in tl.times() if t <= tl.incident_start) * total
    highest = (
        max(season(t - tl.start) for t in tl.times() if t > tl.incident_start) * total * (1 - s * (1 - left))
    )
    threshold = fmt_threshold(lowest - (lowest - highest) / 4)
    expr = f'sum(rate(edge_requests_total{{scenario="{name}"}}[5m])) < {threshold}'
    inc = Incident(variant, "drop", name, "TrafficDrop", expr, [labels], "")
    for leaf, pts in zip(leaves, series, strict=True):
        inc.samples.add("edge_requests_total", {"scenario": name, "job": "edge", **leaf}, pts)
    inc.description = (
        f"{len(leaves)} leaves, {total:.0f} req/s; {fmt_el(labels)} ({s:.0%} of the volume) falls to "
        f"{left:.1%} of its traffic"
    )
    return inc


def _success(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`sum(rate(ok)) / sum(rate(all)) < 0.99` on Micrometer's http_server_requests_seconds_count: one
    route's success ratio falls."""
    season = Season.draw(rnd)
    leaves: list[Labels] = []
    for app in rnd.sample(sorted(APPS), rnd.randint(2, 3)):
        for uri in rnd.sample(APPS[app], 3):
            methods = rnd.choice([["GET"], ["POST"], ["GET", "POST"]])
            leaves += [{"application": app, "uri": uri, "method": m} for m in methods]
    cube = Cube(leaves, zipf_weights(rnd, leaves))
    labels, idx = cube.pick(rnd, 1, (0.05, 0.3), names=["uri"])
    ratios = [min(0.004, max(0.0002, 0.001 * rnd.lognormvariate(0, 0.6))) for _ in leaves]
    target = min(0.6, max(0.05, rnd.uniform(0.025, 0.05) / cube.share(idx) + 0.002))
    total = rnd.uniform(100, 500)
    series = simulate_requests(
        rnd, tl, [total * w for w in cube.weights], ratios, season, incident_ratio=dict.fromkeys(idx, target)
    )
    sel = f'scenario="{name}"'
    metric = "http_server_requests_seconds_count"
    expr = f'sum(rate({metric}{{{sel},outcome="SUCCESS"}}[5m])) / sum(rate({metric}{{{sel}}}[5m])) < 0.99'
    inc = Incident(variant, "drop", name, "SuccessRatioLow", expr, [labels], "")
    for leaf, (ok, failed) in zip(leaves, series, strict=True):
        base = {"scenario": name, "job": leaf["application"], **leaf}
        status = "201" if leaf["method"] == "POST" else "200"
        inc.samples.add(metric, {**base, "outcome": "SUCCESS", "status": status}, ok)
        if failed[-1][1] > failed[0][1]:
            inc.samples.add(metric, {**base, "outcome": "SERVER_ERROR", "status": "503"}, failed)
    inc.description = (
        f"{len(leaves)} leaves, {total:.0f} req/s at 99.9 % success; {fmt_el(labels)} "
        f"({cube.share(idx):.0%} of the volume) fails at {target:.0%}"
    )
    return inc


def _median(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`histogram_quantile(0.5, ...) < 0.01`: one backend answers instant errors, retried by clients, and
    the median latency collapses."""
    season = Season.draw(rnd)
    routes = rnd.sample(ROUTES, rnd.randint(3, 5))
    subnet = rnd.randint(0, 20)
    backends = sorted({f"10.4.{subnet}.{rnd.randint(2, 254)}:8080" for _ in range(rnd.randint(3, 4))})
    leaves = [{"route": r, "backend": b} for r in routes for b in backends]
    cube = Cube(leaves, zipf_weights(rnd, leaves, spread=0.2))
    broken = rnd.choice(backends)
    idx = frozenset(i for i, leaf in enumerate(leaves) if leaf["backend"] == broken)
    s = rnd.uniform(0.5, 0.55)  # the broken backend's share of the requests
    old = cube.share(idx)
    cube.weights = [w * (s / old if i in idx else (1 - s) / (1 - old)) for i, w in enumerate(cube.weights)]
    fast = rnd.uniform(0.75, 0.82)  # its share of the observations once retried
    retries = fast * (1 - s) / (s * (1 - fast))
    latency = [(rnd.uniform(0.02, 0.08), rnd.uniform(0.35, 0.55)) for _ in leaves]
    instant = rnd.uniform(0.001, 0.003)
    total = rnd.uniform(50, 300)
    series = simulate_histogram(
        rnd,
        tl,
        [total * w for w in cube.weights],
        latency,
        season,
        incident_latency=dict.fromkeys(idx, (instant, 0.4)),
        incident_volume=dict.fromkeys(idx, retries),
        buckets=DEFAULT_BUCKETS,
    )
    sel = f'scenario="{name}"'
    expr = (
        "histogram_quantile(0.5, sum by (le) "
        f"(rate(http_request_duration_seconds_bucket{{{sel}}}[5m]))) < 0.01"
    )
    labels = {"backend": broken}
    inc = Incident(variant, "drop", name, "MedianLatencyCollapse", expr, [labels], "")
    for leaf, h in zip(leaves, series, strict=True):
        base = {"scenario": name, "job": "frontend", **leaf}
        for le, pts in h.buckets.items():
            inc.samples.add("http_request_duration_seconds_bucket", {**base, "le": le}, pts)
        inc.samples.add("http_request_duration_seconds_count", base, h.count)
        inc.samples.add("http_request_duration_seconds_sum", base, h.sum)
    inc.description = (
        f"{len(leaves)} leaves, {total:.0f} req/s, medians 20-80 ms; {fmt_el(labels)} ({s:.0%} of the "
        f"requests) answers errors in {instant * 1000:.1f} ms, retried: x{retries:.1f} its requests, "
        f"{fast:.0%} of the observations"
    )
    return inc


def drop_incident(rnd: random.Random, name: str, tl: Timeline, variant: str) -> Incident:
    """`variant`: traffic (a region's requests fall), success-rate (a route's success ratio falls),
    quantile (the p50 collapses under one backend's instant errors)."""
    build = {"traffic": _traffic, "success-rate": _success, "quantile": _median}[variant]
    return build(rnd, name, tl, variant)
