"""The six families of synthetic incidents: each builder draws one incident of a variant, with its truth."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from exporter.scenarios.synthetic.base import (
    POD_CHARS,
    Cube,
    Incident,
    Points,
    Season,
    Timeline,
    fmt_el,
    fmt_threshold,
    simulate_counter,
    simulate_gauge,
    simulate_histogram,
    simulate_requests,
    zipf_weights,
)

# ---------------------------------------------------------------- the families


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
        expr = f'sum(queue_depth{{scenario="{name}"}}) > {fmt_threshold(baseline * 1.5)}'
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
    expr = f'sum(node_memory_used_bytes{{scenario="{name}"}}) > {fmt_threshold(baseline + added / 2)}'
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
    return f'sum(rate(orders_failed_total{{scenario="{name}"}}[5m])) > {fmt_threshold(threshold)}'


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
    expr = f"sum(rate(api_throttled_requests_total{{{sel}}}[5m])) > {fmt_threshold(total * 2)}"
    inc = Incident(variant, "labels", name, "ApiThrottling", expr, [labels], "")
    for leaf, pts in zip(cube.leaves, series_c, strict=True):
        inc.samples.add("api_throttled_requests_total", {"scenario": name, "job": "gateway", **leaf}, pts)
    inc.description = (
        f"{len(cube.leaves)} leaves, {total:.1f} throttled/s; {fmt_el(labels)} ({_share_text(cube, idx)}) "
        f"x{factor:.1f}"
    )
    return inc
