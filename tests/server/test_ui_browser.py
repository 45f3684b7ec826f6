"""The web UI in a real headless Chromium (selenium + chromedriver) against the real app, its workers and
the real Prometheus of the `prom` fixture. One server and one browser for the module; the tests run in
file order (sign-in before the pages that need it). Screenshots are saved under each test's tmp_path
and copied to /tmp/alertsleuth-ui-shots/.

Missing chromium or chromedriver skips these tests, or fails them under CI=true (`make browser`)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter import launch as procs
from server.settings import Settings
from tests.binaries import require_browser_binary
from tests.conftest import PromEnv, ServerEnv, serve
from tests.server.test_api import wait_report, webhook

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.expected_conditions import staleness_of  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TOKEN = "browser-token"
API = {"Authorization": f"Bearer {TOKEN}"}
SCRIPT = "<script>alert(1)</script>"
SHOTS = Path("/tmp/alertsleuth-ui-shots")
WIDTH, HEIGHT = 1280, 800


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    chromium = require_browser_binary("chromium")
    chromedriver = require_browser_binary("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},{HEIGHT}",
    ):
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    d = webdriver.Chrome(service=Service(chromedriver), options=options)
    d.set_page_load_timeout(30)
    # the viewport, not the window, is 1280x800
    inner = d.execute_script("return [window.innerWidth, window.innerHeight]")
    d.set_window_size(WIDTH + (WIDTH - inner[0]), HEIGHT + (HEIGHT - inner[1]))
    yield d
    d.quit()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, prom: PromEnv) -> Iterator[ServerEnv]:
    work = tmp_path_factory.mktemp("ui-browser")
    settings = Settings(
        database_url=f"sqlite:///{work / 'alertsleuth.db'}",
        reports_dir=str(work / "reports"),
        prometheus_url=prom.url,
        prometheus_timeout=3.0,
        poll_interval=0.05,
        retry_backoff_seconds=0.2,
        workers=2,
        auth_token=TOKEN,
    )
    env, stop = serve(settings)
    yield env
    stop()


@pytest.fixture(scope="module")
def incident(app: ServerEnv, prom: PromEnv) -> int:
    """An investigated incident whose `team` label holds a script tag."""
    labels = {"alertname": "HighLoginFailureRate", "severity": "critical", "team": SCRIPT}
    with httpx.Client(base_url=app.url, timeout=20, headers=API) as c:
        r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, labels=labels, fingerprint="b0b"))
        assert r.status_code == 202, r.text
        number: int = r.json()["incidents_created"][0]
        assert wait_report(c, number)["investigation"] == "done"
    return number


@pytest.fixture
def shot(driver: Any, tmp_path: Path) -> Callable[[str], Path]:
    def take(name: str) -> Path:
        path = tmp_path / f"{name}.png"
        driver.save_screenshot(str(path))
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / path.name)
        print(f"screenshot: {path} (copied to {SHOTS / path.name})")
        return path

    return take


def no_alert(driver: Any) -> bool:
    try:
        _ = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def submit(driver: Any, element: Any, timeout: float = 30) -> None:
    """Click `element` (a form's button) and wait until the browser has left the page it was on:
    selenium's click does not wait for the navigation it starts."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def left(_driver: Any) -> bool:
        # Mid-navigation, chromedriver may answer "Node with given id does not belong to the document"
        # (a WebDriverException) where selenium's staleness_of expects StaleElementReferenceException.
        try:
            return bool(staleness_of(page)(_driver))
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise

    WebDriverWait(driver, timeout).until(left)


def until(check: Callable[[], bool], timeout: float = 30, every: float = 0.2, then: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        if then is not None:
            then()
        time.sleep(every)


def test_browser_unauthenticated_is_sent_to_sign_in(driver: Any, app: ServerEnv, shot: Any) -> None:
    driver.delete_all_cookies()
    driver.get(f"{app.url}/ui/incidents")
    assert "/ui/login?next=%2Fui%2Fincidents" in driver.current_url
    assert driver.find_element(By.NAME, "token").is_displayed()
    driver.find_element(By.NAME, "token").send_keys("wrong")
    submit(driver, driver.find_element(By.CSS_SELECTOR, "form.login button"))
    assert "Wrong credentials" in driver.find_element(By.TAG_NAME, "body").text
    shot("01-login-refused")


def test_browser_sign_in(driver: Any, app: ServerEnv, shot: Any) -> None:
    driver.get(f"{app.url}/ui/login")
    driver.find_element(By.NAME, "token").send_keys(TOKEN)
    submit(driver, driver.find_element(By.CSS_SELECTOR, "form.login button"))
    assert driver.current_url == f"{app.url}/ui/incidents"
    assert "Sign out" in driver.find_element(By.TAG_NAME, "header").text
    cookie = driver.get_cookie("alertsleuth_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"


def test_browser_new_incident_appears_in_the_list(
    driver: Any, app: ServerEnv, incident: int, shot: Any
) -> None:
    driver.get(f"{app.url}/ui/incidents")
    link = f"a[href='/ui/incidents/{incident}']"
    until(lambda: bool(driver.find_elements(By.CSS_SELECTOR, link)), then=driver.refresh)
    row = driver.find_element(By.CSS_SELECTOR, link).find_element(By.XPATH, "./ancestor::tr")
    assert "HighLoginFailureRate" in row.text and "critical" in row.text
    assert "ip_region=shanghai, user_type=admin" in row.text
    assert no_alert(driver)
    shot("02-incidents")


def test_browser_incident_page_shows_the_chart_and_escapes_labels(
    driver: Any, app: ServerEnv, incident: int, shot: Any
) -> None:
    driver.get(f"{app.url}/ui/incidents/{incident}")
    assert no_alert(driver)  # the label's script did not run
    svg = driver.find_element(By.CSS_SELECTOR, "article.report figure.chart svg")
    top, bottom = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.top, r.bottom];", svg
    )
    assert driver.execute_script("return window.scrollY") == 0
    assert 0 <= top < HEIGHT and bottom - top > 100, (top, bottom)
    body = driver.find_element(By.TAG_NAME, "body").text
    assert SCRIPT in body  # shown as text
    assert not driver.find_elements(By.CSS_SELECTOR, "article script")
    scripts = [e.get_attribute("src") for e in driver.find_elements(By.TAG_NAME, "script")]
    assert scripts == [f"{app.url}/ui/static/ask.js"]  # the question box's, and nothing else
    shot("03-incident-first-screen")
    cell = driver.find_element(By.XPATH, "//article//td[contains(., 'alert(1)')]")
    assert cell.text == SCRIPT and cell.is_displayed()
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
    shot("05-script-label-shown-as-text")


def test_browser_reinvestigation_shows_in_the_timeline(
    driver: Any, app: ServerEnv, incident: int, shot: Any
) -> None:
    driver.get(f"{app.url}/ui/incidents/{incident}")
    assert len(driver.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")) == 1
    submit(driver, driver.find_element(By.ID, "reinvestigate"))
    assert driver.current_url.endswith(f"/ui/incidents/{incident}#timeline")

    def two_jobs_done() -> bool:
        rows = driver.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")
        return len(rows) == 2 and "done" in rows[1].text

    until(two_jobs_done, then=driver.refresh)
    assert no_alert(driver)
    # the events, in time order: the alert, the notification that opened it, then the investigations
    events = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "table.events tbody tr td:nth-child(2)")]
    assert events[0] == "alert started firing", events
    assert events[1].startswith("notification received: firing (receiver alertsleuth,"), events
    assert events[1].endswith("1 alert): opened this incident"), events
    assert events.index("investigation 1 queued") < events.index("investigation 2 queued"), events
    assert any(e.startswith("investigation 2 done") for e in events), events
    driver.execute_script("document.getElementById('timeline').scrollIntoView()")
    shot("04-timeline-after-reinvestigate")


