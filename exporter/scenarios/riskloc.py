"""The riskloc synthetic dataset (generated multi-dimensional root-cause cases) replayed into Prometheus:
for bench/rca_riskloc.py.

The dataset (`../shared/datasets/riskloc-synthetic/`, from shaido987/riskloc's `generate_dataset.py`)
has three families, one folder each: `S-small` (160 cases of 5,760 leaves), `S` (20 of 48,000) and
`L` (20 of 36,000). A case is one CSV: the attribute columns, `real` (the observed value at the
anomalous time) and `predict` (the forecast); `injection_info.csv` names each case by `timestamp` and
gives its root-cause set (`a=a2&d=d3&e=e1;c=c1`).

Every leaf becomes a series of the gauge `rl_value{case="<family>-<timestamp>", <attributes>}`: ten
baseline minutes at `predict`, then two incident minutes at `real` (an alert with `for: 1m` would
fire on the second; two keep the incident window from resting on one sample). All cases share the
same timeline, placed inside one 2-hour TSDB block so that promtool writes a single block. Leaves
whose `real` and `predict` are both 0 are written as zeros: the CSV lists them, so the leaf exists, as
a counter of a combination without traffic does (12 % of the leaves). Leaves absent from a CSV do not
exist. The alert is the case's additive total, `sum(rl_value{case="..."})`, above (or below) a
threshold halfway between its total `predict` and total `real`.

The OpenMetrics text is streamed to a file, one case at a time (a family is about 1 GB of text),
and backfilled with promtool from that file. Prometheus must run with `--query.lookback-delta=59s`
(`PROMETHEUS_ARGS`) so that a minute's query sees that minute's sample only.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from agent.evidence import InvestigationConfig
from agent.models import AlertInfo
from exporter import launch as procs

FAMILIES = ("S-small", "S", "L")
METRIC = "rl_value"
STEP = 60
BASELINE_MINUTES = 10
INCIDENT_MINUTES = 2
VALUE_COLUMNS = ("real", "predict")
BLOCK_SECONDS = 7200  # promtool's default block: the whole timeline fits in one

PROMETHEUS_ARGS = ("--query.lookback-delta=59s",)
PROMETHEUS_CONFIG = "global:\n  scrape_interval: 1m\n"
BACKFILL_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Case:
    family: str
    timestamp: str  # names the CSV
    path: Path
    attributes: tuple[str, ...]
    causes: list[dict[str, str]]
    leaves: int
    total_real: float
    total_predict: float

    @property
    def name(self) -> str:
        """The `case` label: the family and the CSV's timestamp."""
        return f"{self.family}-{self.timestamp}"


def parse_set(raw: str) -> list[dict[str, str]]:
    """`a=a2&d=d3&e=e1;c=c1` -> [{a: a2, d: d3, e: e1}, {c: c1}], duplicates dropped, order kept."""
    out: list[dict[str, str]] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for element in raw.strip().split(";"):
        if not element:
            continue
        labels = dict(pair.split("=", 1) for pair in element.split("&"))
        key = tuple(sorted(labels.items()))
        if key not in seen:
            seen.add(key)
            out.append(labels)
    return out


