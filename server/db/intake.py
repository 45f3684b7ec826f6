"""Intake: notifications and their alerts persisted, deduplicated into incidents, many per transaction.

An alert belongs to the incident with its fingerprint and startsAt; failing that, to the one with its
fingerprint whose startsAt is within `window` seconds of the alert's and which was still firing when
the alert started (firing, or resolved after the alert's startsAt). The second rule is for HA replicas
of one Prometheus posting directly: each evaluates the rule at its own moment, so their startsAt are up
to an evaluation interval apart, and one may see the resolution before the other. A new firing after a
resolution starts after it, so it is a new incident however soon it comes. The decisions are pure
(server/db/dedup.py); this module reads the incidents they need and writes what they decided.

A new firing alert queues an investigation, its priority from the alert's severity
(server/db/jobs.py `priority_of`); a resolution marks the incident resolved and queues, in the same
transaction, the resolved notices its plan decides on; a repeat is counted, or re-investigated when its
report is stale. Each incident a notification touched gets a `notification_incidents` row (the alert's
status, what the notification did, the receiver), in the same transaction: the incident's timeline.

Group commit: `ingest_many` writes a batch of notifications in one transaction, one after the other as
if each had its own (a later one sees the incidents an earlier one made), with a few statements per
batch (SQLAlchemy Core on the session's connection, many rows each) rather than several per
notification. server/intake_writer.py is the one writer that batches the requests of the webhook.

Each new incident gets its storm key (server/db/storms.py), from its alert and the notification's
group.

Bounded: with `max_backlog`, a notification that would queue an investigation while that many are
queued is refused as a whole (`IntakeFull`, nothing of it stored); resolutions and repeats still pass.

Concurrent writers: the notifications' INSERT comes first in the transaction, so on SQLite the write
lock orders batches and each lookup sees every incident committed before it. On PostgreSQL, where
replicas write side by side, a transaction-scoped advisory lock per alert fingerprint, all taken at once
in one order (`serialize`), orders the batches that share one, so the lookup of each sees the incidents
the others committed, the HA replicas' near startsAt included. The unique key (fingerprint, startsAt)
catches two inserts of the same key on any backend (the batch retries). A batch that fails otherwise is
written again one notification per transaction, so one bad notification fails alone.

The wait for the write lock (or, on PostgreSQL, for a fingerprint's lock) is bounded (`lock_timeout`):
past it the transaction is rolled back, nothing is stored, and `StoreBusy` tells the sender to retry.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, Update, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from agent.models import AlertInfo, utcnow
from server.db.database import Database, is_lock_timeout, serialize
from server.db.dedup import Incidents, Known, Touch, links
from server.db.deliveries import Plan, queue_deliveries
from server.db.jobs import priority_of
from server.db.models import Incident, Job, Notification, NotificationIncident, ReportRow
from server.db.postgres import as_stored
from server.db.storms import storm_key
from tools.errors import IntakeFull, StoreBusy

MAX_RECEIVER = 255  # characters of a receiver's name kept with each incident it notified
FINGERPRINT_LOCKS = 0x696E  # `serialize`'s scope for the alerts' fingerprints ("in")
BACKLOG_RETRY_SECONDS = 30.0  # the Retry-After of a notification refused for a full backlog
BACKLOG_RECOUNT_SECONDS = 1.0  # how stale the count of queued investigations may be, far from the bound
CHUNK = 2000  # values in one IN list

NOTIFICATIONS = cast(Table, Notification.__table__)
INCIDENTS = cast(Table, Incident.__table__)
JOBS = cast(Table, Job.__table__)
LINKS = cast(Table, NotificationIncident.__table__)

# The statements of a batch, built once: built per transaction, they cost SQLAlchemy more than running
# them does (`ingest_many` of one notification on SQLite, cProfile: about half of its CPU went to
# building statements and their cache keys), and a statement built once keeps its cache key.
_INSERT = {t.name: insert(t) for t in (NOTIFICATIONS, INCIDENTS)}
_INSERT_RETURNING = {
    t.name: insert(t).returning(t.c.id, sort_by_parameter_order=True) for t in (NOTIFICATIONS, INCIDENTS)
}
_LAST_ID = {t.name: select(func.max(t.c.id)) for t in (NOTIFICATIONS, INCIDENTS)}
_INSERT_JOBS = insert(JOBS)
_INSERT_LINKS = insert(LINKS)
_COUNT_QUEUED = select(func.count()).select_from(JOBS).where(JOBS.c.state == "queued")
_KNOWN = (
    select(
        INCIDENTS.c.id,
        INCIDENTS.c.fingerprint,
        INCIDENTS.c.starts_at,
        INCIDENTS.c.status,
        INCIDENTS.c.resolved_at,
        INCIDENTS.c.investigation,
        INCIDENTS.c.updated_at,
        ReportRow.created_at,
    )
    .outerjoin(ReportRow, ReportRow.id == INCIDENTS.c.report_id)
    .where(
        INCIDENTS.c.fingerprint.in_(bindparam("b_fps", expanding=True)),
        INCIDENTS.c.starts_at.between(bindparam("b_lo"), bindparam("b_hi")),
    )
)


@dataclass(frozen=True)
class IngestRequest:
    """One notification to store. `receiver`: the Alertmanager receiver that sent it, kept with each
    incident it touched. `on_resolved(alert)`: the plan of the resolved notices for a resolution (the
    delivery layer routes the alert once and decides)."""

    source: str
    body: str
    group_key: str
    alerts: Sequence[AlertInfo]
    receiver: str = ""
    on_resolved: Callable[[AlertInfo], Plan] | None = None


@dataclass(frozen=True)
class IntakeRules:
    """`refresh_after` (> 0): a repeat of a firing incident whose report is older is re-investigated;
    `window`: the dedup window for HA replicas' startsAt; `lock_timeout`: the longest wait for the
    store's write lock; `max_backlog`: the queued investigations past which a notification that would
    queue another is refused."""

    refresh_after: float = 0.0
    window: float = 0.0
    lock_timeout: float | None = None
    max_backlog: int | None = None


@dataclass
class IngestResult:
    notification_id: int
    created: list[int] = field(default_factory=list)  # new incidents, investigation queued
    deduplicated: list[int] = field(default_factory=list)  # repeats of known firing incidents
    resolved: list[int] = field(default_factory=list)  # incidents marked resolved
    refreshed: list[int] = field(default_factory=list)  # repeats that queued a new investigation


class Intake:
    def __init__(self, db: Database) -> None:
        self.db = db
        # The queued investigations, as last counted (and when), plus those intake queued since: counted
        # again after BACKLOG_RECOUNT_SECONDS, or when near the bound.
        self._backlog: tuple[float, int] | None = None

    def ingest(
        self,
        source: str,
        body: str,
        group_key: str,
        alerts: list[AlertInfo],
        *,
        receiver: str = "",
        on_resolved: Callable[[AlertInfo], Plan] | None = None,
        refresh_after: float = 0.0,
        window: float = 0.0,
        lock_timeout: float | None = None,
        max_backlog: int | None = None,
    ) -> IngestResult:
        """Persist one notification in its own transaction (`ingest_many` of one); raises what refused
        it."""
        request = IngestRequest(source, body, group_key, alerts, receiver, on_resolved)
        rules = IntakeRules(refresh_after, window, lock_timeout, max_backlog)
        (result,) = self.ingest_many([request], rules)
        if isinstance(result, Exception):
            raise result
        return result

    def ingest_many(
        self, requests: Sequence[IngestRequest], rules: IntakeRules
    ) -> list[IngestResult | Exception]:
        """Persist `requests` in one transaction, each as if alone, in order: for each, its result, or
        why it was refused (`IntakeFull`) or failed (written alone after the batch failed). Waiting
        longer than `rules.lock_timeout` for the store's write lock raises `StoreBusy` for all, with
        nothing stored."""
        for attempt in range(3):
            try:
                return self._batch(requests, rules)
            except IntegrityError:
                if attempt < 2:
                    continue
                if len(requests) == 1:
                    raise
            except OperationalError as exc:
                if rules.lock_timeout is not None and is_lock_timeout(exc):
                    raise StoreBusy(
                        f"the store is busy (its write lock was not free within {rules.lock_timeout:g} "
                        "s); nothing was stored, retry later",
                        retry_after=rules.lock_timeout,
                    ) from exc
                if len(requests) == 1:
                    raise
            except Exception:
                if len(requests) == 1:
                    raise
            break
        out: list[IngestResult | Exception] = []
        for request in requests:  # the batch failed: one at a time, so only the bad one fails
            try:
                out.extend(self.ingest_many([request], rules))
            except StoreBusy:
                raise
            except Exception as exc:
                out.append(exc)
        return out

    def _batch(self, requests: Sequence[IngestRequest], rules: IntakeRules) -> list[IngestResult | Exception]:
        now = utcnow()
        with self.db.session(lock_timeout=rules.lock_timeout) as s:
            ids = _insert(s, NOTIFICATIONS, [_notification_row(r, now) for r in requests])
            alerts = [a for r in requests for a in r.alerts]
            serialize(s, FINGERPRINT_LOCKS, (a.fingerprint for a in alerts))
            backlog = self._queued(s, rules.max_backlog, len(alerts))
            postgres = s.get_bind().dialect.name == "postgresql"
            state = Incidents.of(_known(s, alerts, rules.window), key=as_stored if postgres else str)
            accepted: list[tuple[IngestRequest, int, list[Touch]]] = []
            out: list[IngestResult | Exception] = []
            refused: list[int] = []
            for request, note_id in zip(requests, ids, strict=True):
                state.begin()
                touches = [
                    state.apply(a, now, window=rules.window, refresh_after=rules.refresh_after)
                    for a in request.alerts
                ]
                queued = sum(t.queues for t in touches)
                if queued and rules.max_backlog is not None and backlog + queued > rules.max_backlog:
                    state.rollback()
                    refused.append(note_id)
                    out.append(_backlog_full(backlog, rules.max_backlog))
                    continue
                backlog += queued
                accepted.append((request, note_id, touches))
                out.append(IngestResult(note_id))
            self._write(s, accepted, now)
            if self._backlog is not None:
                self._backlog = (self._backlog[0], backlog)
            if refused:
                s.connection().execute(delete(NOTIFICATIONS).where(NOTIFICATIONS.c.id.in_(refused)))
            results = iter(r for r in out if isinstance(r, IngestResult))
            for (_, _, touches), result in zip(accepted, results, strict=True):
                _record(result, touches)
            return out

    def _queued(self, s: Session, limit: int | None, alerts: int) -> int:
        """The investigations queued (0 without a bound): counted in this transaction when the last count
        is stale or the bound is near, else the last count and what intake queued since (the workers
        only take from it: an estimate that errs on the full side)."""
        if limit is None:
            return 0
        clock = time.monotonic()
        last = self._backlog
        if last is None or clock - last[0] > BACKLOG_RECOUNT_SECONDS or last[1] + alerts > limit:
            last = self._backlog = (clock, _count_queued(s))
        return last[1]

    def _write(
        self, s: Session, accepted: list[tuple[IngestRequest, int, list[Touch]]], now: datetime
    ) -> None:
        """Write what the accepted notifications did: new incidents, changed ones, jobs, timeline rows,
        and the resolved notices."""
        touched: dict[int, Known] = {}
        for _, _, touches in accepted:
            for t in touches:
                touched.setdefault(id(t.incident), t.incident)
        made = [k for k in touched.values() if k.id is None]
        group_of = {id(t.incident): r.group_key for r, _, touches in accepted for t in touches}
        rows = [_incident_row(k, now, group_of[id(k)]) for k in made]
        for k, new_id in zip(made, _insert(s, INCIDENTS, rows), strict=True):
            k.id = new_id
        changed = [k for k in touched.values() if k.alert is None]
        _update(s, [{"b_id": k.id, "b_n": k.repeats} for k in changed if k.repeats], notifications=True)
        _update(
            s,
            [{"b_id": k.id, "b_at": k.resolved_at} for k in changed if k.resolved_now],
            status="resolved",
        )
        queued = [t for _, _, touches in accepted for t in touches if t.queues]
        refreshed = {id(t.incident): t.incident for t in queued if t.incident.alert is None}
        _update(s, [{"b_id": k.id} for k in refreshed.values()], investigation="queued")
        jobs = [
            {
                "incident_id": t.incident.id,
                "priority": priority_of(t.alert.labels),
                "state": "queued",
                "attempts": 0,
                "not_before": now,
                "created_at": now,
                "updated_at": now,
            }
            for t in queued
        ]
        if jobs:
            s.connection().execute(_INSERT_JOBS, jobs)
        rows = [
            {
                "notification_id": note_id,
                "incident_id": link.incident.id,
                "outcome": link.outcome,
                "status": link.status,
                "receiver": request.receiver[:MAX_RECEIVER],
            }
            for request, note_id, touches in accepted
            for link in links(touches)
        ]
        if rows:
            s.connection().execute(_INSERT_LINKS, rows)
        for request, _, touches in accepted:
            for t in touches:
                if t.outcome == "resolved" and request.on_resolved is not None:
                    inc = s.get(Incident, t.incident.id)
                    assert inc is not None
                    queue_deliveries(s, inc, request.on_resolved(t.alert))


def _insert(s: Session, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert `rows`; their ids, in order.

    On PostgreSQL one INSERT ... RETURNING whose rows SQLAlchemy sorts by parameter order. SQLite has no
    such form (SQLAlchemy would send one INSERT per row), so there: one executemany, then the largest id.
    The rows' ids are the ones below it: the transaction holds the write lock from its first INSERT, so
    no other writer's row comes between, and SQLite gives a row without an id "one larger than the
    largest ROWID in the table prior to the insert" (https://sqlite.org/autoinc.html; the exception is
    a table whose largest id is 2**63 - 1, which `MAX_ID`-sized ids in this table never reach)."""
    if not rows:
        return []
    conn = s.connection()
    if conn.dialect.name != "sqlite":
        return [row[0] for row in conn.execute(_INSERT_RETURNING[table.name], rows)]
    conn.execute(_INSERT[table.name], rows)
    last = int(conn.scalar(_LAST_ID[table.name]) or 0)
    return list(range(last - len(rows) + 1, last + 1))


