"""The UI's question box and settings page in a real headless Chromium (selenium + chromedriver), against
the real app and Prometheus, with a scripted OpenAI-compatible model (exporter/fake_openai.py) as the LLM
and a local webhook receiver (tests/fakes/webhook.py) as the one sink. static/ask.js streams the answer
into the incident page; the settings page shows the sink's secrets masked and sends its test message.

Screenshots are saved under each test's tmp_path and copied to /tmp/alertsleuth-ui-shots/ (10-*.png ...).
Missing chromium or chromedriver skips these tests, or fails them under CI=true (`make browser`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from exporter.fake_openai import Reply, ScriptedOpenAI, Step, ToolCalls
from server.settings import Settings
from tests.conftest import PromEnv, ServerEnv, serve
from tests.fakes.webhook import FakeWebhook
from tests.server.test_api import wait_report, webhook
from tests.server.test_ui_browser import driver, no_alert, shot, submit, until

selenium = pytest.importorskip("selenium")
from selenium.webdriver.common.by import By  # noqa: E402

__all__ = ["driver", "shot"]  # fixtures, shared with test_ui_browser.py

TOKEN = "browser-ask-token"
API = {"Authorization": f"Bearer {TOKEN}"}
KEY = "sk-browser-llm-s3cret"  # distinctive: the page shows paths such as .../ui-ask-browser0/
QUESTION = "Which regions fail logins right now?"
EXPR = 'sum by (ip_region) (rate(user_login_total{login_status="failed"}[5m]))'
ANSWER = "Failed logins come from ip_region=shanghai, see [E1]. <b>not bold</b>"
HMAC = "browser-hmac-s3cret"
PATH_TOKEN = "browser-path-s3cret"


def model(body: dict[str, Any]) -> Step:
    """The scripted LLM: for the UI's question, one instant query, then the answer; any other request
    (the investigation's report writer) gets the answer text."""
    msgs = body.get("messages") or []
    asked = any(QUESTION in str(m.get("content")) for m in msgs)
    if asked and msgs and msgs[-1].get("role") == "user":
        return ToolCalls([("query_instant", {"promql": EXPR})])
    return Reply(ANSWER)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, prom: PromEnv) -> Iterator[tuple[ServerEnv, FakeWebhook]]:
    work = tmp_path_factory.mktemp("ui-ask-browser")
    hook = FakeWebhook(token=PATH_TOKEN, secret=HMAC)
    with ScriptedOpenAI(api_key=KEY, otherwise=model) as llm, hook:
        settings = Settings(
            database_url=f"sqlite:///{work / 'alertsleuth.db'}",
            reports_dir=str(work / "reports"),
            prometheus_url=prom.url,
            prometheus_timeout=3.0,
            poll_interval=0.05,
            retry_backoff_seconds=0.2,
            workers=2,
            auth_token=TOKEN,
            llm_provider="openai-compatible",
            llm_base_url=llm.base_url,
            llm_model="deepseek-chat",
            llm_api_key=KEY,
            llm_max_retries=0,
            llm_timeout=10,
            delivery={"sinks": {"ops-hook": {"type": "webhook", "url": hook.hook_url, "hmac_secret": HMAC}}},
        )
        env, stop = serve(settings)
        yield env, hook
        stop()


@pytest.fixture(scope="module")
def incident(app: tuple[ServerEnv, FakeWebhook], prom: PromEnv) -> int:
    env, _ = app
    with httpx.Client(base_url=env.url, timeout=30, headers=API) as c:
        r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="a5k"))
        assert r.status_code == 202, r.text
        number: int = r.json()["incidents_created"][0]
        assert wait_report(c, number)["investigation"] == "done"
    return number


def test_browser_ask_sign_in(driver: Any, app: tuple[ServerEnv, FakeWebhook]) -> None:
    env, _ = app
    driver.delete_all_cookies()
    driver.get(f"{env.url}/ui/login")
    driver.find_element(By.NAME, "token").send_keys(TOKEN)
    submit(driver, driver.find_element(By.CSS_SELECTOR, "form.login button"))
    assert driver.current_url == f"{env.url}/ui/incidents"
    nav = driver.find_element(By.CSS_SELECTOR, "header nav").text
    assert "Ask" in nav and "Settings" in nav


def test_browser_incident_page_streams_an_answer(
    driver: Any, app: tuple[ServerEnv, FakeWebhook], incident: int, shot: Any
) -> None:
    env, _ = app
    page = f"{env.url}/ui/incidents/{incident}"
    driver.get(page)
    assert not driver.find_elements(By.ID, "no-llm")  # an LLM is configured
    box = driver.find_element(By.CSS_SELECTOR, "#ask-form textarea[name=question]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
    box.send_keys(QUESTION)
    driver.find_element(By.ID, "ask-submit").click()

    def answered() -> bool:
        done = driver.find_elements(By.CSS_SELECTOR, "#conversation .turn.assistant:not(.streaming) .text")
        return bool(done) and done[-1].text == ANSWER

    until(answered, timeout=30)
    assert driver.current_url == page  # streamed into the page: no navigation
    assert no_alert(driver)
    turn = driver.find_element(By.CSS_SELECTOR, "#conversation .turn.assistant")
    assert not turn.find_elements(By.TAG_NAME, "b")  # the model's markup is text
    evidence = turn.find_element(By.CSS_SELECTOR, "ul.evidence").text
    assert EXPR in evidence and "[E" in evidence
    user = driver.find_element(By.CSS_SELECTOR, "#conversation .turn.user .text").text
    assert user == QUESTION
    session = driver.find_element(By.NAME, "session_id").get_attribute("value")
    assert session and len(session) == 32
    driver.execute_script("document.getElementById('ask').scrollIntoView()")
    shot("10-incident-ask-streamed")

    # the conversation is kept: shown again on its own page
    driver.get(f"{env.url}/ui/ask?session={session}")
    turns = driver.find_elements(By.CSS_SELECTOR, "#conversation .turn")
    assert [t.get_attribute("class") for t in turns] == ["turn user", "turn assistant"]
    assert ANSWER in turns[1].text and EXPR in turns[1].text
    assert driver.find_element(By.NAME, "incident_id").get_attribute("value") == str(incident)
    shot("11-ask-page-history")


def test_browser_settings_masks_secrets_and_sends_a_test(
    driver: Any, app: tuple[ServerEnv, FakeWebhook], shot: Any
) -> None:
    env, hook = app
    driver.get(f"{env.url}/ui/settings")
    source = driver.page_source
    for secret in (HMAC, PATH_TOKEN, KEY, TOKEN):
        assert secret not in source, secret
    sink = driver.find_element(By.ID, "sink-ops-hook")
    masked = [c.text for c in sink.find_elements(By.CSS_SELECTOR, "td.masked")]
    assert masked == ["••••", "••••"]  # url, hmac_secret
    server = driver.find_element(By.CSS_SELECTOR, "table.main").text
    assert "openai-compatible (configured)" in server and "deepseek-chat" in server
    shot("12-settings-masked")
    before = len(hook.deliveries)
    submit(driver, sink.find_element(By.CSS_SELECTOR, "button.sink-test"))
    result = driver.find_element(By.ID, "test-result")
    assert "Test message to ops-hook: sent" in result.text
    assert len(hook.deliveries) == before + 1
    assert HMAC not in driver.page_source and PATH_TOKEN not in driver.page_source
    shot("13-settings-test-sent")
