"""An incident's timeline, in time order: its alert's start and resolution, the notifications that touched
it, its investigations, its deliveries and its tickets, the silences made for it (created, expired) and
its runbook actions (requested, dry run finished, approved or denied, refused, finished), with who did
it, one line each (pure: from what the store read).

A line's text is plain (the template escapes it). Lines at the same moment keep the order of the walk of
an alert (ARCHITECTURE.md): the alert, the notification, the investigation, the delivery, the ticket, then
the silence and the runbook action. An action's steps come from the audit trail (server/db/chatops.py),
which records each with its time and its actor; its runbook's name from the action.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.markup import safe_url
from server.db import Delivery, Incident, Job, Ticket
from server.db.incidents import FIRST_NOTIFICATIONS, NotificationSeen
from server.db.models import AuditEvent, RunbookAction, SilenceRow
from server.silences import Matcher
from tools.format import fmt_time, to_utc

MAX_GROUP_KEY = 160  # characters of a group key shown (Alertmanager's hold every grouping label)
MAX_ERROR = 300  # characters of an error shown in a line (the tables below show it whole)

OUTCOMES = {
    "created": "opened this incident",
    "deduplicated": "a repeat",
    "resolved": "resolved this incident",
    "refreshed": "a repeat: the report was old, a new investigation was queued",
}
NOTICES = {"firing": "firing notice", "update": "update", "resolved": "resolved notice"}
_ORDER = {
    "alert": 0,
    "notification": 1,
    "gap": 2,
    "investigation": 3,
    "delivery": 4,
    "ticket": 5,
    "silence": 6,
    "action": 7,
}
ACTION_STEPS = ("run_requested", "dry_run", "approved", "denied", "refused", "run_finished", "interrupted")


@dataclass
class Event:
    at: datetime
    kind: str  # alert | notification | gap | investigation | delivery | ticket | silence | action
    text: str
    state: str = ""  # a state's class (state-done, state-failed, ...), when the line ends in one
    href: str | None = None  # a ticket's link, when it is a safe URL
    when: str = ""  # `at` as people read it

    def __post_init__(self) -> None:
        self.when = fmt_time(self.at)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def notification_text(n: NotificationSeen) -> str:
    """`notification received: firing (receiver X, group key …, 2 alerts): a repeat`."""
    origin = [f"receiver {n.receiver}" if n.receiver else f"from {n.source}"]
    if n.group_key:
        origin.append(f"group key {_cut(n.group_key, MAX_GROUP_KEY)}")
    origin.append(_plural(n.alerts, "alert"))
    outcome = OUTCOMES.get(n.outcome, n.outcome)
    return f"notification received: {n.status} ({', '.join(origin)}): {outcome}"


def _job_events(j: Job) -> list[Event]:
    events = [Event(j.created_at, "investigation", f"investigation {j.id} queued")]
    error = _cut(j.last_error, MAX_ERROR) if j.last_error else ""
    tries = _plural(j.attempts, "attempt")
    name = f"investigation {j.id}"
    if j.state == "done":  # a degraded report that left the good one current says so in last_error
        text = f"{name} done ({tries}" + (f"; last error: {error})" if error else ")")
        events.append(Event(j.updated_at, "investigation", text, "done"))
    elif j.state == "failed":
        text = f"{name} failed ({tries})" + (f": {error}" if error else "")
        events.append(Event(j.updated_at, "investigation", text, "failed"))
    elif j.state == "running":
        events.append(
            Event(j.updated_at, "investigation", f"{name} running (attempt {j.attempts})", "running")
        )
    elif j.attempts:  # queued again after a failed attempt
        text = f"{name}: attempt {j.attempts} failed" + (f" ({error})" if error else "")
        events.append(
            Event(j.updated_at, "investigation", f"{text}; tried again at {fmt_time(j.not_before)}")
        )
    return events


def _delivery_events(d: Delivery) -> list[Event]:
    notice = NOTICES.get(d.event, d.event)
    events = [Event(d.created_at, "delivery", f"{notice} queued for {d.sink}")]
    error = _cut(d.last_error, MAX_ERROR) if d.last_error else ""
    if d.state == "done":
        detail = f": {_cut(d.detail, MAX_ERROR)}" if d.detail else ""
        at = d.sent_at or d.updated_at
        events.append(Event(at, "delivery", f"{notice} sent to {d.sink}{detail}", "done"))
    elif d.state == "failed":
        text = f"{notice} to {d.sink} failed ({_plural(d.attempts, 'attempt')})" + (
            f": {error}" if error else ""
        )
        events.append(Event(d.updated_at, "delivery", text, "failed"))
    elif d.state == "sending":
        events.append(
            Event(d.updated_at, "delivery", f"{notice} being sent to {d.sink} (attempt {d.attempts})")
        )
    elif d.attempts:  # pending again after a failed attempt
        text = f"{notice} to {d.sink}: attempt {d.attempts} failed" + (f" ({error})" if error else "")
        events.append(Event(d.updated_at, "delivery", f"{text}; tried again at {fmt_time(d.not_before)}"))
    return events


def matchers_text(matchers: Sequence[Any]) -> str:
    """A stored silence's matchers in their editable form, `a="1", b=~"x|y"` (what cannot be read as a
    matcher is shown as stored)."""
    shown = []
    for m in matchers:
        try:
            shown.append(str(Matcher.from_api(m)))
        except (KeyError, TypeError, AttributeError):
            shown.append(str(m))
    return ", ".join(shown)


def _silence_events(row: SilenceRow) -> list[Event]:
    name = f"silence {row.silence_id}"
    text = f"{name} created by {row.created_by} until {fmt_time(row.ends_at)}: {matchers_text(row.matchers)}"
    if row.comment:
        text += f" ({_cut(row.comment, MAX_ERROR)})"
    events = [Event(row.starts_at, "silence", text)]
    if row.expired_at is not None:
        events.append(Event(row.expired_at, "silence", f"{name} expired by {row.expired_by or '?'}"))
    return events


def _outcome(detail: dict[str, Any]) -> str:
    """`successful, exit status 0`; without an exit status (a command's dry run, a runner's error) the
    status alone."""
    rc = detail.get("rc")
    return f"{detail.get('status', '?')}" + ("" if rc is None else f", exit status {rc}")


def action_event(e: AuditEvent, runbook: str) -> Event | None:
    """The line of one step of a runbook action, from its audit event; None for any other event."""
    if e.action_id is None or e.kind not in ACTION_STEPS:
        return None
    name = f"runbook action {e.action_id} ({runbook})"
    d = e.detail or {}
    ok = d.get("status") == "successful"
    if e.kind == "run_requested":
        return Event(e.at, "action", f"{name} requested by {e.actor}: dry run started")
    if e.kind == "dry_run":
        then = "waiting for approval" if ok else "it cannot be approved"
        return Event(e.at, "action", f"{name}: dry run {_outcome(d)}; {then}", "done" if ok else "failed")
    if e.kind == "approved":
        return Event(e.at, "action", f"{name} approved by {e.actor}: running", "running")
    if e.kind == "denied":
        reason = str(d.get("reason") or "")
        return Event(
            e.at, "action", f"{name} denied by {e.actor}" + (f": {_cut(reason, MAX_ERROR)}" if reason else "")
        )
    if e.kind == "refused":
        why = _cut(str(d.get("why") or ""), MAX_ERROR)
        return Event(
            e.at, "action", f"{name}: {e.actor} was refused" + (f" ({why})" if why else ""), "failed"
        )
    if e.kind == "run_finished":
        return Event(e.at, "action", f"{name} finished: {_outcome(d)}", "done" if ok else "failed")
    return Event(
        e.at, "action", f"{name} interrupted (was {d.get('was', '?')}): its process stopped", "failed"
    )


def timeline(
    inc: Incident,
    notifications: list[NotificationSeen],
    left_out: int,
    jobs: list[Job],
    deliveries: list[Delivery],
    tickets: list[Ticket],
    *,
    silences: Sequence[SilenceRow] = (),
    actions: Sequence[RunbookAction] = (),
    audit: Sequence[AuditEvent] = (),
) -> list[Event]:
    """Every line of the incident's timeline, oldest first. `notifications` are the first and last ones
    of the incident (server/db/incidents.py), `left_out` how many lie between them; `audit` is the
    incident's audit trail, of which the steps of `actions` are shown."""
    events = [Event(inc.starts_at, "alert", "alert started firing")]
    if inc.resolved_at is not None:
        events.append(Event(inc.resolved_at, "alert", "alert resolved"))
    for i, n in enumerate(notifications):
        events.append(Event(n.received_at, "notification", notification_text(n)))
        if left_out and i == FIRST_NOTIFICATIONS - 1:  # the store's first ones end here
            text = f"… {_plural(left_out, 'more notification')} received, not listed here"
            events.append(Event(n.received_at, "gap", text))
    for j in jobs:
        events.extend(_job_events(j))
    for d in deliveries:
        events.extend(_delivery_events(d))
    for t in tickets:
        events.append(
            Event(t.created_at, "ticket", f"ticket {t.key} opened in {t.sink}", href=safe_url(t.url))
        )
        if t.closed_at is not None:
            text = f"ticket {t.key} closed in {t.sink}: {t.closing_comment or ''}".rstrip(": ")
            events.append(Event(t.closed_at, "ticket", text, href=safe_url(t.url)))
    for row in silences:
        events.extend(_silence_events(row))
    runbooks = {a.id: a.runbook for a in actions}
    for e in audit:
        if e.action_id in runbooks and (line := action_event(e, runbooks[e.action_id])) is not None:
            events.append(line)
    order = {id(e): i for i, e in enumerate(events)}
    return sorted(events, key=lambda e: (to_utc(e.at), _ORDER[e.kind], order[id(e)]))


def earlier_unlisted(notifications: list[NotificationSeen]) -> bool:
    """Whether the incident was opened by a notification stored before they were listed per incident
    (its first listed one did not open it, or none is listed)."""
    return not notifications or notifications[0].outcome != "created"
