"""The outbox's table: queueing deliveries, their order, claiming one, and recording how it ended.

Deliveries are queued in the transaction of the event that causes them (a report: `JobQueue.complete`;
a resolution: `Intake.ingest`), so none is lost. What to queue is not decided here: the event's caller
passes a `Plan`, which gets what the outbox already told each sink (`Told`) and returns the rows to add
(`NewDelivery`); the delivery layer makes that decision (server/delivery/plan.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from agent.models import utcnow
from server.db.database import Database
from server.db.models import Delivery, Incident


@dataclass(frozen=True)
class Told:
    """What the outbox holds about an incident when an event is recorded: per sink that was queued a
    `firing` or `update` notice (in any state), the analysis of the last one; and whether an
    investigation of the incident is queued or running."""

    analyses: dict[str, dict[str, Any] | None]
    investigating: bool


@dataclass(frozen=True)
class NewDelivery:
    """A delivery to queue: one notice of `event` to `sink`."""

    sink: str
    event: str  # firing | update | resolved
    analysis: dict[str, Any] | None = None  # firing and update: the analysis it tells
    change: str | None = None  # update: what changed since the last notice


Plan = Callable[[Told], Sequence[NewDelivery]]


@dataclass
class ClaimedDelivery:
    id: int
    incident_id: int
    sink: str
    event: str
    report_id: str | None
    change: str | None
    attempts: int


def told(s: Session, inc: Incident) -> Told:
    """What the outbox holds about `inc`, read in the caller's transaction."""
    rows = s.execute(
        select(Delivery.sink, Delivery.analysis)
        .where(Delivery.incident_id == inc.id, Delivery.event.in_(("firing", "update")))
        .order_by(Delivery.id)
    ).all()
    return Told({sink: analysis for sink, analysis in rows}, inc.investigation in ("queued", "running"))


def queue_deliveries(
    s: Session, inc: Incident, plan: Plan | None, report_id: str | None = None
) -> list[Delivery]:
    """Add the deliveries `plan` decides on, in the caller's transaction (flushed: they have ids)."""
    if plan is None:
        return []
    rows = [
        Delivery(
            incident_id=inc.id,
            sink=n.sink,
            event=n.event,
            report_id=report_id,
            analysis=n.analysis,
            change=n.change,
        )
        for n in plan(told(s, inc))
    ]
    s.add_all(rows)
    s.flush()
    return rows


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


class Deliveries:
    def __init__(self, db: Database) -> None:
        self.db = db

    def queue(self, incident_id: int, plan: Plan) -> list[Delivery]:
        """Queue what `plan` decides for an incident, in a transaction of its own (a note: ChatOps)."""
        with self.db.session() as s:
            inc = s.get(Incident, incident_id)
            if inc is None:
                return []
            rows = queue_deliveries(s, inc, plan)
            s.expunge_all()
            return rows

    def claim(self, lease_seconds: float) -> ClaimedDelivery | None:
        """Take the oldest due delivery that is not waiting on an earlier one for the same sink."""
        now = utcnow()
        due = ((Delivery.state == "pending") & (Delivery.not_before <= now)) | (
            (Delivery.state == "sending") & (Delivery.lease_until < now)
        )
        with self.db.session() as s:
            pending = select(Delivery).where(due).order_by(Delivery.id)
            if s.get_bind().dialect.name == "postgresql":  # other senders pass over these, not wait
                pending = pending.with_for_update(skip_locked=True)
            for d in s.scalars(pending):
                if _blocked(s, d):
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
        with self.db.session() as s:
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

    def renew(self, held: Sequence[tuple[int, int]], lease_seconds: float) -> set[tuple[int, int]]:
        """Extend by `lease_seconds` from now the leases of the deliveries held as (id, attempt): those
        still sending that attempt; the ones still held come back (one missing was taken over)."""
        until = utcnow() + timedelta(seconds=lease_seconds)
        kept: set[tuple[int, int]] = set()
        with self.db.session() as s:
            for delivery_id, attempt in held:
                if self._fenced(s, delivery_id, attempt, lease_until=until):
                    kept.add((delivery_id, attempt))
        return kept

    @staticmethod
    def _fenced(s: Session, delivery_id: int, attempt: int | None, **values: Any) -> bool:
        """Write `values` to the delivery when `attempt` (None: any) is still the one sending it."""
        where = [Delivery.id == delivery_id]
        if attempt is not None:
            where += [Delivery.state == "sending", Delivery.attempts == attempt]
        res = s.execute(
            update(Delivery).where(*where).values(**values).execution_options(synchronize_session=False)
        )
        return (res.rowcount or 0) == 1  # type: ignore[attr-defined]

    def _finish(self, delivery_id: int, attempt: int | None, **values: Any) -> bool:
        """End an attempt; False (nothing written) when `attempt` no longer holds the delivery: its lease
        ran out and another sender took it, whose attempt writes the outcome."""
        with self.db.session() as s:
            return self._fenced(s, delivery_id, attempt, lease_until=None, updated_at=utcnow(), **values)

    def done(self, delivery_id: int, detail: str, attempt: int | None = None) -> bool:
        return self._finish(
            delivery_id, attempt, state="done", detail=detail, last_error=None, sent_at=utcnow()
        )

    def later(self, delivery_id: int, error: str, delay_seconds: float, attempt: int | None = None) -> bool:
        return self._finish(
            delivery_id,
            attempt,
            state="pending",
            last_error=error,
            not_before=utcnow() + timedelta(seconds=delay_seconds),
        )

    def failed(self, delivery_id: int, error: str, attempt: int | None = None) -> bool:
        return self._finish(delivery_id, attempt, state="failed", last_error=error)

    def retry(self, incident_id: int, delivery_id: int) -> tuple[Delivery | None, bool]:
        """A failed delivery goes back to pending with a fresh set of attempts. Returns the delivery
        (None: no such delivery of this incident) and whether it was failed and is now pending."""
        with self.db.session() as s:
            d = s.get(Delivery, delivery_id)
            if d is None or d.incident_id != incident_id:
                return None, False
            if d.state != "failed":
                return d, False
            d.state, d.attempts, d.not_before = "pending", 0, utcnow()
            s.flush()
            return d, True

    def counts(self) -> dict[tuple[str, str], int]:
        """(sink, state) -> count, for /metrics."""
        with self.db.session() as s:
            rows = s.execute(
                select(Delivery.sink, Delivery.state, func.count()).group_by(Delivery.sink, Delivery.state)
            ).all()
            return {(sink, state): int(n) for sink, state, n in rows}
