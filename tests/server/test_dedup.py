"""Deduplication of Prometheus HA replicas posting directly to /api/v2/alerts, against the live app.

Two replicas of one Prometheus evaluate the same rule a little apart, so they post the same alert with
startsAt a second or so apart, and with their external `replica` label differing. That is one incident
and one investigation; a resolution from either replica resolves it; a new firing after the resolution
is a new incident. On both backends (SQLite, PostgreSQL).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from server.settings import Settings
from tests.conftest import PromEnv, ServerEnv, serve
from tests.server.test_api import wait_report, webhook


def _ts(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _posted(
    prom: PromEnv, replica: str, starts: datetime, ends: datetime | None = None, **labels: str
) -> list[dict[str, Any]]:
    """What one replica posts: the rule's labels, its external labels, FiredAt and ValidUntil (or
    ResolvedAt once resolved)."""
    alert = webhook(prom)["alerts"][0]
    return [
        {
            "labels": {**alert["labels"], "cluster": "eu1", "replica": replica, **labels},
            "annotations": alert["annotations"],
            "startsAt": _ts(starts),
            "endsAt": _ts(ends or datetime.now(UTC) + timedelta(minutes=4)),
            "generatorURL": alert["generatorURL"],
        }
    ]


def _incidents(c: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = c.get("/api/v1/incidents", params={"limit": 100}).json()["items"]
    return items


@pytest.mark.usefixtures("database_url")
def test_ha_replicas_make_one_incident_resolved_by_either(server: ServerEnv, prom: PromEnv) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        a = c.post("/api/v2/alerts", json=_posted(prom, "a", t0))
        assert a.status_code == 202, a.text
        [incident] = a.json()["incidents_created"]
        b = c.post("/api/v2/alerts", json=_posted(prom, "b", t0 + timedelta(seconds=1))).json()
        assert b["incidents_created"] == [] and b["deduplicated"] == [incident]
        assert len(_incidents(c)) == 1
        inc = wait_report(c, incident)
        assert len(inc["jobs"]) == 1
        assert "replica" not in inc["labels"] and inc["labels"]["cluster"] == "eu1"

        # Replica b sees the resolution first; replica a's resolution and its last firing are repeats.
        resolved_at = t0 + timedelta(seconds=40)
        gone_b = _posted(prom, "b", t0 + timedelta(seconds=1), ends=resolved_at)
        assert c.post("/api/v2/alerts", json=gone_b).json()["resolved"] == [incident]
        late_a = c.post("/api/v2/alerts", json=_posted(prom, "a", t0)).json()
        assert late_a["incidents_created"] == [] and late_a["deduplicated"] == [incident]
        gone_a = _posted(prom, "a", t0, ends=resolved_at + timedelta(seconds=1))
        again = c.post("/api/v2/alerts", json=gone_a).json()
        assert again["resolved"] == [] and again["deduplicated"] == [incident]
        inc = c.get(f"/api/v1/incidents/{incident}").json()
        assert inc["status"] == "resolved" and len(inc["jobs"]) == 1

        # It fires again after the resolution, well within the window: a new incident.
        refired = t0 + timedelta(seconds=55)
        new = c.post("/api/v2/alerts", json=_posted(prom, "a", refired)).json()
        assert len(new["incidents_created"]) == 1 and new["incidents_created"] != [incident]
        other = c.post("/api/v2/alerts", json=_posted(prom, "b", refired + timedelta(seconds=1))).json()
        assert other["incidents_created"] == [] and other["deduplicated"] == new["incidents_created"]
        assert len(_incidents(c)) == 2


@pytest.mark.usefixtures("database_url")
def test_other_labels_and_far_start_times_stay_apart(server: ServerEnv, prom: PromEnv) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        first = c.post("/api/v2/alerts", json=_posted(prom, "a", t0, instance="x")).json()
        other = c.post("/api/v2/alerts", json=_posted(prom, "b", t0, instance="y")).json()
        assert len(first["incidents_created"]) == 1 and len(other["incidents_created"]) == 1
        late = t0 + timedelta(minutes=30)  # beyond ALERTSLEUTH_DEDUP_WINDOW_SECONDS: another firing
        far = c.post("/api/v2/alerts", json=_posted(prom, "a", late, instance="x")).json()
        assert len(far["incidents_created"]) == 1
        assert len(_incidents(c)) == 3


@pytest.mark.usefixtures("database_url")
def test_replicas_racing_make_one_incident(make_settings: Callable[..., Settings]) -> None:
    env, stop = serve(make_settings(), start_workers=False)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    try:
        for round_ in range(5):
            barrier = threading.Barrier(2)
            answers: list[dict[str, Any]] = []

            def post(
                replica: str,
                offset: int,
                n: int = round_,
                barrier: threading.Barrier = barrier,
                answers: list[dict[str, Any]] = answers,
            ) -> None:
                body = [
                    {
                        "labels": {"alertname": f"Race{n}", "replica": replica},
                        "startsAt": _ts(t0 + timedelta(seconds=offset)),
                    }
                ]
                with httpx.Client(base_url=env.url, timeout=10) as c:
                    barrier.wait()
                    answers.append(c.post("/api/v2/alerts", json=body).json())

            threads = [threading.Thread(target=post, args=(r, i)) for i, r in enumerate("ab")]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            created = [i for a in answers for i in a["incidents_created"]]
            deduplicated = [i for a in answers for i in a["deduplicated"]]
            assert len(created) == 1 and deduplicated == created, answers
    finally:
        stop()


def test_ignored_labels_setting(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert make_settings().dedup_ignore_labels == ["replica", "prometheus_replica", "__replica__"]
    monkeypatch.setenv("ALERTSLEUTH_DEDUP_IGNORE_LABELS", " replica , ha_pair,")
    assert Settings().dedup_ignore_labels == ["replica", "ha_pair"]
    monkeypatch.setenv("ALERTSLEUTH_DEDUP_IGNORE_LABELS", "")
    assert Settings().dedup_ignore_labels == []
