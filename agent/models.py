"""The investigation's data model: one Report schema for the LLM and the offline writers.

The JSON form of `Report` is a stable contract (CLI `--format json`, `GET /api/v1/reports/{id}`).
Fields are only ever added, never renamed or removed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from agent.history import HistorySummary


def utcnow() -> datetime:
    return datetime.now(UTC)


class AlertInfo(BaseModel):
    """The alert under investigation, independent of how it arrived."""

    name: str
    status: str = "firing"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime
    ends_at: datetime | None = None
    fingerprint: str = ""
    generator_url: str | None = None


class TimeRange(BaseModel):
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


class Windows(BaseModel):
    baseline: TimeRange
    incident: TimeRange


class SegmentStat(BaseModel):
    """One series (or label set) compared between the baseline and the incident window."""

    labels: dict[str, str]
    baseline: float | None = None
    incident: float | None = None
    peak: float | None = None


class Evidence(BaseModel):
    """One query that ran, with the numbers it returned, citable by id (E1, E2, ...)."""

    id: str
    kind: str = Field(description="signal | breakdown | localization | rule | related")
    title: str
    promql: str
    start: datetime
    end: datetime
    step: float = Field(description="seconds")
    summary: str = Field(description="compact numeric summary of the result")
    stats: list[SegmentStat] = Field(default_factory=list)
    truncated: bool = False
    error: str | None = None
    series: list[dict[str, Any]] | None = Field(default=None, description="optional points for charts")
    graph_url: str | None = Field(
        default=None, description="the query over its range in Prometheus' graph page, or Grafana's Explore"
    )


class RootCause(BaseModel):
    labels: dict[str, str]
    score: float = Field(description="0..1, higher explains more of the anomaly")
    statement: str
    evidence_ids: list[str] = Field(default_factory=list)
    baseline: float | None = Field(default=None, description="the element's value in the baseline window")
    incident: float | None = Field(default=None, description="the element's value in the incident window")
    explained_share: float | None = Field(default=None, description="share of the alert's change it explains")
    surprise: float | None = Field(default=None, description="how unexpected the element's change is")
    mostly: dict[str, str] = Field(
        default_factory=dict,
        description="values of labels only the numerator has (the kind of error) that carry most of "
        "this cause's change, e.g. {status: 503}",
    )


class StormMember(BaseModel):
    incident_id: int
    labels: dict[str, str] = Field(description="the labels in which the members differ")
    covered: bool | None = Field(
        description="whether a root cause holds this member (its labels agree with a cause's on the "
        "labels they share); null when no cause shares a label with it"
    )


class Storm(BaseModel):
    """Many alerts of one rule and group investigated once: the report is theirs too."""

    alerts: int = Field(description="the alerts of the storm, this report's own included")
    shared: dict[str, str] = Field(description="the labels all of them have: the signal investigated")
    varying: list[str] = Field(description="the labels in which they differ")
    covered: int = Field(description="members a root cause holds")
    not_covered: int = Field(description="members no root cause holds, though one shares labels with them")
    undetermined: int = Field(description="members no root cause shares a label with")
    members: list[StormMember] = Field(
        default_factory=list, description="the members, covered first (at most MAX_LISTED)"
    )


class LLMUsage(BaseModel):
    provider: str
    model: str
    calls: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    fallback_reason: str | None = None


class Grounding(BaseModel):
    checked: bool = False
    ungrounded: list[str] = Field(default_factory=list)


class TicketLink(BaseModel):
    """A ticket opened for the incident by a ticket sink (filled in after delivery)."""

    sink: str
    key: str
    url: str
    closed_at: datetime | None = Field(default=None, description="when the sink closed it on resolution")
    closing_comment: str | None = Field(default=None, description="the comment it was closed with")


class RunbookSuggestion(BaseModel):
    """A runbook of the operator's catalog that fits the incident (server/runbooks/): proposed, never run
    by the report; it runs only after its dry run and an approval."""

    name: str
    description: str
    why: str = Field(description="which alert and root-cause labels it fits")
    suggested: bool = Field(default=False, description="the LLM writer chose it as the one to try first")


class Report(BaseModel):
    id: str
    alert: AlertInfo
    expression: str | None = Field(description="the alert rule's PromQL, as found")
    windows: Windows | None = None
    threshold: float | None = Field(
        default=None, description="the threshold the rule's expression compares its signal with, if any"
    )
    comparison: str | None = Field(default=None, description="that comparison: >, >=, <, <=, == or !=")
    summary: str
    localized: bool = False
    localization_note: str | None = Field(
        default=None,
        description="why the localization did not run, when it did not (null: it ran, or the report "
        "was written before this field)",
    )
    root_causes: list[RootCause] = Field(default_factory=list, description="best first")
    evidence: list[Evidence] = Field(default_factory=list)
    charted: list[str] = Field(
        default_factory=list,
        description="evidence ids the writer chose to chart first, after the signal (the LLM writer may "
        "choose among the evidence that has series; the charts are drawn from those series, never from "
        "its text). Empty: the fixed order (signal, root causes, breakdowns)",
    )
    impact: str = ""
    related: list[str] = Field(
        default_factory=list,
        description="other alerts firing, targets down, restarts, deploys found, citing [evidence id]",
    )
    remediation: list[str] = Field(default_factory=list)
    prevention: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="limits and degradations met on the way")
    data_coverage: dict[str, float] = Field(
        default_factory=dict,
        description="window name (baseline, incident) -> seconds of it in which the alert signal had data",
    )
    confidence: str | None = Field(
        default=None,
        description="'low' when the baseline window had data for less than half of it (the comparison "
        "rests on little history), else 'normal'; null when the signal was not measured",
    )
    degraded: bool = Field(default=False, description="true when part of the investigation could not run")
    runbooks: list[RunbookSuggestion] = Field(
        default_factory=list, description="runbooks of the catalog that fit the root causes, best first"
    )
    history: HistorySummary | None = Field(
        default=None, description="incidents seen before: the most alike, and how often this alert fired"
    )
    storm: Storm | None = Field(
        default=None,
        description="when this report investigated an alert storm (many alerts of one rule and group at "
        "once): its members and which of them the localization covers",
    )
    language: str = "en"
    llm: LLMUsage | None = None
    grounding: Grounding = Field(default_factory=Grounding)
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per phase, and query counts")
    tickets: list[TicketLink] = Field(default_factory=list, description="tickets opened for the incident")
    created_at: datetime = Field(default_factory=utcnow)
