"""The web UI over real HTTP (httpx) against the real app: sign-in, session cookie, CSRF, pages, escaping,
headers. Semantics: an unauthenticated page is 303 to /ui/login?next=…; a wrong sign-in is 401 with the
form again; a right one is 303 to `next` with a new signed-in cookie; a POST without the session's CSRF
token is 403."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from server.settings import Settings
from server.ui.routes import ASK_CSP, CSP
from server.ui.session import LIFETIME_SECONDS, UISession
from tests.conftest import PromEnv, serve
from tests.server.test_api import wait_report, webhook

TOKEN = "ui-test-token"
API = {"Authorization": f"Bearer {TOKEN}"}
SCRIPT = "<script>alert(1)</script>"


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:2000]
    return m.group(1)


def sign_in(c: httpx.Client, token: str = TOKEN, next_: str = "/ui/incidents") -> httpx.Response:
    form = c.get("/ui/login", params={"next": next_})
    assert form.status_code == 200, form.text
    return c.post("/ui/login", data={"csrf": csrf_of(form.text), "token": token, "next": next_})


def assert_headers(r: httpx.Response, csp: str = CSP) -> None:
    assert r.headers["content-security-policy"] == csp
    assert "script-src" not in CSP  # only the pages with a question box load a script (ASK_CSP)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def foreign_urls(html: str, allowed_hosts: set[str]) -> list[str]:
    """src/href/action URLs that leave the server, except to hosts the data names."""
    found = re.findall(r'(?:src|href|action)\s*=\s*"((?:https?:)?//[^"]*)"', html, re.IGNORECASE)
    return [u for u in found if urlsplit(u).netloc not in allowed_hosts]


class FlakyHook:
    """A local webhook receiver answering 500 until `ok` is set."""

    def __init__(self) -> None:
        self.ok = False
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200 if hook.ok else 500)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[FlakyHook]:
    h = FlakyHook()
    yield h
    h.close()


@pytest.fixture
def ui(make_settings: Callable[..., Settings], prom: PromEnv, hook: FlakyHook) -> Iterator[str]:
    settings = make_settings(
        prometheus_url=prom.url,
        auth_token=TOKEN,
        delivery={"sinks": {"hook": {"type": "webhook", "url": hook.url}}},
        delivery_max_attempts=1,
    )
    env, stop = serve(settings)
    yield env.url
    stop()


def test_root_redirects_and_pages_need_a_session(ui: str) -> None:
    with httpx.Client(base_url=ui, timeout=10) as c:
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/ui/incidents"
        for path in ("/ui/incidents", "/ui/incidents/1"):
            r = c.get(path, params={"status": "firing"})
            assert r.status_code == 303, r.text
            assert r.headers["location"].startswith("/ui/login?next=%2Fui%2Fincidents")
            assert_headers(r)
        # a forged or tampered cookie is no session
        forged = UISession.new(signed_in=True).encode()
        tampered = forged[:-3] + ("AAA" if not forged.endswith("AAA") else "BBB")
        c.cookies.set("alertsleuth_session", tampered, domain="127.0.0.1", path="/ui")
        assert c.get("/ui/incidents").status_code == 303
        # the API's header is taken too
        r = c.get("/ui/incidents", headers=API)
        assert r.status_code == 200 and "Incidents" in r.text
        assert c.get("/ui/incidents", headers={"Authorization": "Bearer nope"}).status_code == 303
        assert c.get("/openapi.json").json()["paths"].keys().isdisjoint({"/", "/ui/incidents", "/ui/login"})


def test_sign_in_cookie_flags_and_sign_out(ui: str) -> None:
    with httpx.Client(base_url=ui, timeout=10) as c:
        form = c.get("/ui/login", params={"next": "/ui/incidents?status=firing"})
        assert form.status_code == 200 and 'name="token"' in form.text and 'name="username"' not in form.text
        assert_headers(form)
        csrf = csrf_of(form.text)
        # no CSRF token, or one for another session: 403
        assert c.post("/ui/login", data={"token": TOKEN}).status_code == 403
        other = UISession.new(signed_in=False).csrf_token()
        assert c.post("/ui/login", data={"csrf": other, "token": TOKEN}).status_code == 403
        # a token holding non-ASCII text (hmac.compare_digest refuses such str): 403, never 500
        assert c.post("/ui/login", data={"csrf": "é" * 43, "token": TOKEN}).status_code == 403
        wrong = c.post("/ui/login", data={"csrf": csrf, "token": "wrong"})
        assert wrong.status_code == 401 and "Wrong credentials" in wrong.text
        assert c.get("/ui/incidents").status_code == 303  # the anonymous session is not signed in
        ok = c.post("/ui/login", data={"csrf": csrf, "token": TOKEN, "next": "/ui/incidents?status=firing"})
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/incidents?status=firing"
        cookie = ok.headers["set-cookie"]
        assert cookie.startswith("alertsleuth_session=")
        flags = {f.strip().lower() for f in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/ui", f"max-age={LIFETIME_SECONDS}"} <= flags
        assert not any(f.startswith("domain") for f in flags)
        page = c.get("/ui/incidents")
        assert page.status_code == 200 and "Sign out" in page.text
        assert c.get("/ui/login").status_code == 303  # signed in already
        # an open redirect is refused: `next` stays on the UI
        for evil in ("//evil.example/x", "https://evil.example/", "/ui//evil.example"):
            assert c.get("/ui/login", params={"next": evil}).headers["location"] == "/ui/incidents"
            data = {"csrf": csrf_of(c.get("/ui/incidents").text), "token": TOKEN, "next": evil}
            assert c.post("/ui/login", data=data).headers["location"] == "/ui/incidents"
        # sign out: CSRF too
        assert c.post("/ui/logout").status_code == 403
        out = c.post("/ui/logout", data={"csrf": csrf_of(c.get("/ui/incidents").text)})
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert c.get("/ui/incidents").status_code == 303


def test_basic_auth_sign_in_and_open_ui(
    make_settings: Callable[..., Settings], tmp_path: Any, prom: PromEnv
) -> None:
    env, stop = serve(make_settings(basic_auth_username="ops", basic_auth_password="pw"), start_workers=False)
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            form = c.get("/ui/login")
            assert 'name="username"' in form.text and 'name="token"' not in form.text
            data = {"csrf": csrf_of(form.text), "username": "ops", "password": "bad"}
            assert c.post("/ui/login", data=data).status_code == 401
            assert c.post("/ui/login", data={**data, "password": "pw"}).status_code == 303
            assert c.get("/ui/incidents").status_code == 200
        basic = "Basic " + base64.b64encode(b"ops:pw").decode()
        with httpx.Client(base_url=env.url, timeout=10) as c:
            assert c.get("/ui/incidents", headers={"Authorization": basic}).status_code == 200
    finally:
        stop()
    env, stop = serve(make_settings(database_url=f"sqlite:///{tmp_path / 'open.db'}"), start_workers=False)
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            page = c.get("/ui/incidents")  # no auth configured: open, like the API
            assert page.status_code == 200 and "Sign out" not in page.text
            assert c.get("/ui/login").status_code == 303
            # forms still carry a CSRF token bound to the anonymous session the page set
            assert "alertsleuth_session" in page.headers["set-cookie"]
            assert c.post("/api/v1/webhook/alertmanager", json=webhook(prom)).status_code == 202
            detail = c.get("/ui/incidents/1")
            assert detail.status_code == 200 and "The investigation is queued" in detail.text
            assert c.post("/ui/incidents/1/investigate").status_code == 403
            r = c.post("/ui/incidents/1/investigate", data={"csrf": csrf_of(detail.text)})
            assert r.status_code == 303
    finally:
        stop()


def test_pages_actions_and_escaping(ui: str, prom: PromEnv, hook: FlakyHook) -> None:
    labels = {"alertname": "HighLoginFailureRate", "severity": "critical", "team": SCRIPT}
    with httpx.Client(base_url=ui, timeout=20) as api, httpx.Client(base_url=ui, timeout=20) as c:
        r = api.post("/api/v1/webhook/alertmanager", json=webhook(prom, labels=labels), headers=API)
        assert r.status_code == 202, r.text
        incident = r.json()["incidents_created"][0]
        api.headers.update(API)
        wait_report(api, incident)
        assert sign_in(c).status_code == 303

        page = c.get("/ui/incidents")
        assert page.status_code == 200
        assert_headers(page)
        assert f'href="/ui/incidents/{incident}"' in page.text
        assert "ip_region=shanghai, user_type=admin" in page.text  # the first root cause
        assert "critical" in page.text and "firing for" in page.text
        assert '<meta http-equiv="refresh" content="15">' in page.text
        assert "<script" not in page.text
        assert foreign_urls(page.text, set()) == []

        for params, shown in (
            ({"status": "resolved"}, False),
            ({"status": "firing"}, True),
            ({"alertname": "Nope"}, False),
            ({"label": f"team={SCRIPT}"}, True),
            ({"label": "team=other"}, False),
            ({"label": [f"team={SCRIPT}", "severity=critical"]}, True),  # repeated: all must match
            ({"label": [f"team={SCRIPT}", "severity=warning"]}, False),
            ({"label": ["severity=critical", "no label"]}, True),  # the bad one is ignored, said so
            ({"q": "shanghai"}, True),
            ({"q": "nowhere-to-be-found"}, False),
        ):
            listed = c.get("/ui/incidents", params=params)
            assert listed.status_code == 200
            assert (f'href="/ui/incidents/{incident}"' in listed.text) is shown, params
        bad = c.get("/ui/incidents", params={"label": "no label"})
        assert bad.status_code == 200 and "A label filter is name=value" in bad.text

        detail = c.get(f"/ui/incidents/{incident}")
        assert detail.status_code == 200, detail.text
        assert_headers(detail, ASK_CSP)  # its question box loads static/ask.js
        text = detail.text
        assert "<svg" in text and 'id="timeline"' in text and "Re-investigate" in text
        assert re.findall(r"<script[^>]*>", text) == ['<script src="/ui/static/ask.js" defer>']
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert foreign_urls(text, {"prometheus:9090", urlsplit(prom.url).netloc}) == []
        csrf = csrf_of(text)
        print(
            f"page weight: /ui/incidents {len(page.content)} B,",
            f"/ui/incidents/{incident} {len(detail.content)} B",
        )

        # re-investigate: CSRF refused, then accepted; a second job
        assert c.post(f"/ui/incidents/{incident}/investigate").status_code == 403
        assert c.post(f"/ui/incidents/{incident}/investigate", data={"csrf": "x" * 43}).status_code == 403
        again = c.post(f"/ui/incidents/{incident}/investigate", data={"csrf": csrf})
        assert again.status_code == 303 and again.headers["location"] == f"/ui/incidents/{incident}#timeline"
        jobs = wait_report(api, incident)["jobs"]
        deadline = time.monotonic() + 30
        while len(jobs) < 2 or jobs[-1]["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, jobs
            time.sleep(0.1)
            jobs = api.get(f"/api/v1/incidents/{incident}").json()["jobs"]
        assert len(jobs) == 2

        # the webhook sink failed (500, one attempt): a Retry button; retried once the hook answers
        deadline = time.monotonic() + 30
        while not (
            failed := [
                d
                for d in api.get(f"/api/v1/incidents/{incident}").json()["deliveries"]
                if d["state"] == "failed"
            ]
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        delivery = failed[0]["id"]
        detail = c.get(f"/ui/incidents/{incident}")
        action = f"/ui/incidents/{incident}/deliveries/{delivery}/retry"
        assert f'action="{action}"' in detail.text and "Retry" in detail.text
        assert c.post(action, data={"csrf": "nope"}).status_code == 403
        hook.ok = True
        retried = c.post(action, data={"csrf": csrf})
        assert retried.status_code == 303
        deadline = time.monotonic() + 30
        while (d := api.get(f"/api/v1/incidents/{incident}").json()["deliveries"][0])["state"] != "done":
            assert time.monotonic() < deadline, d
            time.sleep(0.1)
        assert c.post(action, data={"csrf": csrf}).status_code == 409  # no longer failed
        assert (
            c.post(f"/ui/incidents/{incident}/deliveries/999/retry", data={"csrf": csrf}).status_code == 404
        )

        # unknown and malformed ids: the 404 page
        for bad_id in ("999999", "0", "abc", "9" * 30, "%3Cscript%3E"):
            missing = c.get(f"/ui/incidents/{bad_id}")
            assert missing.status_code == 404 and "There is no incident" in missing.text
            assert "<script>" not in missing.text
            assert_headers(missing)
        assert c.post("/ui/incidents/999999/investigate", data={"csrf": csrf}).status_code == 404


def test_paging(make_settings: Callable[..., Settings], prom: PromEnv) -> None:
    env, stop = serve(make_settings(prometheus_url=prom.url), start_workers=False)
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            for i in range(30):
                r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint=f"p{i:02d}"))
                assert r.status_code == 202
            first = c.get("/ui/incidents", params={"limit": 25})
            assert first.text.count('<tr>\n<td class="num">') == 25
            assert 'rel="next" href="/ui/incidents?limit=25&amp;offset=25"' in first.text
            assert 'rel="prev"' not in first.text and "1–25 of 30" in first.text
            second = c.get("/ui/incidents", params={"limit": 25, "offset": 25})
            assert second.text.count('<tr>\n<td class="num">') == 5
            assert 'rel="prev" href="/ui/incidents?limit=25&amp;offset=0"' in second.text
            assert 'rel="next"' not in second.text and "26–30 of 30" in second.text
            assert c.get("/ui/incidents", params={"offset": "9" * 40}).status_code == 200
            # several label filters: all must match, each kept in the form and in the pager's links
            two = ["severity=critical", "alertname=HighLoginFailureRate"]
            both = c.get("/ui/incidents", params={"label": two, "limit": 25})
            assert both.text.count('<tr>\n<td class="num">') == 25 and "1–25 of 30" in both.text
            kept = "label=severity%3Dcritical&amp;label=alertname%3DHighLoginFailureRate"
            assert f'rel="next" href="/ui/incidents?{kept}&amp;limit=25&amp;offset=25"' in both.text
            for value in (*two, ""):
                assert f'name="label" value="{value}"' in both.text
            assert "And label" in both.text
            assert "1–25 of 30" not in c.get("/ui/incidents", params={"label": [*two, "severity=none"]}).text
            many = c.get("/ui/incidents", params={"label": [f"l{i}=x" for i in range(12)]})
            assert "At most 10 label filters" in many.text and 'value="l9=x"' in many.text
            assert 'value="l10=x"' not in many.text
    finally:
        stop()


HOSTILE_GETS = [
    "/ui/incidents?offset=99999999999999999999999",
    "/ui/incidents?offset=-1&limit=abc",
    "/ui/incidents?limit=1e9&status=%00",
    "/ui/incidents?label=%ff%fe",
    "/ui/incidents?label==&q=%22",
    "/ui/incidents?q=" + "x" * 5000,
    "/ui/incidents?q=%ed%a0%80&alertname=%00",
    "/ui/incidents?label=" + "a" * 1000 + "=b",
    "/ui/incidents?q=NEAR(",
    "/ui/incidents/0",
    "/ui/incidents/99999999999999999999",
    "/ui/incidents/%00",
    "/ui/ask?session=%00",
    "/ui/ask?session=" + "a" * 500,
    "/ui/ask?incident=99999999999999999999",
    "/ui/login?next=//evil.example",
    "/ui/login?next=%ff",
    "/ui/static/../app.py",
]


def test_hostile_requests_get_an_answer_never_a_server_error(ui: str) -> None:
    with httpx.Client(base_url=ui, timeout=30) as c:
        sign_in(c)
        for path in HOSTILE_GETS:
            assert c.get(path).status_code < 500, path
        csrf = csrf_of(c.get("/ui/ask").text)
        for data in [
            {"csrf": csrf, "question": "x" * 100_000},
            {"csrf": csrf, "question": "up", "incident_id": "999999999999999999999"},
            {"csrf": csrf, "question": "up", "session_id": "\x00"},
            {"csrf": csrf},
        ]:
            for path in ("/ui/ask", "/ui/ask/stream"):
                assert c.post(path, data=data).status_code < 500, (path, list(data))
        for body in (b"\xff\xfe", b"csrf=%ff", b"a" * 200_000, b'{"csrf": 1}', b"[]"):
            for ct in ("application/x-www-form-urlencoded", "application/json", "text/plain"):
                for path in ("/ui/ask/stream", "/ui/login", "/ui/logout"):
                    r = c.post(path, content=body, headers={"content-type": ct})
                    assert r.status_code < 500, (path, ct, body[:20])


def test_an_incident_being_investigated_reloads_through_its_script(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    """A page with the question box must not lose a question to a meta refresh: its script reloads it
    (and holds off while a question is written or answered); without scripts, <noscript> does."""
    env, stop = serve(make_settings(prometheus_url=prom.url), start_workers=False)  # stays queued
    try:
        with httpx.Client(base_url=env.url, timeout=20) as c:
            incident = c.post("/api/v1/webhook/alertmanager", json=webhook(prom)).json()["incidents_created"][
                0
            ]
            page = c.get(f"/ui/incidents/{incident}").text
            listing = c.get("/ui/incidents").text
    finally:
        stop()
    assert '<body data-refresh="5">' in page and '<script src="/ui/static/ask.js" defer></script>' in page
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page
    assert page.count('http-equiv="refresh"') == 1
    assert '<meta http-equiv="refresh" content="15">' in listing and "<noscript>" not in listing


def test_failed_sign_ins_are_throttled_per_address(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    env, stop = serve(make_settings(prometheus_url=prom.url, auth_token=TOKEN), start_workers=False)
    try:
        with httpx.Client(base_url=env.url, timeout=20) as c:
            answers = [sign_in(c, token="wrong").status_code for _ in range(5)]
            throttled = sign_in(c, token=TOKEN)  # even the right token waits: the address is throttled
            metrics = c.get("/metrics").text
    finally:
        stop()
    assert answers == [401] * 5
    assert throttled.status_code == 429 and 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert "Too many failed sign-ins" in throttled.text
    assert 'alertsleuth_requests_rejected_total{reason="throttled"} 1.0' in metrics


def test_the_throttle_forgets_failures_outside_its_window() -> None:
    from server.ui.throttle import FailureThrottle

    t = FailureThrottle(limit=2, window=10)
    t.failed("a", 0.0)
    t.failed("a", 1.0)
    assert t.retry_after("a", 2.0) == 8.0 and t.retry_after("b", 2.0) is None
    assert t.retry_after("a", 10.5) is None  # the first failure left the window
    t.failed("a", 11.0)
    t.succeeded("a")
    assert t.retry_after("a", 11.0) is None
