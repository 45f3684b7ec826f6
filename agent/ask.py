"""`ask`: ad-hoc questions answered with the same tools as the investigation.

With an LLM, a LangChain agent answers over the Prometheus tools, in a multi-turn conversation whose
history the caller keeps. Without one, a question that is a PromQL expression, names an alerting rule or
is a metric's name gets the deterministic breakdown; anything else is answered from the incident's stored
report when one is given, and otherwise raises LLMUnavailable naming the settings. When Prometheus
cannot be reached for a breakdown, PrometheusUnavailable says so (never an answer that hides it).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from agent.adhoc import breakdown_text, localizer
from agent.investigator import Investigator
from agent.llm import LLMConfig, build_chat_model
from agent.models import Evidence, LLMUsage, Report
from tools import promql
from tools.errors import AlertsleuthError, LLMUnavailable, PrometheusUnavailable, UnsupportedQuery
from tools.format import fmt_range, rfc3339

if TYPE_CHECKING:
    from tools.toolkit import Localizer, Recorder

NO_LLM = (
    "no LLM is configured, and without one only a PromQL expression, an alert rule's name or a metric's "
    "name can be answered (or, with an incident, its stored report): set ALERTSLEUTH_LLM_PROVIDER "
    "(e.g. deepseek) and its key (DEEPSEEK_API_KEY)"
)


@dataclass
class Turn:
    role: str  # user | assistant
    content: str


@dataclass
class Answer:
    answer: str
    queries: list[Evidence] = field(default_factory=list)
    mode: str = "llm"  # llm | breakdown | report (no LLM: the incident's stored report)
    llm: LLMUsage | None = None


# Progress events for streaming: ("tool", {"name", "args"}), ("evidence", {"id", "promql"}), ("token", text)
Emit = Callable[[str, dict[str, Any]], None]


class Asker:
    def __init__(
        self,
        investigator: Investigator,
        config: LLMConfig,
        *,
        model_factory: Callable[[LLMConfig], Any] = build_chat_model,
    ) -> None:
        self.investigator = investigator
        self.config = config
        self.model_factory = model_factory

    # ------------------------------------------------------------------ entry

    def ask(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        report: Report | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        emit: Emit | None = None,
    ) -> Answer:
        question = question.strip()
        if not question:
            raise ValueError("empty question")
        end = end or self.investigator.clock()
        start = start or end - timedelta(hours=1)
        if not self.config.enabled:
            return self._without_llm(question, report, start, end)
        return self._llm(question, history, report, start, end, emit)

    def deterministic_expression(self, question: str) -> str | None:
        """The PromQL a question stands for without an LLM: the question itself when it is an expression
        (it has a selector, call or operator, not only words), the expression of a rule it names, or the
        question itself when it is one word naming a metric Prometheus has (`up`, `user_login_total`).
        Raises PrometheusUnavailable when Prometheus cannot be asked for its rules or metric names."""
        text = question.strip().rstrip("?").strip()
        if re.search(r"[{}()\[\]/*+<>=]", text):
            try:
                promql.parse(text)
                return text
            except UnsupportedQuery:
                pass
        prom = self.investigator.prom
        try:
            rules = prom.rules()
        except PrometheusUnavailable:
            raise
        except AlertsleuthError:
            rules = []
        for rule in rules:
            name = str(rule.get("name") or "")
            if name and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", question, re.I):
                return str(rule.get("query") or "") or None
        if re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
            try:
                names = prom.label_values("__name__")
            except PrometheusUnavailable:
                raise
            except AlertsleuthError:
                return None
            if text in names:
                try:
                    promql.parse(text)
                    return text
                except UnsupportedQuery:
                    return None
        return None

    # ------------------------------------------------------------------ without an LLM

    def _without_llm(self, question: str, report: Report | None, start: datetime, end: datetime) -> Answer:
        try:
            expr = self.deterministic_expression(question)
        except PrometheusUnavailable as exc:
            if report is not None:  # the stored report needs no Prometheus
                return self._from_report(report, note=f"{exc}, so nothing was queried")
            raise PrometheusUnavailable(
                f"{exc}: the question could not be matched against its alert rules and metrics"
            ) from exc
        if expr is not None:
            return self._breakdown(expr, start, end)
        if report is not None:
            return self._from_report(report)
        raise LLMUnavailable(NO_LLM)

    def _breakdown(self, expr: str, start: datetime, end: datetime) -> Answer:
        findings = self.investigator.breakdown(expr, start, end)
        if findings.unavailable:  # the breakdown could not run: say so, not "not localized"
            raise PrometheusUnavailable("; ".join(findings.notes) or "Prometheus could not be reached")
        text = breakdown_text(findings)
        return Answer(answer=f"`{expr}`: {text}", queries=list(findings.evidence), mode="breakdown")

    @staticmethod
    def _from_report(report: Report, note: str | None = None) -> Answer:
        """Without an LLM, a free question about an incident: what its stored report found, citing its
        evidence (returned as the answer's queries, so the ids resolve)."""
        w = report.windows
        lines = [
            f"No LLM is configured, so this is the stored report {report.id} of alert {report.alert.name}"
            + (
                f" (baseline {fmt_range(w.baseline.start, w.baseline.end)} vs incident "
                f"{fmt_range(w.incident.start, w.incident.end)})"
                if w
                else ""
            )
            + (f"; {note}" if note else "")
            + ".",
            f"Summary: {report.summary}",
        ]
        if report.root_causes:
            lines.append("Root causes:")
            for i, rc in enumerate(report.root_causes, 1):
                cited = " ".join(
                    f"[{e}]" for e in rc.evidence_ids if not re.search(rf"\b{re.escape(e)}\b", rc.statement)
                )
                lines.append(f"{i}. {rc.statement}" + (f" {cited}" if cited else ""))
        else:
            why = f" ({report.localization_note})" if report.localization_note else ""
            lines.append(f"Root causes: none found{why}")
        if report.evidence:
            lines.append("Evidence: " + "; ".join(f"[{e.id}] {e.title}" for e in report.evidence))
        return Answer(answer="\n".join(lines), queries=list(report.evidence), mode="report")

    # ------------------------------------------------------------------ with an LLM

    def _llm(
        self,
        question: str,
        history: Sequence[Turn],
        report: Report | None,
        start: datetime,
        end: datetime,
        emit: Emit | None,
    ) -> Answer:
        from langchain.agents import create_agent
        from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage

        from agent.llm_run import RunUsage, budget_middleware, data_block, evidence_recorder
        from agent.texts import prompt
        from tools.toolkit import PromToolkit

        t0 = time.perf_counter()
        usage = LLMUsage(provider=self.config.provider, model=self.config.model_name)
        evidence: list[Evidence] = list(report.evidence) if report else []
        first_new = len(evidence)
        record = evidence_recorder(evidence, threading.Lock(), emit)
        toolkit = PromToolkit(
            self.investigator.prom,
            record,
            now=lambda: end,
            localize=self.localizer(record),
        )
        model = self.model_factory(self.config)
        agent = create_agent(
            model,
            toolkit.tools() if self.config.tool_calling else [],
            system_prompt=prompt("ask", self.investigator.config.language),
            middleware=budget_middleware(self.config),
        )
        context = {"now": rfc3339(end), "window": {"start": rfc3339(start), "end": rfc3339(end)}}
        if report is not None:
            context["incident_report"] = {
                "alert": report.alert.name,
                "summary": report.summary,
                "root_causes": [rc.statement for rc in report.root_causes],
                "evidence": [
                    {"id": e.id, "title": e.title, "summary": e.summary[:400]} for e in report.evidence
                ],
            }
        messages: list[BaseMessage] = []
        for turn in history:
            messages.append(HumanMessage(turn.content) if turn.role == "user" else AIMessage(turn.content))
        messages.append(HumanMessage(f"{data_block('context', context)}\n\n{question}"))
        config = {"recursion_limit": 4 * (self.config.max_model_calls + self.config.max_tool_calls) + 10}
        final: list[BaseMessage] = []
        state: Any = {"messages": messages}
        parts: Iterator[Any] = agent.stream(state, cast(Any, config), stream_mode=["messages", "values"])
        for mode, chunk in parts:
            if mode == "values":
                final = list(chunk.get("messages", []))
                continue
            piece, meta = chunk
            streamed = isinstance(piece, AIMessageChunk) and isinstance(piece.content, str) and piece.content
            if emit and streamed and meta.get("langgraph_node") == "model":
                emit("token", {"text": piece.content})
        run = RunUsage()
        run.count(final[len(messages) :])
        last = next((m for m in reversed(final) if isinstance(m, AIMessage) and not m.tool_calls), None)
        if last is None or not str(last.content).strip():
            raise LLMUnavailable("the model gave no answer within its budgets")
        run.copy_to(usage)
        usage.seconds = round(time.perf_counter() - t0, 3)
        return Answer(answer=str(last.content).strip(), queries=evidence[first_new:], mode="llm", llm=usage)

    def localizer(self, record: Recorder) -> Localizer:
        """The `breakdown` tool's work, over this asker's investigator."""
        return localizer(self.investigator.breakdown, record)
