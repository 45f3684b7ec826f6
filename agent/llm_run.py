"""What one LLM run needs, for the report writer and `ask` alike: untrusted data as delimited data
blocks, the run's budgets as LangChain middleware, usage counting, and tool calls filed as evidence.

Imports LangChain: load it only when an LLM is configured.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langchain.agents.middleware import ModelCallLimitMiddleware, ToolCallLimitMiddleware
from langchain_core.messages import AIMessage, BaseMessage

from agent.llm import LLMConfig
from agent.models import Evidence, LLMUsage
from tools.toolkit import Recorder

# ---------------------------------------------------------------------- untrusted data as data

_DATA_CLOSE = re.compile(r"</?\s*data", re.I)


def data_block(kind: str, payload: Any) -> str:
    """Untrusted content as JSON inside a <data> block; nothing in it can close the block."""
    text = json.dumps(payload, ensure_ascii=False, indent=1, default=str)
    text = _DATA_CLOSE.sub(lambda m: m.group(0).replace("<", "\\u003c"), text)
    return f'<data kind="{kind}">\n{text}\n</data>'


# ---------------------------------------------------------------------- budgets and usage


def budget_middleware(config: LLMConfig) -> list[Any]:
    """The run's budgets: past `max_model_calls` the run ends (no answer: the caller falls back); past
    `max_tool_calls` tools answer that the budget is spent, and the model must answer with what it has."""
    return [
        ModelCallLimitMiddleware(run_limit=config.max_model_calls, exit_behavior="end"),
        ToolCallLimitMiddleware(run_limit=config.max_tool_calls, exit_behavior="continue"),
    ]


@dataclass
class RunUsage:
    """What one run used: model calls, tool calls, tokens, and the prompt's size."""

    calls: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_chars: int = 0

    def count(self, messages: Sequence[BaseMessage]) -> None:
        for m in messages:
            # answers of the model carry response metadata; notes a middleware adds do not
            if isinstance(m, AIMessage) and (m.response_metadata or m.usage_metadata):
                self.calls += 1
                self.tool_calls += len([c for c in m.tool_calls if c.get("name") != "LLMReport"])
                if m.usage_metadata:
                    self.prompt_tokens += int(m.usage_metadata.get("input_tokens", 0))
                    self.completion_tokens += int(m.usage_metadata.get("output_tokens", 0))

    def copy_to(self, usage: LLMUsage) -> None:
        """Set the counts of `usage` (the report's or the answer's) to this run's."""
        usage.calls, usage.tool_calls = self.calls, self.tool_calls
        usage.prompt_tokens, usage.completion_tokens = self.prompt_tokens, self.completion_tokens


# ---------------------------------------------------------------------- tool calls as evidence


def evidence_recorder(
    evidence: list[Evidence], lock: threading.Lock, emit: Callable[[str, dict[str, Any]], None] | None = None
) -> Recorder:
    """A Recorder that appends each tool call to `evidence` with the next id (and tells `emit`)."""

    def record(*, kind: str, title: str, promql: str, start: datetime, end: datetime, step: float,
               summary: str, error: str | None = None) -> str:  # fmt: skip
        with lock:
            ev_id = f"E{len(evidence) + 1}"
            evidence.append(
                Evidence(id=ev_id, kind=kind, title=title, promql=promql, start=start, end=end,
                         step=step, summary=summary, error=error)
            )  # fmt: skip
        if emit is not None:
            emit("evidence", {"id": ev_id, "title": title, "promql": promql, "error": error})
        return ev_id

    return record
