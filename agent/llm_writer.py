"""The LLM report writer: a LangChain agent writes the report from the deterministic evidence,
querying more if needed.

The evidence phase (EvidenceCollector.collect) runs first and is the same as offline. The agent then gets
the evidence as data blocks, may call the Prometheus tools (bounded), and answers with the report through
structured output. Its figures are checked against the evidence (one repair round); on any LLM failure,
budget exhaustion or invalid output, the offline writer's report is returned with the reason recorded.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from langchain.agents import create_agent
from langchain.agents.structured_output import ToolStrategy
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field, ValidationError

from agent.adhoc import Breakdown, localizer
from agent.findings import Findings
from agent.grounding import ungrounded, unknown_citations
from agent.llm import LLMConfig, build_chat_model
from agent.llm_run import RunUsage, budget_middleware, data_block, evidence_recorder
from agent.models import Evidence, Grounding, LLMUsage, Report, RootCause
from agent.offline_writer import OfflineWriter
from agent.texts import prompt
from tools.errors import LLMFailure
from tools.format import rfc3339
from tools.prom import Prometheus
from tools.toolkit import Limits, PromToolkit, Recorder

MAX_CHARTED = 3  # evidence the model may choose to chart after the signal

# ---------------------------------------------------------------------- what the model returns


class LLMRootCause(BaseModel):
    labels: dict[str, str] = Field(description='the label set, e.g. {"ip_region": "shanghai"}')
    statement: str = Field(description="what is wrong there, with figures cited as [E3]")
    evidence_ids: list[str] = Field(default_factory=list, description="ids of the evidence it rests on")


class LLMReport(BaseModel):
    """The root-cause report. Every figure cites its evidence id, e.g. [E3]."""

    summary: str = Field(description="alert basics and the conclusion in 2-4 sentences")
    root_causes: list[LLMRootCause] = Field(
        default_factory=list, description="best first; empty if not localized"
    )
    impact: str = Field(description="who or what is affected and how much")
    remediation: list[str] = Field(description="concrete handling steps, in order")
    prevention: list[str] = Field(default_factory=list, description="changes that prevent a recurrence")
    runbook: str | None = Field(
        default=None,
        description="the name of the one runbook of the `runbooks` block to try first, if any fits; never "
        "another name: runbooks run only after a dry run and a person's approval",
    )
    charts: list[str] = Field(
        default_factory=list,
        description=f"up to {MAX_CHARTED} ids of evidence marked chartable that best show the cause, "
        "best first: they are drawn after the signal chart",
    )


# ---------------------------------------------------------------------- the prompt


def _evidence_payload(ev: Evidence, max_stats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"id": ev.id, "kind": ev.kind, "title": ev.title, "promql": ev.promql}
    out["range"] = f"{rfc3339(ev.start)} .. {rfc3339(ev.end)} step {ev.step:g}s"
    out["summary"] = ev.summary
    if ev.stats and max_stats:
        out["stats"] = [
            {"labels": s.labels, "baseline": s.baseline, "incident": s.incident, "peak": s.peak}
            for s in ev.stats[:max_stats]
        ]
        if len(ev.stats) > max_stats:
            out["stats_left_out"] = len(ev.stats) - max_stats
    if ev.error:
        out["error"] = ev.error
    if ev.series:
        out["chartable"] = True
    return out


def evidence_prompt(f: Findings, offline: Report, max_chars: int) -> str:
    """The user message: the alert and the evidence as data blocks, then the deterministic findings,
    shrunk (fewer stats rows per evidence) until it fits `max_chars`."""
    alert = f.alert
    alert_data = {
        "name": alert.name,
        "status": alert.status,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "starts_at": rfc3339(alert.starts_at),
        "expression": f.expression,
        "windows": offline.windows.model_dump(mode="json") if offline.windows else None,
    }
    findings = {
        "localized": offline.localized,
        "root_causes": [
            {
                "labels": rc.labels,
                "baseline": rc.baseline,
                "incident": rc.incident,
                "explained_share": rc.explained_share,
                "evidence_ids": rc.evidence_ids,
            }
            for rc in offline.root_causes
        ],
        "notes": offline.notes,
        "related": offline.related,
    }
    past = _past(f)
    for max_stats in (12, 6, 3, 1, 0):
        parts = [
            data_block("alert", alert_data),
            data_block("evidence", [_evidence_payload(e, max_stats) for e in f.evidence]),
            data_block("findings", findings),
            *([data_block("past_incidents", past)] if past else []),
            *([data_block("runbooks", _runbooks(f))] if f.runbooks else []),
        ]
        text = "\n\n".join(parts)
        if len(text) <= max_chars:
            return text
    return text[:max_chars]


# ---------------------------------------------------------------------- the writer


class LLMWriter:
    """Writes the Report with an LLM; falls back to the offline writer and says why.

    Its tools query `prom` with `clock` as "now"; the `breakdown` tool runs `breakdown` (the evidence
    phase of an ad-hoc expression)."""

    def __init__(
        self,
        config: LLMConfig,
        prom: Prometheus,
        *,
        clock: Callable[[], datetime],
        breakdown: Breakdown,
        model_factory: Callable[[LLMConfig], BaseChatModel] = build_chat_model,
    ) -> None:
        self.config = config
        self.prom = prom
        self.clock = clock
        self.breakdown = breakdown
        self.model_factory = model_factory
        self.offline = OfflineWriter()

    def write(self, f: Findings) -> Report:
        offline = self.offline.write(f)
        if f.unavailable or f.expression is None:
            return offline  # nothing for a model to reason about
        usage = LLMUsage(provider=self.config.provider, model=self._model_name())
        run = RunUsage()
        t0 = time.perf_counter()
        try:
            report = self._with_deadline(lambda: self._write(f, offline, run))
        except LLMFailure as exc:
            report = offline
            usage.fallback_reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - any client error means the offline report
            report = offline
            usage.fallback_reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        run.copy_to(usage)
        usage.seconds = round(time.perf_counter() - t0, 3)
        report.llm = usage
        report.timings["llm_seconds"] = usage.seconds
        report.timings["prompt_chars"] = float(run.prompt_chars)
        return report

    def _model_name(self) -> str:
        try:
            return self.config.model_name
        except Exception:  # noqa: BLE001
            return self.config.model or ""

    def _with_deadline(self, fn: Callable[[], Report]) -> Report:
        pool = ThreadPoolExecutor(max_workers=1)
        future = pool.submit(fn)
        try:
            return future.result(timeout=self.config.wall_seconds)
        except FutureTimeout:
            raise LLMFailure(f"wall-time budget of {self.config.wall_seconds:g}s exhausted") from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ the run

    def _write(self, f: Findings, offline: Report, run: RunUsage) -> Report:
        model = self.model_factory(self.config)
        system = prompt("system", f.language)
        instruction = prompt("report", f.language)
        data = evidence_prompt(
            f, offline, self.config.max_prompt_chars - len(system) - len(instruction) - 200
        )
        human = f"{data}\n\n{instruction}"
        run.prompt_chars = len(system) + len(human)
        evidence = list(f.evidence)  # tools append to it
        record = evidence_recorder(evidence, threading.Lock())

        if self.config.tool_calling:
            answer, messages = self._agent(model, system, human, f, record)
        else:
            answer, messages = self._single(model, system, human)
        run.count(messages)
        if answer is None:
            raise LLMFailure("the model returned no report (budget exhausted or no structured answer)")
        extra = _extra_numbers(f, offline)
        problems = self._problems(answer, evidence, extra)
        if problems:  # one repair round
            repair = HumanMessage(
                "Some figures or citations in your report are not in the evidence: "
                + "; ".join(problems)
                + ". Rewrite the report using only figures from the evidence, citing their ids."
            )
            fixed, more = self._repair(model, system, messages, repair)
            run.count(more)
            if fixed is not None:
                answer = fixed
            problems = self._problems(answer, evidence, extra)
        report = _merge(offline, answer, evidence)
        report.grounding = Grounding(checked=True, ungrounded=problems)
        return report

    def _agent(
        self, model: BaseChatModel, system: str, human: str, f: Findings, record: Recorder
    ) -> tuple[LLMReport | None, list[BaseMessage]]:
        toolkit = PromToolkit(
            self.prom,
            record,
            now=self.clock,
            localize=localizer(self.breakdown, record),
            limits=Limits(),
            exclude_alert={**f.alert.labels, "alertname": f.alert.name},
        )
        agent = create_agent(
            model,
            toolkit.tools(),
            system_prompt=system,
            response_format=ToolStrategy(LLMReport, handle_errors=True),
            middleware=budget_middleware(self.config),
        )
        state = agent.invoke(
            {"messages": [HumanMessage(human)]},
            {"recursion_limit": 4 * (self.config.max_model_calls + self.config.max_tool_calls) + 10},
        )
        messages = list(state.get("messages", []))
        answer = state.get("structured_response")
        return (answer if isinstance(answer, LLMReport) else None), messages

    def _single(
        self, model: BaseChatModel, system: str, human: str
    ) -> tuple[LLMReport | None, list[BaseMessage]]:
        """Evidence-only mode for models without tool calling: one call, the report as JSON."""
        schema = json.dumps(LLMReport.model_json_schema(), ensure_ascii=False)
        messages: list[BaseMessage] = [
            SystemMessage(system),
            HumanMessage(
                f"{human}\n\nAnswer with one JSON object only, matching this JSON schema:\n{schema}"
            ),
        ]
        reply = model.invoke(messages)
        return parse_report(_text(reply)), [reply]

    def _repair(
        self, model: BaseChatModel, system: str, messages: list[BaseMessage], repair: HumanMessage
    ) -> tuple[LLMReport | None, list[BaseMessage]]:
        if self.config.tool_calling:
            structured = model.with_structured_output(LLMReport, include_raw=True, method="function_calling")
            history = [SystemMessage(system), *_plain(messages), repair]
            out = structured.invoke(history)
            raw = out.get("raw") if isinstance(out, dict) else None
            parsed = out.get("parsed") if isinstance(out, dict) else None
            return (parsed if isinstance(parsed, LLMReport) else None), (
                [raw] if isinstance(raw, AIMessage) else []
            )
        reply = model.invoke([SystemMessage(system), *messages, repair])
        return parse_report(_text(reply)), [reply]

    def _problems(self, answer: LLMReport, evidence: Sequence[Evidence], extra: Sequence[float]) -> list[str]:
        texts = _texts(answer)
        out = [f"unsupported figure {u}" for u in ungrounded(texts, evidence, extra)]
        ids = unknown_citations(texts, evidence)
        ids += [i for rc in answer.root_causes for i in rc.evidence_ids if i not in {e.id for e in evidence}]
        out += [f"unknown evidence id {i}" for i in dict.fromkeys(ids)]
        return out


def _past(f: Findings, limit: int = 3) -> dict[str, Any] | None:
    """The incidents seen before, as the model gets them: the few most alike and the counts."""
    h = f.history
    if h is None:
        return None
    return {
        "first_seen": rfc3339(h.first_seen) if h.first_seen else None,
        "incidents_in_30_days": h.last_30_days,
        "same_cause_in_30_days": h.same_cause_30_days,
        "most_alike": [
            {
                "incident_id": p.incident_id,
                "started": rfc3339(p.starts_at),
                "lasted_seconds": p.duration_seconds,
                "root_causes": p.root_causes,
                "match": p.match,
                "summary": p.summary[:400],
                "ticket": p.ticket,
                "ended": p.closing_comment,
            }
            for p in h.similar[:limit]
        ],
    }


def _runbooks(f: Findings) -> list[dict[str, str]]:
    return [{"name": r.name, "description": r.description, "fits": r.why} for r in f.runbooks]


def _extra_numbers(f: Findings, offline: Report) -> list[float]:
    """Figures the deterministic findings state outside evidence stats: shares, threshold, volume, and
    the counts and durations of the incidents seen before."""
    out: list[float] = []
    if f.history is not None:
        h = f.history
        out += [float(h.last_30_days), float(h.same_cause_30_days), float(len(h.similar))]
        for p in h.similar:
            if p.duration_seconds is not None:
                out += [p.duration_seconds, p.duration_seconds / 60, p.duration_seconds / 3600]
    if f.condition is not None and f.condition.threshold is not None:
        out.append(f.condition.threshold)
    if f.localization is not None:
        for c in [*f.localization.causes, *f.localization.ranked]:
            out += [c.explained_share, c.volume_share, c.deviation]
            out += [v for v in (c.baseline, c.incident) if v is not None]
    for rc in offline.root_causes:
        out += [v for v in (rc.baseline, rc.incident, rc.explained_share) if v is not None]
    return out


def _texts(answer: LLMReport) -> list[str]:
    return [answer.summary, answer.impact, *answer.remediation, *answer.prevention] + [
        rc.statement for rc in answer.root_causes
    ]


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)


def _plain(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The conversation without tool-call plumbing, for a follow-up call without tools bound: the
    human prompt, tool results folded into text, and the model's last answer."""
    out: list[BaseMessage] = []
    for m in messages:
        if isinstance(m, HumanMessage):
            out.append(m)
        elif isinstance(m, AIMessage):
            calls = [c for c in m.tool_calls if c.get("name") == "LLMReport"]
            if calls:
                out.append(AIMessage(json.dumps(calls[-1].get("args", {}), ensure_ascii=False)))
            elif _text(m):
                out.append(AIMessage(_text(m)))
        elif m.type == "tool" and not str(_text(m)).startswith("Returning structured response"):
            out.append(HumanMessage(f"Tool result:\n{_text(m)}"))
    return out


