"""End to end: two real Alertmanagers clustered by gossip, as an HA pair runs them, both sent the same
alerts (as an HA pair of Prometheus sends them) and both pointing at alertsleuth.

What reaches alertsleuth is Alertmanager's business, and varies from run to run:
- the cluster's notification log usually makes the first Alertmanager (in the cluster's order) notify a
  group and the second skip it, but the second sends whatever the gossip has not told it was sent
  within `--cluster.peer-timeout`;
- the alerts' startsAt are minutes old (the scenarios' anomalies), so a group is flushed as soon as its
  first alert is in, not after group_wait: a group may be notified with one alert, then with both;
- the second Alertmanager's flush spans its peer timeout, here as long as the group_interval, so around
  the resolution it usually sends the firing alerts it read before the first one's resolved
  notification, then the resolution: a late firing after the resolution.

Whatever they send, alertsleuth makes one incident per alert, one investigation per incident, and
resolves it once. What each Alertmanager sent is read from its `alertmanager_notifications_total` and
checked against what alertsleuth received.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from exporter import launch as procs
from server.settings import Settings
from tests.conftest import PromEnv, serve
from tests.e2e.test_flow import AM_CONFIG, _wait
from tests.server.test_api import wait_report

pytestmark = pytest.mark.e2e

# Three groups (group_by alertname) of two alerts each: the alert names and the scenario each reads.
GROUPS = {"LoginFailuresBurst": "burst", "LoginFailuresRegion": "region", "LoginFailuresGlobal": "global"}
INSTANCES = ("web-1", "web-2")
PEER_TIMEOUT = 1  # seconds the second Alertmanager waits before it sends what the first has not
CLUSTER_ARGS = (
    "--cluster.gossip-interval=50ms",  # settles in ~2 s (it polls every 10 gossip intervals)
    "--cluster.pushpull-interval=1s",
    "--cluster.settle-timeout=10s",
    f"--cluster.peer-timeout={PEER_TIMEOUT}s",
)
# Both Alertmanagers have decided about a change once neither sent anything for this long: a
# group_interval (1 s) plus the second one's peer timeout, twice over.
QUIET = 2 * (1 + PEER_TIMEOUT)


def _alerts(prom: PromEnv, ends: datetime | None = None) -> list[dict[str, Any]]:
    """What an HA Prometheus pair posts to each Alertmanager: six alerts, firing (or resolved at
    `ends`)."""
    alerts = []
    for name, scenario in GROUPS.items():
        sc = prom.scenarios[scenario]
        for instance in INSTANCES:
            alert: dict[str, Any] = {
                "labels": {"alertname": name, "severity": "critical", "instance": instance},
                "annotations": {"summary": "Login failure ratio above 20%"},
                "startsAt": datetime.fromtimestamp(sc.anomaly_start + 120, UTC).isoformat(),
                "generatorURL": f"http://prometheus:9090/graph?g0.expr={quote(sc.expr())}&g0.tab=1",
            }
            if ends is not None:
                alert["endsAt"] = ends.isoformat()
            alerts.append(alert)
    return alerts


def _start_cluster(stack: ExitStack, tmp_path: Path, webhook_url: str) -> list[procs.Process]:
    """Two Alertmanagers, each given the other as its peer; returned once both see the cluster of two
    settled."""
    gossip = [procs.free_port(), procs.free_port()]
    ams = []
    for i, (mine, other) in enumerate([gossip, gossip[::-1]]):
        am = procs.start_alertmanager(
            tmp_path / f"am-{i}",
            AM_CONFIG.format(url=webhook_url),
            cluster_port=mine,
            extra_args=(f"--cluster.peer=127.0.0.1:{other}", *CLUSTER_ARGS),
        )
        stack.callback(am.stop)
        ams.append(am)

    def settled() -> bool:
        clusters = [httpx.get(f"{am.url}/api/v2/status", timeout=5).json()["cluster"] for am in ams]
        return all(
            c["status"] == "ready"
            and {p["address"] for p in c.get("peers") or []} == {a.extra["cluster"] for a in ams}
            for c in clusters
        )

    _wait(settled, "the two Alertmanagers to form a settled cluster", timeout=20)
    return ams


def _sent(am: procs.Process) -> int:
    """Webhook notifications this Alertmanager sent (deduplicated ones never get this far)."""
    lines = httpx.get(f"{am.url}/metrics", timeout=5).text.splitlines()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in lines
        if line.startswith("alertmanager_notifications_total{") and 'integration="webhook"' in line
    )


def _details(client: httpx.Client) -> list[dict[str, Any]]:
    items = client.get("/api/v1/incidents", params={"limit": 100}).json()["items"]
    return [client.get(f"/api/v1/incidents/{inc['id']}").json() for inc in items]


def _received(details: list[dict[str, Any]]) -> set[int]:
    """The notifications alertsleuth received: one webhook post touches both incidents of its group."""
    return {n["id"] for d in details for n in d["received_notifications"]}


def _quiet(ams: list[procs.Process], client: httpx.Client) -> list[int]:
    """What each Alertmanager has sent, once neither has sent anything for QUIET seconds and alertsleuth
    received all of it."""
    deadline = time.monotonic() + 30
    last: tuple[list[int], int] | None = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        now = ([_sent(am) for am in ams], len(_received(_details(client))))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= QUIET and sum(now[0]) == now[1]:
            return now[0]
        time.sleep(0.2)
    raise AssertionError(f"the Alertmanagers did not go quiet (sent, received: {last})")


def test_clustered_alertmanagers_make_one_investigation_per_incident(
    alertmanager_bin: str, prom: PromEnv, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(prometheus_url=prom.url, auth_token="am-token", workers=3)
    reports = Path(settings.reports_dir)
    with ExitStack() as stack:
        env, stop = serve(settings)
        stack.callback(stop)
        ams = _start_cluster(stack, tmp_path, env.url)
        client = stack.enter_context(
            httpx.Client(base_url=env.url, headers={"Authorization": "Bearer am-token"}, timeout=10)
        )

        for am in ams:  # the same alerts to both, as each Prometheus of a pair sends them
            httpx.post(f"{am.url}/api/v2/alerts", json=_alerts(prom), timeout=5).raise_for_status()
        fingerprints = [{a["fingerprint"] for a in httpx.get(f"{am.url}/api/v2/alerts").json()} for am in ams]
        assert len(fingerprints[0]) == len(GROUPS) * len(INSTANCES) and fingerprints[0] == fingerprints[1]

        _wait(lambda: len(_details(client)) == len(fingerprints[0]), "an incident per alert")
        for inc in _details(client):
            wait_report(client, inc["id"])
        fired = _quiet(ams, client)

        firing = _details(client)
        assert {d["fingerprint"] for d in firing} == fingerprints[0]  # one incident per alert, no more
        for d in firing:
            assert d["status"] == "firing" and d["investigation"] == "done", d
            [job] = d["jobs"]  # one investigation each, however many notifications came
            assert job["state"] == "done" and job["attempts"] == 1, d
            notes = d["received_notifications"]
            assert [n["outcome"] for n in notes] == ["created"] + ["deduplicated"] * (len(notes) - 1), d
            assert len(notes) == d["notifications"] and {n["receiver"] for n in notes} == {"alertsleuth"}
        _check_groups(firing)
        assert sum(fired) >= len(GROUPS), fired  # each group was sent by one of them at least
        burst = next(d for d in firing if d["alertname"] == "LoginFailuresBurst")
        root = client.get(burst["report_url"]).json()["root_causes"][0]
        assert root["labels"] == {"ip_region": "shanghai", "user_type": "admin"}
        assert len(list(reports.glob("*.json"))) == len(firing)  # one report each

        # The pair sees the rule resolve: both Alertmanagers get the alerts ended.
        ended = datetime.now(UTC) - timedelta(seconds=1)
        for am in ams:
            httpx.post(
                f"{am.url}/api/v2/alerts", json=_alerts(prom, ends=ended), timeout=5
            ).raise_for_status()
        for d in firing:
            _wait(
                lambda d=d: client.get(f"/api/v1/incidents/{d['id']}").json()["status"] == "resolved",
                "a resolution",
            )
        sent = _quiet(ams, client)

        resolved = _details(client)
        assert {d["id"] for d in resolved} == {d["id"] for d in firing}
        before = {d["id"]: d for d in firing}
        for d in resolved:
            assert d["status"] == "resolved" and d["resolved_at"], d
            [job] = d["jobs"]  # a resolution, or a late firing after it, queues no investigation
            assert (
                job["id"] == before[d["id"]]["jobs"][0]["id"]
                and d["report_id"] == before[d["id"]]["report_id"]
            )
            outcomes = [n["outcome"] for n in d["received_notifications"]]
            assert outcomes.count("created") == 1 and outcomes.count("resolved") == 1, d
            assert set(outcomes) <= {"created", "deduplicated", "resolved"}, d
        _check_groups(resolved)
        assert sum(sent) - sum(fired) >= len(GROUPS), (fired, sent)  # each group's resolution was sent
        assert len(list(reports.glob("*.json"))) == len(resolved)  # and still one report each


def _check_groups(details: list[dict[str, Any]]) -> None:
    """Every incident was notified, and each notification was of one group (group_by alertname)."""
    groups: dict[int, set[str]] = {}
    for d in details:
        assert d["received_notifications"], d
        for n in d["received_notifications"]:
            groups.setdefault(n["id"], set()).add(d["alertname"])
    assert all(len(names) == 1 for names in groups.values()), groups
