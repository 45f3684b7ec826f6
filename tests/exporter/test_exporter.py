"""The demo login exporter: simulator logic with an injected clock, and the real app over HTTP."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import create_app
from exporter.simulator import AnomalyValidationError, LoginSimulator

REGIONS = ("beijing", "shanghai", "guangzhou", "shenzhen", "hangzhou")
WEIGHTS = dict(zip(REGIONS, (0.30, 0.25, 0.20, 0.15, 0.10), strict=True))
USER_TYPES = ("normal", "admin")
STATUSES = ("success", "failed")
ALL_KEYS = {(u, s, r) for u, s, r in itertools.product(USER_TYPES, STATUSES, REGIONS)}
T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def simulate(sim: LoginSimulator, clock: FakeClock, seconds: float, step: float = 0.25) -> None:
    """Move the fake clock forward in ticks of `step`, advancing the simulator like the ticker does."""
    for _ in range(round(seconds / step)):
        clock.now += step
        sim.advance(step)


def delta(before: dict[tuple[str, str, str], int], after: dict[tuple[str, str, str], int]) -> dict:
    return {key: after[key] - before[key] for key in after}


def segment(counts: dict, region: str, user_type: str) -> tuple[int, int]:
    """(failed, total) of one segment."""
    failed = counts[(user_type, "failed", region)]
    return failed, failed + counts[(user_type, "success", region)]


def new_sim(rate: float = 20.0, seed: int | None = 1, **kwargs: Any) -> tuple[LoginSimulator, FakeClock]:
    clock = FakeClock()
    return LoginSimulator(rate=rate, seed=seed, clock=clock, **kwargs), clock


# --- simulator -------------------------------------------------------------------------------


def test_every_series_exists_at_zero_from_the_start() -> None:
    sim, _ = new_sim()
    assert sim.counts() == dict.fromkeys(ALL_KEYS, 0)
    text = generate_latest(sim.registry).decode()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert {s.name for s in samples} == {"user_login_total"}
    assert {
        (s.labels["user_type"], s.labels["login_status"], s.labels["ip_region"]) for s in samples
    } == ALL_KEYS
    assert all(s.value == 0 for s in samples)


def test_counts_grow_at_the_configured_rate_and_split() -> None:
    sim, clock = new_sim(rate=50.0)
    simulate(sim, clock, 120)
    counts = sim.counts()
    total = sum(counts.values())
    assert total == pytest.approx(50 * 120, rel=0.03)
    for region, weight in WEIGHTS.items():
        in_region = sum(v for (_, _, r), v in counts.items() if r == region)
        assert in_region / total == pytest.approx(weight, abs=0.01)
    admin = sum(v for (u, _, _), v in counts.items() if u == "admin")
    assert admin / total == pytest.approx(0.1, abs=0.01)
    for user_type, base in (("normal", 0.03), ("admin", 0.05)):
        failed = sum(v for (u, s, _), v in counts.items() if u == user_type and s == "failed")
        attempts = sum(v for (u, _, _), v in counts.items() if u == user_type)
        assert failed / attempts == pytest.approx(base, abs=0.01)
    # the exposition carries the same numbers
    text = generate_latest(sim.registry).decode()
    exposed = sum(s.value for f in text_string_to_metric_families(text) for s in f.samples)
    assert exposed == total


def test_low_rates_lose_no_events_to_rounding() -> None:
    # hangzhou/admin/success gets 0.5 * 0.1 * 0.1 * 0.95 = 0.00475 events/s: 0.0012 per tick
    sim, clock = new_sim(rate=0.5, noise=0.0)
    simulate(sim, clock, 2000, step=0.25)
    assert sim.count("admin", "success", "hangzhou") in (9, 10)
    assert 1000 - 20 < sum(sim.counts().values()) <= 1000  # at most one pending event per series


def test_anomaly_raises_failure_ratio_and_traffic_of_its_segment_only() -> None:
    sim, clock = new_sim(rate=20.0, seed=3)
    simulate(sim, clock, 30)
    before = sim.counts()
    anomaly = sim.inject(
        ip_region="shanghai", user_type="admin", failure_ratio=0.8, extra_rate=10.0, duration_seconds=600
    )
    assert anomaly.starts_at == clock.now and anomaly.ends_at == clock.now + 600
    simulate(sim, clock, 300)
    d = delta(before, sim.counts())

    failed, total = segment(d, "shanghai", "admin")
    assert total == pytest.approx((20 * 0.25 * 0.1 + 10) * 300, rel=0.03)
    assert failed / total == pytest.approx(0.8, abs=0.02)
    for region in REGIONS:
        for user_type, base in (("normal", 0.03), ("admin", 0.05)):
            if (region, user_type) == ("shanghai", "admin"):
                continue
            failed, total = segment(d, region, user_type)
            share = WEIGHTS[region] * (0.1 if user_type == "admin" else 0.9)
            assert total == pytest.approx(20 * 300 * share, rel=0.05)
            assert failed / total == pytest.approx(base, abs=0.015)


def test_anomaly_without_filters_spreads_extra_traffic_over_every_segment() -> None:
    sim, clock = new_sim(rate=20.0, noise=0.0)
    sim.inject(failure_ratio=0.5, extra_rate=80.0, duration_seconds=1000)
    simulate(sim, clock, 100)
    counts = sim.counts()
    assert sum(counts.values()) == pytest.approx(100 * 100, abs=20)
    for region in REGIONS:
        for user_type in USER_TYPES:
            failed, total = segment(counts, region, user_type)
            assert failed / total == pytest.approx(0.5, abs=0.01)
    # the extra traffic follows the normal shape: beijing normal keeps its 27 % share
    assert segment(counts, "beijing", "normal")[1] / sum(counts.values()) == pytest.approx(0.27, abs=0.005)


def test_anomaly_expires_and_counts_only_the_time_it_covers() -> None:
    sim, clock = new_sim(rate=20.0, noise=0.0)
    anomaly = sim.inject(
        ip_region="shanghai", user_type="admin", failure_ratio=1.0, extra_rate=10.0, duration_seconds=10
    )
    assert [a.id for a in sim.active(T0 + 5)] == [anomaly.id]
    assert sim.active(T0 + 10) == []
    assert sim.get(anomaly.id) == anomaly

    clock.now += 20
    sim.advance(20)  # one interval half covered by the anomaly
    failed, total = segment(sim.counts(), "shanghai", "admin")
    assert total in (109, 110)  # 0.5/s for 20 s + 10/s for 10 s
    assert failed == pytest.approx(0.5 * 10 + 10 * 10 + 0.5 * 10 * 0.05, abs=1)
    assert sim.active() == []
    assert sim.get(anomaly.id) is None

    before = sim.counts()
    simulate(sim, clock, 400)
    failed, total = segment(delta(before, sim.counts()), "shanghai", "admin")
    assert total == pytest.approx(0.5 * 400, abs=1)
    assert failed / total == pytest.approx(0.05, abs=0.01)


def test_latest_anomaly_sets_failure_ratio_and_extra_rates_add_up() -> None:
    sim, clock = new_sim(rate=0.0, noise=0.0)
    sim.inject(ip_region="beijing", failure_ratio=0.2, extra_rate=10.0, duration_seconds=100)
    clock.now += 1
    sim.inject(
        ip_region="beijing", user_type="normal", failure_ratio=0.6, extra_rate=9.0, duration_seconds=100
    )
    before = sim.counts()
    simulate(sim, clock, 10)
    d = delta(before, sim.counts())
    failed, total = segment(d, "beijing", "normal")
    assert total == pytest.approx((10 * 0.9 + 9) * 10, abs=1)
    assert failed == pytest.approx(total * 0.6, abs=1)
    failed, total = segment(d, "beijing", "admin")
    assert total == pytest.approx(10 * 0.1 * 10, abs=1)
    assert failed == pytest.approx(total * 0.2, abs=1)
    assert sum(v for (_, _, r), v in d.items() if r != "beijing") == 0


def test_clear_one_or_all() -> None:
    sim, _ = new_sim()
    a = sim.inject(failure_ratio=0.5, duration_seconds=60)
    b = sim.inject(user_type="admin", failure_ratio=0.9, duration_seconds=60)
    c = sim.inject(ip_region="hangzhou", failure_ratio=0.9, duration_seconds=60)
    assert {x.id for x in sim.active()} == {a.id, b.id, c.id}
    assert sim.clear(a.id) == 1
    assert sim.clear(a.id) == 0
    assert sim.clear("no-such-id") == 0
    assert {x.id for x in sim.active()} == {b.id, c.id}
    assert sim.clear() == 2
    assert sim.active() == []


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"ip_region": "mars"}, "ip_region", "beijing, shanghai, guangzhou, shenzhen, hangzhou"),
        ({"user_type": "root"}, "user_type", "normal, admin"),
        ({"failure_ratio": 1.5}, "failure_ratio", "between 0 and 1"),
        ({"failure_ratio": -0.1}, "failure_ratio", "between 0 and 1"),
        ({"failure_ratio": float("nan")}, "failure_ratio", "between 0 and 1"),
        ({"extra_rate": -1.0}, "extra_rate", ">= 0"),
        ({"duration_seconds": 0.0}, "duration_seconds", "> 0"),
        ({"duration_seconds": -5.0}, "duration_seconds", "> 0"),
    ],
)
def test_invalid_anomalies_are_rejected(kwargs: dict, field: str, message: str) -> None:
    sim, _ = new_sim()
    params: dict = {"failure_ratio": 0.5, "duration_seconds": 60.0, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        sim.inject(**params)
    assert isinstance(info.value, AnomalyValidationError)
    assert info.value.field == field
    assert field in str(info.value)
    assert sim.active() == []


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="rate"):
        LoginSimulator(rate=-1)
    with pytest.raises(ValueError, match="normal_failure_ratio"):
        LoginSimulator(normal_failure_ratio=2)
    with pytest.raises(ValueError, match="region_weights"):
        LoginSimulator(region_weights={"beijing": 0})


def test_same_seed_gives_same_counts() -> None:
    def run(seed: int) -> dict:
        sim, clock = new_sim(rate=30.0, seed=seed)
        simulate(sim, clock, 20, step=0.1)
        sim.inject(ip_region="shenzhen", failure_ratio=0.7, extra_rate=5.0, duration_seconds=10)
        simulate(sim, clock, 20, step=0.1)
        return sim.counts()

    assert run(42) == run(42)
    assert run(42) != run(43)


# --- the app over HTTP -----------------------------------------------------------------------


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a background thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def login_samples(text: str) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["user_type"], s.labels["login_status"], s.labels["ip_region"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "user_login_total"
    }


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    sim = LoginSimulator(rate=200.0, seed=1)
    with serve(create_app(sim, tick_interval=0.05)) as url, httpx.Client(base_url=url, timeout=5) as http:
        yield http


def test_metrics_exposes_every_login_series(client: httpx.Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = [line for line in response.text.splitlines() if line.startswith("user_login_total{")]
    assert len(lines) == 20
    assert set(login_samples(response.text)) == ALL_KEYS
    assert "system_memory_used_bytes" not in response.text


def test_ticker_advances_the_counts(client: httpx.Client) -> None:
    first = sum(login_samples(client.get("/metrics").text).values())
    time.sleep(0.4)
    second = sum(login_samples(client.get("/metrics").text).values())
    assert second - first >= 30  # 200/s for 0.4 s, with generous slack for a busy machine


def test_healthz_and_config(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    config = client.get("/api/v1/config").json()
    assert config["rate"] == 200.0
    assert config["regions"] == list(REGIONS)
    assert config["user_types"] == list(USER_TYPES)
    assert config["base_failure_ratios"] == {"normal": 0.03, "admin": 0.05}
    assert config["region_weights"]["beijing"] == pytest.approx(0.3)


def test_anomaly_lifecycle(client: httpx.Client) -> None:
    client.delete("/api/v1/anomalies")
    body = {
        "ip_region": "shanghai",
        "user_type": "admin",
        "failure_ratio": 0.8,
        "extra_rate": 60,
        "duration_seconds": 300,
    }
    response = client.post("/api/v1/anomalies", json=body)
    assert response.status_code == 201
    created = response.json()
    assert {k: created[k] for k in body} == body
    starts_at = datetime.fromisoformat(created["starts_at"])
    ends_at = datetime.fromisoformat(created["ends_at"])
    assert starts_at.tzinfo is not None
    assert (ends_at - starts_at).total_seconds() == pytest.approx(300)
    assert abs(starts_at.timestamp() - time.time()) < 5

    assert client.get("/api/v1/anomalies").json() == [created]
    assert client.delete(f"/api/v1/anomalies/{created['id']}").status_code == 204
    assert client.get("/api/v1/anomalies").json() == []
    missing = client.delete(f"/api/v1/anomalies/{created['id']}")
    assert missing.status_code == 404
    assert created["id"] in missing.json()["detail"]

    for user_type in ("normal", "admin"):
        client.post(
            "/api/v1/anomalies", json={"user_type": user_type, "failure_ratio": 0.1, "duration_seconds": 60}
        )
    assert len(client.get("/api/v1/anomalies").json()) == 2
    assert client.delete("/api/v1/anomalies").status_code == 204
    assert client.get("/api/v1/anomalies").json() == []


def test_injected_anomaly_shows_in_metrics(client: httpx.Client) -> None:
    client.delete("/api/v1/anomalies")
    before = login_samples(client.get("/metrics").text)
    body = {
        "ip_region": "hangzhou",
        "user_type": "admin",
        "failure_ratio": 1.0,
        "extra_rate": 500,
        "duration_seconds": 30,
    }
    created = client.post("/api/v1/anomalies", json=body).json()
    time.sleep(0.5)
    after = login_samples(client.get("/metrics").text)
    client.delete(f"/api/v1/anomalies/{created['id']}")
    failed = after[("admin", "failed", "hangzhou")] - before[("admin", "failed", "hangzhou")]
    success = after[("admin", "success", "hangzhou")] - before[("admin", "success", "hangzhou")]
    assert failed >= 100
    assert success <= 2  # only what was pending from before the anomaly


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ip_region": "mars", "failure_ratio": 0.5, "duration_seconds": 60}, "ip_region"),
        ({"user_type": "root", "failure_ratio": 0.5, "duration_seconds": 60}, "user_type"),
        ({"failure_ratio": 1.5, "duration_seconds": 60}, "failure_ratio"),
        ({"failure_ratio": 0.5, "extra_rate": -1, "duration_seconds": 60}, "extra_rate"),
        ({"failure_ratio": 0.5, "duration_seconds": 0}, "duration_seconds"),
        ({"failure_ratio": 0.5}, "duration_seconds"),
        ({"failure_ratio": 0.5, "duration_seconds": 60, "region": "beijing"}, "region"),
    ],
)
def test_bad_anomaly_bodies_get_422_naming_the_field(client: httpx.Client, body: dict, field: str) -> None:
    response = client.post("/api/v1/anomalies", json=body)
    assert response.status_code == 422
    assert [field] == [e["loc"][-1] for e in response.json()["detail"]]
    assert all(a["ip_region"] != "mars" for a in client.get("/api/v1/anomalies").json())


def test_unknown_region_422_lists_allowed_values(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/anomalies", json={"ip_region": "mars", "failure_ratio": 0.5, "duration_seconds": 60}
    )
    assert "beijing, shanghai, guangzhou, shenzhen, hangzhou" in response.json()["detail"][0]["msg"]


def test_system_metrics_when_enabled() -> None:
    sim = LoginSimulator(rate=10.0, seed=2)
    with serve(create_app(sim, system_metrics=True)) as url:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["system_memory_used_bytes"].samples[0].value > 0
    assert families["system_memory_available_bytes"].samples[0].value > 0
    assert 0 <= families["system_memory_usage_percent"].samples[0].value <= 100
    cpus = {s.labels["cpu"] for s in families["system_cpu_usage_percent"].samples}
    assert "total" in cpus and "0" in cpus
    assert families["system_network_bytes_sent"].type == "counter"
    assert any(
        s.name == "system_network_bytes_recv_total" for s in families["system_network_bytes_recv"].samples
    )
    assert len(login_samples(text)) == 20
