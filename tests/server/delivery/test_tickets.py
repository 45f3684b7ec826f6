"""The ticket lifecycle of `TicketSink.send`, against an in-memory tracker that records every call.

The tracker is a minimal subclass of the base under test (not a stand-in for our code): it shows which
operations the lifecycle calls, in which order, and when the ticket is saved. Each real tracker is
tested against its own fake or real server in test_ticket_sinks.py and test_redmine.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from server.delivery.base import DeliveryError, Event, Notice, Outcome, SinkConfig, TicketRef, TicketSlot
from server.delivery.sinks.github import GitHubSink
from server.delivery.sinks.gitlab import GitLabSink
from server.delivery.sinks.jira import JiraSink
from server.delivery.sinks.redmine import RedmineSink
from server.delivery.tickets import TicketSink

MARKER = "alertsleuth-3f9a1c2b7d4e-1763700000"


def notice(event: Event, marker: str = MARKER) -> Notice:
    return Notice(
        event=event,
        incident_id=7,
        marker=marker,
        alertname="LoginFailureRatio",
        status="resolved" if event == "resolved" else "firing",
        severity="critical",
        labels={"alertname": "LoginFailureRatio"},
        title="[FIRING] LoginFailureRatio",
        summary="Login failures rose to 38%.",
    )


@dataclass
class Ticket:
    marker: str
    comments: list[str] = field(default_factory=list)
    closed: bool = False


class MemorySink(TicketSink):
    """A tracker in a dict. `calls` records each operation and each save of the slot, in order;
    an operation named in `fail` raises a retryable `DeliveryError` after doing its work."""

    kind = "memory"
    config_model = SinkConfig

    def __init__(self) -> None:
        super().__init__("memory", None, None)
        self.issues: dict[str, Ticket] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail: set[str] = set()

    def slot(self, ref: TicketRef | None = None) -> TicketSlot:
        return TicketSlot(ref, lambda saved: self.calls.append(("save", saved.key)))

    def _did(self, op: str, arg: str) -> None:
        self.calls.append((op, arg))
        if op in self.fail:
            raise DeliveryError(f"{op} failed", retryable=True)

    def _ref(self, issue_id: str) -> TicketRef:
        return TicketRef(id=issue_id, key=f"MEM-{issue_id}", url=f"memory:/{issue_id}")

    def find(self, marker: str) -> TicketRef | None:
        hits = [i for i, t in self.issues.items() if t.marker == marker]
        self._did("find", marker)
        return self._ref(min(hits, key=int)) if hits else None

    def create(self, notice: Notice) -> tuple[TicketRef, str]:
        ref = self._ref(str(len(self.issues) + 1))
        self.issues[ref.id] = Ticket(notice.marker)
        self._did("create", notice.marker)
        return ref, f"created {ref.key}"

    def after_create(self, ref: TicketRef, notice: Notice, detail: str) -> str:
        self._did("after_create", ref.key)
        return f"{detail} with 2 attachments"

    def comment(self, ref: TicketRef, notice: Notice) -> str:
        self.issues[ref.id].comments.append(f"{notice.event}: {notice.summary}")
        self._did("comment", ref.key)
        return f"commented on {ref.key}"

    def note(self, ref: TicketRef, text: str) -> str:
        self.issues[ref.id].comments.append(f"note: {text}")
        self._did("note", ref.key)
        return f"noted on {ref.key}"

    def resolve(self, ref: TicketRef, notice: Notice) -> str:
        self.issues[ref.id].comments.append("Resolved.")
        self.issues[ref.id].closed = True
        self._did("resolve", ref.key)
        return f"commented on and closed {ref.key}"

    def check(self) -> Outcome:
        self._did("check", "")
        return Outcome(detail="credentials ok; nothing created")


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


def opened(sink: MemorySink) -> TicketRef:
    """A ticket opened by an earlier firing notice, and the call log cleared."""
    ref = sink.send(notice("firing"), sink.slot()).ticket
    assert ref is not None
    sink.calls.clear()
    return ref


def test_firing_creates_the_ticket_and_saves_it_before_anything_else_can_fail(sink: MemorySink) -> None:
    sink.fail = {"after_create"}
    with pytest.raises(DeliveryError):
        sink.send(notice("firing"), sink.slot())
    assert sink.calls == [("find", MARKER), ("create", MARKER), ("save", "MEM-1"), ("after_create", "MEM-1")]

    # The outbox retries with the ticket it saved: no second ticket; the tracker finishes its work.
    sink.fail, sink.calls = set(), []
    outcome = sink.send(notice("firing"), sink.slot(sink._ref("1")))
    assert outcome.detail == "MEM-1 already open for this incident" and outcome.ticket == sink._ref("1")
    assert list(sink.issues) == ["1"]


def test_firing_without_a_ticket_creates_one(sink: MemorySink) -> None:
    outcome = sink.send(notice("firing"), sink.slot())
    assert outcome == Outcome(detail="created MEM-1 with 2 attachments", ticket=sink._ref("1"))
    assert sink.calls == [("find", MARKER), ("create", MARKER), ("save", "MEM-1"), ("after_create", "MEM-1")]


def test_a_retry_after_a_crash_finds_the_ticket_by_marker_instead_of_creating(sink: MemorySink) -> None:
    first = sink.send(notice("firing"), TicketSlot(None, lambda ref: None))  # the save was lost
    sink.calls.clear()
    outcome = sink.send(notice("firing"), sink.slot())
    assert outcome.ticket == first.ticket and outcome.detail == "MEM-1 already open for this incident"
    assert sink.calls == [("find", MARKER), ("save", "MEM-1")]
    assert list(sink.issues) == ["1"]


def test_an_update_after_a_crash_comments_on_the_ticket_found(sink: MemorySink) -> None:
    sink.send(notice("firing"), TicketSlot(None, lambda ref: None))
    sink.calls.clear()
    outcome = sink.send(notice("update"), sink.slot())
    assert outcome.detail == "commented on MEM-1"
    assert sink.calls == [("find", MARKER), ("save", "MEM-1"), ("comment", "MEM-1")]


def test_an_update_without_any_ticket_creates_one(sink: MemorySink) -> None:
    outcome = sink.send(notice("update"), sink.slot())
    assert outcome.detail == "created MEM-1 with 2 attachments" and sink.issues["1"].comments == []


def test_resolved_without_a_ticket_is_skipped(sink: MemorySink) -> None:
    outcome = sink.send(notice("resolved"), sink.slot())
    assert outcome == Outcome(detail="no ticket to close", skipped=True)
    assert sink.calls == [("find", MARKER)] and sink.issues == {}


def test_update_comments_the_new_analysis(sink: MemorySink) -> None:
    ref = opened(sink)
    outcome = sink.send(notice("update"), sink.slot(ref))
    assert outcome == Outcome(detail="commented on MEM-1", ticket=ref)
    assert sink.calls == [("comment", "MEM-1")]
    assert sink.issues["1"].comments == ["update: Login failures rose to 38%."]


def test_firing_with_a_ticket_is_already_open(sink: MemorySink) -> None:
    ref = opened(sink)
    outcome = sink.send(notice("firing"), sink.slot(ref))
    assert outcome == Outcome(detail="MEM-1 already open for this incident", ticket=ref)
    assert sink.calls == [] and sink.issues["1"].comments == []


def test_resolved_comments_and_closes(sink: MemorySink) -> None:
    ref = opened(sink)
    outcome = sink.send(notice("resolved"), sink.slot(ref))
    closing = "Resolved."  # resolved_line: the notice says neither how long nor when
    assert outcome == Outcome(detail="commented on and closed MEM-1", ticket=ref, closing_comment=closing)
    assert sink.calls == [("resolve", "MEM-1")]
    assert sink.issues["1"].comments == ["Resolved."] and sink.issues["1"].closed


def test_resolved_after_a_crash_closes_the_ticket_found(sink: MemorySink) -> None:
    sink.send(notice("firing"), TicketSlot(None, lambda ref: None))
    sink.calls.clear()
    outcome = sink.send(notice("resolved"), sink.slot())
    assert outcome.detail == "commented on and closed MEM-1" and sink.issues["1"].closed
    assert sink.calls == [("find", MARKER), ("save", "MEM-1"), ("resolve", "MEM-1")]


def test_test_only_checks_credentials(sink: MemorySink) -> None:
    outcome = sink.send(notice("test"), sink.slot())
    assert outcome == Outcome(detail="credentials ok; nothing created")
    assert sink.calls == [("check", "")]


def test_a_failed_find_creates_nothing(sink: MemorySink) -> None:
    sink.fail = {"find"}
    with pytest.raises(DeliveryError):
        sink.send(notice("firing"), sink.slot())
    assert sink.calls == [("find", MARKER)] and sink.issues == {}


@pytest.mark.parametrize("cls", [GitHubSink, GitLabSink, JiraSink, RedmineSink])
def test_every_tracker_runs_the_one_lifecycle(cls: Any) -> None:
    assert issubclass(cls, TicketSink) and cls.tickets
    assert cls.send is TicketSink.send


def test_a_note_goes_on_the_ticket_and_is_skipped_without_one(sink: MemorySink) -> None:
    note = replace(notice("note"), change="Silenced for 2h by slack:U1 (silence 5f0c…).")
    assert sink.send(note, sink.slot()) == Outcome(detail="no ticket to note on", skipped=True)
    ref = opened(sink)
    assert sink.send(note, sink.slot(ref)) == Outcome(detail="noted on MEM-1", ticket=ref)
    assert sink.issues["1"].comments == ["note: Silenced for 2h by slack:U1 (silence 5f0c…)."]
