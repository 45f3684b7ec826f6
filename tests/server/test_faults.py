"""Faults on the investigation path, through the real app: a Prometheus that is stopped and started
again under a running server (its own, backfilled with the login burst), and a webhook sink that records
every notice it gets."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter import launch as procs
from exporter.scenarios.login import burst, login_scenario, openmetrics
from server.settings import Settings
from tests.conftest import STEP, PromEnv, serve
from tests.fakes.webhook import FakeWebhook
from tests.server.test_api import wait_report, webhook
from tests.server.test_delivery import wait_deliveries

CONFIG = "global:\n  scrape_interval: 15s\n"


@dataclass
class StoppablePrometheus:
    """A Prometheus of its own, on a fixed port and data directory, that a test stops and starts."""

    workdir: Path
    port: int
    process: procs.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.process is None:
            self.process = procs.start_prometheus(
                self.workdir, CONFIG, data_dir=self.workdir / "data", port=self.port
            )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@pytest.fixture(scope="module")
def faulty_prom(prom: PromEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppablePrometheus]:
    """The session's burst scenario (same "now", same data) in a Prometheus of its own."""
    work = tmp_path_factory.mktemp("faulty-prometheus")
    now = prom.now // STEP * STEP
    sc = login_scenario("burst", now, burst("shanghai", "admin"))
    assert sc.expr() == prom.scenarios["burst"].expr()
    procs.backfill_openmetrics(openmetrics(sc), work / "data", work)
    p = StoppablePrometheus(work, procs.free_port())
    p.start()
    yield p
    p.stop()


@pytest.fixture
def hook() -> Iterator[FakeWebhook]:
    with FakeWebhook() as fake:
        yield fake


def faulty_settings(
    make_settings: Callable[..., Settings], p: StoppablePrometheus, hook: FakeWebhook, **kw: Any
) -> Settings:
    return make_settings(
        prometheus_url=p.url,
        prometheus_timeout=2.0,
        max_attempts=2,
        retry_backoff_seconds=0.1,
        delivery={"sinks": {"hook": {"type": "webhook", "url": hook.hook_url}}},
        delivery_backoff_seconds=0.05,
        delivery_backoff_max_seconds=0.2,
        **kw,
    )


def wait_for(
    c: httpx.Client, incident_id: int, ok: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    inc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        inc = c.get(f"/api/v1/incidents/{incident_id}").json()
        if ok(inc):
            return inc
        time.sleep(0.05)
    raise AssertionError(f"incident {incident_id}: {what} did not happen in 60s: {inc}")


SHANGHAI_ADMIN = {"ip_region": "shanghai", "user_type": "admin"}


def test_a_degraded_reinvestigation_keeps_the_good_report_and_retries_until_prometheus_answers(
    make_settings: Callable[..., Settings], faulty_prom: StoppablePrometheus, hook: FakeWebhook, prom: PromEnv
) -> None:
    env, stop = serve(faulty_settings(make_settings, faulty_prom, hook))
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            created = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="x1")).json()
            incident = created["incidents_created"][0]
            first = wait_report(c, incident)
            assert first["investigation"] == "done"
            good = first["report_id"]
            wait_deliveries(c, incident, 1)

            # Prometheus stops; a re-investigation retries past max_attempts and the good report stays.
            faulty_prom.stop()
            assert c.post(f"/api/v1/incidents/{incident}/investigate").status_code == 202
            inc = wait_for(
                c,
                incident,
                lambda i: len(i["jobs"]) == 2 and i["jobs"][1]["attempts"] >= 4,
                "retries past max_attempts",
            )
            retrying = inc["jobs"][1]
            assert retrying["state"] in ("queued", "running")
            assert inc["report_id"] == good
            assert "Prometheus" in (inc["jobs"][1]["last_error"] or "") or retrying["state"] == "running"
            assert [d["event"] for d in inc["deliveries"]] == ["firing"]

            # Prometheus answers again: the retry writes a good report; the same analysis is no news.
            faulty_prom.start()
            inc = wait_for(c, incident, lambda i: i["jobs"][1]["state"] == "done", "the retry succeeding")
            assert inc["investigation"] == "done" and inc["report_id"] != good
            report = c.get(inc["report_url"]).json()
            assert not report["degraded"] and report["root_causes"][0]["labels"] == SHANGHAI_ADMIN
            good = inc["report_id"]
            time.sleep(0.3)
            inc = c.get(f"/api/v1/incidents/{incident}").json()
            assert [d["event"] for d in inc["deliveries"]] == ["firing"]

            # Down again, and the incident resolves: the retries stop, the degraded attempt is recorded
            # (its report stored, not current), and the resolved notice tells the good analysis.
            faulty_prom.stop()
            assert c.post(f"/api/v1/incidents/{incident}/investigate").status_code == 202
            wait_for(
                c, incident, lambda i: i["jobs"][2]["attempts"] >= 1 and i["jobs"][2]["last_error"], "a try"
            )
            c.post("/api/v1/webhook/alertmanager", json=webhook(prom, status="resolved", fingerprint="x1"))
            inc = wait_for(c, incident, lambda i: i["jobs"][2]["state"] == "done", "the retries ending")
            assert inc["report_id"] == good and inc["investigation"] == "done"
            last = inc["jobs"][2]["last_error"]
            assert "unreachable" in last and f"the last good report {good} stays current" in last
            inc = wait_deliveries(c, incident, 2)
            assert [(d["event"], d["state"]) for d in inc["deliveries"]] == [
                ("firing", "done"),
                ("resolved", "done"),
            ]
            resolved = [d for d in hook.deliveries.values() if d["event"] == "resolved"]
            assert len(resolved) == 1
            assert resolved[0]["report_id"] == good and not resolved[0]["degraded"]
            assert [rc["labels"] for rc in resolved[0]["root_causes"]][0] == SHANGHAI_ADMIN
            assert "could not be reached" not in resolved[0]["summary"]
    finally:
        stop()
        faulty_prom.start()


@pytest.mark.usefixtures("database_url")
def test_without_a_good_report_the_degraded_one_is_delivered_once_and_says_only_what_is_true(
    make_settings: Callable[..., Settings], faulty_prom: StoppablePrometheus, hook: FakeWebhook, prom: PromEnv
) -> None:
    faulty_prom.stop()
    env, stop = serve(faulty_settings(make_settings, faulty_prom, hook))
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            created = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="x2")).json()
            incident = created["incidents_created"][0]
            inc = wait_report(c, incident)
            assert inc["investigation"] == "degraded" and inc["jobs"][0]["attempts"] == 2
            inc = wait_deliveries(c, incident, 1)
            assert [d["event"] for d in inc["deliveries"]] == ["firing"]
            report = c.get(inc["report_url"]).json()
            md = c.get(inc["report_url"], params={"format": "md"}).text
            assert "spread across segments" not in md and "will be retried" not in md
            assert "Localization did not run: Prometheus could not be reached." in md
            # The server, not the writer, says what happens next: nothing, unless asked.
            assert report["notes"][-1] == (
                "Prometheus did not answer in 2 attempts; the server does not retry further: "
                f"POST /api/v1/incidents/{incident}/investigate investigates again"
            )
            [sent] = hook.deliveries.values()
            assert sent["degraded"] and "will be retried" not in sent["summary"]
    finally:
        stop()
        faulty_prom.start()
