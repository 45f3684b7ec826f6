"""`Findings`: everything the evidence phase learned about one alert, the one input of every writer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from agent.history import HistorySummary
from agent.models import AlertInfo, Evidence, RunbookSuggestion, Windows
from tools import promql
from tools.analysis import Localization
from tools.related import RelatedResult


@dataclass
class Findings:
    """Everything the evidence phase learned; what a writer turns into a Report."""

    alert: AlertInfo
    language: str
    expression: str | None = None
    expression_source: str | None = None
    condition: promql.Condition | None = None
    shape: promql.Shape | None = None
    windows: Windows | None = None
    step: float = 0.0
    evidence: list[Evidence] = field(default_factory=list)
    signal_evidence: str | None = None
    label_evidence: dict[str, str] = field(default_factory=dict)  # label -> evidence id of its breakdown
    leaf_evidence: list[str] = field(default_factory=list)
    cause_evidence: dict[tuple[tuple[str, str], ...], str] = field(
        default_factory=dict
    )  # element -> evidence id
    labels: list[str] = field(default_factory=list)
    # element -> (values of the numerator-only labels carrying most of its change, their share, evidence id)
    cause_detail: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], float, str]] = field(
        default_factory=dict
    )
    jobs: list[str] = field(default_factory=list)  # `job` values of the alert's underlying series
    related: RelatedResult | None = None  # other alerts, targets down, restarts, deploys
    related_evidence: dict[str, str] = field(default_factory=dict)  # related section kind -> evidence id
    localization: Localization | None = None
    # window name (baseline, incident) -> seconds of it in which the signal had data
    data_seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    degraded: bool = False
    unavailable: bool = False  # Prometheus could not be reached at all
    timings: dict[str, float] = field(default_factory=dict)
    history: HistorySummary | None = None  # incidents seen before (None: no history was asked)
    runbooks: list[RunbookSuggestion] = field(default_factory=list)  # runbooks of the catalog that fit


def new_report_id() -> str:
    return uuid.uuid4().hex
