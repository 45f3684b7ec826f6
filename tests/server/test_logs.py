"""The log over HTTP from the live app: each refused request is one line with its reason (the words of
the answer), and `alertsleuth serve` says when it shuts down on SIGTERM and exits 0."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter import launch as procs
from server.logs import JSONFormatter, Summarized, TextFormatter
from server.payloads import may_hold_surrogates, unencodable
from server.settings import Settings
from tests.conftest import PromEnv, serve
from tests.server.test_api import webhook

TOKEN = "tok-3f9a1c7e"  # the configured secret
WRONG = "wrong-token-b71d"  # what a client sent
MARKER = "body-marker-5e2c"  # in every refused body


def rejections(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "request rejected"]


def lines(record: logging.LogRecord) -> list[str]:
    return [JSONFormatter().format(record), TextFormatter().format(record)]


def assert_clean(record: logging.LogRecord) -> None:
    for line in lines(record):
        assert "\n" not in line, line
        for secret in (TOKEN, WRONG, MARKER, "qs-secret"):
            assert secret not in line, line


def only(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    found = rejections(caplog)
    assert len(found) == 1, [r.__dict__ for r in found]
    caplog.clear()
    return found[0]


def test_each_rejected_request_is_logged_with_its_reason(
    make_settings: Callable[..., Settings], prom: PromEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(prometheus_url=prom.url, auth_token=TOKEN, max_body_bytes=4096)
    env, stop = serve(settings, start_workers=False)
    url = f"{env.url}/api/v1/webhook/alertmanager"
    good = {"Authorization": f"Bearer {TOKEN}"}
    payload = webhook(prom, fingerprint="rej")
    payload["alerts"][0]["annotations"]["description"] = MARKER
    try:
        caplog.clear()
        # 401: the answer's detail and the log's reason are the same words
        r = httpx.post(url, json=payload, headers={"Authorization": f"Bearer {WRONG}"})
        assert r.status_code == 401
        rec = only(caplog)
        assert (rec.status, rec.path, rec.reason) == (401, "/api/v1/webhook/alertmanager", r.json()["detail"])
        assert rec.levelno == logging.WARNING
        assert_clean(rec)

        r = httpx.get(f"{env.url}/api/v1/incidents", params={"token": "qs-secret"})
        assert r.status_code == 401
        rec = only(caplog)
        assert (rec.status, rec.path, rec.reason) == (401, "/api/v1/incidents", r.json()["detail"])
        assert_clean(rec)

        # 413
        big = webhook(prom, fingerprint="big")
        big["alerts"][0]["annotations"]["description"] = MARKER * 1000
        r = httpx.post(url, json=big, headers=good)
        assert r.status_code == 413
        rec = only(caplog)
        assert (rec.status, rec.path, rec.reason) == (413, "/api/v1/webhook/alertmanager", r.json()["detail"])
        assert_clean(rec)

        # 400 and 422: the reason, and the fields and error types of the answer's `errors`
        r = httpx.post(
            url,
            content=b'{"alerts": [' + MARKER.encode(),
            headers={**good, "content-type": "application/json"},
        )
        assert r.status_code == 400
        rec = only(caplog)
        assert (rec.status, rec.path, rec.reason) == (400, "/api/v1/webhook/alertmanager", "malformed JSON")
        assert rec.errors == errors_of(r.json())
        assert "json_invalid" in rec.errors
        assert_clean(rec)

        invalid = webhook(prom, fingerprint="inv")
        invalid["alerts"][0]["labels"] = {"severity": MARKER}  # no alertname
        r = httpx.post(url, json=invalid, headers=good)
        assert r.status_code == 422
        rec = only(caplog)
        assert (rec.status, rec.path, rec.reason) == (422, "/api/v1/webhook/alertmanager", "invalid request")
        assert rec.errors == errors_of(r.json())
        assert_clean(rec)

        # accepted requests log no rejection
        assert httpx.post(url, json=payload, headers=good).status_code == 202
        assert rejections(caplog) == []
    finally:
        stop()


def errors_of(answer: dict[str, Any]) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['type']}" for e in answer["errors"])


def test_serve_logs_shutting_down_and_stopped_on_sigterm_and_exits_0(tmp_path: Path) -> None:
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTSLEUTH_")}
    env.update(
        ALERTSLEUTH_DATABASE_URL=f"sqlite:///{tmp_path / 'alertsleuth.db'}",
        ALERTSLEUTH_REPORTS_DIR=str(tmp_path / "reports"),
        ALERTSLEUTH_PROMETHEUS_URL=f"http://127.0.0.1:{procs.free_port()}",
        ALERTSLEUTH_PORT=str(port),
        ALERTSLEUTH_HOST="127.0.0.1",
        ALERTSLEUTH_LOG_FORMAT="json",
    )
    exe = Path(sys.executable).with_name("alertsleuth")
    proc = subprocess.Popen(
        [str(exe), "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=90, proc=proc)  # type: ignore[arg-type]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert "alertsleuth ready" in events, err
    assert events[-2:] == ["shutting down", "stopped"], err


def test_a_frequent_event_is_logged_one_by_one_up_to_its_lines_then_summarized(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    summarized = Summarized(
        logging.getLogger("t.summary"), "accepted", lines=2, window=60.0, clock=lambda: now[0]
    )
    caplog.set_level(logging.INFO, logger="t.summary")
    for i in range(5):
        summarized.log({"n": i}, {"made": 1, "repeats": i % 2})
    assert [r.getMessage() for r in caplog.records] == ["accepted", "accepted"]
    now[0] = 30.0
    summarized.flush()
    summary = caplog.records[-1]
    assert summary.getMessage() == "accepted: 5 in 30 s, 3 of them not logged one by one"
    assert (summary.events, summary.not_logged, summary.made, summary.repeats) == (5, 3, 5, 2)  # type: ignore[attr-defined]
    caplog.clear()
    now[0] = 100.0  # a new window: one by one again, and nothing to summarize when all were logged
    summarized.log({"n": 9}, {"made": 1})
    summarized.flush()
    assert [r.getMessage() for r in caplog.records] == ["accepted"]


def test_only_a_body_that_can_hold_a_lone_surrogate_is_walked() -> None:
    holding = [
        b'{"a": "\\ud800"}',
        b'{"a": "\\uDC00x"}',
        '{"a": "\ud800"}'.encode("utf-8", "surrogatepass"),
    ]
    for body in holding:
        assert may_hold_surrogates(body) and list(unencodable(json.loads(body))), body
    assert may_hold_surrogates('{"a": "x"}'.encode("utf-16"))
    for body in (b'{"a": "plain"}', '{"isp": "电信", "e": "\\u00e9"}'.encode()):
        assert not may_hold_surrogates(body) and not list(unencodable(json.loads(body))), body
