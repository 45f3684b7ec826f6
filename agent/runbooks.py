"""Runbooks that fit: what the investigation asks the operator's catalog, once the root causes are known.

The investigation does not know the catalog. It is given a `RunbookMenu` (the server's catalog answers
it: server/chatops/desk.py `CatalogMenu`; the CLI has none) and asks it which runbooks fit the alert and
its root causes. The report lists them (`Report.runbooks`); the LLM writer may choose one of them as
its suggestion, never another: a runbook is run only through the server's approval flow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from agent.models import RunbookSuggestion


class RunbookMenu(Protocol):
    def fitting(
        self, alertname: str, root_causes: Sequence[Mapping[str, str]], labels: Mapping[str, str]
    ) -> list[RunbookSuggestion]:
        """The runbooks of the catalog that fit, the best first."""
        ...