def _rows(path: Path) -> Iterator[tuple[list[str], float, float]]:
    """A case's leaves, streamed: (attribute values, real, predict)."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        real, predict = header.index("real"), header.index("predict")
        attrs = [i for i, name in enumerate(header) if name not in VALUE_COLUMNS]
        for row in reader:
            if row:
                yield [row[i] for i in attrs], float(row[real]), float(row[predict])


def load(data: Path, family: str, limit: int | None = None) -> list[Case]:
    """The family's cases in `injection_info.csv` order (only the first `limit`), with their totals.
    The leaves are not kept: `write_openmetrics` reads the CSVs again."""
    folder = data / family
    with (folder / "injection_info.csv").open(encoding="utf-8", newline="") as fh:
        info = list(csv.DictReader(fh))
    cases = []
    for entry in info[:limit] if limit else info:
        path = folder / f"{entry['timestamp']}.csv"
        with path.open(encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh))
        attributes = tuple(c for c in header if c not in VALUE_COLUMNS)
        leaves, total_real, total_predict = 0, 0.0, 0.0
        for _, real, predict in _rows(path):
            leaves += 1
            total_real += real
            total_predict += predict
        cases.append(
            Case(
                family,
                entry["timestamp"],
                path,
                attributes,
                parse_set(entry["set"]),
                leaves,
                total_real,
                total_predict,
            )
        )
    return cases


def target_time(now: float) -> int:
    """The anomalous minute: the middle of the last whole 2-hour block before `now`, so that the twelve
    minutes land in one TSDB block, at least an hour in the past."""
    return (int(now) // BLOCK_SECONDS - 1) * BLOCK_SECONDS + BLOCK_SECONDS // 2


def minutes(target: int) -> tuple[list[int], list[int]]:
    """The baseline minutes and the incident minutes, the last of which is `target`."""
    first_incident = target - (INCIDENT_MINUTES - 1) * STEP
    baseline = [first_incident - (BASELINE_MINUTES - i) * STEP for i in range(BASELINE_MINUTES)]
    return baseline, [first_incident + i * STEP for i in range(INCIDENT_MINUTES)]


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_openmetrics(cases: Sequence[Case], target: int, out: TextIO) -> int:
    """All cases as OpenMetrics, one series after another (each in time order), one case in memory at a
    time. Returns the number of samples written."""
    baseline, incident = minutes(target)
    samples = 0
    out.write(f"# TYPE {METRIC} gauge\n")
    for case in cases:
        names = [f'{a}="' for a in case.attributes]
        head = f'{METRIC}{{case="{_esc(case.name)}",'
        for values, real, predict in _rows(case.path):
            series = head + ",".join(n + _esc(v) + '"' for n, v in zip(names, values, strict=True)) + "} "
            p, r = repr(predict), repr(real)
            out.write("".join(f"{series}{p} {ts}\n" for ts in baseline))
            out.write("".join(f"{series}{r} {ts}\n" for ts in incident))
            samples += len(baseline) + len(incident)
    out.write("# EOF\n")
    return samples


@dataclass
class Replay:
    prometheus: procs.Process
    samples: int
    text_bytes: int
    write_seconds: float
    backfill_seconds: float


def replay(cases: Sequence[Case], target: int, work: Path, timeout: float = BACKFILL_TIMEOUT) -> Replay:
    """Stream the cases to an OpenMetrics file under `work`, backfill it with promtool (the file is then
    deleted) and start a Prometheus on the blocks."""
    work.mkdir(parents=True, exist_ok=True)
    src = work / "riskloc.om"
    t0 = time.perf_counter()
    with src.open("w", encoding="utf-8", buffering=1 << 20) as fh:
        samples = write_openmetrics(cases, target, fh)
    text_bytes = src.stat().st_size
    t1 = time.perf_counter()
    try:
        procs.backfill_openmetrics_file(src, work / "data", timeout=timeout)
    finally:
        src.unlink(missing_ok=True)
    t2 = time.perf_counter()
    prom = procs.start_prometheus(work, PROMETHEUS_CONFIG, data_dir=work / "data", extra_args=PROMETHEUS_ARGS)
    return Replay(prom, samples, text_bytes, t1 - t0, t2 - t1)


def expression(case: Case) -> str:
    """The alert's rule: the total beyond the midpoint between expected and observed, in the direction
    the total moved (a total that does not move cannot alert)."""
    op = ">" if case.total_real > case.total_predict else "<"
    threshold = (case.total_real + case.total_predict) / 2
    return f'sum({METRIC}{{case="{_esc(case.name)}"}}) {op} {threshold!r}'


def alert_for(case: Case, target: int) -> tuple[AlertInfo, InvestigationConfig, datetime]:
    """The alert on the case's total, firing from the first incident minute (the last is `target`), the
    investigation settings (the baseline minutes as baseline, one-minute steps) and its clock."""
    _, incident = minutes(target)
    config = InvestigationConfig(
        baseline_seconds=float(BASELINE_MINUTES * STEP),
        min_incident_seconds=0.0,
        min_step_seconds=float(STEP),
    )
    alert = AlertInfo(
        name="TotalDeviation",
        labels={"alertname": "TotalDeviation"},
        starts_at=datetime.fromtimestamp(incident[0], UTC),
        generator_url=f"http://prometheus/graph?g0.expr={quote(expression(case))}",
    )
    return alert, config, datetime.fromtimestamp(target + 1, UTC)
