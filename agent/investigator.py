"""The investigation as the server, the CLI and the benchmarks run it: collect the evidence, then hand
the findings to a writer, the LLM writer when an LLM is configured, else the offline one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from agent.evidence import EvidenceCollector, InvestigationConfig
from agent.findings import Findings
from agent.history import History, Likeness
from agent.llm import LLMConfig
from agent.models import AlertInfo, Report
from agent.offline_writer import OfflineWriter
from agent.runbooks import RunbookMenu
from tools import promql
from tools.prom import Prometheus

log = logging.getLogger("alertsleuth.investigator")


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
        history: History | None = None,
        runbooks: RunbookMenu | None = None,
    ) -> None:
        self.prom = prom
        self.config = config
        self.clock = clock
        self.collector = EvidenceCollector(prom, config, clock)
        self.writer: Writer = writer or OfflineWriter()
        self.history = history
        self.runbooks = runbooks

    def investigate(
        self, alert: AlertInfo, writer: Writer | None = None, *, incident_id: int | None = None
    ) -> Report:
        """Collect the evidence, recall the incidents seen before (`incident_id`: the one under
        investigation, never its own past), and write the report."""
        findings = self.collect(alert)
        self.recall(findings, incident_id)
        return self.write(findings, writer)

    def recall(self, f: Findings, incident_id: int | None = None) -> None:
        """Ask the history (when there is one) for the past incidents most like `f`, and the runbook
        catalog (when there is one) for the runbooks that fit, once its root causes are known; either
        failing leaves a note, not a failed investigation."""
        if f.unavailable:
            return
        loc = f.localization
        causes = tuple(c.labels for c in loc.causes) if loc is not None and loc.localized else ()
        if self.runbooks is not None:
            try:
                f.runbooks = self.runbooks.fitting(f.alert.name, [dict(c) for c in causes], f.alert.labels)
            except Exception as exc:  # noqa: BLE001 - the catalog's own error: the report goes on
                log.warning("runbooks could not be matched", extra={"error": f"{type(exc).__name__}: {exc}"})
                f.notes.append(f"runbooks could not be matched: {type(exc).__name__}")
        if self.history is None:
            return
        metrics = tuple(dict.fromkeys(promql.metric_names(f.condition.signal))) if f.condition else ()
        like = Likeness(
            alertname=f.alert.name,
            causes=causes,
            metrics=metrics,
            fingerprint=f.alert.fingerprint,
            before=f.alert.starts_at,
            exclude_incident=incident_id,
        )
        try:
            f.history = self.history.similar(like)
        except Exception as exc:  # noqa: BLE001 - the store's own error: the report goes on without it
            log.warning("past incidents could not be read", extra={"error": f"{type(exc).__name__}: {exc}"})
            f.notes.append(f"past incidents could not be read: {type(exc).__name__}")

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


def make_investigator(
    prom: Prometheus,
    config: InvestigationConfig,
    llm: LLMConfig,
    history: History | None = None,
    runbooks: RunbookMenu | None = None,
) -> Investigator:
    """An Investigator whose reports the LLM writer writes when an LLM is configured, else the offline
    writer (LangChain is imported only then: it takes seconds to load), recalling past incidents from
    `history` when given."""
    inv = Investigator(prom, config, history=history, runbooks=runbooks)
    if llm.enabled:
        from agent.llm_writer import LLMWriter

        inv.writer = LLMWriter(llm, prom, clock=inv.clock, breakdown=inv.breakdown)
    return inv
