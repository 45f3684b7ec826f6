"""`ask`: ad-hoc questions answered with the same tools as the investigation.

With an LLM, a LangChain agent answers over the Prometheus tools, in a multi-turn conversation whose
history the caller keeps. Without one, a question that is a PromQL expression, or that names an alerting
rule, gets the deterministic breakdown; anything else raises LLMUnavailable naming the settings.
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
from tools.errors import AlertsleuthError, LLMUnavailable, UnsupportedQuery
from tools.format import rfc3339

if TYPE_CHECKING:
    from tools.toolkit import Localizer, Recorder

NO_LLM = (
    "no LLM is configured, and without one only a PromQL expression or an alert rule's name can be "
    "answered: set ALERTSLEUTH_LLM_PROVIDER (e.g. deepseek) and its key (DEEPSEEK_API_KEY)"
)


@dataclass
class Turn:
    role: str  # user | assistant
    content: str


@dataclass
class Answer:
    answer: str
    queries: list[Evidence] = field(default_factory=list)
    mode: str = "llm"  # llm | breakdown
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
            expr = self.deterministic_expression(question)
            if expr is None:
                raise LLMUnavailable(NO_LLM)
            return self._breakdown(expr, start, end)
        return self._llm(question, history, report, start, end, emit)

    def deterministic_expression(self, question: str) -> str | None:
        """The PromQL a question stands for without an LLM: the question itself when it is an expression
        (it has a selector, call or operator, not only words), or the expression of a rule it names."""
        text = question.strip().rstrip("?").strip()
        if re.search(r"[{}()\[\]/*+<>=]", text):
            try:
                promql.parse(text)
                return text
            except UnsupportedQuery:
                pass
        try:
            rules = self.investigator.prom.rules()
        except AlertsleuthError:
            return None
        for rule in rules:
            name = str(rule.get("name") or "")
            if name and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", question, re.I):
                return str(rule.get("query") or "") or None
        return None

    # ------------------------------------------------------------------ without an LLM

    def _breakdown(self, expr: str, start: datetime, end: datetime) -> Answer:
        findings = self.investigator.breakdown(expr, start, end)
        text = breakdown_text(findings)
        return Answer(answer=f"`{expr}`: {text}", queries=list(findings.evidence), mode="breakdown")

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
