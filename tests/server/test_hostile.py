"""Hostile input over HTTP against the live app: a precise 4xx, never a 5xx, never a poison job.

Ids beyond 64 bits, strings that cannot be encoded as UTF-8 (lone surrogates), times out of range,
bodies before credentials, content types that are not JSON, bidi controls in labels; and jobs whose
attempts keep failing (rows a previous version could have stored) end `failed`, visibly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from agent.models import utcnow
from server.db import Incident, Job, Store
from server.db.jobs import LOST_WORKER_TRIES
from server.settings import Settings
from tests.conftest import PromEnv, ServerEnv, serve
from tests.server.test_api import wait_report, webhook

BIG = 2**63  # one past SQLite's INTEGER
TOP = 2**63 - 1


@pytest.fixture
def offline(make_settings: Callable[..., Settings], prom: PromEnv) -> Iterator[ServerEnv]:
    env, stop = serve(make_settings(prometheus_url=prom.url, llm_provider="none"), start_workers=False)
    yield env
    stop()


JSON = {"content-type": "application/json"}


# --- 9: ids beyond 64 bits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", f"/api/v1/incidents/{BIG}", "incident_id"),
        ("GET", "/api/v1/incidents/0", "incident_id"),
        ("POST", f"/api/v1/incidents/{BIG}/investigate", "incident_id"),
        ("POST", f"/api/v1/incidents/1/deliveries/{BIG}/retry", "delivery_id"),
        ("POST", f"/api/v1/incidents/{BIG}/deliveries/1/retry", "incident_id"),
        ("GET", f"/api/v1/incidents?offset={BIG}", "offset"),
        ("GET", f"/api/v1/incidents?limit={BIG}", "limit"),
    ],
)
def test_ids_beyond_64_bits_are_422_naming_the_parameter(
    offline: ServerEnv, method: str, path: str, name: str
) -> None:
    r = httpx.request(method, offline.url + path, timeout=10)
    assert r.status_code == 422, r.text
    assert name in r.json()["detail"]


@pytest.mark.usefixtures("database_url")
def test_the_largest_id_is_in_range_and_simply_unknown(offline: ServerEnv) -> None:
    assert httpx.get(f"{offline.url}/api/v1/incidents/{TOP}").status_code == 404
    assert httpx.post(f"{offline.url}/api/v1/incidents/{TOP}/investigate").status_code == 404
    assert httpx.post(f"{offline.url}/api/v1/incidents/{TOP}/deliveries/{TOP}/retry").status_code == 404
    page = httpx.get(f"{offline.url}/api/v1/incidents", params={"offset": TOP})
    assert page.status_code == 200 and page.json()["items"] == []


def test_ask_incident_id_beyond_64_bits_is_422(offline: ServerEnv) -> None:
    r = httpx.post(f"{offline.url}/api/v1/ask", json={"question": "up", "incident_id": BIG}, timeout=10)
    assert r.status_code == 422, r.text
    assert "incident_id" in r.json()["detail"]


# --- 10: lone surrogates and poison jobs ------------------------------------------------------------


def _with_surrogate(prom: PromEnv, fingerprint: str, where: str) -> dict[str, Any]:
    payload = webhook(prom, fingerprint=fingerprint)
    payload["alerts"][0][where]["instance"] = "sur\ud800"
    return payload


@pytest.mark.parametrize("fingerprint", ["5e", ""])
@pytest.mark.parametrize("where", ["labels", "annotations"])
def test_a_lone_surrogate_in_the_webhook_is_422_before_anything_is_stored(
    server: ServerEnv, prom: PromEnv, fingerprint: str, where: str
) -> None:
    body = json.dumps(_with_surrogate(prom, fingerprint, where)).encode()  # sent as the escape \ud800
    assert b"\\ud800" in body
    r = httpx.post(f"{server.url}/api/v1/webhook/alertmanager", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert f"alerts.0.{where}.instance" in detail and "UTF-8" in detail
    assert httpx.get(f"{server.url}/api/v1/incidents").json()["total"] == 0


def test_a_lone_surrogate_in_the_prometheus_alert_list_is_422(server: ServerEnv, prom: PromEnv) -> None:
    alert = webhook(prom)["alerts"][0]
    posted = [{"labels": {**alert["labels"], "job": "\udc00x"}, "startsAt": alert["startsAt"]}]
    body = json.dumps(posted).encode()
    r = httpx.post(f"{server.url}/api/v2/alerts", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert "0.labels.job" in r.json()["detail"]
    # a lone surrogate in a label *name* is named too
    posted = [{"labels": {**alert["labels"], "j\ud800": "x"}, "startsAt": alert["startsAt"]}]
    body = json.dumps(posted).encode()
    r = httpx.post(f"{server.url}/api/v2/alerts", content=body, headers=JSON)
    assert r.status_code == 422 and "0.labels" in r.json()["detail"]
    assert httpx.get(f"{server.url}/api/v1/incidents").json()["total"] == 0


def test_a_lone_surrogate_in_a_question_is_422(offline: ServerEnv) -> None:
    body = json.dumps({"question": "up\ud800"}).encode()
    r = httpx.post(f"{offline.url}/api/v1/ask", content=body, headers=JSON, timeout=10)
    assert r.status_code == 422 and "question" in r.json()["detail"]


def _plant(store: Store, labels: Any, **job: Any) -> tuple[int, int]:
    """An incident and its job as rows, the way an older version (or a hand edit) could have left them."""
    with store.session() as s:
        inc = Incident(
            fingerprint="bad",
            alertname="Planted",
            starts_at=utcnow() - timedelta(minutes=5),
            labels=labels,
            annotations={},
            investigation="queued",
        )
        s.add(inc)
        s.flush()
        row = Job(incident_id=inc.id, **job)
        s.add(row)
        s.flush()
        return inc.id, row.id


def _wait_job(store: Store, job_id: int, timeout: float = 20) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            if job.state == "failed":
                return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job.state} after {timeout}s (attempts {job.attempts})")


@pytest.mark.usefixtures("database_url")
def test_an_unreadable_job_fails_visibly_and_does_not_block_the_queue(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    settings = make_settings(prometheus_url=prom.url, workers=1)
    store = Store(settings.database_url)
    incident_id, job_id = _plant(store, {"alertname": 5})  # a label value that is not a string
    env, stop = serve(settings)
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="fine"))
            assert r.status_code == 202
            assert wait_report(c, r.json()["incidents_created"][0])["investigation"] == "done"
            job = _wait_job(store, job_id)
            assert job.last_error and "cannot read" in job.last_error
            with store.session() as s:
                inc = s.get(Incident, incident_id)
                assert inc is not None and inc.investigation == "failed" and inc.error == job.last_error
            assert 'alertsleuth_investigations_total{outcome="failed"} 1.0' in c.get("/metrics").text
    finally:
        stop()
        store.close()


@pytest.mark.usefixtures("database_url")
def test_a_job_out_of_attempts_when_its_lease_ran_out_fails_instead_of_running_again(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    settings = make_settings(prometheus_url=prom.url, max_attempts=3)
    env, stop = serve(settings)
    store = Store(settings.database_url)
    past = utcnow() - timedelta(minutes=1)
    labels = webhook(prom)["alerts"][0]["labels"]
    # its workers kept dying: 3 attempts, and the LOST_WORKER_TRIES more a lost worker is allowed
    spent = 3 + LOST_WORKER_TRIES
    _, job_id = _plant(
        store, labels, state="running", attempts=spent, lease_until=past, not_before=past, worker="w-gone-0"
    )
    try:
        job = _wait_job(store, job_id)
        assert job.attempts == spent and job.last_error and "lease" in job.last_error
        text = httpx.get(f"{env.url}/metrics").text
        assert 'alertsleuth_investigations_total{outcome="failed"} 1.0' in text
    finally:
        stop()
        store.close()


# --- 12: times out of range in ask ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"question": "0", "end": "0001-01-01T00:00:01Z"}', "end must lie between 1970"),
        (b'{"question": "0", "start": "1969-12-31T23:59:59Z"}', "start must lie between 1970"),
        (b'{"question": "0", "end": "9999-12-31T23:59:59Z"}', "end must lie between 1970"),
        (b'{"question": "0", "end": -1}', "must be an RFC 3339 time string"),  # not a Unix time
        (b'{"question": "0", "end": 1e400}', "end"),
        (b'{"question": "0", "end": Infinity}', "end"),
        (b'{"question": "0", "start": NaN}', "start"),
    ],
)
def test_ask_times_out_of_range_are_422_with_a_sentence(offline: ServerEnv, body: bytes, needle: str) -> None:
    r = httpx.post(f"{offline.url}/api/v1/ask", content=body, headers=JSON, timeout=10)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]


# --- 13: authentication first, 415, bidi controls ---------------------------------------------------


def test_credentials_are_checked_before_the_body_is_read(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    env, stop = serve(make_settings(prometheus_url=prom.url, auth_token="s3cret"), start_workers=False)
    try:
        for path in ("/api/v1/webhook/alertmanager", "/api/v2/alerts", "/api/v1/ask"):
            for headers in ({"content-type": "application/json"}, {"content-type": "text/plain"}):
                r = httpx.post(env.url + path, content=b'{"version": "4", "alerts": [', headers=headers)
                assert r.status_code == 401, (path, headers, r.text)
        good = {"Authorization": "Bearer s3cret", "content-type": "application/json"}
        r = httpx.post(f"{env.url}/api/v1/webhook/alertmanager", content=b'{"alerts": [', headers=good)
        assert r.status_code == 400
    finally:
        stop()


@pytest.mark.parametrize("path", ["/api/v1/webhook/alertmanager", "/api/v2/alerts", "/api/v1/ask"])
@pytest.mark.parametrize(
    "ctype", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_a_body_that_is_not_json_is_415(offline: ServerEnv, path: str, ctype: str | None) -> None:
    headers = {"content-type": ctype} if ctype else {}
    r = httpx.post(offline.url + path, content=b'{"question": "up"}', headers=headers, timeout=10)
    assert r.status_code == 415, r.text
    assert "application/json" in r.json()["detail"]


def test_json_with_parameters_or_a_json_suffix_is_accepted(server: ServerEnv, prom: PromEnv) -> None:
    for i, ctype in enumerate(("application/json; charset=utf-8", "application/vnd.alertmanager+json")):
        body = json.dumps(webhook(prom, fingerprint=f"ct{i}")).encode()
        r = httpx.post(
            f"{server.url}/api/v1/webhook/alertmanager", content=body, headers={"content-type": ctype}
        )
        assert r.status_code == 202, (ctype, r.text)


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_bidi_controls_in_labels_show_escaped_in_the_rendered_report(
    server: ServerEnv, prom: PromEnv
) -> None:
    payload = webhook(prom, fingerprint="b1d1")
    alert = payload["alerts"][0]
    alert["labels"]["instance"] = "admin\u202egnp.exe"
    alert["annotations"]["summary"] = "see \u2066" + BIDI
    alert["annotations"]["runbook_url"] = "https://example.org/\u202erun"
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/api/v1/webhook/alertmanager", json=payload)
        assert r.status_code == 202, r.text
        inc = wait_report(c, r.json()["incidents_created"][0])
        report = c.get(inc["report_url"]).json()
        assert report["alert"]["labels"]["instance"] == "admin\u202egnp.exe"  # the JSON keeps the data
        for fmt in ("md", "html"):
            text = c.get(inc["report_url"], params={"format": fmt}).text
            assert not set(BIDI) & set(text), fmt
            assert "admin\\u202egnp.exe" in text, fmt
            assert "\\u2066\\u202a\\u202b\\u202c\\u202d\\u202e\\u2066\\u2067\\u2068\\u2069" in text, fmt


# --- 14: a body that does not parse is 400 with the same body as any malformed JSON ----------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"question": "\xc3\x28"}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"question": ', "JSON decode error"),
    ],
)
def test_a_body_that_does_not_parse_is_400_naming_why(offline: ServerEnv, body: bytes, needle: str) -> None:
    r = httpx.post(f"{offline.url}/api/v1/ask", content=body, headers=JSON, timeout=10)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert needle in answer["detail"] and answer["errors"][0]["type"] == "json_invalid"
