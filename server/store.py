"""Persistence through SQLAlchemy: notifications, incidents, the durable job queue, reports.

SQLite by default (WAL, busy timeout); the same code runs on PostgreSQL. Blocking: call from worker
threads (FastAPI's threadpool or the worker pool), never on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from agent.models import AlertInfo, Report


def utcnow() -> datetime:
    return datetime.now(UTC)


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


class Base(DeclarativeBase):
    pass


class Notification(Base):
    """Every accepted request body, as received."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(32))
    group_key: Mapped[str] = mapped_column(Text, default="")
    alerts: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[str] = mapped_column(Text)


class Incident(Base):
    """One firing of one alert: identified by the alert's fingerprint and startsAt."""

    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("fingerprint", "starts_at", name="uq_incident_fp_start"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    alertname: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16), default="firing")  # firing | resolved
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    annotations: Mapped[dict[str, str]] = mapped_column(JSON)
    generator_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    notifications: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # queued | running | done | degraded | failed | none (resolved before any investigation)
    investigation: Mapped[str] = mapped_column(String(16), default="queued")
    report_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

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
    """The durable investigation queue."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)  # queued|running|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReportRow(Base):
    __tablename__ = "reports"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[str] = mapped_column(Text)  # Report JSON
    markdown: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    paths: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class AskSession(Base):
    """A multi-turn `ask` conversation."""

    __tablename__ = "ask_sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AskMessage(Base):
    __tablename__ = "ask_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("ask_sessions.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    queries: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # evidence of an answer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """The outbox: one notice to one sink, persisted before it is attempted."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    sink: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(16))  # firing | update | resolved
    report_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    change: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(
        String(16), default="pending", index=True
    )  # pending|sending|done|failed
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
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    sink: Mapped[str] = mapped_column(String(64))
    ext_id: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass
class ClaimedDelivery:
    id: int
    incident_id: int
    sink: str
    event: str
    report_id: str | None
    change: str | None
    attempts: int


@dataclass
class IngestResult:
    notification_id: int
    created: list[int] = field(default_factory=list)  # new incidents, investigation queued
    deduplicated: list[int] = field(default_factory=list)  # repeats of known firing incidents
    resolved: list[int] = field(default_factory=list)  # incidents marked resolved
    refreshed: list[int] = field(default_factory=list)  # repeats that queued a new investigation


@dataclass
class ClaimedJob:
    id: int
    incident_id: int
    attempts: int
    alert: AlertInfo


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
    return create_engine(url, pool_pre_ping=True)


