"""What ChatOps keeps: the chat threads an incident's notice was posted in (`chat_threads`), the inbound
events already taken (`chat_events`), the silences alertsleuth made (`silences`), and the audit trail
(`audit_events`, append-only). Runbook actions, which
have states of their own, are in `actions.py`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent.models import utcnow
from server.db.database import Database
from server.db.models import AuditEvent, ChatEvent, ChatThread, SilenceRow

EVENTS_KEPT = timedelta(days=1)  # how long an inbound event id is remembered (platforms retry for minutes)


@dataclass(frozen=True)
class Actor:
    """Who did something, and through what: `via` is a chat platform, `api` or `ui`; `user` its id there.
    Recorded as "via:user" (e.g. "slack:U123", "api:alice")."""

    via: str
    user: str

    def __str__(self) -> str:
        return f"{self.via}:{self.user}"


def audit(
    s: Session,
    actor: Actor,
    kind: str,
    detail: dict[str, Any],
    *,
    incident_id: int | None = None,
    action_id: int | None = None,
) -> None:
    """Append one audit event in the caller's transaction: what it records happened together with it."""
    s.add(
        AuditEvent(
            incident_id=incident_id,
            action_id=action_id,
            actor=str(actor)[:255],
            via=actor.via[:64],
            kind=kind,
            detail=detail,
        )
    )


class ChatOps:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ threads

    def record_thread(self, incident_id: int, platform: str, channel: str, thread: str, sink: str) -> None:
        """The notice about the incident was posted in this thread; a repeat of the same thread is kept."""
        try:
            with self.db.session() as s:
                s.add(
                    ChatThread(
                        incident_id=incident_id, platform=platform, channel=channel, thread=thread, sink=sink
                    )
                )
        except IntegrityError:
            pass  # the same message again (a retried delivery): its first row stands

    def thread_of(self, incident_id: int, sink: str) -> tuple[str, str, str] | None:
        """(platform, channel, thread) of the first message `sink` posted about the incident."""
        with self.db.session() as s:
            row = s.scalars(
                select(ChatThread)
                .where(ChatThread.incident_id == incident_id, ChatThread.sink == sink)
                .order_by(ChatThread.id)
            ).first()
            return (row.platform, row.channel, row.thread) if row else None

    def incident_of_thread(self, platform: str, channel: str, thread: str) -> int | None:
        with self.db.session() as s:
            return s.scalar(
                select(ChatThread.incident_id).where(
                    ChatThread.platform == platform,
                    ChatThread.channel == channel,
                    ChatThread.thread == thread,
                )
            )

    # ------------------------------------------------------------------ inbound events

    def first_sight(self, platform: str, event_id: str, *, now: datetime | None = None) -> bool:
        """True the first time the platform's event id is seen by any replica on this database; False for
        a retry of it. Ids older than EVENTS_KEPT are forgotten (in the same transaction)."""
        now = now or utcnow()
        try:
            with self.db.session() as s:
                s.execute(delete(ChatEvent).where(ChatEvent.received_at < now - EVENTS_KEPT))
                s.add(ChatEvent(platform=platform[:16], event_id=event_id[:255], received_at=now))
        except IntegrityError:
            return False  # taken already, here or by another replica
        return True

    # ------------------------------------------------------------------ silences

    def add_silence(
        self,
        incident_id: int,
        silence_id: str,
        matchers: list[dict[str, Any]],
        starts_at: datetime,
        ends_at: datetime,
        actor: Actor,
        comment: str,
    ) -> SilenceRow:
        with self.db.session() as s:
            row = SilenceRow(
                incident_id=incident_id,
                silence_id=silence_id,
                matchers=matchers,
                starts_at=starts_at,
                ends_at=ends_at,
                created_by=str(actor)[:255],
                comment=comment,
            )
            s.add(row)
            detail = {"silence_id": silence_id, "matchers": matchers, "ends_at": ends_at.isoformat()}
            audit(s, actor, "silence", {**detail, "comment": comment}, incident_id=incident_id)
            s.flush()
            s.expunge(row)
            return row

    def silences(self, incident_id: int) -> list[SilenceRow]:
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    select(SilenceRow).where(SilenceRow.incident_id == incident_id).order_by(SilenceRow.id)
                )
            )
            s.expunge_all()
            return rows

    def active_silence(self, incident_id: int, silence_id: str | None = None) -> SilenceRow | None:
        """The incident's newest silence not expired by us and not past its end (or the one named)."""
        now = utcnow()
        for row in reversed(self.silences(incident_id)):
            if silence_id is not None and row.silence_id != silence_id:
                continue
            if row.expired_at is None and row.ends_at > now:
                return row
        return None

    def expire_silence(self, incident_id: int, silence_id: str, actor: Actor) -> None:
        with self.db.session() as s:
            row = s.scalars(
                select(SilenceRow).where(
                    SilenceRow.incident_id == incident_id, SilenceRow.silence_id == silence_id
                )
            ).first()
            if row is not None:
                row.expired_at, row.expired_by = utcnow(), str(actor)[:255]
            audit(s, actor, "unsilence", {"silence_id": silence_id}, incident_id=incident_id)

    # ------------------------------------------------------------------ audit

    def audit(
        self,
        actor: Actor,
        kind: str,
        detail: dict[str, Any],
        *,
        incident_id: int | None = None,
        action_id: int | None = None,
    ) -> None:
        with self.db.session() as s:
            audit(s, actor, kind, detail, incident_id=incident_id, action_id=action_id)

    def audit_trail(
        self, *, incident_id: int | None = None, action_id: int | None = None, limit: int = 200
    ) -> list[AuditEvent]:
        """Audit events, oldest first, of one incident or action (or all), at most `limit`."""
        with self.db.session() as s:
            q = select(AuditEvent)
            if incident_id is not None:
                q = q.where(AuditEvent.incident_id == incident_id)
            if action_id is not None:
                q = q.where(AuditEvent.action_id == action_id)
            rows = list(s.scalars(q.order_by(AuditEvent.id).limit(limit)))
            s.expunge_all()
            return rows
