"""The UI's ask pages and settings page over real HTTP (httpx) against the real app and Prometheus, with
no LLM: POST /ui/ask (no JavaScript) and POST /ui/ask/stream (the API stream's events) need the session
and its CSRF token; the settings page never shows a secret's value; a sink's test message arrives (or its
error is shown)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from html import unescape

import httpx
import pytest

from server.settings import Settings
from server.ui.routes import ASK_CSP, CSP
from server.ui.settings import database_url
from tests.conftest import PromEnv, serve
from tests.fakes.webhook import FakeWebhook
from tests.server.test_api import wait_report, webhook
from tests.server.test_ui import API, TOKEN, csrf_of, sign_in

HMAC = "hmac-s3cret-value-7f3a"
HEADER = "Bearer header-s3cret-value-99"
PATH_TOKEN = "path-token-s3cret-4242"


def events(text: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for block in text.strip().split("\n\n"):
        kind = re.search(r"^event: (.+)$", block, re.M)
        data = re.search(r"^data: (.+)$", block, re.M)
        assert kind and data, block
        out.append((kind.group(1), json.loads(data.group(1))))
    return out


@pytest.fixture
def receiver() -> Iterator[FakeWebhook]:
    fake = FakeWebhook(token=PATH_TOKEN, secret=HMAC)
    with fake:
        yield fake


@pytest.fixture
def ui(make_settings: Callable[..., Settings], prom: PromEnv, receiver: FakeWebhook) -> Iterator[str]:
    settings = make_settings(
        prometheus_url=prom.url,
        auth_token=TOKEN,
        llm_provider="none",
        llm_timeout=42,
        max_attempts=5,
        delivery={
            "sinks": {
                "hook": {
                    "type": "webhook",
                    "url": receiver.hook_url,
                    "hmac_secret": HMAC,
                    "headers": {"Authorization": HEADER},
                },
                "dead": {"type": "webhook", "url": "http://127.0.0.1:9/hooks/x"},  # nothing listens
            },
            "route": {
                "sinks": ["hook"],
                "routes": [{"matchers": ['severity="critical"'], "sinks": ["dead"], "send_resolved": False}],
            },
        },
    )
    env, stop = serve(settings)
    yield env.url
    stop()


def test_pages_need_a_session_and_posts_a_csrf_token(ui: str) -> None:
    with httpx.Client(base_url=ui, timeout=10) as c:
        for path in ("/ui/ask", "/ui/settings"):
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=")
        for path in ("/ui/ask", "/ui/ask/stream", "/ui/settings/sinks/hook/test"):
            assert c.post(path, data={"question": "up"}).status_code == 303
        assert sign_in(c).status_code == 303
        for path in ("/ui/ask", "/ui/ask/stream", "/ui/settings/sinks/hook/test"):
            assert c.post(path, data={"question": "up"}).status_code == 403
            assert c.post(path, data={"question": "up", "csrf": "x" * 43}).status_code == 403
        assert c.post("/ui/ask/stream", json={"question": "up"}).status_code == 403
        paths = c.get("/openapi.json").json()["paths"]
        assert not any(p.startswith("/ui") for p in paths)


def test_ask_without_javascript_and_without_an_llm(ui: str, prom: PromEnv) -> None:
    expr = prom.scenarios["burst"].expr().split(" > ")[0]
    with httpx.Client(base_url=ui, timeout=60) as c:
        assert sign_in(c).status_code == 303
        page = c.get("/ui/ask")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == ASK_CSP
        assert "script-src 'self'" in ASK_CSP and "connect-src 'self'" in ASK_CSP
        assert '<script src="/ui/static/ask.js" defer></script>' in page.text
        assert "<script>" not in page.text  # no inline script
        assert 'id="no-llm"' in page.text and "No LLM is configured" in page.text
        assert "a PromQL expression" in page.text and "alerting rule" in page.text
        assert "metric" in page.text and "ALERTSLEUTH_LLM_PROVIDER" in page.text
        csrf = csrf_of(page.text)

        r = c.post("/ui/ask", data={"csrf": csrf, "question": expr})
        assert r.status_code == 200, r.text
        text = unescape(r.text)
        assert f"`{expr}`:" in text  # the breakdown's answer
        assert '<ul class="evidence">' in r.text and "[E1]" in text
        session = re.search(r'name="session_id" value="([0-9a-f]+)"', r.text)
        assert session, r.text
        # the conversation continues, and is shown again on reload
        follow = {
            "csrf": csrf,
            "question": "Why is BurstFailureRatio firing?",
            "session_id": session.group(1),
        }
        r2 = c.post("/ui/ask", data=follow)
        assert r2.status_code == 200, r2.text
        again = c.get("/ui/ask", params={"session": session.group(1)})
        assert again.status_code == 200
        assert unescape(again.text).count('<div class="turn user">') == 2
        assert unescape(again.text).count('<div class="turn assistant">') == 2
        assert f"`{expr}`:" in unescape(again.text) and "Why is BurstFailureRatio firing?" in again.text
        assert c.get("/ui/ask", params={"session": "nope"}).status_code == 404

        # a free question without an LLM: the 503 explained on the page
        free = c.post("/ui/ask", data={"csrf": csrf, "question": "is anything wrong with logins?"})
        assert free.status_code == 503 and "no LLM is configured" in free.text
        bad = c.post("/ui/ask", data={"csrf": csrf, "question": "up", "incident_id": "999999"})
        assert bad.status_code == 404 and "no incident 999999" in bad.text
        empty = c.post("/ui/ask", data={"csrf": csrf, "question": "  "})
        assert empty.status_code == 422


def test_ask_stream_answers_the_api_streams_events(ui: str, prom: PromEnv) -> None:
    expr = prom.scenarios["burst"].expr().split(" > ")[0]
    with httpx.Client(base_url=ui, timeout=60) as c:
        assert sign_in(c).status_code == 303
        csrf = csrf_of(c.get("/ui/ask").text)
        r = c.post("/ui/ask/stream", data={"csrf": csrf, "question": expr})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        got = events(r.text)
        assert got[-1][0] == "answer"
        answer = got[-1][1]
        assert answer["mode"] == "breakdown" and str(answer["answer"]).startswith(f"`{expr}`:")
        # the API's stream, asked the same, answers the same kinds of events
        api = httpx.post(f"{ui}/api/v1/ask/stream", json={"question": expr}, headers=API, timeout=60)
        assert [k for k, _ in events(api.text)] == [k for k, _ in got]
        assert set(answer) == set(events(api.text)[-1][1])
        # a JSON body is taken too; errors are `error` events with the API's status
        r = c.post("/ui/ask/stream", json={"csrf": csrf, "question": "what is wrong?"})
        assert events(r.text) == [("error", {"status": 503, "detail": events(r.text)[0][1]["detail"]})]
        assert "no LLM is configured" in str(events(r.text)[0][1]["detail"])
        missing = c.post("/ui/ask/stream", data={"csrf": csrf, "question": "up", "session_id": "nope"})
        assert missing.status_code == 404
        assert events(missing.text) == [("error", {"status": 404, "detail": "no ask session nope"})]


def test_incident_page_has_a_question_box_in_its_context(ui: str, prom: PromEnv) -> None:
    with httpx.Client(base_url=ui, timeout=30) as api, httpx.Client(base_url=ui, timeout=60) as c:
        api.headers.update(API)
        r = api.post("/api/v1/webhook/alertmanager", json=webhook(prom))
        incident = r.json()["incidents_created"][0]
        wait_report(api, incident)
        assert sign_in(c).status_code == 303
        page = c.get(f"/ui/incidents/{incident}")
        assert page.headers["content-security-policy"] == ASK_CSP
        assert f'name="incident_id" value="{incident}"' in page.text and 'id="ask-form"' in page.text
        assert "answered from the incident's stored report" in unescape(page.text)
        # other pages keep the CSP without scripts
        assert c.get("/ui/incidents").headers["content-security-policy"] == CSP
        r = c.post(
            "/ui/ask/stream",
            data={"csrf": csrf_of(page.text), "question": "why?", "incident_id": str(incident)},
        )
        kind, data = events(r.text)[-1]
        assert kind == "answer" and data["mode"] == "report", data
        assert "stored report" in str(data["answer"])


def test_settings_page_masks_secrets_and_tests_sinks(ui: str, receiver: FakeWebhook) -> None:
    with httpx.Client(base_url=ui, timeout=30) as c:
        assert sign_in(c).status_code == 303
        page = c.get("/ui/settings")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CSP
        for secret in (HMAC, HEADER, PATH_TOKEN, "header-s3cret", TOKEN):
            assert secret not in page.text, secret
        text = unescape(page.text)
        assert "••••" in text and "hook" in text and "webhook" in text
        assert 'severity="critical"' in text and "firing, updated" in text  # the child: no resolved
        assert "firing, updated, resolved" in text
        assert "Authentication" in text and "enabled (token)" in text
        assert "none (not configured)" in text
        # the database URL, and the timeouts and limits the server runs with, read from its settings
        assert re.search(r"<td>Database URL</td><td>sqlite:///[^<]*alertsleuth\.db</td>", page.text)
        limits = dict(
            re.findall(r"<tr><td><code>(ALERTSLEUTH_\w+)</code></td><td[^>]*>([^<]*)</td>", page.text)
        )
        assert limits["ALERTSLEUTH_LLM_TIMEOUT"] == "42 s" and limits["ALERTSLEUTH_MAX_ATTEMPTS"] == "5"
        assert limits["ALERTSLEUTH_LLM_WALL_SECONDS"] == "120 s"
        assert limits["ALERTSLEUTH_LLM_MAX_PROMPT_CHARS"] == "24,000"
        assert limits["ALERTSLEUTH_LLM_TOOLS"] == "unset"  # no LLM: nothing decides it
        assert limits["ALERTSLEUTH_PROMETHEUS_TIMEOUT"] == "3 s"
        assert limits["ALERTSLEUTH_MAX_BODY_BYTES"] == "1,048,576 bytes"
        assert "seconds per model call" in text  # each with its description
        csrf = csrf_of(page.text)

        sent = c.post("/ui/settings/sinks/hook/test", data={"csrf": csrf})
        assert sent.status_code == 200, sent.text
        assert 'id="test-result"' in sent.text and "Test message to hook: sent" in unescape(sent.text)
        assert len(receiver.deliveries) == 1
        (doc,) = receiver.deliveries.values()
        assert doc["event"] == "test" and doc["alertname"] == "AlertsleuthTest"
        for secret in (HMAC, HEADER, PATH_TOKEN):
            assert secret not in sent.text

        failed = c.post("/ui/settings/sinks/dead/test", data={"csrf": csrf})
        assert failed.status_code == 200
        shown = unescape(failed.text)
        assert "Test message to dead: failed" in shown and 'class="error"' in failed.text
        assert "/hooks/x" not in shown  # the URL is a secret: not repeated in the error

        assert c.post("/ui/settings/sinks/nope/test", data={"csrf": csrf}).status_code == 404


def test_the_database_url_is_shown_without_its_secrets() -> None:
    assert database_url("sqlite:///alertsleuth.db") == "sqlite:///alertsleuth.db"
    shown = database_url(
        "postgresql+psycopg://ops:p%40ss-s3cret@db:5432/alerts?sslpassword=k3y&sslmode=require"
    )
    assert shown == "postgresql+psycopg://ops:••••@db:5432/alerts?sslmode=require&sslpassword=••••"
    assert database_url("postgresql://db/alerts?password=s3cret&application_name=as") == (
        "postgresql://db/alerts?application_name=as&password=••••"
    )
    assert database_url("postgresql://ops@db/alerts") == "postgresql://ops@db/alerts"
    assert database_url("not a url") == "••••"
