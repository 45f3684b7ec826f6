"""The RS dataset (real labelled root-cause incidents) replayed into Prometheus: for bench/rca_rs.py (all
135 cases) and the localization integration test (the four in tests/data/riskloc-rs/).

Each case's per-minute failures (`value`) and totals (`cnt`) per attribute combination become the
gauges `rs_failed` and `rs_total` with a `case="cN"` label, timestamps shifted so that the anomalous
minute lands on a chosen time. Prometheus must run with `--query.lookback-delta=59s` so that a
combination absent in a minute counts as absent, as in the CSV.
"""

from __future__ import annotations

import ast
import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import yaml

from agent.evidence import InvestigationConfig
from agent.models import AlertInfo

META_COLUMNS = {"min", "value", "cnt"}


@dataclass
class Case:
    name: str
    anomaly: int  # the anomalous minute, original unix seconds
    first: int  # first minute in the file
    causes: list[dict[str, str]]
    rows: list[dict[str, str]]
    attributes: list[str]


def _causes(raw: object) -> list[dict[str, str]]:
    if isinstance(raw, str):
        raw = ast.literal_eval(raw)
    items = raw if isinstance(raw, list) else [raw]
    return [{str(k): str(v) for k, v in dict(cast(Any, item)).items()} for item in items]


def load(data: Path, limit: int | None) -> list[Case]:
    meta = yaml.safe_load((data / "anomaly.yaml").read_text(encoding="utf-8"))
    cases = []
    for entry in meta[:limit] if limit else meta:
        path = data / f"{entry['data']}.csv"
        with path.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        attributes = [c for c in rows[0] if c not in META_COLUMNS]
        first = min(int(r["min"]) for r in rows)
        cases.append(
            Case(entry["data"], int(entry["timestamp"]), first, _causes(entry["cause"]), rows, attributes)
        )
    return cases


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics(cases: list[Case], target: int) -> str:
    """Both gauges for all cases, each case shifted so its anomalous minute lands on `target`."""
    out: dict[str, list[str]] = {"rs_failed": [], "rs_total": []}
    for index, case in enumerate(cases):
        shift = target - case.anomaly
        for r in sorted(case.rows, key=lambda r: int(r["min"])):
            labels = ",".join([f'case="c{index}"'] + [f'{a}="{_esc(r[a])}"' for a in case.attributes])
            ts = int(r["min"]) + shift
            out["rs_failed"].append(f"rs_failed{{{labels}}} {float(r['value'])} {ts}")
            out["rs_total"].append(f"rs_total{{{labels}}} {float(r['cnt'])} {ts}")
    text = []
    for name, lines in out.items():
        text.append(f"# TYPE {name} gauge")
        text.extend(lines)
    return "\n".join(text) + "\n# EOF\n"


PROMETHEUS_ARGS = ("--query.lookback-delta=59s",)
PROMETHEUS_CONFIG = "global:\n  scrape_interval: 1m\n"


def alert_for(index: int, case: Case, target: int) -> tuple[AlertInfo, InvestigationConfig, datetime]:
    """The alert on case `index`'s failure ratio at its anomalous minute (shifted to `target`), the
    investigation settings (the file's minutes before the anomaly as baseline, one-minute steps), and
    the investigation's clock."""
    sel = f'case="c{index}"'
    expr = f"sum(rs_failed{{{sel}}}) / sum(rs_total{{{sel}}}) > 0"
    config = InvestigationConfig(
        baseline_seconds=max(60.0, float(case.anomaly - case.first)),
        min_incident_seconds=0.0,
        min_step_seconds=60.0,
    )
    alert = AlertInfo(
        name="FailureRatio",
        labels={"alertname": "FailureRatio"},
        starts_at=datetime.fromtimestamp(target, UTC),
        generator_url=f"http://prometheus/graph?g0.expr={quote(expr)}",
    )
    return alert, config, datetime.fromtimestamp(target + 1, UTC)
