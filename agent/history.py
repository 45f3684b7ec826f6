"""Incidents seen before: what the investigation asks about the past, and what it gets back.

The investigation does not know where incidents are kept. It is given a `History` (the server's store
answers it: server/db/history.py; the CLI has none) and asks it, once the root causes are known, for
the past incidents most like this one. Pure data here; the ranking lives in tools/similarity.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class Likeness:
    """What a past incident is compared on."""

    alertname: str
    causes: tuple[tuple[tuple[str, str], ...], ...]  # root-cause label sets, best first
    metrics: tuple[str, ...]  # the metric names the alert expression reads (its "family")
    fingerprint: str = ""
    before: datetime | None = None  # only incidents that started before this (default: any)
    exclude_incident: int | None = None  # the incident under investigation


class PastIncident(BaseModel):
    """One incident seen before, as a report shows it."""

    incident_id: int
    alertname: str
    starts_at: datetime
    resolved_at: datetime | None = None
    duration_seconds: float | None = Field(default=None, description="how long it fired, when it resolved")
    root_causes: list[dict[str, str]] = Field(default_factory=list, description="its root-cause label sets")
    summary: str = ""
    report_id: str | None = None
    ticket: str | None = Field(default=None, description="its ticket's key, when a ticket sink opened one")
    ticket_url: str | None = None
    closing_comment: str | None = Field(default=None, description="how the ticket was closed, when known")
    match: str = Field(
        description="why it is similar: same_cause | overlapping_cause | same_alert | same_family"
    )
    score: float = Field(description="0..1, higher is more alike")


class HistorySummary(BaseModel):
    """The past of this alert: the most alike incidents, and how often it fired."""

    similar: list[PastIncident] = Field(default_factory=list, description="most alike first")
    first_seen: datetime | None = Field(default=None, description="when this alert first fired, as stored")
    last_30_days: int = Field(default=0, description="incidents of this alert in the 30 days before this one")
    same_cause_30_days: int = Field(
        default=0, description="of those, how many had this incident's first root cause among theirs"
    )


class History(Protocol):
    """Where past incidents are kept (the server's store; none in the CLI)."""

    def similar(self, like: Likeness, limit: int = 5) -> HistorySummary: ...


@dataclass
class NoHistory:
    """A History that has seen nothing (the CLI, tests)."""

    seen: list[Likeness] = field(default_factory=list)

    def similar(self, like: Likeness, limit: int = 5) -> HistorySummary:
        self.seen.append(like)
        return HistorySummary()


def label_key(labels: Sequence[tuple[str, str]] | dict[str, str]) -> str:
    """A label set as one sortable key: `ip_region=shanghai,user_type=admin` (names sorted)."""
    pairs = sorted(labels.items() if isinstance(labels, dict) else labels)
    return ",".join(f"{k}={v}" for k, v in pairs)
