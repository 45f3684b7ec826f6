"""Persistence through SQLAlchemy: notifications, incidents, the durable job queue, reports.

SQLite by default (WAL, busy timeout); the same code runs on PostgreSQL. Blocking: call from worker
threads (FastAPI's threadpool or the worker pool), never on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
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


@dataclass
class IngestResult:
    notification_id: int
    created: list[int] = field(default_factory=list)  # new incidents, investigation queued
    deduplicated: list[int] = field(default_factory=list)  # repeats of known firing incidents
    resolved: list[int] = field(default_factory=list)  # incidents marked resolved


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

    def ingest(self, source: str, body: str, group_key: str, alerts: list[AlertInfo]) -> IngestResult:
        """Persist a notification and its alerts in one transaction; dedup by (fingerprint, startsAt).

        Two replicas delivering the same group at once race on the unique key: the loser retries and
        finds the winner's incident.
        """
        for attempt in range(3):
            try:
                return self._ingest(source, body, group_key, alerts)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _ingest(self, source: str, body: str, group_key: str, alerts: list[AlertInfo]) -> IngestResult:
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
                    else:
                        result.deduplicated.append(inc.id)
                else:
                    result.deduplicated.append(inc.id)
            return result

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

    def complete(self, job_id: int, report: Report, markdown: str, html: str, paths: dict[str, str]) -> None:
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