_JSON_BLOCK = re.compile(r"\{.*\}", re.S)


def parse_report(text: str) -> LLMReport | None:
    """The report from a model's text answer: the outermost JSON object, fences and reasoning ignored."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.S)
    m = _JSON_BLOCK.search(text)
    if not m:
        return None
    try:
        return LLMReport.model_validate_json(m.group(0))
    except ValidationError:
        try:
            return LLMReport.model_validate(json.loads(m.group(0)))
        except (ValueError, ValidationError):
            return None


def _merge(offline: Report, answer: LLMReport, evidence: list[Evidence]) -> Report:
    """The LLM's prose on the offline report's numbers: root causes the localization found keep their
    figures; ones only the model names carry its statement and citations."""
    report = offline.model_copy(deep=True)
    report.summary = answer.summary
    report.impact = answer.impact
    report.remediation = list(answer.remediation)
    report.prevention = list(answer.prevention)
    report.evidence = evidence
    known = {tuple(sorted(rc.labels.items())): rc for rc in offline.root_causes}
    causes = []
    for item in answer.root_causes:
        base = known.get(tuple(sorted(item.labels.items())))
        if base is not None:
            ids = item.evidence_ids or base.evidence_ids
            causes.append(base.model_copy(update={"statement": item.statement, "evidence_ids": ids}))
        else:
            causes.append(
                RootCause(
                    labels=item.labels, score=0.0, statement=item.statement, evidence_ids=item.evidence_ids
                )
            )
    if causes:  # the localization's verdict (`localized`) stays the deterministic one
        report.root_causes = causes
    if answer.runbook and any(r.name == answer.runbook for r in report.runbooks):  # the catalog's only
        chosen = [
            r.model_copy(update={"suggested": True}) for r in report.runbooks if r.name == answer.runbook
        ]
        report.runbooks = chosen + [r for r in report.runbooks if r.name != answer.runbook]
    chartable = {ev.id for ev in evidence if ev.series}
    report.charted = list(dict.fromkeys(i for i in answer.charts if i in chartable))[:MAX_CHARTED]
    report.created_at = datetime.now(UTC)
    return report
