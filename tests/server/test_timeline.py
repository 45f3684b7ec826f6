"""The notifications of an incident's timeline: linked by intake in its transaction (notification_incidents),
read back bounded, shown in time order with the investigations and deliveries on the incident's page and
listed in the API; a database made before the link table existed opens and keeps working.

The store parts run through `store.intake.ingest` on both backends (a SQLite file, a database of the
session's PostgreSQL); the HTTP parts on the real app.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape

import httpx
import pytest
from sqlalchemy import inspect

from agent.models import AlertInfo, utcnow
from server.db import Store
from server.db.incidents import FIRST_NOTIFICATIONS, LAST_NOTIFICATIONS
from server.db.models import Incident, Ticket
from server.settings import Settings
from server.ui.timeline import earlier_unlisted, timeline
from tests.conftest import PromEnv, serve
from tests.server.old_release import T0 as OLD_T0
from tests.server.old_release import make_database, write_rows
from tests.server.test_api import webhook

T0 = utcnow().replace(microsecond=0) - timedelta(hours=1)


def _alert(fingerprint: str = "fp-1", status: str = "firing", **labels: str) -> AlertInfo:
    return AlertInfo(
        name="LoginFailures",
        status=status,
        labels={"alertname": "LoginFailures", **labels},
        starts_at=T0,
        ends_at=T0 + timedelta(minutes=20) if status == "resolved" else None,
        fingerprint=fingerprint,
    )


def test_intake_links_each_notification_to_the_incidents_it_touched(database_url: str) -> None:
    store = Store(database_url)
    try:
        group = '{}:{alertname="LoginFailures"}'
        [inc] = store.intake.ingest("alertmanager", "{}", group, [_alert()], receiver="oncall").created
        store.intake.ingest("alertmanager", "{}", group, [_alert()], receiver="oncall")
        # two alerts of one notification in one incident (HA replicas): one link, what changed wins
        both = [_alert(), _alert(status="resolved")]
        assert store.intake.ingest("prometheus", "[]", "", both).resolved == [inc]
        # a notification holding two incidents' alerts links both
        other = store.intake.ingest(
            "alertmanager", "{}", group, [_alert(), _alert("fp-2")], receiver="oncall"
        )
        [second] = other.created
        found = store.incidents.detail(inc)
        assert found is not None and found.notifications_left_out == 0
        got = [
            (n.source, n.receiver, n.group_key, n.alerts, n.status, n.outcome) for n in found.notifications
        ]
        assert got == [
            ("alertmanager", "oncall", group, 1, "firing", "created"),
            ("alertmanager", "oncall", group, 1, "firing", "deduplicated"),
            ("prometheus", "", "", 2, "resolved", "resolved"),
            ("alertmanager", "oncall", group, 2, "firing", "deduplicated"),
        ]
        ids = [n.id for n in found.notifications]
        assert ids == sorted(ids) and ids[-1] == other.notification_id
        times = [n.received_at for n in found.notifications]
        assert times == sorted(times) and all(t.tzinfo is not None for t in times)
        other_found = store.incidents.detail(second)
        assert other_found is not None
        assert [(n.id, n.outcome) for n in other_found.notifications] == [(other.notification_id, "created")]
        assert not earlier_unlisted(found.notifications)
    finally:
        store.close()


def test_the_notifications_read_are_the_first_and_the_last(database_url: str) -> None:
    store = Store(database_url)
    try:
        total = FIRST_NOTIFICATIONS + LAST_NOTIFICATIONS + 25
        ids = [
            store.intake.ingest("alertmanager", "{}", "g", [_alert()]).notification_id for _ in range(total)
        ]
        found = store.incidents.detail(1)
        assert found is not None
        listed = [n.id for n in found.notifications]
        assert listed == ids[:FIRST_NOTIFICATIONS] + ids[-LAST_NOTIFICATIONS:]
        assert found.notifications_left_out == 25
        assert found.incident.notifications == total
    finally:
        store.close()


def test_a_database_made_before_the_link_table_opens_and_keeps_working(empty_database_url: str) -> None:
    """As the code before this table made it (release 0.1's tables but notification_incidents, and an
    incident with its notification written then)."""
    make_database(empty_database_url, without=["notification_incidents"])
    write_rows(empty_database_url)
    before = 1

    store = Store(empty_database_url)  # creates the missing table, touches nothing else
    try:
        assert "notification_incidents" in inspect(store.engine).get_table_names()
        found = store.incidents.detail(before)
        assert found is not None and found.notifications == [] and found.incident.notifications == 1
        assert earlier_unlisted(found.notifications)
        repeat = AlertInfo(name="LoginFailures", labels={}, starts_at=OLD_T0, fingerprint="fp-old")
        again = store.intake.ingest("alertmanager", "{}", "g", [repeat], receiver="r")
        assert again.deduplicated == [before]
        found = store.incidents.detail(before)
        assert found is not None
        assert [(n.id, n.outcome) for n in found.notifications] == [(again.notification_id, "deduplicated")]
        assert earlier_unlisted(found.notifications)  # the one that opened it is not listed
    finally:
        store.close()


@pytest.mark.usefixtures("empty_database_url")
def test_incident_page_and_api_show_the_notifications_in_time_order(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    env, stop = serve(make_settings(prometheus_url=prom.url), start_workers=False)  # stays queued
    try:
        with httpx.Client(base_url=env.url, timeout=20) as c:
            first = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="t1")).json()
            [incident] = first["incidents_created"]
            c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="t1"))
            gone = c.post(
                "/api/v1/webhook/alertmanager", json=webhook(prom, status="resolved", fingerprint="t1")
            ).json()
            detail = c.get(f"/api/v1/incidents/{incident}").json()
            page = c.get(f"/ui/incidents/{incident}")
    finally:
        stop()
    listed = detail["received_notifications"]
    assert [(n["status"], n["outcome"]) for n in listed] == [
        ("firing", "created"),
        ("firing", "deduplicated"),
        ("resolved", "resolved"),
    ]
    assert listed[0]["id"] == first["notification_id"] and listed[-1]["id"] == gone["notification_id"]
    assert {(n["source"], n["receiver"], n["alerts"]) for n in listed} == {("alertmanager", "alertsleuth", 1)}
    assert listed[0]["group_key"] == '{}:{alertname="HighLoginFailureRate"}'
    assert detail["received_notifications_left_out"] == 0 and detail["notifications"] == 3

    assert page.status_code == 200
    rows = re.findall(
        r'<tr class="event-(\w+)"><td class="nowrap">([^<]*)</td><td[^>]*>(.*?)</td></tr>', page.text
    )
    kinds = [k for k, _, _ in rows]
    texts = [unescape(t) for _, _, t in rows]
    group = 'group key {}:{alertname="HighLoginFailureRate"}'
    assert texts[0] == "alert started firing"  # startsAt precedes the webhook
    assert (
        texts[1]
        == f"notification received: firing (receiver alertsleuth, {group}, 1 alert): opened this incident"
    )
    assert texts[2] == "investigation 1 queued"  # queued by the notification, in its transaction
    assert f"notification received: firing (receiver alertsleuth, {group}, 1 alert): a repeat" in texts
    assert (
        f"notification received: resolved (receiver alertsleuth, {group}, 1 alert): resolved this incident"
        in texts
    )
    assert "alert resolved" in texts
    assert kinds.count("notification") == 3
    assert "came before alertsleuth kept them" not in page.text
    # the group key's quotes are escaped in the page
    assert "{alertname=&#34;HighLoginFailureRate&#34;}" in page.text or "{alertname=&quot;" in page.text


def test_a_closed_ticket_shows_when_and_how_it_was_closed() -> None:
    inc = Incident(starts_at=T0, resolved_at=T0 + timedelta(minutes=20))
    ticket = Ticket(
        sink="ops-redmine",
        key="#12",
        url="https://redmine.example/issues/12",
        created_at=T0 + timedelta(minutes=2),
        closed_at=T0 + timedelta(minutes=21),
        closing_comment="Resolved after 20m 00s at 2026-12-01T10:20:00Z.",
    )
    events = timeline(inc, [], 0, [], [], [ticket])
    assert [(e.at - T0, e.kind, e.text) for e in events] == [
        (timedelta(0), "alert", "alert started firing"),
        (timedelta(minutes=2), "ticket", "ticket #12 opened in ops-redmine"),
        (timedelta(minutes=20), "alert", "alert resolved"),
        (
            timedelta(minutes=21),
            "ticket",
            "ticket #12 closed in ops-redmine: Resolved after 20m 00s at 2026-12-01T10:20:00Z.",
        ),
    ]
    assert events[-1].href == "https://redmine.example/issues/12"
