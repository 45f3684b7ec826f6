"""`alertsleuth-demo` (`make demo`): the whole flow for real, on this machine.

exporter -> Prometheus (rules from deploy/) -> Alertmanager -> alertsleuth -> archived report.
It injects a brute-force burst of failing admin logins in one region and prints the report's path,
summary and top root cause (well under a minute).

With delivery (`--redmine`, or a `delivery` section given by a test) it goes on through the incident's
life: the report goes to the configured sinks (a private Redmine started here gets a ticket with the
report attached, and a loopback Slack the firing notice, which starts the incident's thread), the fault
spreads to a second region (the changed analysis is added to the ticket), then ChatOps
(exporter/demo_chatops.py): in the thread, the on-call asks "why?" and gets the answer, and runs the
runbook that restarts the faulty component; its dry run, a lead's approval and the run clear the fault
through the exporter's control API (the run's output is noted on the ticket), and the resolution closes
the ticket. Everything it starts, it stops.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from exporter.demo_chatops import CHANNEL, RUNBOOK, ChatOpsDemo
from exporter.launch import Process, free_port, start_alertmanager, start_prometheus, wait_http
from tools import promql

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
REGION, USER_TYPE = "shanghai", "admin"
SPREAD_REGION = "beijing"
ALERT = "HighLoginFailureRate"
# Logins per second. High enough that the short demo baseline holds real counts in every segment
# (shanghai admins see ~2.5/s), so the baseline is not mostly zeros.
RATE = 100
BASELINE_SCRAPES = 45  # seconds of exporter data before the fault: a 30 s baseline of 30 s rates


def demo_configs(exporter: int, server: int, alertmanager: int) -> tuple[str, str, str]:
    """deploy/ files with loopback addresses and second-scale intervals (rules' `for` becomes 3s)."""
    prom: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    prom["global"].update(scrape_interval="1s", evaluation_interval="1s")
    prom["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager}"]}]}]
    targets = {"login-exporter": exporter, "alertsleuth": server}
    for job in prom["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]
    rules: dict[str, Any] = yaml.safe_load((DEPLOY / "alert_rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "3s"
            rule["expr"] = _shorten_ranges(rule["expr"])
    am: dict[str, Any] = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
    # Repeats every few seconds, so a changed analysis is noticed (with ALERTSLEUTH_REFRESH_SECONDS).
    am["route"].update(group_wait="1s", group_interval="2s", repeat_interval="4s")
    for receiver in am["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"http://127.0.0.1:{server}/api/v1/webhook/alertmanager"
    return yaml.safe_dump(prom), yaml.safe_dump(rules, allow_unicode=True), yaml.safe_dump(am)


def _shorten_ranges(expr: str, seconds: int = 30) -> str:
    """Rewrite every range selector (`[5m]`) to `seconds`, on the parsed tree: at the demo's time
    scale a 5-minute rate would mix the fault's first seconds into the short baseline."""

    def shorten(node: promql.Node) -> promql.Node:
        if isinstance(node, promql.Matrix):
            return replace(node, range=timedelta(seconds=min(seconds, node.range.total_seconds())))
        return node

    return promql.transform(promql.parse(expr), shorten).promql()


def _spawn(
    module: str, args: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m MODULE ARGS` (the alertsleuth server's CLI, or the exporter) with its output in `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parent.parent,
    )


def _wait_for_baseline(prom_url: str, t0: float, timeout: float) -> None:
    """Until Prometheus holds BASELINE_SCRAPES scrapes of the exporter (1 s apart), at least 12 s."""
    time.sleep(12)
    query = 'count_over_time(up{job="login-exporter"}[5m])'
    while time.monotonic() - t0 < timeout / 2:
        try:
            result = httpx.get(f"{prom_url}/api/v1/query", params={"query": query}, timeout=5).json()
            values = [float(r["value"][1]) for r in result["data"]["result"]]
        except (httpx.HTTPError, ValueError, KeyError):
            values = []
        if values and max(values) >= BASELINE_SCRAPES:
            return
        time.sleep(1)


def _say(t0: float, text: str) -> None:
    print(f"[{time.monotonic() - t0:5.1f}s] {text}", flush=True)


REDMINE_SINK = "demo-redmine"


def demo_delivery(redmine: Process) -> dict[str, Any]:
    """The `delivery:` section the demo uses with its private Redmine: the login alert gets a ticket
    (the ChatOps step adds its Slack sink beside it)."""
    return {
        "sinks": {
            REDMINE_SINK: {
                "type": "redmine",
                "url": redmine.url,
                "api_key": redmine.extra["api_key"],
                "project": redmine.extra["project"],
            }
        },
        "route": {"sinks": [], "routes": [{"matchers": [f'alertname="{ALERT}"'], "sinks": [REDMINE_SINK]}]},
    }


def run_demo(
    keep: bool = False,
    timeout: float = 120.0,
    reports_dir: str = "alert_reports",
    *,
    redmine: bool = False,
    delivery: dict[str, Any] | None = None,
    stay: bool = False,
) -> int:
    """0 when the report localizes the injected fault (and, with delivery, the incident's deliveries
    went through firing, update and resolved, and the ChatOps step passed). With `stay`, everything
    keeps running for browsing (the web UI, Prometheus, Alertmanager) until Ctrl-C."""
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="alertsleuth-demo-"))
    procs: list[subprocess.Popen[bytes]] = []
    services: list[Process] = []
    chat: ChatOpsDemo | None = None
    try:
        if redmine:
            from exporter.launch import start_redmine

            _say(t0, "starting a private Redmine (SQLite, REST API on)")
            rm = start_redmine(tmp / "redmine", project="demo")
            services.append(rm)
            _say(t0, f"Redmine {rm.url} (admin API key in {tmp / 'redmine' / 'api_key'})")
            delivery = demo_delivery(rm)
        ports = {"exporter": free_port(), "server": free_port(), "alertmanager": free_port()}
        prom_yml, rules_yml, am_yml = demo_configs(ports["exporter"], ports["server"], ports["alertmanager"])
        exporter_url = f"http://127.0.0.1:{ports['exporter']}"
        server_url = f"http://127.0.0.1:{ports['server']}"

        procs.append(
            _spawn(
                "exporter",
                ["--port", str(ports["exporter"]), "--rate", str(RATE), "--seed", "42"],
                tmp / "exporter.log",
            )
        )
        am = start_alertmanager(tmp / "alertmanager", am_yml, port=ports["alertmanager"])
        services.append(am)
        prom = start_prometheus(tmp / "prometheus", prom_yml, {"alert_rules.yml": rules_yml})
        services.append(prom)
        env = {
            "ALERTSLEUTH_PROMETHEUS_URL": prom.url,
            "ALERTSLEUTH_DATABASE_URL": f"sqlite:///{tmp / 'alertsleuth.db'}",
            "ALERTSLEUTH_REPORTS_DIR": str(Path(reports_dir).resolve()),
            "ALERTSLEUTH_BASELINE_SECONDS": "30",
            "ALERTSLEUTH_MIN_INCIDENT_SECONDS": "5",
            "ALERTSLEUTH_PORT": str(ports["server"]),
        }
        if delivery:
            chat = ChatOpsDemo(
                tmp / "chatops", exporter_url=exporter_url, alertname=ALERT, user_type=USER_TYPE
            )
            chat.start()
            _say(t0, f"a loopback Slack {chat.slack.api_url} (the bot's channel {CHANNEL})")
            settings = {
                "delivery": chat.delivery(delivery, beside=REDMINE_SINK),
                "chatops": chat.settings(alertmanager_url=am.url),
            }
            config = tmp / "alertsleuth.yaml"
            config.write_text(yaml.safe_dump(settings), encoding="utf-8")
            env |= {
                "ALERTSLEUTH_CONFIG": str(config),
                "ALERTSLEUTH_EXTERNAL_URL": server_url,
                "ALERTSLEUTH_REFRESH_SECONDS": "4",
                "ALERTSLEUTH_DELIVERY_BACKOFF_SECONDS": "1",
            }
        procs.append(_spawn("server.cli", ["serve"], tmp / "alertsleuth.log", env))
        wait_http(f"{exporter_url}/healthz", 60, procs[0])
        wait_http(f"{server_url}/healthz", 60, procs[1])  # a loaded machine takes its time to import
        _say(
            t0,
            f"Prometheus {prom.url}, Alertmanager {am.url}, exporter {exporter_url}, server {server_url}",
        )

        # A normal baseline, then the fault: enough scraped data that the 30 s baseline window holds
        # full 30 s rates (a fixed sleep gave a thin, noisy baseline whenever the start-up was quick).
        _wait_for_baseline(prom.url, t0, timeout)
        body = {
            "ip_region": REGION,
            "user_type": USER_TYPE,
            "failure_ratio": 0.9,
            "extra_rate": 2 * RATE,
            "duration_seconds": 120,
        }
        httpx.post(f"{exporter_url}/api/v1/anomalies", json=body, timeout=5).raise_for_status()
        _say(
            t0,
            f"injected: {USER_TYPE} logins from {REGION} fail at 90%, +{2 * RATE} attempts/s (brute force)",
        )

        report = _wait_for_report(server_url, t0, timeout)
        if report is None:
            print("demo: no report in time; logs are in", tmp, file=sys.stderr)
            keep = True
            return 1
        incident, body_json = report
        files = incident.get("report_files") or {}
        _say(t0, f"report written: {files.get('md')}")
        print(f"\nreport:   {files.get('md')}\n          {files.get('html')}\n          {files.get('json')}")
        llm = body_json.get("llm")
        if llm is None:
            writer = "the offline writer (set DEEPSEEK_API_KEY for an LLM-written report)"
        elif llm.get("fallback_reason"):
            writer = f"the offline writer: {llm['provider']} was not used ({llm['fallback_reason']})"
        else:
            calls = f"{llm['calls']} model calls, {llm['tool_calls']} tool calls"
            writer = f"{llm['provider']} {llm['model']} ({calls})"
        print(f"written by: {writer}")
        print(f"summary:  {body_json['summary']}")
        top = body_json["root_causes"][0] if body_json["root_causes"] else None
        if top is None:
            print("top root cause: none (not localized)")
            return 1
        print(f"top root cause: {top['labels']} (score {top['score']}): {top['statement']}")
        ok = top["labels"].get("ip_region") == REGION and top["labels"].get("user_type") == USER_TYPE
        print(f"\ndemo {'OK' if ok else 'FAILED'}: {time.monotonic() - t0:.1f}s from start to report")
        if ok and chat is not None:
            delivered = _lifecycle(server_url, exporter_url, incident["id"], t0, timeout, chat)
            if chat.passed is not None:
                what = (
                    f'"why?" answered in the thread; {RUNBOOK} dry-run, approved and run: fault cleared'
                    if chat.passed
                    else "see above; the demo cleared the fault itself"
                )
                print(f"\nChatOps {'OK' if chat.passed else 'FAILED'}: {what} ({chat.took:.1f}s)")
            print(f"delivery {'OK' if delivered else 'FAILED'}: {time.monotonic() - t0:.1f}s from start")
            ok = delivered and bool(chat.passed)
        if not ok:
            keep = True
        print(f"\nweb UI:   {server_url}/ui/incidents/{incident['id']}")
        if stay:
            print("everything keeps running for browsing; Ctrl-C stops it", flush=True)
            try:
                while all(p.poll() is None for p in procs):
                    time.sleep(1)
            except KeyboardInterrupt:
                print()
        return 0 if ok else 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for s in services:
            s.stop()
        if chat is not None:
            chat.stop()
        if keep:
            print(f"(kept {tmp})")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def _wait_deliveries(
    client: httpx.Client, incident_id: int, done: Any, t0: float, timeout: float, printed: set[int]
) -> dict[str, Any] | None:
    """Poll the incident until `done(incident)`; print each delivery once it is done or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inc: dict[str, Any] = client.get(f"/api/v1/incidents/{incident_id}").json()
        for d in inc["deliveries"]:
            if d["id"] not in printed and d["state"] in ("done", "failed"):
                printed.add(d["id"])
                what = d["detail"] if d["state"] == "done" else f"FAILED: {d['last_error']}"
                _say(t0, f"delivery to {d['sink']} ({d['event']}): {what}")
        if done(inc):
            return inc
        time.sleep(0.5)
    return None


def _lifecycle(
    server_url: str, exporter_url: str, incident_id: int, t0: float, timeout: float, chat: ChatOpsDemo
) -> bool:
    """Firing delivered, the fault spreads (update), ChatOps clears the fault (resolved). When the
    ChatOps step fails, the demo clears the fault itself, to see the resolution through."""

    def finished(event: str) -> Any:
        return lambda inc: (
            any(d["event"] == event and d["state"] == "done" for d in inc["deliveries"])
            and all(d["state"] in ("done", "failed") for d in inc["deliveries"])
        )

    printed: set[int] = set()
    with httpx.Client(base_url=server_url, timeout=5) as client:
        inc = _wait_deliveries(client, incident_id, finished("firing"), t0, timeout, printed)
        if inc is None:
            print("demo: the report was not delivered in time", file=sys.stderr)
            return False
        for t in inc["tickets"]:
            _say(t0, f"ticket {t['key']} ({t['sink']}): {t['url']}")
        body = {
            "ip_region": SPREAD_REGION,
            "user_type": USER_TYPE,
            "failure_ratio": 0.9,
            "extra_rate": 2 * RATE,
            "duration_seconds": 300,
        }
        httpx.post(f"{exporter_url}/api/v1/anomalies", json=body, timeout=5).raise_for_status()
        _say(t0, f"the fault spreads: {USER_TYPE} logins from {SPREAD_REGION} fail too")
        if _wait_deliveries(client, incident_id, finished("update"), t0, timeout, printed) is None:
            print("demo: the changed analysis was not delivered in time", file=sys.stderr)
            return False
        if chat.run(server_url, incident_id, lambda text: _say(t0, text)):
            _say(t0, "waiting for the alert to resolve")
        else:
            httpx.delete(f"{exporter_url}/api/v1/anomalies", timeout=5).raise_for_status()
            _say(t0, "the demo cleared the fault itself; waiting for the alert to resolve")
        inc = _wait_deliveries(client, incident_id, finished("resolved"), t0, timeout, printed)
        if inc is None:
            print("demo: the resolution was not delivered in time", file=sys.stderr)
            return False
        _say(t0, f"incident {incident_id} resolved at {inc['resolved_at']}")
        return all(d["state"] == "done" for d in inc["deliveries"])


def _wait_for_report(
    server_url: str, t0: float, timeout: float
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    seen = False
    with httpx.Client(base_url=server_url, timeout=5) as client:
        while time.monotonic() - t0 < timeout:
            page = client.get("/api/v1/incidents", params={"alertname": ALERT}).json()
            for item in page["items"]:
                if not seen:
                    seen = True
                    _say(t0, f"{ALERT} arrived from Alertmanager: incident {item['id']}, investigating")
                if item["report_id"]:
                    incident = client.get(f"/api/v1/incidents/{item['id']}").json()
                    report = client.get(f"/api/v1/reports/{item['report_id']}").json()
                    return incident, report
            time.sleep(0.5)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """`alertsleuth-demo [--keep] [--timeout S] [--redmine]`."""
    p = argparse.ArgumentParser(
        prog="alertsleuth-demo",
        description="run Prometheus, Alertmanager, the exporter and alertsleuth; inject a fault",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep everything running for browsing the web UI until Ctrl-C (and the temporary directory)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    p.add_argument(
        "--redmine",
        action="store_true",
        help="also start a private Redmine and a loopback Slack and follow the incident: ticket opened,"
        " updated, the fault cleared by a runbook approved in the Slack thread, ticket closed",
    )
    args = p.parse_args(argv)
    return run_demo(keep=args.keep, timeout=args.timeout, redmine=args.redmine, stay=args.keep)


if __name__ == "__main__":
    sys.exit(main())
