"""`ask` conversations: a session and its messages (each answer with the queries it ran)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from agent.models import utcnow
from server.db.database import Database
from server.db.models import AskMessage, AskSession


class AskSessions:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, session_id: str) -> tuple[AskSession, list[AskMessage]] | None:
        with self.db.session() as s:
            sess = s.get(AskSession, session_id)
            if sess is None:
                return None
            msgs = list(
                s.scalars(
                    select(AskMessage).where(AskMessage.session_id == session_id).order_by(AskMessage.id)
                )
            )
            return sess, msgs

    def record(
        self,
        session_id: str | None,
        incident_id: int | None,
        question: str,
        answer: str,
        queries: list[dict[str, Any]],
    ) -> str:
        """Append one question and its answer to a session (created when `session_id` is None)."""
        with self.db.session() as s:
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