def test_browser_sign_out(driver: Any, app: ServerEnv, shot: Any) -> None:
    driver.get(f"{app.url}/ui/incidents")
    submit(driver, driver.find_element(By.CSS_SELECTOR, "form.signout button"))
    assert "/ui/login" in driver.current_url
    driver.get(f"{app.url}/ui/incidents")
    assert "/ui/login" in driver.current_url


CATALOG = """\
version: 1
allowed_commands: [/bin/echo]
default_approvers: ["ui:token"]
runbooks:
  - name: flush-region-cache
    description: Flush the login cache of the faulty region
    fits:
      alerts: [HighLoginFailureRate]
      labels:
        ip_region: {equals: shanghai}
    runs:
      command:
        argv: [/bin/echo, flushed, "{label:ip_region}"]
"""


@pytest.fixture(scope="module")
def chatops_app(
    tmp_path_factory: pytest.TempPathFactory, prom: PromEnv, alertmanager_bin: str
) -> Iterator[tuple[ServerEnv, procs.Process]]:
    """A server of its own with the `chatops:` section: a real Alertmanager and a one-runbook catalog."""
    work = tmp_path_factory.mktemp("ui-browser-chatops")
    am = procs.start_alertmanager(work / "am", 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    (work / "catalog.yaml").write_text(CATALOG)
    settings = Settings(
        database_url=f"sqlite:///{work / 'alertsleuth.db'}",
        reports_dir=str(work / "reports"),
        prometheus_url=prom.url,
        prometheus_timeout=3.0,
        poll_interval=0.05,
        retry_backoff_seconds=0.2,
        workers=2,
        auth_token=TOKEN,
        chatops={
            "alertmanager": {"urls": [am.url]},
            "runbooks": {"catalog": str(work / "catalog.yaml"), "work_dir": str(work / "runs")},
        },
    )
    env, stop = serve(settings)
    yield env, am
    stop()
    am.stop()


def test_browser_chatops_silence_from_the_form(
    driver: Any, chatops_app: tuple[ServerEnv, procs.Process], prom: PromEnv, shot: Any
) -> None:
    app, am = chatops_app
    labels = {"alertname": "HighLoginFailureRate", "severity": "critical", "team": SCRIPT}
    with httpx.Client(base_url=app.url, timeout=20, headers=API) as c:
        r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, labels=labels, fingerprint="5ce"))
        assert r.status_code == 202, r.text
        number = r.json()["incidents_created"][0]
        assert wait_report(c, number)["investigation"] == "done"
    driver.delete_all_cookies()  # another server: sign in there
    driver.get(f"{app.url}/ui/login?next=/ui/incidents/{number}")
    driver.find_element(By.NAME, "token").send_keys(TOKEN)
    submit(driver, driver.find_element(By.CSS_SELECTOR, "form.login button"))
    assert driver.current_url == f"{app.url}/ui/incidents/{number}"
    section = driver.find_element(By.ID, "chatops")
    assert "You act as ui:token" in section.text
    assert f'team="{SCRIPT}"' in section.text  # the hint: the incident's labels, as text
    assert "flush-region-cache" in section.find_element(By.CSS_SELECTOR, "table.runbooks").text
    assert not section.find_elements(By.CSS_SELECTOR, "table.silences")

    form = driver.find_element(By.ID, "silence-form")
    duration = form.find_element(By.NAME, "duration")
    duration.clear()
    duration.send_keys("90m")
    form.find_element(By.NAME, "comment").send_keys("rolling back the deploy")
    submit(driver, driver.find_element(By.ID, "silence-submit"))
    assert driver.current_url == f"{app.url}/ui/incidents/{number}#chatops"
    assert no_alert(driver)
    rows = driver.find_elements(By.CSS_SELECTOR, "#chatops table.silences tbody tr")
    assert len(rows) == 1, [r.text for r in rows]
    row = rows[0].text
    assert "ui:token" in row and "rolling back the deploy" in row and "active" in row and SCRIPT in row
    assert rows[0].find_element(By.XPATH, ".//button[normalize-space()='Expire']").is_displayed()
    with httpx.Client(base_url=app.url, timeout=20, headers=API) as c:
        [silence] = c.get(f"/api/v1/incidents/{number}/silences").json()
    got = httpx.get(f"{am.url}/api/v2/silence/{silence['silence_id']}").json()
    assert got["status"]["state"] == "active" and got["createdBy"] == "ui:token"
    assert silence["silence_id"] in row
    events = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "table.events tbody tr td:nth-child(2)")]
    assert any(e.startswith(f"silence {silence['silence_id']} created by ui:token") for e in events), events
    driver.execute_script("document.getElementById('chatops').scrollIntoView()")
    shot("06-chatops-silenced")

    # the runbook's dry run (a command's shows what it would run), approved by ui:token: it runs
    submit(driver, driver.find_element(By.XPATH, "//table[@class='runbooks']//button[.='Dry run']"))
    until(lambda: bool(driver.find_elements(By.CSS_SELECTOR, "button.approve")), then=driver.refresh)
    action = driver.find_element(By.CSS_SELECTOR, "#chatops div.action")
    assert "proposed" in action.text and "dry run: would run /bin/echo flushed shanghai" in action.text
    submit(driver, driver.find_element(By.CSS_SELECTOR, "button.approve"))
    until(lambda: "succeeded" in driver.find_element(By.CSS_SELECTOR, "#chatops div.action h4").text,
          then=driver.refresh)  # fmt: skip
    action = driver.find_element(By.CSS_SELECTOR, "#chatops div.action")
    outputs = [p.text for p in action.find_elements(By.CSS_SELECTOR, "pre.output")]
    assert outputs[-1].strip() == "flushed shanghai", outputs
    assert "Approved by\nui:token" in action.text and no_alert(driver)
    driver.execute_script("arguments[0].scrollIntoView()", action)
    shot("07-chatops-runbook-ran")