class Store:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    # ------------------------------------------------------------------ ingest

    def ingest(
        self,
        source: str,
        body: str,
        group_key: str,
        alerts: list[AlertInfo],
        *,
        resolved_sinks: Callable[[AlertInfo], list[str]] | None = None,
        refresh_after: float = 0.0,
    ) -> IngestResult:
        """Persist a notification and its alerts in one transaction; dedup by (fingerprint, startsAt).

        `resolved_sinks` names the sinks to tell about a resolution (the routes with send_resolved);
        their deliveries are queued in the same transaction, so a resolution is never lost. A repeat of
        a firing incident whose report is older than `refresh_after` seconds (> 0) is re-investigated.

        Two replicas delivering the same group at once race on the unique key: the loser retries and
        finds the winner's incident.
        """
        for attempt in range(3):
            try:
                return self._ingest(source, body, group_key, alerts, resolved_sinks, refresh_after)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _ingest(
        self,
        source: str,
        body: str,
        group_key: str,
        alerts: list[AlertInfo],
        resolved_sinks: Callable[[AlertInfo], list[str]] | None,
        refresh_after: float,
    ) -> IngestResult:
        with self.session() as s:
            note = Notification(source=source, group_key=group_key, alerts=len(alerts), body=body)
            s.add(note)
            s.flush()
            result = IngestResult(note.id)
            for alert in alerts:
                inc = s.scalars(
                    select(Incident).where(
                        Incident.fingerprint == alert.fingerprint, Incident.starts_at == alert.starts_at
                    )
                ).first()
                if inc is None:
                    inc = Incident(
                        fingerprint=alert.fingerprint,
                        alertname=alert.name,
                        status=alert.status,
                        starts_at=alert.starts_at,
                        labels=alert.labels,
                        annotations=alert.annotations,
                        generator_url=alert.generator_url,
                    )
                    if alert.status == "resolved":
                        inc.resolved_at = alert.ends_at or utcnow()
                        inc.investigation = "none"
                        s.add(inc)
                        s.flush()
                        result.resolved.append(inc.id)
                    else:
                        s.add(inc)
                        s.flush()
                        s.add(Job(incident_id=inc.id))
                        result.created.append(inc.id)
                    continue
                inc.notifications += 1
                if alert.status == "resolved":
                    if inc.status != "resolved":
                        inc.status = "resolved"
                        inc.resolved_at = alert.ends_at or utcnow()
                        result.resolved.append(inc.id)
                        if resolved_sinks is not None:
                            self._queue_resolved(s, inc, resolved_sinks(alert))
                    else:
                        result.deduplicated.append(inc.id)
                elif refresh_after > 0 and self._stale(s, inc, refresh_after):
                    s.add(Job(incident_id=inc.id))
                    inc.investigation = "queued"
                    result.refreshed.append(inc.id)
                else:
                    result.deduplicated.append(inc.id)
            return result

    @staticmethod
    def _stale(s: Session, inc: Incident, seconds: float) -> bool:
        """A finished investigation whose report is older than `seconds`."""
        if inc.investigation not in ("done", "degraded", "failed"):
            return False
        made = (
            s.scalar(select(ReportRow.created_at).where(ReportRow.id == inc.report_id))
            if inc.report_id
            else None
        )
        since = made or inc.updated_at
        return since is None or utcnow() - since > timedelta(seconds=seconds)

    @staticmethod
    def _queue_resolved(s: Session, inc: Incident, sinks: list[str]) -> None:
        """Queue resolved notices for sinks that heard about the incident, or will (investigation pending)."""
        told = set(
            s.scalars(
                select(Delivery.sink).where(
                    Delivery.incident_id == inc.id, Delivery.event.in_(("firing", "update"))
                )
            )
        )
        pending = inc.investigation in ("queued", "running")
        for sink in sinks:
            if sink in told or pending:
                s.add(Delivery(incident_id=inc.id, sink=sink, event="resolved"))

    # ------------------------------------------------------------------ queue

    def recover(self) -> int:
        """Re-queue jobs left running by a previous process (call once at start, before workers)."""
        with self.session() as s:
            res = s.execute(
                update(Job).where(Job.state == "running").values(state="queued", lease_until=None)
            )
            s.execute(
                update(Incident).where(Incident.investigation == "running").values(investigation="queued")
            )
            return int(res.rowcount or 0)  # type: ignore[attr-defined]

    def claim(self, worker: str, lease_seconds: float) -> ClaimedJob | None:
        """Take the oldest due job (or one whose lease expired). Safe with several workers/processes."""
        now = utcnow()
        due = ((Job.state == "queued") & (Job.not_before <= now)) | (
            (Job.state == "running") & (Job.lease_until < now)
        )
        for _ in range(5):
            with self.session() as s:
                job = s.scalars(select(Job).where(due).order_by(Job.not_before, Job.id).limit(1)).first()
                if job is None:
                    return None
                job_id, state, attempts = job.id, job.state, job.attempts
                res = s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == state, Job.attempts == attempts)
                    .values(
                        state="running",
                        attempts=attempts + 1,
                        worker=worker,
                        lease_until=now + timedelta(seconds=lease_seconds),
                    )
                    .execution_options(synchronize_session=False)
                )
                if (res.rowcount or 0) != 1:  # type: ignore[attr-defined]
                    continue  # another worker took it
                inc = s.get(Incident, job.incident_id)
                assert inc is not None
                inc.investigation = "running"
                return ClaimedJob(job_id, inc.id, attempts + 1, inc.alert())
        return None

    def complete(
        self,
        job_id: int,
        report: Report,
        markdown: str,
        html: str,
        paths: dict[str, str],
        *,
        notify: Sequence[tuple[str, bool]] = (),
        analysis: dict[str, Any] | None = None,
    ) -> list[int]:
        """Store the report and, in the same transaction, queue its deliveries to the `notify` sinks
        (name, send_updates): `firing` for a sink not told yet, `update` when `analysis` differs from
        what it was last told and the route wants updates, nothing otherwise. Returns the ids queued."""
        with self.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            job.state = "done"
            job.lease_until = None
            s.add(
                ReportRow(
                    id=report.id,
                    incident_id=job.incident_id,
                    body=report.model_dump_json(),
                    markdown=markdown,
                    html=html,
                    paths=paths,
                )
            )
            inc = s.get(Incident, job.incident_id)
            assert inc is not None
            inc.report_id = report.id
            inc.investigation = "degraded" if report.degraded else "done"
            inc.error = None
            queued = [
                self._queue_report(s, inc.id, sink, report.id, analysis or {}, updates)
                for sink, updates in notify
            ]
            s.flush()
            return [d.id for d in queued if d is not None]

    @staticmethod
    def _queue_report(
        s: Session, incident_id: int, sink: str, report_id: str, analysis: dict[str, Any], updates: bool
    ) -> Delivery | None:
        from server.delivery.change import describe_change

        last = s.scalars(
            select(Delivery)
            .where(
                Delivery.incident_id == incident_id,
                Delivery.sink == sink,
                Delivery.event.in_(("firing", "update")),
            )
            .order_by(Delivery.id.desc())
            .limit(1)
        ).first()
        change = None
        if last is not None:
            change = describe_change(last.analysis, analysis)
            if change is None or not updates:
                return None
        d = Delivery(
            incident_id=incident_id,
            sink=sink,
            event="firing" if last is None else "update",
            report_id=report_id,
            analysis=analysis,
            change=change,
        )
        s.add(d)
        return d

    def retry_later(self, job_id: int, error: str, delay_seconds: float) -> None:
        with self.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            job.state = "queued"
            job.lease_until = None
            job.last_error = error
            job.not_before = utcnow() + timedelta(seconds=delay_seconds)
            inc = s.get(Incident, job.incident_id)
            assert inc is not None
            inc.investigation = "queued"
            inc.error = error

    def fail(self, job_id: int, error: str) -> None:
        with self.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            job.state = "failed"
            job.lease_until = None
            job.last_error = error
            inc = s.get(Incident, job.incident_id)
            assert inc is not None
            inc.investigation = "failed"
            inc.error = error

    def requeue(self, incident_id: int) -> bool:
        """Start a new investigation of an incident (API: re-investigate)."""
        with self.session() as s:
            inc = s.get(Incident, incident_id)
            if inc is None:
                return False
            busy = s.scalars(
                select(Job).where(Job.incident_id == incident_id, Job.state.in_(("queued", "running")))
            ).first()
            if busy is None:
                s.add(Job(incident_id=incident_id))
            inc.investigation = "queued"
            return True

    def queue_depth(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(Job.state, func.count()).group_by(Job.state)).all()
            return {state: int(n) for state, n in rows}

    # ------------------------------------------------------------------ outbox

    def recover_deliveries(self) -> int:
        """Deliveries left `sending` by a previous process go back to pending (call once at start)."""
        with self.session() as s:
            res = s.execute(
                update(Delivery).where(Delivery.state == "sending").values(state="pending", lease_until=None)
            )
            return int(res.rowcount or 0)  # type: ignore[attr-defined]

    @staticmethod
    def _blocked(s: Session, d: Delivery) -> bool:
        """Per incident and sink, notices go out in order, resolved last; a resolution also waits for a
        running investigation, whose report would otherwise arrive after the ticket was closed.

        The investigation is read before the other deliveries: a report and its deliveries commit
        together, so once the investigation reads as finished its deliveries are visible too (read the
        other way round, a report committing in between let a resolution overtake its ticket)."""

        def rank(x: Delivery) -> tuple[int, int]:
            return (1 if x.event == "resolved" else 0, x.id)

        if d.event == "resolved":
            state = s.scalar(select(Incident.investigation).where(Incident.id == d.incident_id))
            if state in ("queued", "running"):
                return True
        others = s.scalars(
            select(Delivery).where(
                Delivery.incident_id == d.incident_id,
                Delivery.sink == d.sink,
                Delivery.id != d.id,
                Delivery.state.in_(("pending", "sending")),
            )
        )
        return any(rank(o) < rank(d) for o in others)

    def claim_delivery(self, lease_seconds: float) -> ClaimedDelivery | None:
        """Take the oldest due delivery that is not waiting on an earlier one for the same sink."""
        now = utcnow()
        due = ((Delivery.state == "pending") & (Delivery.not_before <= now)) | (
            (Delivery.state == "sending") & (Delivery.lease_until < now)
        )
        with self.session() as s:
            for d in s.scalars(select(Delivery).where(due).order_by(Delivery.id)):
                if self._blocked(s, d):
                    continue
                res = s.execute(
                    update(Delivery)
                    .where(Delivery.id == d.id, Delivery.state == d.state, Delivery.attempts == d.attempts)
                    .values(
                        state="sending",
                        attempts=d.attempts + 1,
                        lease_until=now + timedelta(seconds=lease_seconds),
                    )
                    .execution_options(synchronize_session=False)
                )
                if (res.rowcount or 0) != 1:  # type: ignore[attr-defined]
                    continue  # another dispatcher took it
                return ClaimedDelivery(
                    d.id, d.incident_id, d.sink, d.event, d.report_id, d.change, d.attempts + 1
                )
        return None

    def was_told(self, incident_id: int, sink: str) -> bool:
        """Whether a firing or update notice of the incident reached the sink."""
        with self.session() as s:
            return (
                s.scalar(
                    select(Delivery.id)
                    .where(
                        Delivery.incident_id == incident_id,
                        Delivery.sink == sink,
                        Delivery.event.in_(("firing", "update")),
                        Delivery.state == "done",
                    )
                    .limit(1)
                )
                is not None
            )

    def _finish_delivery(self, delivery_id: int, **values: Any) -> None:
        with self.session() as s:
            s.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(lease_until=None, updated_at=utcnow(), **values)
                .execution_options(synchronize_session=False)
            )

    def delivery_done(self, delivery_id: int, detail: str) -> None:
        self._finish_delivery(delivery_id, state="done", detail=detail, last_error=None, sent_at=utcnow())

    def delivery_later(self, delivery_id: int, error: str, delay_seconds: float) -> None:
        self._finish_delivery(
            delivery_id,
            state="pending",
            last_error=error,
            not_before=utcnow() + timedelta(seconds=delay_seconds),
        )

    def delivery_failed(self, delivery_id: int, error: str) -> None:
        self._finish_delivery(delivery_id, state="failed", last_error=error)

    def retry_delivery(self, incident_id: int, delivery_id: int) -> tuple[Delivery | None, bool]:
        """A failed delivery goes back to pending with a fresh set of attempts. Returns the delivery
        (None: no such delivery of this incident) and whether it was failed and is now pending."""
        with self.session() as s:
            d = s.get(Delivery, delivery_id)
            if d is None or d.incident_id != incident_id:
                return None, False
            if d.state != "failed":
                return d, False
            d.state, d.attempts, d.not_before = "pending", 0, utcnow()
            s.flush()
            return d, True

    def deliveries(self, incident_id: int) -> list[Delivery]:
        with self.session() as s:
            return list(
                s.scalars(select(Delivery).where(Delivery.incident_id == incident_id).order_by(Delivery.id))
            )

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        """(sink, state) -> count, for /metrics."""
        with self.session() as s:
            rows = s.execute(
                select(Delivery.sink, Delivery.state, func.count()).group_by(Delivery.sink, Delivery.state)
            ).all()
            return {(sink, state): int(n) for sink, state, n in rows}

    def tickets(self, incident_id: int) -> list[Ticket]:
        with self.session() as s:
            return list(
                s.scalars(select(Ticket).where(Ticket.incident_id == incident_id).order_by(Ticket.id))
            )

    def ticket(self, incident_id: int, sink: str) -> Ticket | None:
        with self.session() as s:
            return s.scalars(
                select(Ticket).where(Ticket.incident_id == incident_id, Ticket.sink == sink)
            ).first()

    def save_ticket(self, incident_id: int, sink: str, ext_id: str, key: str, url: str) -> None:
        with self.session() as s:
            row = s.scalars(
                select(Ticket).where(Ticket.incident_id == incident_id, Ticket.sink == sink)
            ).first()
            if row is None:
                s.add(Ticket(incident_id=incident_id, sink=sink, ext_id=ext_id, key=key, url=url))
            else:
                row.ext_id, row.key, row.url = ext_id, key, url

    def replace_report_files(self, report: Report, markdown: str, html: str, paths: dict[str, str]) -> None:
        """Store a re-rendered report (the same id, e.g. now showing its tickets)."""
        with self.session() as s:
            row = s.get(ReportRow, report.id)
            if row is not None:
                row.body, row.markdown, row.html, row.paths = report.model_dump_json(), markdown, html, paths

    def incident_and_report(
        self, incident_id: int, report_id: str | None
    ) -> tuple[Incident, ReportRow | None]:
        """The incident and the given report (else its latest), for building a notice."""
        with self.session() as s:
            inc = s.get(Incident, incident_id)
            assert inc is not None
            rid = report_id or inc.report_id
            return inc, (s.get(ReportRow, rid) if rid else None)

    # ------------------------------------------------------------------ reads

    def list_incidents(
        self, status: str | None = None, alertname: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Incident], int]:
        with self.session() as s:
            q = select(Incident)
            if status:
                q = q.where(Incident.status == status)
            if alertname:
                q = q.where(Incident.alertname == alertname)
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = list(s.scalars(q.order_by(Incident.id.desc()).limit(limit).offset(offset)))
            return rows, int(total)

    def get_incident(self, incident_id: int) -> tuple[Incident, list[Job], dict[str, str]] | None:
        """The incident, its jobs, and the archive paths of its current report."""
        with self.session() as s:
            inc = s.get(Incident, incident_id)
            if inc is None:
                return None
            jobs = list(s.scalars(select(Job).where(Job.incident_id == incident_id).order_by(Job.id)))
            paths = (
                s.scalar(select(ReportRow.paths).where(ReportRow.id == inc.report_id))
                if inc.report_id
                else None
            )
            return inc, jobs, dict(paths or {})

    def get_report(self, report_id: str) -> ReportRow | None:
        with self.session() as s:
            return s.get(ReportRow, report_id)

    # ------------------------------------------------------------------ ask sessions

    def ask_session(self, session_id: str) -> tuple[AskSession, list[AskMessage]] | None:
        with self.session() as s:
            sess = s.get(AskSession, session_id)
            if sess is None:
                return None
            msgs = list(
                s.scalars(
                    select(AskMessage).where(AskMessage.session_id == session_id).order_by(AskMessage.id)
                )
            )
            return sess, msgs

    def ask_record(
        self,
        session_id: str | None,
        incident_id: int | None,
        question: str,
        answer: str,
        queries: list[dict[str, Any]],
    ) -> str:
        """Append one question and its answer to a session (created when `session_id` is None)."""
        import uuid

        with self.session() as s:
            if session_id is None or s.get(AskSession, session_id) is None:
                session_id = session_id or uuid.uuid4().hex
                s.add(AskSession(id=session_id, incident_id=incident_id))
                s.flush()
            s.add(AskMessage(session_id=session_id, role="user", content=question, queries=[]))
            s.add(AskMessage(session_id=session_id, role="assistant", content=answer, queries=queries))
            sess = s.get(AskSession, session_id)
            assert sess is not None
            sess.updated_at = utcnow()
        return session_id

    def latest_report(self, incident_id: int) -> Report | None:
        with self.session() as s:
            inc = s.get(Incident, incident_id)
            if inc is None or not inc.report_id:
                return None
            body = s.scalar(select(ReportRow.body).where(ReportRow.id == inc.report_id))
        return Report.model_validate_json(body) if body else None
