"""The investigation end to end against a real, backfilled Prometheus (no server)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from agent.evidence import InvestigationConfig
from agent.investigator import Investigator
from agent.models import AlertInfo, Report
from exporter.launch import free_port
from tests.conftest import PromEnv
from tools.prom import Prometheus


def fire(
    prom: PromEnv, scenario: str, *, with_url: bool = True, name: str = "HighLoginFailureRate"
) -> AlertInfo:
    sc = prom.scenarios[scenario]
    url = f"http://prometheus:9090/graph?g0.expr={quote(sc.expr())}&g0.tab=1" if with_url else None
    # Fired two minutes (the rule's `for`) after the anomaly began.
    return AlertInfo(
        name=name,
        labels={"alertname": name, "severity": "critical"},
        starts_at=datetime.fromtimestamp(sc.anomaly_start + 120, UTC),
        generator_url=url,
        fingerprint="abc",
    )


def run(prom: PromEnv, alert: AlertInfo, **cfg: object) -> Report:
    config = InvestigationConfig(default_for_seconds=120, **cfg)  # type: ignore[arg-type]
    inv = Investigator(Prometheus(prom.url), config, clock=lambda: datetime.fromtimestamp(prom.now, UTC))
    return inv.investigate(alert)


def test_burst_in_one_region_and_user_type_is_localized(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "burst"))
    assert report.localized and not report.degraded
    top = report.root_causes[0]
    assert top.labels == {"ip_region": "shanghai", "user_type": "admin"}
    assert top.score > 0.8
    ids = {e.id for e in report.evidence}
    assert set(top.evidence_ids) <= ids
    # Every query is recorded: signal, one breakdown per label, numerator, denominator, the cause itself.
    kinds = [e.kind for e in report.evidence]
    assert kinds.count("signal") == 1 and kinds.count("breakdown") == 2
    assert report.timings["queries"] >= 6
    by_label = {e.title: e for e in report.evidence if e.kind == "breakdown"}
    region = by_label["Alert signal by ip_region"]
    assert "by (ip_region)" in region.promql
    assert region.stats[0].labels == {"ip_region": "shanghai"}
    assert region.stats[0].incident > 10 * region.stats[0].baseline  # type: ignore[operator]
    focused = next(e for e in report.evidence if e.id == top.evidence_ids[0])
    assert 'ip_region="shanghai"' in focused.promql and 'user_type="admin"' in focused.promql
    assert "shanghai" in report.summary and "admin" in report.summary
    assert report.windows is not None
    assert report.windows.incident.start == datetime.fromtimestamp(prom.scenarios["burst"].anomaly_start, UTC)


def test_whole_region_fault_names_the_region_only(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "region"))
    assert report.root_causes[0].labels == {"ip_region": "guangzhou"}


def test_global_change_is_not_localized(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "global"))
    assert report.localized is False
    assert report.root_causes == []
    assert "spread" in report.summary


def test_expression_from_rules_api_when_generator_url_is_missing(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "burst", with_url=False, name="BurstFailureRatio"))
    assert (
        report.expression is not None and 'scenario="burst"' in report.expression
    )  # as Prometheus prints it
    assert report.root_causes[0].labels == {"ip_region": "shanghai", "user_type": "admin"}


def test_no_expression_gives_a_degraded_report(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "burst", with_url=False, name="NoSuchRule"))
    assert report.degraded and report.expression is None
    assert "could not be found" in report.summary
    assert report.evidence == []


def test_prometheus_down_gives_a_degraded_report() -> None:
    alert = AlertInfo(
        name="X",
        labels={"alertname": "X"},
        starts_at=datetime.now(UTC) - timedelta(minutes=5),
        generator_url="http://p/graph?g0.expr=sum(x)%20%3E%201",
    )
    inv = Investigator(
        Prometheus(f"http://127.0.0.1:{free_port()}", timeout=2, retries=0), InvestigationConfig()
    )
    findings = inv.collect(alert)
    assert findings.unavailable and findings.degraded
    report = inv.write(findings)
    assert report.degraded and "Prometheus could not be reached" in report.summary


def test_chinese_report(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "burst"), language="zh")
    assert report.language == "zh"
    assert "变化集中在" in report.summary
    assert "shanghai" in report.summary


def test_grouped_rule_is_restricted_to_the_alerts_group(prom: PromEnv) -> None:
    """`sum by (ip_region) (...) > x` fires per region: the investigation stays inside that region."""
    sel = 'scenario="burst"'
    expr = (
        f'sum by (ip_region) (rate(user_login_total{{{sel},login_status="failed"}}[5m])) / '
        f"sum by (ip_region) (rate(user_login_total{{{sel}}}[5m])) > 0.2"
    )
    alert = fire(prom, "burst").model_copy(
        update={
            "labels": {"alertname": "RegionFailures", "ip_region": "shanghai"},
            "generator_url": f"http://p/graph?g0.expr={quote(expr)}",
        }
    )
    report = run(prom, alert)
    signal = report.evidence[0]
    assert signal.promql.count('ip_region="shanghai"') == 2
    assert [s.labels for s in signal.stats] == [{"ip_region": "shanghai"}]
    assert report.root_causes[0].labels == {"user_type": "admin"}
    assert any("restricted to the alert's group" in n for n in report.notes)


def test_concurrent_investigations_count_their_own_queries(prom: PromEnv) -> None:
    """Two workers investigating at once through one Prometheus adapter: each report counts the
    queries of its own investigation only, the same number as when it runs alone."""
    shared = Prometheus(prom.url)
    config = InvestigationConfig(default_for_seconds=120)
    inv = Investigator(shared, config, clock=lambda: datetime.fromtimestamp(prom.now, UTC))
    alerts = [fire(prom, "burst"), fire(prom, "global")]
    alone = [inv.investigate(a).timings["queries"] for a in alerts]
    assert alone[0] != alone[1]  # the two count differently, so a mix-up shows

    for _ in range(3):
        start = threading.Barrier(len(alerts))

        def investigate(alert: AlertInfo, start: threading.Barrier = start) -> float:
            start.wait()
            return inv.investigate(alert).timings["queries"]

        with ThreadPoolExecutor(max_workers=len(alerts)) as pool:
            together = list(pool.map(investigate, alerts))
        assert together == alone


def test_the_evidence_keeps_the_series_its_charts_draw(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "burst"))
    assert report.threshold is not None and report.comparison == ">"
    by_id = {e.id: e for e in report.evidence}
    signal = next(e for e in report.evidence if e.kind == "signal")
    assert signal.series and [s["role"] for s in signal.series] == ["signal"]
    assert 10 < len(signal.series[0]["points"]) <= 300
    region = next(e for e in report.evidence if e.title == "Alert signal by ip_region")
    assert region.series and region.series[0]["labels"] == {"ip_region": "shanghai"}
    assert {s["role"] for s in region.series} == {"series"}  # a ratio: its values do not add up to a rest
    cause = by_id[report.root_causes[0].evidence_ids[0]]
    assert cause.series and [s["role"] for s in cause.series] == ["cause", "rest"]
    inside, outside = (dict((t, v) for t, v in s["points"]) for s in cause.series)
    last = max(inside)
    assert inside[last] > 0.5 > 0.2 > outside[last]  # the burst is in the cause, not in the rest
    leaves = [e for e in report.evidence if e.title.startswith(("Numerator by", "Denominator by"))]
    assert len(leaves) == 2 and all(e.series is None for e in leaves)  # no chart: too many series


def test_each_query_links_to_its_graph(prom: PromEnv) -> None:
    report = run(prom, fire(prom, "burst"))  # the alert's generatorURL names http://prometheus:9090
    assert all(
        e.graph_url and e.graph_url.startswith("http://prometheus:9090/graph?g0.expr=")
        for e in report.evidence
    )
    grafana = run(
        prom, fire(prom, "burst"), grafana_url="https://grafana.example.com", grafana_datasource="p1"
    )
    assert all(
        (e.graph_url or "").startswith("https://grafana.example.com/explore?") for e in grafana.evidence
    )
