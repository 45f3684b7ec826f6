"""What an event queues, for which sinks: routed once when the event is recorded, decided here.

The store records an event and, in the same transaction, calls the event's plan with what the outbox
already told each sink (`Told`); the plan returns the deliveries to queue.

- A finished report: a sink not told about the incident yet gets `firing`; a sink told before gets
  `update` when `update_line` finds news for it; nothing otherwise.
- A resolution: a sink whose route sends resolved notices gets `resolved` when it was told about the
  incident, or when an investigation is still pending (whose report it is going to get).
- A note (ChatOps: a silence made or ended, a runbook's run): each ticket sink told about the incident
  gets `note`, a comment on its ticket.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from agent.models import Report
from server.db.deliveries import NewDelivery, Plan, Told
from server.delivery.change import analysis_of, describe_change
from server.delivery.routing import Route, Target, route


def update_line(target: Target, told: dict[str, Any] | None, analysis: dict[str, Any]) -> str | None:
    """Whether a sink told `told` before hears about a report with `analysis`: the one line saying what
    changed when its route wants updates and something a person would act on changed; else None."""
    return describe_change(told, analysis) if target.send_updates else None


def report_plan(targets: Sequence[Target], analysis: dict[str, Any]) -> Plan:
    def plan(told: Told) -> list[NewDelivery]:
        queued = []
        for t in targets:
            if t.sink not in told.analyses:
                queued.append(NewDelivery(t.sink, "firing", analysis))
            elif (change := update_line(t, told.analyses[t.sink], analysis)) is not None:
                queued.append(NewDelivery(t.sink, "update", analysis, change))
        return queued

    return plan


def resolution_plan(targets: Sequence[Target]) -> Plan:
    def plan(told: Told) -> list[NewDelivery]:
        return [
            NewDelivery(t.sink, "resolved")
            for t in targets
            if t.send_resolved and (t.sink in told.analyses or told.investigating)
        ]

    return plan


def note_plan(targets: Sequence[Target], trackers: Collection[str], text: str) -> Plan:
    """A note (what was done about the incident: a silence, a runbook's run) for each ticket sink that
    was told about the incident; chat hears of it in its own thread, not through the outbox."""

    def plan(told: Told) -> list[NewDelivery]:
        return [
            NewDelivery(t.sink, "note", None, text)
            for t in targets
            if t.sink in trackers and t.sink in told.analyses
        ]

    return plan


class Planner:
    """The route tree over the configured sinks, and the plan of each event."""

    def __init__(self, tree: Route, sinks: Collection[str], trackers: Collection[str] = ()) -> None:
        self.tree = tree
        self.sinks = sinks
        self.trackers = trackers  # the ticket sinks among them

    def targets(self, labels: dict[str, str]) -> list[Target]:
        return route(self.tree, labels) if self.sinks else []

    def for_report(self, labels: dict[str, str], report: Report) -> Plan:
        return report_plan(self.targets(labels), analysis_of(report))

    def for_resolution(self, labels: dict[str, str]) -> Plan:
        return resolution_plan(self.targets(labels))

    def for_note(self, labels: dict[str, str], text: str) -> Plan:
        return note_plan(self.targets(labels), self.trackers, text)
