"""Related context of an alert: the pure findings on synthetic series, the collector on a real Prometheus."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from agent.evidence import InvestigationConfig
from agent.investigator import Investigator
from agent.models import AlertInfo
from agent.render import render_markdown
from exporter import launch as procs
from tests.binaries import require_binary
from tools import promql
from tools.errors import PrometheusUnavailable, QueryTooLarge
from tools.format import rfc3339
from tools.prom import Prometheus, Series
from tools.related import (
    Interval,
    QueryRange,
    collect_related,
    firing_alerts,
    job_matcher,
    re2_escape,
    restarts,
    targets_down,
    version_changes,
)

T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z
STEP = 15.0
RNG = QueryRange(T0, T0 + 40 * STEP, STEP)  # 41 evaluations
GRID = [T0 + i * STEP for i in range(41)]


def stamp(ts: float) -> str:
    return rfc3339(ts, seconds=True)


def series(labels: dict[str, str], points: dict[float, float]) -> Series:
    ts = sorted(points)
    return Series(labels, tuple(ts), tuple(points[t] for t in ts))


def steps(first: int, last: int, value: float = 1.0) -> dict[float, float]:
    """Samples on the grid from step `first` to step `last` (inclusive)."""
    return {GRID[i]: value for i in range(first, last + 1)}


def alert(name: str, state: str = "firing", **labels: str) -> dict[str, str]:
    return {"__name__": "ALERTS", "alertname": name, "alertstate": state, **labels}


# ---------------------------------------------------------------------- firing_alerts


def test_firing_alerts_leave_out_the_alert_itself_and_keep_its_siblings() -> None:
    own = {"alertname": "HighLatency", "job": "api", "instance": "a:9100", "severity": "critical"}
    found = firing_alerts(
        [
            series(alert("HighLatency", job="api", instance="a:9100", severity="critical"), steps(10, 40)),
            series(alert("HighLatency", job="api", instance="b:9100", severity="critical"), steps(20, 40)),
        ],
        own,
        RNG,
    )
    assert [(a.alertname, a.labels["instance"]) for a in found] == [("HighLatency", "b:9100")]
    assert found[0].intervals == (Interval(GRID[20], GRID[40], False, True),)
    assert found[0].summary == (
        "HighLatency firing since 2024-01-01T00:05:00Z (job=api instance=b:9100 severity=critical)"
    )


def test_own_alert_is_recognised_with_labels_only_one_side_has() -> None:
    # Alertmanager adds external labels the ALERTS series lacks; a caller may pass fewer labels.
    with_external = {"alertname": "X", "instance": "a", "cluster": "eu-1"}
    only_name = {"alertname": "X"}
    s = [series(alert("X", instance="a", severity="page"), steps(0, 40))]
    assert firing_alerts(s, with_external, RNG) == []
    assert firing_alerts(s, only_name, RNG) == []
    assert len(firing_alerts(s, {"alertname": "Y", "instance": "a"}, RNG)) == 1
    assert len(firing_alerts(s, {"instance": "a"}, RNG)) == 1  # without alertname nothing is left out


def test_firing_alerts_intervals_resolved_refired_and_cut_by_the_range() -> None:
    found = firing_alerts(
        [
            series(alert("Flapping"), {**steps(5, 8), **steps(20, 40)}),
            series(alert("Old", severity="warning"), steps(0, 12)),
            series(alert("Quiet", state="pending"), steps(0, 40)),
        ],
        {"alertname": "HighLatency"},
        RNG,
    )
    assert [a.alertname for a in found] == ["Old", "Flapping"]
    old, flapping = found
    assert old.intervals == (Interval(GRID[0], GRID[12], True, False),)
    assert old.summary == (
        "Old firing from before 2024-01-01T00:00:00Z to 2024-01-01T00:03:00Z (severity=warning)"
    )
    assert flapping.intervals == (
        Interval(GRID[5], GRID[8], False, False),
        Interval(GRID[20], GRID[40], False, True),
    )
    assert flapping.summary == (
        "Flapping firing 2 times from 2024-01-01T00:01:15Z to 2024-01-01T00:10:00Z, still firing at the end"
    )


def test_untrusted_label_values_stay_on_one_line() -> None:
    found = firing_alerts([series(alert("Bad\nName", note='a "b"\nc'), steps(0, 1))], {}, RNG)
    assert "\n" not in found[0].summary
    assert found[0].summary.startswith('"Bad\\nName" firing from before')
    assert 'note="a \\"b\\"\\nc"' in found[0].summary


# ---------------------------------------------------------------------- targets_down


def test_target_down_then_back_and_target_still_down() -> None:
    back = {**steps(0, 9), **steps(10, 14, 0.0), **steps(15, 40)}
    found = targets_down(
        [
            series({"__name__": "up", "job": "api", "instance": "10.0.0.3:9100"}, back),
            series({"__name__": "up", "job": "api", "instance": "10.0.0.4:9100"}, steps(0, 40)),
            series({"__name__": "up", "job": "db", "instance": "10.0.0.9:9187"}, steps(30, 40, 0.0)),
        ],
        RNG,
    )
    assert [(d.job, d.instance) for d in found] == [("api", "10.0.0.3:9100"), ("db", "10.0.0.9:9187")]
    assert found[0].intervals == (Interval(GRID[10], GRID[14], False, False),)
    assert found[0].summary == (
        "up == 0 for job=api instance=10.0.0.3:9100 from 2024-01-01T00:02:30Z to 2024-01-01T00:03:30Z"
    )
    assert found[1].summary == "up == 0 for job=db instance=10.0.0.9:9187 since 2024-01-01T00:07:30Z"


def test_missing_samples_split_a_down_run() -> None:
    gap = {**steps(0, 3, 0.0), **steps(10, 12, 0.0)}  # no samples between steps 4 and 9
    [down] = targets_down([series({"job": "api", "instance": "x"}, gap)], RNG)
    assert down.intervals == (
        Interval(GRID[0], GRID[3], True, False),
        Interval(GRID[10], GRID[12], False, False),
    )
    assert down.summary == (
        "up == 0 for job=api instance=x 2 times from before 2024-01-01T00:00:00Z to 2024-01-01T00:03:00Z"
    )


# ---------------------------------------------------------------------- restarts


def test_restart_detected_with_old_and_new_start_time() -> None:
    before, after = T0 - 3000.0, GRID[20] - 4.0
    points = {t: (before if t < GRID[20] else after) for t in GRID}
    labels = {"__name__": "process_start_time_seconds", "job": "api", "instance": "10.0.0.1:9100"}
    [r] = restarts([series(labels, points)])
    assert (r.job, r.instance, r.previous_start, r.start, r.seen_at) == (
        "api",
        "10.0.0.1:9100",
        before,
        after,
        GRID[20],
    )
    assert r.summary == (
        "process restarted: job=api instance=10.0.0.1:9100 start time 2024-01-01T00:04:56Z "
        "(was 2023-12-31T23:10:00Z), seen at 2024-01-01T00:05:00Z"
    )


def test_no_restart_when_start_time_is_constant_or_jitters_under_a_second() -> None:
    constant = series({"job": "api", "instance": "a"}, dict.fromkeys(GRID, T0 - 100))
    # now - uptime: noise around the true start, never a second away from it
    jitter = series(
        {"job": "api", "instance": "b"}, {t: T0 - 100 + 0.45 * (i % 3 - 1) for i, t in enumerate(GRID)}
    )
    assert restarts([constant, jitter]) == []


def test_every_restart_of_a_crash_loop_and_nan_skipped() -> None:
    points = {t: T0 + (i // 10) * 150.0 for i, t in enumerate(GRID)}  # a new start every 10 steps
    points[GRID[5]] = float("nan")
    found = restarts([series({"job": "api", "instance": "a"}, points)])
    assert [r.seen_at for r in found] == [GRID[10], GRID[20], GRID[30], GRID[40]]
    assert all(r.start - r.previous_start == 150.0 for r in found)


# ---------------------------------------------------------------------- version_changes


def build(version: str, instance: str = "10.0.0.1:9100", **extra: str) -> dict[str, str]:
    return {"__name__": "app_build_info", "job": "api", "instance": instance, "version": version, **extra}


def test_version_change_detected_with_and_without_lookback_overlap() -> None:
    for overlap in (0, 20):  # a backfilled series without staleness marker lingers 5 minutes
        found = version_changes(
            [
                series(build("1.4.2", revision="abc"), steps(0, 19 + overlap)),
                series(build("1.5.0", revision="def"), steps(20, 40)),
            ]
        )
        assert len(found) == 1
        [c] = found
        assert (c.metric, c.job, c.instance, c.at) == ("app_build_info", "api", "10.0.0.1:9100", GRID[20])
        assert c.before == {"version": "1.4.2", "revision": "abc"}
        assert c.after == {"version": "1.5.0", "revision": "def"}
        assert c.summary == (
            "version changed: job=api instance=10.0.0.1:9100 version 1.4.2 -> 1.5.0, revision abc -> def "
            "at 2024-01-01T00:05:00Z (app_build_info)"
        )


def test_any_build_label_counts_and_a_rollback_is_two_changes() -> None:
    v1 = {"__name__": "go_build_info", "job": "api", "instance": "a", "goversion": "go1.21.0"}
    v2 = {**v1, "goversion": "go1.22.1", "branch": "main"}
    found = version_changes([series(v1, {**steps(0, 9), **steps(30, 40)}), series(v2, steps(10, 29))])
    assert [(c.at, c.before["goversion"], c.after["goversion"]) for c in found] == [
        (GRID[10], "go1.21.0", "go1.22.1"),
        (GRID[30], "go1.22.1", "go1.21.0"),
    ]
    assert found[0].changes == [("branch", None, "main"), ("goversion", "go1.21.0", "go1.22.1")]
    assert "branch (none) -> main, goversion go1.21.0 -> go1.22.1" in found[0].summary


def test_no_version_change_for_steady_builds_or_builds_side_by_side() -> None:
    steady = series(build("1.4.2"), steps(0, 40))
    other_instance = series(build("1.5.0", instance="10.0.0.2:9100"), steps(20, 40))  # a new instance
    side_by_side = [
        series(build("2.0", instance="c"), steps(0, 40)),
        series(build("2.1", instance="c"), steps(5, 40)),
    ]
    assert version_changes([steady, other_instance, *side_by_side]) == []


def test_nothing_happened_means_no_findings() -> None:
    quiet_up = series({"__name__": "up", "job": "api", "instance": "a"}, steps(0, 40))
    assert firing_alerts([], {"alertname": "X"}, RNG) == []
    assert targets_down([quiet_up], RNG) == []
    assert restarts([]) == []
    assert version_changes([]) == []


# ---------------------------------------------------------------------- matchers


WEIRD = 'wé"ird\\job.x|y'  # quote, backslash, regex metacharacters, non-ASCII


def test_job_matcher_escapes_for_regex_and_string() -> None:
    assert job_matcher(["api"]).promql() == 'job="api"'
    assert job_matcher(["b", "a", "b"]).promql() == 'job=~"a|b"'
    assert re2_escape(WEIRD) == 'wé"ird\\\\job\\.x\\|y'
    m = job_matcher(["api", WEIRD])
    # The printed selector parses back (a real PromQL parser) to the same regex ...
    parsed = promql.parse(f"up{{{m.promql()}}}")
    assert isinstance(parsed, promql.Selector)
    assert parsed.matchers == (m,)
    # ... which matches both jobs exactly and nothing that an unescaped pattern would.
    for job in ("api", WEIRD):
        assert re.fullmatch(m.value, job)
    for decoy in ("y", 'wé"ird\\jobZx|y', "apix"):
        assert not re.fullmatch(m.value, decoy)
    with pytest.raises(ValueError):
        job_matcher([])


# ---------------------------------------------------------------------- against a real Prometheus


@dataclass
class RelatedEnv:
    url: str
    now: float  # end of the data, aligned to STEP
    start: float  # the incident start the tests query with


def _om_labels(labels: dict[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{esc(v)}"' for k, v in labels.items())


def _family(name: str, rows: list[tuple[dict[str, str], dict[float, float]]]) -> str:
    """One gauge family in OpenMetrics, a timestamp on every sample."""
    lines = [f"# TYPE {name} gauge"]
    for labels, points in rows:
        for t in sorted(points):
            lines.append(f"{name}{{{_om_labels(labels)}}} {points[t]!r} {t:.3f}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def related_prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelatedEnv]:
    """A Prometheus backfilled with 95 minutes of alerts, up, start times and build info, up to ~now."""
    require_binary("prometheus")
    require_binary("promtool")
    work = tmp_path_factory.mktemp("related")
    now = time.time() // STEP * STEP

    def at(minutes_ago: float) -> float:
        return now - minutes_ago * 60

    def span(since: float, until: float, value: float | None = 1.0) -> dict[float, float]:
        """Samples every STEP from `since` to `until` minutes ago (both included)."""
        out, t = {}, at(since)
        while t <= at(until):
            out[t] = value if value is not None else t
            t += STEP
        return out

    def fam(**labels: str) -> dict[str, str]:
        return labels

    text = (
        _family(
            "ALERTS",
            [
                (
                    fam(
                        alertname="HighLatency",
                        alertstate="firing",
                        job="api",
                        instance="10.0.0.1:9100",
                        severity="critical",
                    ),
                    span(30, 0),
                ),
                (
                    fam(
                        alertname="HighLatency",
                        alertstate="firing",
                        job="api",
                        instance="10.0.0.2:9100",
                        severity="critical",
                    ),
                    span(20, 0),
                ),
                (
                    fam(alertname="DiskFull", alertstate="firing", job="node", severity="warning"),
                    span(70, 50),
                ),
                (fam(alertname="Watchdog", alertstate="firing", severity="none"), span(95, 0)),
                (fam(alertname="SlowDisk", alertstate="pending", severity="warning"), span(60, 0)),
            ],
        )
        + _family(
            "up",
            [
                (fam(job="api", instance="10.0.0.1:9100"), span(95, 0)),
                (fam(job="api", instance="10.0.0.3:9100"), {**span(95, 0), **span(40, 35, 0.0)}),
                (fam(job=WEIRD, instance="w1"), {**span(95, 10.25), **span(10, 0, 0.0)}),
                (fam(job="y", instance="y1"), span(95, 0, 0.0)),  # matches only if `|` is not escaped
                (fam(job="other", instance="o1"), span(50, 0, 0.0)),
            ],
        )
        + _family(
            "process_start_time_seconds",
            [
                (
                    fam(job="api", instance="10.0.0.1:9100"),
                    {**span(95, 45.25, at(200)), **span(45, 0, at(45) - 4)},
                ),
                (
                    fam(job="api", instance="10.0.0.3:9100"),
                    {t: at(300) + (0.4 if int(t / STEP) % 2 else 0.0) for t in span(95, 0)},
                ),
                (fam(job=WEIRD, instance="w1"), span(95, 0, at(500))),
                (fam(job="y", instance="y1"), {**span(95, 30.25, at(400)), **span(30, 0, at(30))}),
            ],
        )
        + _family(
            "app_build_info",
            [
                (fam(job="api", instance="10.0.0.1:9100", version="1.4.2", revision="abc"), span(95, 45.25)),
                (fam(job="api", instance="10.0.0.1:9100", version="1.5.0", revision="def"), span(45, 0)),
                (fam(job="api", instance="10.0.0.3:9100", version="1.4.2", revision="abc"), span(95, 0)),
                (fam(job="y", instance="y1", version="0.1"), span(95, 30.25)),
                (fam(job="y", instance="y1", version="0.2"), span(30, 0)),
            ],
        )
        + _family(
            "weird_build_info",
            [
                (fam(job=WEIRD, instance="w1", goversion="go1.21.0"), span(95, 20.25)),
                (fam(job=WEIRD, instance="w1", goversion="go1.22.1"), span(20, 0)),
            ],
        )
        + "# EOF\n"
    )
    procs.backfill_openmetrics(text, work / "data", work)
    process = procs.start_prometheus(work, "global:\n  scrape_interval: 15s\n", data_dir=work / "data")
    yield RelatedEnv(process.url, now, now - 30 * 60)
    process.stop()


OWN = {"alertname": "HighLatency", "job": "api", "instance": "10.0.0.1:9100", "severity": "critical"}


def test_collect_related_finds_exactly_what_was_planted(related_prom: RelatedEnv) -> None:
    env = related_prom
    prom = Prometheus(env.url)
    start, end = datetime.fromtimestamp(env.start, UTC), datetime.fromtimestamp(env.now, UTC)
    got = collect_related(prom, jobs=["api", WEIRD], alert_labels=OWN, start=start, end=end, step=STEP)

    def ago(minutes: float) -> float:
        return env.now - minutes * 60

    # every query kept for the evidence, all four run at once
    assert prom.log.queries == 4
    assert [q.promql for q in got.queries] == [
        'ALERTS{alertstate="firing"}',
        'up{job=~"api|wé\\"ird\\\\\\\\job\\\\.x\\\\|y"}',
        'process_start_time_seconds{job=~"api|wé\\"ird\\\\\\\\job\\\\.x\\\\|y"}',
        '{__name__=~".+_build_info",job=~"api|wé\\"ird\\\\\\\\job\\\\.x\\\\|y"}',
    ]
    for q in got.queries:
        assert (q.start, q.end, q.step, q.error) == (start - timedelta(hours=1), end, STEP, None)

    # other alerts: not the alert itself, not pending ones
    assert [(a.alertname, a.labels.get("instance")) for a in got.alerts.findings] == [
        ("Watchdog", None),
        ("DiskFull", None),
        ("HighLatency", "10.0.0.2:9100"),
    ]
    watchdog, disk, latency = (a.intervals for a in got.alerts.findings)
    assert watchdog == (Interval(ago(90), env.now, True, True),)
    assert len(disk) == 1 and disk[0].start == ago(70) and not disk[0].open_end
    assert ago(50) <= disk[0].end <= ago(45)  # no staleness marker in backfilled data: up to 5m lookback
    assert latency == (Interval(ago(20), env.now, False, True),)
    assert got.alerts.findings[2].summary == (
        f"HighLatency firing since {stamp(ago(20))} (job=api instance=10.0.0.2:9100 severity=critical)"
    )

    # targets down: the api target that came back, the weird job still down; not jobs y or other
    assert [(d.job, d.instance, d.intervals) for d in got.targets_down.findings] == [
        ("api", "10.0.0.3:9100", (Interval(ago(40), ago(35), False, False),)),
        (WEIRD, "w1", (Interval(ago(10), env.now, False, True),)),
    ]
    assert got.targets_down.findings[1].summary == (
        f'up == 0 for job="wé\\"ird\\\\job.x|y" instance=w1 since {stamp(ago(10))}'
    )

    # restarts: one; the jittering start time of 10.0.0.3 is none
    assert [(r.job, r.instance, r.previous_start, r.start, r.seen_at) for r in got.restarts.findings] == [
        ("api", "10.0.0.1:9100", ago(200), ago(45) - 4, ago(45))
    ]

    # deploys: api 1.4.2 -> 1.5.0 and the weird job's Go version
    assert [(c.job, c.instance, c.before, c.after, c.at) for c in got.deploys.findings] == [
        (
            "api",
            "10.0.0.1:9100",
            {"version": "1.4.2", "revision": "abc"},
            {"version": "1.5.0", "revision": "def"},
            ago(45),
        ),
        (WEIRD, "w1", {"goversion": "go1.21.0"}, {"goversion": "go1.22.1"}, ago(20)),
    ]
    assert got.deploys.findings[0].summary == (
        f"version changed: job=api instance=10.0.0.1:9100 version 1.4.2 -> 1.5.0, revision abc -> def "
        f"at {stamp(ago(45))} (app_build_info)"
    )
    assert all(not s.truncated for s in got.sections)


def test_collect_related_one_job_caps_findings_and_says_so(related_prom: RelatedEnv) -> None:
    env = related_prom
    start, end = datetime.fromtimestamp(env.start, UTC), datetime.fromtimestamp(env.now, UTC)
    got = collect_related(
        Prometheus(env.url), jobs=[WEIRD], alert_labels=OWN, start=start, end=end, step=STEP, max_findings=1
    )
    assert got.targets_down.query is not None
    assert got.targets_down.query.promql == 'up{job="wé\\"ird\\\\job.x|y"}'
    assert [d.instance for d in got.targets_down.findings] == ["w1"]
    assert [c.after for c in got.deploys.findings] == [{"goversion": "go1.22.1"}]
    assert got.restarts.findings == () and got.restarts.lines == [
        f"no restarts from {stamp(env.start - 3600)} to {stamp(env.now)}"
    ]
    assert got.alerts.total == 3 and [a.alertname for a in got.alerts.findings] == ["Watchdog"]
    assert got.alerts.lines[-1] == "2 more other firing alerts left out (at most 1 shown)"


def test_collect_related_without_jobs_only_asks_for_alerts(related_prom: RelatedEnv) -> None:
    env = related_prom
    prom = Prometheus(env.url)
    start, end = datetime.fromtimestamp(env.start, UTC), datetime.fromtimestamp(env.now, UTC)
    got = collect_related(prom, jobs=[], alert_labels=OWN, start=start, end=end, step=STEP)
    assert prom.log.queries == 1 and len(got.queries) == 1
    assert len(got.alerts.findings) == 3
    assert got.deploys.query is None and got.deploys.lines == [
        "version changes not queried: no job to look at"
    ]


def test_a_failed_query_is_recorded_and_the_others_go_on(related_prom: RelatedEnv) -> None:
    env = related_prom
    # At most 3 series per query: ALERTS (4 firing) and the build info (5) are refused, up and
    # process_start_time_seconds (3 each) answer.
    prom = Prometheus(env.url, max_series=3)
    start, end = datetime.fromtimestamp(env.start, UTC), datetime.fromtimestamp(env.now, UTC)
    got = collect_related(prom, jobs=["api", WEIRD], alert_labels=OWN, start=start, end=end, step=STEP)
    assert got.alerts.query is not None and got.deploys.query is not None
    assert isinstance(got.alerts.query.exception, QueryTooLarge)
    assert isinstance(got.deploys.query.exception, QueryTooLarge)
    assert got.alerts.findings == () and got.alerts.lines[0].startswith(
        "other firing alerts: query failed: 4 series"
    )
    assert [d.instance for d in got.targets_down.findings] == ["10.0.0.3:9100", "w1"]
    assert len(got.restarts.findings) == 1


def test_an_unreachable_prometheus_propagates() -> None:
    prom = Prometheus(f"http://127.0.0.1:{procs.free_port()}", timeout=2, retries=0)
    now = datetime.now(UTC)
    with pytest.raises(PrometheusUnavailable, match="unreachable"):
        collect_related(
            prom, jobs=["api"], alert_labels=OWN, start=now - timedelta(minutes=5), end=now, step=15
        )


def test_investigation_reports_the_related_context(related_prom: RelatedEnv) -> None:
    """Through the webhook's code path: an alert on the api's targets gets the context as cited evidence."""
    env = related_prom
    expr = 'sum(up{job="api"}) < 2'
    alert = AlertInfo(
        name="ApiTargetsDown",
        labels={"alertname": "ApiTargetsDown", "job": "api"},
        starts_at=datetime.fromtimestamp(env.now - 38 * 60, UTC),
        generator_url=f"http://prometheus/graph?g0.expr={quote(expr)}",
    )
    clock = datetime.fromtimestamp(env.now - 30 * 60, UTC)
    investigator = Investigator(
        Prometheus(env.url), InvestigationConfig(baseline_seconds=1800), clock=lambda: clock
    )
    report = investigator.investigate(alert)

    related = {e.title: e for e in report.evidence if e.kind == "related"}
    assert sorted(related) == sorted(
        ["Other alerts firing", "Scrape targets down", "Process restarts", "Version changes (deploys)"]
    )
    assert related["Scrape targets down"].promql == 'up{job="api"}'
    ev_down = related["Scrape targets down"].id
    assert any(
        line.startswith("up == 0 for job=api instance=10.0.0.3:9100") and line.endswith(f"[{ev_down}]")
        for line in report.related
    )
    ev_deploy = related["Version changes (deploys)"].id
    assert any("version 1.4.2 -> 1.5.0" in line and f"[{ev_deploy}]" in line for line in report.related)
    # the weird job is not involved in this alert
    assert not any("w1" in line for line in report.related)
    markdown = render_markdown(report)
    assert "## Related context" in markdown and "10.0.0.3:9100" in markdown
