"""What a degraded report says: every sentence true of what happened (nothing promised, nothing claimed
that did not run), in both languages, and the CLI's exit code for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.evidence import InvestigationConfig
from agent.investigator import Investigator
from agent.models import AlertInfo, Report
from agent.render import render_html, render_markdown
from exporter.launch import free_port
from tests.agent.test_investigator import fire, run
from tests.conftest import PromEnv
from tools.prom import Prometheus

ROOT = Path(__file__).resolve().parents[2]


def unreachable_report(language: str = "en") -> Report:
    alert = AlertInfo(
        name="X",
        labels={"alertname": "X"},
        starts_at=datetime.now(UTC) - timedelta(minutes=5),
        generator_url="http://p/graph?g0.expr=sum(x)%20%3E%201",
    )
    inv = Investigator(
        Prometheus(f"http://127.0.0.1:{free_port()}", timeout=2, retries=0),
        InvestigationConfig(language=language),
    )
    return inv.investigate(alert)


def all_text(report: Report) -> str:
    return "\n".join([render_markdown(report), render_html(report), report.model_dump_json()])


def test_unreachable_prometheus_claims_no_localization_and_promises_no_retry() -> None:
    report = unreachable_report()
    assert report.degraded and not report.localized
    text = all_text(report)
    assert "spread across segments" not in text  # nothing was broken down
    assert "retried" not in text and "retry" not in text  # the writer cannot know
    md = render_markdown(report)
    assert "**Localization:** Localization did not run: Prometheus could not be reached" in md
    assert report.localization_note is not None and "Prometheus" in report.localization_note
    assert "Prometheus could not be reached" in report.summary


def test_unreachable_prometheus_in_chinese() -> None:
    report = unreachable_report("zh")
    text = all_text(report)
    assert "重试" not in text and "分散在多个分段" not in text
    assert "未执行定位" in render_markdown(report)


def test_no_expression_says_why_localization_did_not_run(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "burst", with_url=False, name="NoSuchRule"))
    md = render_markdown(report)
    assert "spread across segments" not in md
    assert "Localization did not run: the alert's rule expression was not found" in md


def test_a_spread_change_still_says_spread(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "global"))
    assert report.localization_note is None
    assert "Not localized: the change is spread across segments." in render_markdown(report)


def test_cli_exits_4_on_a_degraded_report(tmp_path: Path) -> None:
    payload = tmp_path / "alerts.json"
    starts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    payload.write_text(
        json.dumps(
            [
                {
                    "labels": {"alertname": "X"},
                    "startsAt": starts,
                    "generatorURL": "http://p/graph?g0.expr=sum(x)%20%3E%201",
                }
            ]
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTSLEUTH_")}
    env["ALERTSLEUTH_PROMETHEUS_TIMEOUT"] = "2"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "investigate",
            "--payload",
            str(payload),
            "--prometheus-url",
            f"http://127.0.0.1:{free_port()}",
            "--format",
            "json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 4, done.stderr
    assert json.loads(done.stdout)["degraded"] is True  # the report is printed all the same
    assert "degraded" in done.stderr
