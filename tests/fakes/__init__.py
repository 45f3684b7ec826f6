"""Fakes that speak real protocols on loopback, for contract tests."""

from exporter.fake_openai import (
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
