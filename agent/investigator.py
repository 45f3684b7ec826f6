"""The investigation as the server, the CLI and the benchmarks run it: collect the evidence, then hand
the findings to a writer, the LLM writer when an LLM is configured, else the offline one."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from agent.evidence import EvidenceCollector, InvestigationConfig
from agent.findings import Findings
from agent.llm import LLMConfig
from agent.models import AlertInfo, Report
from agent.offline_writer import OfflineWriter
from tools.prom import Prometheus


class Writer(Protocol):
    def write(self, findings: Findings) -> Report: ...


class Investigator:
    """Runs investigations against Prometheus. Thread-safe; share one per process."""

    def __init__(
        self,
        prom: Prometheus,
        config: InvestigationConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        writer: Writer | None = None,
    ) -> None:
        self.prom = prom
        self.config = config
        self.clock = clock
        self.collector = EvidenceCollector(prom, config, clock)
        self.writer: Writer = writer or OfflineWriter()

    def investigate(self, alert: AlertInfo, writer: Writer | None = None) -> Report:
        return self.write(self.collect(alert), writer)

    def collect(self, alert: AlertInfo) -> Findings:
        return self.collector.collect(alert)

    def write(self, findings: Findings, writer: Writer | None = None) -> Report:
        t0 = time.perf_counter()
        report = (writer or self.writer).write(findings)
        report.timings["write_seconds"] = round(time.perf_counter() - t0, 4)
        return report

    def breakdown(self, expr: str, start: datetime, end: datetime) -> Findings:
        """The findings of an ad-hoc expression, as if it had alerted at `start`, seen at `end`."""
        return self.collector.breakdown(expr, start, end)


def make_investigator(prom: Prometheus, config: InvestigationConfig, llm: LLMConfig) -> Investigator:
    """An Investigator whose reports the LLM writer writes when an LLM is configured, else the offline
    writer. (LangChain is imported only then: it takes seconds to load.)"""
    inv = Investigator(prom, config)
    if llm.enabled:
        from agent.llm_writer import LLMWriter

        inv.writer = LLMWriter(llm, prom, clock=inv.clock, breakdown=inv.breakdown)
    return inv
