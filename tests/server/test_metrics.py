"""`/metrics` read over HTTP from the live app: every series means what its name and help say."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import launch as procs
from exporter.fake_openai import Error, ScriptedOpenAI
from server.settings import Settings
from tests.conftest import PromEnv, ServerEnv, serve
from tests.fakes.webhook import FakeWebhook
from tests.server.test_api import wait_report, webhook
from tests.server.test_ask import KEY, _llm_settings, _report_answer


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def wait_metric(c: httpx.Client, name: str, want: float, timeout: float = 10, **labels: str) -> str:
    """The exposition once `name{labels}` reached `want` (counters are bumped after the API shows it)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = c.get("/metrics").text
        if value(text, name, **labels) == want:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{name}{labels} never reached {want}:\n{text}")


def test_no_created_series(make_settings: Callable[..., Settings]) -> None:
    env, stop = serve(make_settings(), start_workers=False)
    try:
        text = httpx.get(f"{env.url}/metrics").text
        assert "alertsleuth_alerts_deduplicated_total 0.0" in text
        assert "_created" not in text, [line for line in text.splitlines() if "_created" in line]
    finally:
        stop()


def test_retried_attempts_are_not_counted_as_finished_investigations(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    settings = make_settings(max_attempts=2, retry_backoff_seconds=0.1)  # Prometheus is a closed port
    env, stop = serve(settings)
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="att"))
            inc = wait_report(c, r.json()["incidents_created"][0])
            assert inc["investigation"] == "degraded" and inc["jobs"][0]["attempts"] == 2
            text = wait_metric(c, "alertsleuth_investigations_total", 1.0, outcome="degraded")
            assert value(text, "alertsleuth_investigations_total", outcome="retried") is None
            assert value(text, "alertsleuth_investigation_attempts_total", outcome="retried") == 1.0
            assert value(text, "alertsleuth_investigation_attempts_total", outcome="degraded") == 1.0
            assert value(text, "alertsleuth_investigation_seconds_count") == 1.0
            # every query of both attempts failed: counted as unavailable, and timed
            down = value(text, "alertsleuth_prometheus_queries_total", outcome="unavailable")
            assert down is not None and down >= 2
            assert not value(text, "alertsleuth_prometheus_queries_total", outcome="ok")
            assert value(text, "alertsleuth_prometheus_query_seconds_count") == down
    finally:
        stop()


@pytest.mark.usefixtures("database_url")
def test_gauges_show_pending_work_and_counters_what_finished(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    closed = f"http://127.0.0.1:{procs.free_port()}/hooks/nobody"
    with FakeWebhook() as hook:
        delivery = {
            "sinks": {
                "hook": {"type": "webhook", "url": hook.hook_url},
                "broken": {"type": "webhook", "url": closed},
            }
        }
        settings = make_settings(prometheus_url=prom.url, delivery=delivery, delivery_max_attempts=1)
        env, stop = serve(settings)
        try:
            with httpx.Client(base_url=env.url, timeout=10) as c:
                r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="gauges"))
                incident = r.json()["incidents_created"][0]
                assert wait_report(c, incident)["investigation"] == "done"
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    ds = c.get(f"/api/v1/incidents/{incident}").json()["deliveries"]
                    if len(ds) == 2 and all(d["state"] in ("done", "failed") for d in ds):
                        break
                    time.sleep(0.05)
                text = wait_metric(c, "alertsleuth_investigations_total", 1.0, outcome="ok")
                # the queue's gauges: what is waiting or running, never the history
                assert value(text, "alertsleuth_queue_jobs", state="queued") == 0.0
                assert value(text, "alertsleuth_queue_jobs", state="running") == 0.0
                assert value(text, "alertsleuth_queue_depth") == 0.0
                assert not [k for k in samples(text) if k[0] == "alertsleuth_queue_jobs"
                            and dict(k[1])["state"] not in ("queued", "running")]  # fmt: skip
                # the outbox's gauges: pending, sending, and failed (what needs a person), never done
                for sink in ("hook", "broken"):
                    assert value(text, "alertsleuth_deliveries", sink=sink, state="pending") == 0.0
                    assert value(text, "alertsleuth_deliveries", sink=sink, state="sending") == 0.0
                assert value(text, "alertsleuth_deliveries", sink="broken", state="failed") == 1.0
                assert value(text, "alertsleuth_deliveries", sink="hook", state="failed") == 0.0
                assert value(text, "alertsleuth_deliveries", sink="hook", state="done") is None
                # what finished is counted
                assert value(text, "alertsleuth_delivery_attempts_total", sink="hook", outcome="sent") == 1.0
                assert (
                    value(text, "alertsleuth_delivery_attempts_total", sink="broken", outcome="failed") == 1.0
                )
                ok = value(text, "alertsleuth_prometheus_queries_total", outcome="ok")
                assert ok is not None and ok > 0
                assert value(text, "alertsleuth_prometheus_query_seconds_count") == ok
        finally:
            stop()


def test_build_info(make_settings: Callable[..., Settings]) -> None:
    env, stop = serve(make_settings(), start_workers=False)
    try:
        text = httpx.get(f"{env.url}/metrics").text
        assert "# TYPE alertsleuth_build_info gauge" in text
        assert value(text, "alertsleuth_build_info", version="0.1.0", python=platform.python_version()) == 1.0
    finally:
        stop()


def test_llm_calls_tokens_and_fallbacks_are_counted_from_the_stored_reports(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    with ScriptedOpenAI([_report_answer, Error(500)], api_key=KEY) as srv:
        env, stop = serve(_llm_settings(make_settings, prom, srv))
        try:
            with httpx.Client(base_url=env.url, timeout=10) as c:
                reports = []
                for fp in ("llm1", "llm2"):
                    r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint=fp))
                    inc = wait_report(c, r.json()["incidents_created"][0])
                    reports.append(c.get(inc["report_url"]).json()["llm"])
                assert reports[0]["fallback_reason"] is None and reports[1]["fallback_reason"]
                text = wait_metric(c, "alertsleuth_investigations_total", 2.0, outcome="ok")
                assert value(text, "alertsleuth_llm_calls_total") == sum(u["calls"] for u in reports) > 0
                prompt = sum(u["prompt_tokens"] for u in reports)
                completion = sum(u["completion_tokens"] for u in reports)
                assert prompt > 0 and completion > 0
                assert value(text, "alertsleuth_llm_tokens_total", kind="prompt") == prompt
                assert value(text, "alertsleuth_llm_tokens_total", kind="completion") == completion
                assert value(text, "alertsleuth_llm_fallbacks_total") == 1.0
        finally:
            stop()


def test_version_flag() -> None:
    exe = Path(sys.executable).with_name("alertsleuth")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"alertsleuth 0\.1\.0\n", out.stdout), out.stdout


def test_metrics_of_an_idle_server_parse(server: ServerEnv) -> None:
    """The exposition stays valid text format with the new families (the parser reads all of it)."""
    text = httpx.get(f"{server.url}/metrics").text
    names = {f.name for f in text_string_to_metric_families(text)}
    for family in (
        "alertsleuth_investigations",
        "alertsleuth_investigation_attempts",
        "alertsleuth_llm_calls",
        "alertsleuth_llm_tokens",
        "alertsleuth_llm_fallbacks",
        "alertsleuth_prometheus_queries",
        "alertsleuth_prometheus_query_seconds",
        "alertsleuth_build_info",
    ):
        assert family in names, family