def _update(s: Session, rows: list[dict[str, Any]], *, notifications: bool = False, **values: Any) -> None:
    """One UPDATE of incidents for many rows (`b_id`): `values`, the resolution time (`b_at`), or the
    notifications counted (`b_n` more)."""
    if not rows:
        return
    stmt = _update_statement(notifications, "b_at" in rows[0], tuple(sorted(values.items())))
    now = utcnow()
    s.connection().execute(stmt, [{**row, "b_now": now} for row in rows])


@functools.cache
def _update_statement(notifications: bool, resolving: bool, values: tuple[tuple[str, Any], ...]) -> Update:
    c = INCIDENTS.c
    sets: dict[str, Any] = {"updated_at": bindparam("b_now"), **dict(values)}
    if notifications:
        sets["notifications"] = c.notifications + bindparam("b_n")
    if resolving:
        sets["resolved_at"] = bindparam("b_at")
    return update(INCIDENTS).where(c.id == bindparam("b_id")).values(sets)


def _notification_row(r: IngestRequest, now: datetime) -> dict[str, Any]:
    return {
        "received_at": now,
        "source": r.source,
        "group_key": r.group_key,
        "alerts": len(r.alerts),
        "body": r.body,
    }


def _incident_row(k: Known, now: datetime, group_key: str) -> dict[str, Any]:
    assert k.alert is not None
    a = k.alert
    return {
        "fingerprint": a.fingerprint,
        "alertname": a.name,
        "status": k.status,
        "starts_at": a.starts_at,
        "resolved_at": k.resolved_at,
        "labels": a.labels,
        "annotations": a.annotations,
        "generator_url": a.generator_url,
        "notifications": 1 + k.repeats,
        "created_at": now,
        "updated_at": now,
        "investigation": k.investigation,
        "storm_key": storm_key(a, group_key),
    }


