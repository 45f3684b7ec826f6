"""Benchmark: the LangChain agent's own overhead, model calls and prompt size per investigation.

    uv run python bench/agent.py [--cases N]

The model is a local server speaking OpenAI's chat-completions protocol (tests/fakes) that answers at
once with a scripted report, so the time measured is the agent's own: building the prompt, the
langchain-openai client, the LangGraph loop, structured output, grounding and the merge. The evidence
comes from real investigations: the RS cases replayed into Prometheus (as bench/rca_rs.py does) and
the demo's alert (a burst of failing admin logins from one region, backfilled like the tests do).
Targets from the issue: overhead <= 1 s, <= 3 model calls when the evidence suffices, prompt <= 24,000
characters. The demo alert runs first, so its first run also pays for importing LangChain (seconds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.evidence import InvestigationConfig  # noqa: E402
from agent.findings import Findings  # noqa: E402
from agent.investigator import Investigator  # noqa: E402
from agent.llm import LLMConfig  # noqa: E402
from agent.llm_writer import LLMWriter  # noqa: E402
from agent.models import Report  # noqa: E402
from agent.offline_writer import OfflineWriter  # noqa: E402
from bench.rca_rs import DEFAULT_DATA  # noqa: E402
from exporter import launch as procs  # noqa: E402
from exporter.fake_openai import ScriptedOpenAI, ToolCalls  # noqa: E402
from exporter.scenarios.login import burst_prometheus  # noqa: E402
from exporter.scenarios.login import demo_alert as login_alert  # noqa: E402
from exporter.scenarios.rs import PROMETHEUS_ARGS, PROMETHEUS_CONFIG, alert_for, load, openmetrics  # noqa: E402
from tools.format import fmt_num, fmt_pct  # noqa: E402
from tools.prom import Prometheus  # noqa: E402


def scripted_answer(offline: Report) -> dict[str, Any]:
    """What a model would return when the evidence suffices: the report, quoting evidence figures."""
    causes = []
    for rc in offline.root_causes:
        ev = rc.evidence_ids[0] if rc.evidence_ids else ""
        causes.append(
            {
                "labels": rc.labels,
                "statement": f"{fmt_num(rc.baseline)} -> {fmt_num(rc.incident)}, "
                f"{fmt_pct(rc.explained_share)} of the change [{ev}]",
                "evidence_ids": [ev] if ev else [],
            }
        )
    return {
        "summary": offline.summary,
        "root_causes": causes,
        "impact": offline.impact,
        "remediation": offline.remediation,
        "prevention": offline.prevention,
    }


def measure(srv: ScriptedOpenAI, inv: Investigator, findings: Findings) -> tuple[float, int, float, int]:
    offline = OfflineWriter().write(findings)
    srv.add(ToolCalls([("LLMReport", scripted_answer(offline))]))
    config = LLMConfig(
        provider="openai-compatible", model="deepseek-chat", base_url=srv.base_url, api_key="sk-bench",
        max_retries=0,
    )  # fmt: skip
    t0 = time.perf_counter()
    report = LLMWriter(config, inv.prom, clock=inv.clock, breakdown=inv.breakdown).write(findings)
    seconds = time.perf_counter() - t0
    assert report.llm is not None and report.llm.fallback_reason is None, report.llm
    return (
        seconds,
        report.llm.calls,
        report.timings.get("prompt_chars", 0.0),
        len(report.grounding.ungrounded),
    )


def rs_cases(srv: ScriptedOpenAI, limit: int | None, work: Path) -> list[tuple[float, int, float, int]]:
    cases = load(DEFAULT_DATA, limit)
    target = int(time.time()) // 60 * 60 - 120
    procs.backfill_openmetrics(openmetrics(cases, target), work / "rs" / "data", work / "rs")
    prom_proc = procs.start_prometheus(
        work / "rs", PROMETHEUS_CONFIG, data_dir=work / "rs" / "data", extra_args=PROMETHEUS_ARGS
    )
    out = []
    try:
        prom = Prometheus(prom_proc.url)
        for index, case in enumerate(cases):
            alert, config, clock = alert_for(index, case, target)
            inv = Investigator(prom, config, clock=lambda c=clock: c)  # type: ignore[misc]
            out.append(measure(srv, inv, inv.collect(alert)))
    finally:
        prom_proc.stop()
    return out


def demo_alert(srv: ScriptedOpenAI, work: Path, runs: int = 5) -> list[tuple[float, int, float, int]]:
    with burst_prometheus(work / "demo") as (url, now, sc):
        inv = Investigator(
            Prometheus(url),
            InvestigationConfig(default_for_seconds=120),
            clock=lambda: datetime.fromtimestamp(now, UTC),
        )
        findings = inv.collect(login_alert(sc))
        return [measure(srv, inv, findings) for _ in range(runs)]


def line(name: str, rows: list[tuple[float, int, float, int]]) -> str:
    secs = sorted(r[0] for r in rows)
    p95 = secs[min(len(secs) - 1, int(0.95 * len(secs)))]
    return (
        f"{name:<12} n={len(rows):<4} overhead median {statistics.median(secs):.3f}s p95 {p95:.3f}s max "
        f"{secs[-1]:.3f}s | model calls max {max(r[1] for r in rows)} | prompt chars median "
        f"{statistics.median(r[2] for r in rows):.0f} max {max(r[2] for r in rows):.0f} | "
        f"ungrounded {sum(r[3] for r in rows)}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=None, help="only the first N RS cases")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="alertsleuth-agent-bench-") as tmp, ScriptedOpenAI() as srv:
        work = Path(tmp)
        demo = demo_alert(srv, work)
        rs = rs_cases(srv, args.cases, work)
    print(line("demo alert", demo))
    print(line("RS cases", rs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
