"""The Redmine sink against a real Redmine 5 (Debian's package, private SQLite), checked through
Redmine's own REST API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from exporter import launch as procs
from server.delivery.base import DeliveryError, Notice, NoticeCause, TicketRef, TicketSlot
from server.delivery.sinks.redmine import RedmineConfig, RedmineSink


def sink(redmine: procs.Process, **overrides: Any) -> RedmineSink:
    cfg = {"type": "redmine", "url": redmine.url, "api_key": redmine.extra["api_key"], "project": "ops"}
    cfg.update(overrides)
    return RedmineSink("ops-redmine", RedmineConfig.model_validate(cfg), httpx.Client(timeout=30))


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # stands for a chart: Redmine stores what it is given


def notice(event: str, marker: str, **kw: Any) -> Notice:
    base: dict[str, Any] = dict(
        event=event,
        incident_id=7,
        marker=marker,
        alertname="HighLoginFailureRate",
        status="resolved" if event == "resolved" else "firing",
        severity="critical",
        labels={"alertname": "HighLoginFailureRate", "severity": "critical"},
        title="[FIRING] HighLoginFailureRate: ip_region=shanghai, user_type=admin",
        summary="Failures concentrate in shanghai admins.",
        root_causes=[NoticeCause({"ip_region": "shanghai", "user_type": "admin"}, "90% fail", 0.93)],
        localized=True,
        starts_at="2026-11-21T10:00:00Z",
        report_id="r1",
        markdown="# HighLoginFailureRate\n\n**Root cause:** ip_region=shanghai, user_type=admin\n",
        html="<html><body><h1>HighLoginFailureRate</h1></body></html>",
        report_json=json.dumps({"id": "r1"}),
        report_url="https://alertsleuth.example.com/api/v1/reports/r1?format=html",
        charts=lambda: [("r1.signal.png", PNG)],
    )
    base.update(kw)
    return Notice(**base)


def issue(redmine: procs.Process, ref: TicketRef) -> dict[str, Any]:
    r = httpx.get(
        f"{redmine.url}/issues/{ref.id}.json",
        params={"include": "attachments,journals"},
        headers={"X-Redmine-API-Key": redmine.extra["api_key"]},
    )
    r.raise_for_status()
    return dict(r.json()["issue"])


def issues_with(redmine: procs.Process, marker: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{redmine.url}/issues.json",
        params={"project_id": "ops", "status_id": "*", "description": f"~{marker}"},
        headers={"X-Redmine-API-Key": redmine.extra["api_key"]},
    )
    return list(r.json()["issues"])


def test_lifecycle_create_comment_close(redmine: procs.Process) -> None:
    s, saved = sink(redmine), []
    slot = TicketSlot(None, saved.append)
    out = s.send(notice("firing", "mk-life-1"), slot)
    assert out.ticket is not None and saved == [out.ticket] and out.ticket.key.startswith("#")
    assert out.ticket.url == f"{redmine.url}/issues/{out.ticket.id}"
    got = issue(redmine, out.ticket)
    assert got["subject"] == "[FIRING] HighLoginFailureRate: ip_region=shanghai, user_type=admin"
    assert "**Root cause:** ip_region=shanghai" in got["description"] and "mk-life-1" in got["description"]
    names = sorted(a["filename"] for a in got["attachments"])
    assert names == ["alertsleuth-r1.html", "alertsleuth-r1.json", "r1.signal.png"]  # the chart as PNG
    png = next(a for a in got["attachments"] if a["filename"].endswith(".png"))
    assert png["content_type"] == "image/png" and png["filesize"] == len(PNG)
    assert got["status"]["name"] == "New"

    # The same firing again (a retry after a lost answer): no comment, no second issue.
    again = s.send(notice("firing", "mk-life-1"), TicketSlot(None, saved.append))
    assert again.ticket == out.ticket and "already open" in again.detail
    assert len(issues_with(redmine, "mk-life-1")) == 1

    s.send(
        notice("update", "mk-life-1", report_id="r2", change="root causes a → b"),
        TicketSlot(out.ticket, saved.append),
    )
    got = issue(redmine, out.ticket)
    notes = [j["notes"] for j in got["journals"] if j["notes"]]
    assert len(notes) == 1 and notes[0].startswith("Analysis changed: root causes a → b")
    assert len(got["attachments"]) == 6  # each analysis: HTML, JSON, chart

    done = s.send(
        notice("resolved", "mk-life-1", duration_seconds=754, ends_at="2026-11-21T10:12:34Z"),
        TicketSlot(out.ticket, saved.append),
    )
    assert "Closed" in done.detail
    got = issue(redmine, out.ticket)
    assert got["status"]["name"] == "Closed"
    assert [j["notes"] for j in got["journals"] if j["notes"]][-1].startswith("Resolved after 12m 34s")


def test_lost_ticket_is_found_by_marker_not_created_twice(redmine: procs.Process) -> None:
    s = sink(redmine)
    first = s.send(notice("firing", "mk-lost-2"), TicketSlot(None, lambda ref: None))
    # The process died before saving the ticket: the retry has no ticket, and finds it.
    saved: list[TicketRef] = []
    out = s.send(notice("update", "mk-lost-2", change="x"), TicketSlot(None, saved.append))
    assert saved == [first.ticket] and out.ticket == first.ticket
    assert len(issues_with(redmine, "mk-lost-2")) == 1


def test_resolved_without_a_ticket_is_skipped(redmine: procs.Process) -> None:
    out = sink(redmine).send(notice("resolved", "mk-none-3"), TicketSlot(None, lambda ref: None))
    assert out.skipped and out.detail == "no ticket to close"


def test_close_status_none_only_comments_and_textile_wraps(redmine: procs.Process) -> None:
    s = sink(redmine, close_status=None, formatting="textile", attach=False)
    out = s.send(notice("firing", "mk-text-4"), TicketSlot(None, lambda ref: None))
    assert out.ticket is not None
    got = issue(redmine, out.ticket)
    assert got["description"].startswith("<pre>") and got["attachments"] == []
    s.send(notice("resolved", "mk-text-4", duration_seconds=5), TicketSlot(out.ticket, lambda ref: None))
    assert issue(redmine, out.ticket)["status"]["name"] == "New"


def test_credentials_check_and_errors_name_the_problem(redmine: procs.Process) -> None:
    ok = sink(redmine).send(notice("test", "mk-test"), TicketSlot(None, lambda ref: None))
    assert "credentials ok: user admin, project Ops" in ok.detail

    with pytest.raises(DeliveryError) as bad_key:
        sink(redmine, api_key="0123456789abcdef-not-a-key").send(notice("test", "t"), TicketSlot(None, print))
    assert not bad_key.value.retryable and "HTTP 401" in str(bad_key.value)
    assert "0123456789abcdef" not in str(bad_key.value)

    with pytest.raises(DeliveryError) as no_project:
        sink(redmine, project="nope").send(notice("firing", "mk-np"), TicketSlot(None, print))
    assert not no_project.value.retryable

    with pytest.raises(DeliveryError) as status:
        sink(redmine, close_status="Done").send(notice("test", "t"), TicketSlot(None, print))
    assert "no issue status named 'Done'" in str(status.value) and "Closed" in str(status.value)


def test_redmine_down_is_retryable() -> None:
    cfg = RedmineConfig.model_validate(
        {"type": "redmine", "url": f"http://127.0.0.1:{procs.free_port()}", "api_key": "k", "project": "ops"}
    )
    with pytest.raises(DeliveryError) as down:
        RedmineSink("r", cfg, httpx.Client(timeout=2)).send(notice("firing", "m"), TicketSlot(None, print))
    assert down.value.retryable and "ConnectError" in str(down.value)
