"""What every sink gets and returns: the Notice, the ticket it may hold, the outcome, its errors.

A sink is a thin adapter: it turns a `Notice` into one platform's API calls and nothing else. Routing
(`plan.py`), persistence (`server/db/deliveries.py`), retries and backoff (`outbox.py`) live elsewhere.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from tools.errors import DeliveryError

__all__ = [
    "ChatThreadRef",
    "DeliveryError",
    "Event",
    "Notice",
    "NoticeCause",
    "Outcome",
    "Sink",
    "SinkConfig",
    "TicketRef",
    "TicketSlot",
]

Event = Literal["firing", "update", "resolved", "test", "note"]  # note: a line for the ticket (ChatOps)


@dataclass(frozen=True)
class TicketRef:
    """A ticket in a tracker: `id` is what the API addresses (Redmine 42, Jira 10001, GitHub 7),
    `key` what people read (#42, OPS-12, owner/repo#7), `url` its page."""

    id: str
    key: str
    url: str


@dataclass(frozen=True)
class ChatThreadRef:
    """A chat message a sink posted, where replies about the incident are read and written."""

    platform: str  # slack | feishu | ...
    channel: str
    thread: str  # Slack's ts


@dataclass(frozen=True)
class NoticeCause:
    """One root cause as a notice carries it (the report's `RootCause`, reduced to what sinks show)."""

    labels: dict[str, str]
    statement: str
    score: float


@dataclass(frozen=True)
class Notice:
    """One thing to tell a sink about one incident. Built by the outbox from the stored report."""

    event: Event
    incident_id: int
    marker: str  # stable and unique per incident, e.g. "alertsleuth-3f9a1c2b7d4e-1763700000"
    alertname: str
    status: str  # firing | resolved
    severity: str | None
    labels: dict[str, str]
    title: str  # "[FIRING] LoginFailureRatio: ip_region=shanghai, user_type=admin"
    summary: str  # the report's summary paragraph (or a line saying there is no report yet)
    root_causes: list[NoticeCause] = field(default_factory=list)
    localized: bool = False
    degraded: bool = False
    starts_at: str = ""  # RFC 3339
    ends_at: str | None = None
    duration_seconds: float | None = None  # resolved notices
    report_id: str | None = None
    markdown: str | None = None  # the full report, as archived
    html: str | None = None
    report_json: str | None = None
    report_url: str | None = (
        None  # the full report's HTML page on alertsleuth (needs ALERTSLEUTH_EXTERNAL_URL)
    )
    incident_url: str | None = None
    # The signal chart by a signed expiring link anyone can open (server/chart_links.py; needs
    # ALERTSLEUTH_CHART_LINK_KEY and ALERTSLEUTH_EXTERNAL_URL): for platforms that show images by URL.
    chart_url: str | None = None
    change: str | None = None  # update notices: what changed since the last one sent
    # The report's first screen (agent/headline.py): the verdict, where the change lives, since when.
    headline: list[str] = field(default_factory=list)
    # Runbooks of the catalog that fit (the report's), best first: chat offers them (`run <name>`).
    runbooks: list[str] = field(default_factory=list)
    # The chat thread this sink's firing notice started (ChatOps): later notices answer in it.
    thread: ChatThreadRef | None = None
    # The report's charts as PNG (filename, bytes), drawn when a sink first asks (agent/charts.py).
    charts: Callable[[], list[tuple[str, bytes]]] = field(default=lambda: [], repr=False, compare=False)


class TicketSlot:
    """The ticket a sink holds for this incident, and how to save one the moment it exists.

    `save` persists immediately (before the rest of the attempt), so a retry after a later failure
    comments on the ticket instead of creating a second one.
    """

    def __init__(self, ref: TicketRef | None, save: Callable[[TicketRef], None]) -> None:
        self.ref = ref
        self._save = save

    def set(self, ref: TicketRef) -> None:
        self.ref = ref
        self._save(ref)


@dataclass
class Outcome:
    detail: str  # what happened, for people: "created OPS-12 with 2 attachments", "sent (1.2 kB)"
    ticket: TicketRef | None = None
    skipped: bool = False
    closing_comment: str | None = None  # a tracker's resolution: the comment it closed the ticket with
    thread: ChatThreadRef | None = None  # a chat sink's firing message that replies can come back to


class SinkConfig(BaseModel):
    """Base of every sink's YAML settings; unknown keys are refused, naming the key."""

    # hide_input_in_errors: a refused value may be a secret; errors name the key, never echo the value
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    type: str
    timeout: float = 10.0


def base_url(value: str, key: str) -> str:
    """An API's base URL as the setting `key` takes it: http(s) with a host, without a trailing slash."""
    if not re.match(r"https?://[^/\s]+", value):
        raise ValueError(f"{key} must start with http:// or https://")
    return value.rstrip("/")


class Sink(ABC):
    """One configured destination. Subclasses set `kind` (the YAML `type`) and `config_model`."""

    kind: ClassVar[str]
    config_model: ClassVar[type[SinkConfig]]
    tickets: ClassVar[bool] = False  # True (TicketSink): keeps one ticket per incident

    def __init__(self, name: str, config: Any, http: Any) -> None:
        """`http` is an `httpx.Client` owned by the outbox (None for sinks that do not use HTTP)."""
        self.name = name
        self.config = config
        self.http = http

    @abstractmethod
    def send(self, notice: Notice, ticket: TicketSlot) -> Outcome:
        """Deliver one notice; raise `DeliveryError` on failure. `test` sends a test message.

        Ticket sinks subclass `TicketSink` (server/delivery/tickets.py), whose `send` is the one ticket
        lifecycle: find by `notice.marker` when no ticket is held, create and `ticket.set(...)` at once,
        comment on `update`, comment and close on `resolved` (skipped without a ticket); a tracker
        supplies only those operations.
        """
