"""The tables: notifications (and the incidents each touched, `notification_incidents`), incidents, the
job queue, reports, deliveries, tickets, ask sessions, and what each incident's last good report found
(`incident_findings`, for incidents seen before).

Only the schema lives here (and `make_engine`); the operations on it live in one module per job
(intake, jobs, deliveries, reports, incidents, ask_sessions, history). The migrations
(server/db/migrations/) create it, and their head must match this module (server/db/migrate.py
`schema_differences`).

Two backends, one behaviour: SQLite by default (WAL, busy timeout, foreign keys on), PostgreSQL
(`postgresql+psycopg://`). Where they differ underneath:
- ids: `Id` is INTEGER on SQLite (64 bits) and BIGINT on PostgreSQL, so both take ids to 2**63 - 1;
- strings: `Str(n)` is VARCHAR(n) on SQLite, which never enforced the length, and TEXT on PostgreSQL,
  which would: fingerprints, alert names, sink names and ticket keys come from outside, unbounded;
- times: `UTCDateTime` stores naive UTC on both and reads it back aware;
- NUL characters: PostgreSQL's text cannot hold them; there they are stored as U+FFFD
  (server/db/postgres.py, which also names the driver: psycopg 3);
- the full-text index of reports, `report_search`: on SQLite an FTS5 virtual table the migrations
  create (no model: SQLAlchemy cannot describe one), on PostgreSQL the table `report_search` below
  (`search_metadata`), a tsvector with a GIN index. server/db/history.py reads and writes both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from agent.models import AlertInfo, utcnow
from server.db.postgres import postgres_engine


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


# Ids: INTEGER on SQLite (a 64-bit rowid), BIGINT on PostgreSQL (whose INTEGER is 32 bits): the API
# takes ids up to 2**63 - 1 (server/payloads.py MAX_ID) on both.
Id = Integer().with_variant(BigInteger(), "postgresql")


def Str(length: int) -> TypeEngine[str]:
    """VARCHAR(length) on SQLite (which never enforced the length), TEXT on PostgreSQL (which would)."""
    return String(length).with_variant(Text(), "postgresql")


class Base(DeclarativeBase):
    pass


class Notification(Base):
    """Every accepted request body, as received."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(Str(32))
    group_key: Mapped[str] = mapped_column(Text, default="")
    alerts: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[str] = mapped_column(Text)


class NotificationIncident(Base):
    """A notification that touched an incident, and what it did to it: one row per (notification,
    incident), written by `Intake.ingest` in the notification's transaction. Notifications stored before
    this table existed have none (an incident's `notifications` still counts them)."""

    __tablename__ = "notification_incidents"
    notification_id: Mapped[int] = mapped_column(Id, ForeignKey("notifications.id"), primary_key=True)
    incident_id: Mapped[int] = mapped_column(Id, ForeignKey("incidents.id"), primary_key=True, index=True)
    status: Mapped[str] = mapped_column(Str(16))  # the alert's status in it: firing | resolved
    outcome: Mapped[str] = mapped_column(Str(16))  # created | deduplicated | resolved | refreshed
    receiver: Mapped[str] = mapped_column(Text, default="")  # Alertmanager's receiver ("" from Prometheus)


