"""Which incident each alert belongs to, and what the alert does to it: pure, over the incidents known.

The rules (server/db/intake.py's docstring says why): an alert belongs to the incident with its
fingerprint and startsAt; failing that, to the one with its fingerprint whose startsAt is within
`window` seconds of the alert's and which was still firing when the alert started, the nearest. None:
a new incident. A new firing incident queues an investigation; a resolution resolves; a repeat is
counted, or re-investigated when its report is older than `refresh_after` seconds.

`Incidents` holds the incidents intake read for a batch of notifications plus those the batch made, and
records what each notification did; `begin`/`rollback` undo one notification's changes (a notification
refused as a whole, e.g. the backlog is full, leaves nothing behind).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.models import AlertInfo

# What an alert did to its incident: created | deduplicated | resolved | refreshed
Outcome = str
FINISHED = ("done", "degraded", "failed")  # investigations whose report may be stale


@dataclass(eq=False)  # compared by identity: two incidents are never the same because alike
class Known:
    """An incident as intake sees it. `id` is None for one this batch made (it gets its id when
    written). The counters say what the batch did to it, for the writes."""

    id: int | None
    fingerprint: str
    starts_at: datetime
    status: str
    resolved_at: datetime | None
    investigation: str
    report_made: datetime | None = None  # its current report's created_at
    updated_at: datetime | None = None
    alert: AlertInfo | None = None  # the alert that made it, when this batch did
    repeats: int = 0  # notifications counted beyond the first (the incident's `notifications` + this)
    resolved_now: bool = False


@dataclass
class Touch:
    """What one alert did: the incident, the outcome, and the alert."""

    incident: Known
    outcome: Outcome
    alert: AlertInfo

    @property
    def queues(self) -> bool:
        """Whether it queues an investigation: a new firing incident, or a stale one refreshed."""
        return self.outcome == "refreshed" or (self.outcome == "created" and self.alert.status == "firing")


@dataclass
class Incidents:
    """The incidents known to one batch, by fingerprint, in id order (new ones last)."""

    by_fingerprint: dict[str, list[Known]] = field(default_factory=dict)
    key: Callable[[str], str] = str  # a fingerprint as the store holds it (PostgreSQL: NUL replaced)
    _saved: list[tuple[Known, dict[str, object]]] = field(default_factory=list)
    _made: list[Known] = field(default_factory=list)

    @classmethod
    def of(cls, known: Iterable[Known], key: Callable[[str], str] = str) -> Incidents:
        out = cls(key=key)
        for k in sorted(known, key=lambda k: k.id or 0):
            out.by_fingerprint.setdefault(key(k.fingerprint), []).append(k)
        return out

    def begin(self) -> None:
        """Start one notification's changes (undone by `rollback`)."""
        self._saved.clear()
        self._made.clear()

    def rollback(self) -> None:
        for k, fields in self._saved:
            vars(k).update(fields)
        for k in self._made:
            self.by_fingerprint[self.key(k.fingerprint)].remove(k)
        self.begin()

    def _change(self, k: Known) -> Known:
        """`k`, its state saved for `rollback` unless this notification made it."""
        if k not in self._made and all(k is not saved for saved, _ in self._saved):
            self._saved.append((k, copy.copy(vars(k))))
        return k

    def find(self, alert: AlertInfo, window: float) -> Known | None:
        """The incident `alert` belongs to (the module's rules), if any."""
        same = self.by_fingerprint.get(self.key(alert.fingerprint), [])
        exact = next((k for k in same if k.starts_at == alert.starts_at), None)
        if exact is not None or window <= 0:
            return exact
        span = timedelta(seconds=window)
        was_firing = [
            k
            for k in same
            if abs(k.starts_at - alert.starts_at) <= span
            and (k.status != "resolved" or k.resolved_at is None or alert.starts_at < k.resolved_at)
        ]
        return min(was_firing, key=lambda k: abs(k.starts_at - alert.starts_at), default=None)

    def apply(self, alert: AlertInfo, now: datetime, *, window: float, refresh_after: float) -> Touch:
        """What `alert` does, applied to the incidents known."""
        k = self.find(alert, window)
        if k is None:
            resolved = alert.status == "resolved"
            k = Known(
                id=None,
                fingerprint=alert.fingerprint,
                starts_at=alert.starts_at,
                status=alert.status,
                resolved_at=(alert.ends_at or now) if resolved else None,
                investigation="none" if resolved else "queued",
                alert=alert,
            )
            self.by_fingerprint.setdefault(self.key(k.fingerprint), []).append(k)
            self._made.append(k)
            return Touch(k, "created", alert)
        self._change(k).repeats += 1
        if alert.status == "resolved":
            if k.status == "resolved":
                return Touch(k, "deduplicated", alert)
            k.status = "resolved"
            k.resolved_at = alert.ends_at or now
            k.resolved_now = True
            return Touch(k, "resolved", alert)
        # A firing of a resolved incident is a late copy (a peer Alertmanager's, sent before it saw the
        # resolution): counted, never re-investigated.
        if refresh_after > 0 and k.status != "resolved" and stale(k, now, refresh_after):
            k.investigation = "queued"
            return Touch(k, "refreshed", alert)
        return Touch(k, "deduplicated", alert)


def stale(k: Known, now: datetime, seconds: float) -> bool:
    """A finished investigation whose report (or, without one, the incident's last change) is older
    than `seconds`."""
    if k.investigation not in FINISHED:
        return False
    since = k.report_made or k.updated_at
    return since is None or now - since > timedelta(seconds=seconds)


@dataclass(eq=False)
class Link:
    """One timeline row: an incident a notification touched, what the first alert that changed
    something did to it, and the last alert's status."""

    incident: Known
    outcome: Outcome
    status: str


def links(touches: Iterable[Touch]) -> list[Link]:
    """One row per incident a notification touched (two alerts of one notification in one incident:
    HA replicas posting directly)."""
    out: dict[int, Link] = {}
    for t in touches:
        row = out.get(id(t.incident))
        if row is None:
            out[id(t.incident)] = Link(t.incident, t.outcome, t.alert.status)
            continue
        if row.outcome == "deduplicated":
            row.outcome = t.outcome
        row.status = t.alert.status
    return list(out.values())
