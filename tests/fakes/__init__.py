"""Fakes that speak real protocols on loopback, for contract tests."""

from tests.fakes.openai_server import (
    Error,
    Malformed,
    RecordedRequest,
    Reply,
    ScriptedOpenAI,
    ScriptError,
    Slow,
    Step,
    ToolCalls,
)

__all__ = [
    "Error",
    "Malformed",
    "RecordedRequest",
    "Reply",
    "ScriptError",
    "ScriptedOpenAI",
    "Slow",
    "Step",
    "ToolCalls",
]
