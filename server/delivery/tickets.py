"""One ticket per incident in any tracker: the lifecycle written once, the tracker's calls in subclasses.

`TicketSink.send` runs the stages; a tracker (GitHub, GitLab, Jira, Redmine) supplies the operations:

    test                    → check()
    no ticket held          → find(marker): a ticket an earlier attempt opened but could not save
    resolved, no ticket     → skipped: "no ticket to close"
    resolved                → resolve(ref, notice): the resolution line, then close/transition as configured
    no ticket               → create(notice), saved with `ticket.set` at once, then after_create(...)
    firing, with a ticket   → already_open(ref, notice): a retry that finds the ticket it opened
    update, with a ticket   → comment(ref, notice): the new analysis (with attachments where there are any)

Saving the ticket the moment it exists, before any later request can fail, is what lets a retry comment
on it instead of opening a second one; `find` covers a crash between creating and saving.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from typing import ClassVar

from server.delivery.base import Notice, Outcome, Sink, TicketRef, TicketSlot
from server.delivery.message import resolved_line

__all__ = ["TicketSink", "marker_comment", "report_files"]


def marker_comment(marker: str) -> str:
    """The hidden line a Markdown ticket body starts with: `find` recognises the incident's ticket by it."""
    return f"<!-- alertsleuth:{marker} -->"


def report_files(notice: Notice) -> list[tuple[str, bytes, str]]:
    """The report's HTML and JSON and its charts as PNG, as (filename, content, media type): those
    the notice carries."""
    raw = notice.report_id or f"incident-{notice.incident_id}"
    stem = "alertsleuth-" + re.sub(r"[^A-Za-z0-9._-]", "_", raw)
    files = []
    if notice.html is not None:
        files.append((stem + ".html", notice.html.encode("utf-8"), "text/html"))
    if notice.report_json is not None:
        files.append((stem + ".json", notice.report_json.encode("utf-8"), "application/json"))
    files += [(name, data, "image/png") for name, data in notice.charts()]
    return files


class TicketSink(Sink):
    """A sink that keeps one ticket per incident. Subclasses implement the operations; each returns the
    `Outcome.detail` people read ("created OPS-12 with 2 attachments") and raises `DeliveryError`."""

    tickets: ClassVar[bool] = True

    def send(self, notice: Notice, ticket: TicketSlot) -> Outcome:
        if notice.event == "test":
            return self.check()
        ref = ticket.ref
        if ref is None:
            ref = self.find(notice.marker)
            if ref is not None:
                ticket.set(ref)
        if notice.event == "note":  # what was done about the incident (a silence, a runbook's run)
            if ref is None:
                return Outcome(detail="no ticket to note on", skipped=True)
            return Outcome(detail=self.note(ref, notice.change or ""), ticket=ref)
        if notice.event == "resolved":
            if ref is None:
                return Outcome(detail="no ticket to close", skipped=True)
            return Outcome(
                detail=self.resolve(ref, notice), ticket=ref, closing_comment=resolved_line(notice)
            )
        if ref is None:
            ref, detail = self.create(notice)
            ticket.set(ref)  # before anything else can fail: a retry finds it instead of creating again
            return Outcome(detail=self.after_create(ref, notice, detail), ticket=ref)
        if notice.event == "firing":
            return Outcome(detail=self.already_open(ref, notice), ticket=ref)
        return Outcome(detail=self.comment(ref, notice), ticket=ref)

    # --- what each tracker supplies ---------------------------------------------------------------

    @abstractmethod
    def find(self, marker: str) -> TicketRef | None:
        """The ticket carrying this incident's marker, if one exists (the oldest, if several)."""

    @abstractmethod
    def create(self, notice: Notice) -> tuple[TicketRef, str]:
        """Open the ticket for `notice` (with whatever can go into the same request) and return it with
        the detail ("created #42"). Work that is safe to redo (uploads) may come first; work that needs
        the ticket to exist belongs in `after_create`, which runs once the ticket is saved."""

    def after_create(self, ref: TicketRef, notice: Notice, detail: str) -> str:
        """Work on the new, already saved ticket (Jira: attach the reports); returns the final detail."""
        return detail

    def already_open(self, ref: TicketRef, notice: Notice) -> str:
        """A firing notice for a ticket that exists: an attempt opened it and is being retried."""
        return f"{ref.key} already open for this incident"

    @abstractmethod
    def comment(self, ref: TicketRef, notice: Notice) -> str:
        """Add the changed analysis (an `update` notice) to the ticket."""

    @abstractmethod
    def note(self, ref: TicketRef, text: str) -> str:
        """Add `text` (what was done about the incident: a silence, a runbook's output) to the ticket as
        preformatted text, so output keeps its lines and no markup in it is interpreted."""

    @abstractmethod
    def resolve(self, ref: TicketRef, notice: Notice) -> str:
        """Comment with the resolution, then close or transition the ticket if configured to."""

    @abstractmethod
    def check(self) -> Outcome:
        """The `test` event: check credentials and the project, saying in the detail what was created."""
