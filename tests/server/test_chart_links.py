"""Signed chart links: signing and verifying, the setting, the unauthenticated /charts/... route against
the real app with a real report, and a Slack message whose image URL downloads the chart from it."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image
from pydantic import ValidationError

from server.chart_links import chart_url, signature, verify
from server.delivery.base import TicketSlot
from server.delivery.notice import build_notice
from server.delivery.sinks.slack import SlackConfig, SlackSink
from server.settings import Settings, problems
from tests.conftest import PromEnv, ServerEnv, serve
from tests.fakes.slack import FakeSlack
from tests.server.delivery.test_chat_sinks import notice
from tests.server.test_charts_api import _report

KEY = "k" * 32 + "-chart-link-test-key"
BASE = "https://alertsleuth.example.com/"


def test_a_link_verifies_until_it_expires() -> None:
    url = chart_url(BASE, KEY, "r-1", "signal", 60, now=1000)
    parts = urlsplit(url)
    assert url.startswith("https://alertsleuth.example.com/charts/r-1/signal.png?exp=1060&sig=")
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["sig"] == signature(KEY, "r-1", "signal", 1060) and "=" not in q["sig"]
    assert verify(KEY, "r-1", "signal", q["exp"], q["sig"], now=1059) == "ok"
    assert verify(KEY, "r-1", "signal", q["exp"], q["sig"], now=1061) == "expired"
    assert verify(KEY, "r-2", "signal", q["exp"], q["sig"], now=1000) == "bad"  # another report
    assert verify(KEY, "r-1", "cause-1", q["exp"], q["sig"], now=1000) == "bad"  # another chart
    assert verify(KEY, "r-1", "signal", "9999999999", q["sig"], now=1000) == "bad"  # a later expiry
    assert verify("x" * 40, "r-1", "signal", q["exp"], q["sig"], now=1000) == "bad"  # another key
    for exp, sig in [(None, q["sig"]), (q["exp"], None), ("", ""), ("-1", q["sig"]), ("1e9", q["sig"])]:
        assert verify(KEY, "r-1", "signal", exp, sig, now=1000) == "bad"
    assert verify(KEY, "r-1", "signal", q["exp"], "é" + q["sig"][1:], now=1000) == "bad"


def test_a_short_key_is_refused_naming_the_setting(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValidationError) as err:
        make_settings(chart_link_key="short-secret")
    (problem,) = err.value.errors()
    assert problem["loc"] == ("chart_link_key",) and "at least 32 characters" in problem["msg"]
    (line,) = problems(err.value)  # what `alertsleuth` prints before it exits with 2: never the value
    assert line.startswith("chart_link_key: must be at least 32 characters") and "short-secret" not in line
    assert make_settings(chart_link_key="").chart_link_key is None
    assert make_settings().chart_link_seconds == 7 * 24 * 3600


@pytest.fixture
def linked(make_settings: Callable[..., Settings], prom: PromEnv) -> Iterator[ServerEnv]:
    env, stop = serve(make_settings(prometheus_url=prom.url, chart_link_key=KEY, auth_token="api-token"))
    yield env
    stop()


def _signed(env: ServerEnv, report_id: str, chart: str = "signal", seconds: float = 600) -> str:
    return chart_url(env.url, KEY, report_id, chart, seconds)


def test_a_signed_link_serves_the_png_without_credentials(linked: ServerEnv, prom: PromEnv) -> None:
    auth = {"Authorization": "Bearer api-token"}
    with httpx.Client(base_url=linked.url, timeout=30, headers=auth) as c:
        report = _report(c, prom)
    with httpx.Client(timeout=30) as anyone:
        r = anyone.get(_signed(linked, report.id))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(r.content)) as image:
            image.verify()
            assert image.format == "PNG"
        assert anyone.get(f"{linked.url}/api/v1/reports/{report.id}/charts/signal.png").status_code == 401

        good = _signed(linked, report.id)
        tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
        other = good.replace(f"/charts/{report.id}/", "/charts/another-report/")
        expired = _signed(linked, report.id, seconds=-5)
        unsigned = f"{linked.url}/charts/{report.id}/signal.png"
        for url, detail in [
            (tampered, "bad signature"),
            (other, "bad signature"),
            (unsigned, "bad signature"),
            (expired, "link expired"),
        ]:
            answer = anyone.get(url)
            assert answer.status_code == 403 and answer.json()["detail"] == detail, (url, answer.text)

        missing_chart = anyone.get(_signed(linked, report.id, "cause-99"))
        assert missing_chart.status_code == 404 and "has no chart cause-99" in missing_chart.json()["detail"]
        missing_report = anyone.get(_signed(linked, "no-such-report"))
        assert missing_report.status_code == 404 and "no report no-such-report" in missing_report.text


def test_without_a_key_every_link_is_404(server: ServerEnv, prom: PromEnv) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        report = _report(c, prom)
        for url in [_signed(server, report.id), f"/charts/{report.id}/signal.png", "/charts/x/signal.png"]:
            r = c.get(url)
            assert r.status_code == 404 and r.json()["detail"] == "chart links are not enabled"


def test_the_notice_links_the_signal_chart_and_slack_shows_it(linked: ServerEnv, prom: PromEnv) -> None:
    with httpx.Client(base_url=linked.url, timeout=30, headers={"Authorization": "Bearer api-token"}) as c:
        report = _report(c, prom)
    store = linked.app.state.services.store
    row, _ = store.reports.get(report.id)
    inc = store.incidents.detail(next(i.id for i in store.incidents.page(None, None, 10, 0)[0])).incident

    plain = build_notice("firing", inc, row, change=None, external_url=linked.url)
    assert plain.chart_url is None
    no_base = build_notice("firing", inc, row, change=None, external_url=None, chart_link_key=KEY)
    assert no_base.chart_url is None
    linked_notice = build_notice(
        "firing",
        inc,
        row,
        change=None,
        external_url=linked.url + "/",
        chart_link_key=KEY,
        chart_link_seconds=60,
    )
    url = linked_notice.chart_url
    assert url and url.startswith(f"{linked.url}/charts/{report.id}/signal.png?exp=")
    exp = int(parse_qs(urlsplit(url).query)["exp"][0])
    assert time.time() + 50 < exp <= time.time() + 60

    slack = FakeSlack()
    slack.start()
    try:
        with httpx.Client(timeout=30) as http:
            sink = SlackSink(
                "slack", SlackConfig.model_validate({"type": "slack", "webhook_url": slack.webhook_url}), http
            )
            sink.send(notice(alertname=inc.alertname, chart_url=url), TicketSlot(None, lambda ref: None))
            image = next(b for b in slack.messages[0]["blocks"] if b["type"] == "image")
            assert image["alt_text"] == f"{inc.alertname} signal"
            fetched = http.get(image["image_url"])  # as Slack would: no credentials
            assert fetched.status_code == 200 and fetched.content.startswith(b"\x89PNG\r\n\x1a\n")
    finally:
        slack.stop()


def test_the_signed_route_is_documented(linked: ServerEnv) -> None:
    doc = httpx.get(f"{linked.url}/openapi.json", headers={"Authorization": "Bearer api-token"}).json()
    operation = doc["paths"]["/charts/{report_id}/{key}.png"]["get"]
    assert {"200", "403", "404", "422"} <= set(operation["responses"])
    assert "security" not in operation
    assert {p["name"] for p in operation["parameters"]} == {"report_id", "key", "exp", "sig"}


def test_through_the_outbox_slack_gets_the_signed_chart(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    """The running app's own delivery: the notice it builds carries the link, Slack's message the image."""
    from exporter.launch import free_port, serve_in_thread
    from server.app import create_app
    from tests.server.test_api import wait_report, webhook

    port = free_port()
    with FakeSlack() as slack:
        settings = make_settings(
            prometheus_url=prom.url,
            chart_link_key=KEY,
            external_url=f"http://127.0.0.1:{port}",  # the app's own address: Slack fetches from it
            delivery={"sinks": {"chat": {"type": "slack", "webhook_url": slack.webhook_url}}},
        )
        url, stop = serve_in_thread(create_app(settings), port)
        env = ServerEnv(url, settings, None)
        try:
            with httpx.Client(base_url=env.url, timeout=30) as c:
                incident = c.post("/api/v1/webhook/alertmanager", json=webhook(prom)).json()
                wait_report(c, incident["incidents_created"][0])
                deadline = time.monotonic() + 30
                while not slack.messages and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert slack.messages, "nothing reached Slack"
                image = next(b for b in slack.messages[0]["blocks"] if b["type"] == "image")
                fetched = httpx.get(image["image_url"], timeout=30)
        finally:
            stop()
    assert image["image_url"].startswith(f"{env.url}/charts/")
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"


def test_a_chart_slack_cannot_fetch_leaves_the_message_without_it() -> None:
    """Slack refuses a whole message whose image it cannot download (invalid_blocks): the message is sent
    again without the chart, and the delivery says so."""
    with FakeSlack() as slack:
        slack.fetch_images = True
        with httpx.Client(timeout=30) as http:
            sink = SlackSink(
                "slack", SlackConfig.model_validate({"type": "slack", "webhook_url": slack.webhook_url}), http
            )
            unreachable = "http://127.0.0.1:9/charts/r1/signal.png?exp=1&sig=x"
            out = sink.send(notice(chart_url=unreachable), TicketSlot(None, lambda ref: None))
    assert "without the chart" in out.detail
    assert len(slack.messages) == 1 and all(b["type"] != "image" for b in slack.messages[0]["blocks"])