class Incident(Base):
    """One firing of one alert: identified by the alert's fingerprint and startsAt."""

    __tablename__ = "incidents"
    __table_args__ = (
        # (its index also serves lookups by fingerprint alone)
        UniqueConstraint("fingerprint", "starts_at", name="uq_incident_fp_start"),
        Index("ix_incidents_alertname_starts", "alertname", "starts_at"),  # the history's counts
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(Str(64))
    alertname: Mapped[str] = mapped_column(Str(255))
    status: Mapped[str] = mapped_column(Str(16), default="firing")  # firing | resolved
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    annotations: Mapped[dict[str, str]] = mapped_column(JSON)
    generator_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    notifications: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # queued | running | done | degraded | failed | none (resolved before any investigation)
    investigation: Mapped[str] = mapped_column(Str(16), default="queued")
    report_id: Mapped[str | None] = mapped_column(Str(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Alert storms (server/db/storms.py): the key of its rule and group, and the incident whose
    # investigation is this one's too (its own id when it led one; null: investigated alone)
    storm_key: Mapped[str | None] = mapped_column(Str(32), nullable=True, index=True)
    storm_lead_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("incidents.id"), nullable=True, index=True
    )

    def alert(self) -> AlertInfo:
        return AlertInfo(
            name=self.alertname,
            status=self.status,
            labels=self.labels,
            annotations=self.annotations,
            starts_at=self.starts_at,
            ends_at=self.resolved_at,
            fingerprint=self.fingerprint,
            generator_url=self.generator_url,
        )


class Job(Base):
    """The durable investigation queue, claimed by priority (0 first: server/db/jobs.py `priority_of`),
    then id."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "state", "priority", "id"),)  # (also serves state alone)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(Id, ForeignKey("incidents.id"), index=True)
    # queued | running | done | failed | attached (a storm member's, while its lead works)
    state: Mapped[str] = mapped_column(Str(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    worker: Mapped[str | None] = mapped_column(Str(64), nullable=True)
    # A storm member's job: the lead's job, whose investigation it follows (state "attached" meanwhile)
    lead_job_id: Mapped[int | None] = mapped_column(Id, ForeignKey("jobs.id"), nullable=True, index=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReportRow(Base):
    __tablename__ = "reports"
    id: Mapped[str] = mapped_column(Str(64), primary_key=True)
    incident_id: Mapped[int] = mapped_column(Id, ForeignKey("incidents.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[str] = mapped_column(Text)  # Report JSON
    markdown: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    paths: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class AskSession(Base):
    """A multi-turn `ask` conversation."""

    __tablename__ = "ask_sessions"
    id: Mapped[str] = mapped_column(Str(32), primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(Id, ForeignKey("incidents.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AskMessage(Base):
    __tablename__ = "ask_messages"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("ask_sessions.id"), index=True)
    role: Mapped[str] = mapped_column(Str(16))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    queries: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # evidence of an answer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """The outbox: one notice to one sink, persisted before it is attempted."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(Id, ForeignKey("incidents.id"), index=True)
    sink: Mapped[str] = mapped_column(Str(64))
    event: Mapped[str] = mapped_column(Str(16))  # firing | update | resolved
    report_id: Mapped[str | None] = mapped_column(Str(64), nullable=True)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    change: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(Str(16), default="pending", index=True)  # pending|sending|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)  # what happened, on success
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Ticket(Base):
    """The one ticket a ticket sink keeps for an incident."""

    __tablename__ = "tickets"
    __table_args__ = (UniqueConstraint("incident_id", "sink", name="uq_ticket_incident_sink"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(Id, ForeignKey("incidents.id"), index=True)
    sink: Mapped[str] = mapped_column(Str(64))
    ext_id: Mapped[str] = mapped_column(Str(255))
    key: Mapped[str] = mapped_column(Str(255))
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # written when the sink's resolution delivery succeeds: the comment it closed the ticket with
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closing_comment: Mapped[str | None] = mapped_column(Text, nullable=True)


class IncidentFinding(Base):
    """What the incident's last good (not degraded) report found, kept to compare later incidents with
    (server/db/history.py). Written in the transaction that makes such a report current."""

    __tablename__ = "incident_findings"
    incident_id: Mapped[int] = mapped_column(Id, ForeignKey("incidents.id"), primary_key=True)
    alertname: Mapped[str] = mapped_column(Str(255), index=True)
    fingerprint: Mapped[str] = mapped_column(Str(64))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    report_id: Mapped[str] = mapped_column(Str(64))
    causes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)  # root-cause labels, best first
    # agent.history.label_key of each cause, "|"-separated with a leading and trailing "|" (LIKE '%|k|%')
    cause_keys: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[list[str]] = mapped_column(JSON, default=list)  # metric names the expression reads
    metric_keys: Mapped[str] = mapped_column(Text, default="")  # the same, "|"-separated like cause_keys
    summary: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ChatThread(Base):
    """A chat message alertsleuth posted about an incident (a chat sink's firing notice), where replies
    come back: an inbound message in this thread is about this incident (server/chatops/)."""

    __tablename__ = "chat_threads"
    __table_args__ = (UniqueConstraint("platform", "channel", "thread", name="uq_chat_thread"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(Id, ForeignKey("incidents.id"), index=True)
    platform: Mapped[str] = mapped_column(Str(16))  # slack | feishu | wecom | dingtalk
    channel: Mapped[str] = mapped_column(Str(255))
    thread: Mapped[str] = mapped_column(Str(255))  # Slack's ts, Feishu's message_id
    sink: Mapped[str] = mapped_column(Str(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatEvent(Base):
    """An inbound chat event already taken (server/chatops/service.py): a platform's retry of it (Slack
    sends again when it got no answer within 3 s), to this replica or another, is dropped. Kept a day."""

    __tablename__ = "chat_events"
    platform: Mapped[str] = mapped_column(Str(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(Str(255), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SilenceRow(Base):
    """A silence alertsleuth created in Alertmanager for an incident, who asked for it and who ended it."""

    __tablename__ = "silences"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(Id, ForeignKey("incidents.id"), index=True)
    silence_id: Mapped[str] = mapped_column(Str(64), index=True)  # Alertmanager's id
    matchers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(Str(255))  # "slack:U123", "api:alice", "ui:alice"
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expired_by: Mapped[str | None] = mapped_column(Str(255), nullable=True)


class RunbookAction(Base):
    """One runbook proposed for an incident, through its dry run, approval and run (server/db/actions.py
    holds the states). Its every step is also an `audit_events` row."""

    __tablename__ = "runbook_actions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[int] = mapped_column(Id, ForeignKey("incidents.id"), index=True)
    runbook: Mapped[str] = mapped_column(Str(128))
    # dry_running | proposed (dry run done, waiting for approval) | dry_run_failed | running | succeeded
    # | failed | denied | interrupted (its process stopped while it ran)
    state: Mapped[str] = mapped_column(Str(16), index=True)
    requested_by: Mapped[str] = mapped_column(Str(255))
    reply_to: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # where to answer (a chat thread)
    approved_by: Mapped[str | None] = mapped_column(Str(255), nullable=True)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # secrets masked
    variables_digest: Mapped[str] = mapped_column(Str(64))  # sha256 of the variables, secrets included
    command: Mapped[list[str]] = mapped_column(JSON, default=list)  # the exact command line, masked
    dry_run: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # status, rc, output, ...
    run: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    """What someone did or was refused, append-only: the migration's triggers refuse UPDATE and DELETE
    on both backends. `detail` holds the exact command, variables (secrets masked), exit status and
    output digest of a run."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    incident_id: Mapped[int | None] = mapped_column(Id, ForeignKey("incidents.id"), nullable=True, index=True)
    action_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("runbook_actions.id"), nullable=True, index=True
    )
    actor: Mapped[str] = mapped_column(Str(255))  # "slack:U123" ...
    via: Mapped[str] = mapped_column(Str(64))  # slack | feishu | wecom | dingtalk | api | ui
    kind: Mapped[str] = mapped_column(Str(32))  # ask | silence | unsilence | run_requested | ... | refused
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


search_metadata = MetaData()
report_search = Table(  # PostgreSQL's full-text index of reports (on SQLite: FTS5, see above)
    "report_search",
    search_metadata,
    Column("incident_id", Id, primary_key=True, autoincrement=False),
    Column("report_id", Text, nullable=False),
    Column("body", Text, nullable=False),  # the text indexed (server/db/history.py `_search_body`)
    Column("document", TSVECTOR, nullable=False),  # its words (`document_words`), as lexemes
    Index("ix_report_search_document", "document", postgresql_using="gin"),
)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if make_url(url).get_backend_name() in ("postgresql", "postgres"):
        return postgres_engine(url)
    return create_engine(url, pool_pre_ping=True)