def _count_queued(s: Session) -> int:
    return int(s.connection().scalar(_COUNT_QUEUED) or 0)


def _backlog_full(backlog: int, limit: int) -> IntakeFull:
    return IntakeFull(
        f"the backlog is full: {backlog} investigations are queued (ALERTSLEUTH_MAX_BACKLOG={limit}); "
        "nothing of this notification was stored, send it again later",
        retry_after=BACKLOG_RETRY_SECONDS,
        reason="backlog",
    )


def _known(s: Session, alerts: list[AlertInfo], window: float) -> list[Known]:
    """The stored incidents the alerts may belong to: their fingerprints, startsAt within `window`."""
    if not alerts:
        return []
    span = timedelta(seconds=max(window, 0.0))
    lo = min(a.starts_at for a in alerts) - span
    hi = max(a.starts_at for a in alerts) + span
    fingerprints = sorted({a.fingerprint for a in alerts})
    out: list[Known] = []
    for i in range(0, len(fingerprints), CHUNK):
        rows = s.connection().execute(_KNOWN, {"b_fps": fingerprints[i : i + CHUNK], "b_lo": lo, "b_hi": hi})
        out.extend(
            Known(
                id=row[0],
                fingerprint=row[1],
                starts_at=row[2],
                status=row[3],
                resolved_at=row[4],
                investigation=row[5],
                updated_at=row[6],
                report_made=row[7],
            )
            for row in rows
        )
    return out


def _record(result: IngestResult, touches: list[Touch]) -> None:
    for t in touches:
        assert t.incident.id is not None
        if t.outcome == "created":
            (result.created if t.alert.status == "firing" else result.resolved).append(t.incident.id)
        else:
            getattr(result, t.outcome).append(t.incident.id)
