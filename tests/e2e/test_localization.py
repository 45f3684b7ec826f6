"""Localization on incidents it was not developed on: synthetic families (exporter/scenarios/synthetic/),
four RS cases (tests/data/riskloc-rs) and a riskloc-synthetic case of 5,760 leaves
(tests/data/riskloc-synthetic); each replayed into a real Prometheus and investigated like an alert."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.investigator import Investigator
from agent.models import Report
from exporter import launch as procs
from exporter.scenarios import riskloc as riskloc_data
from exporter.scenarios import rs as rs_data
from exporter.scenarios.synthetic import Incident, Timeline, alert_for, generate, investigator, replay
from tests.binaries import require_binary
from tools.prom import Prometheus

pytestmark = pytest.mark.e2e

SEED = 1
# One or two incidents of each family; see bench/synthetic.py for what each kind plants.
LOCALIZED = [
    "ratio/1-label#0",
    "ratio/2-labels#0",
    "ratio/2-labels#1",  # a label implied by another (service by route) must not stop the specialisation
    "ratio/3-labels#1",
    "ratio/trap#1",
    "gauge/queue-2#0",
    "gauge/memory-node#0",
    "counter/1-label#1",
    "counter/3-labels#0",
    "labels/ratio-2-odd#0",
    "labels/sum-3#0",
    # issue 13's classes: a numerator-only label, a small segment breaking, other aggregations, drops
    "numerator/1-label#0",
    "numerator/2-labels#0",
    "small-segment/tenant#0",
    "small-segment/layer-2#0",
    "aggregation/max#0",
    "aggregation/min#0",
    "aggregation/avg#0",
    "aggregation/count#0",
    "aggregation/topk#0",
    "drop/traffic#0",
    "drop/success-rate#0",
    "drop/quantile#0",
]
GLOBAL = ["global/multiplicative#0", "global/additive#0"]
KINDS_OF_ERRORS = ["numerator/status#0"]
HISTOGRAM = ["histogram/pod#0", "histogram/route+pod#0"]
# Misses of the current localizer, kept so that a fix shows up as XPASS.
# Known misses are strict xfails: the day localization finds them, these tests fail and the mark must go.
KNOWN_MISSES = {
    "ratio/two-causes#2": "two causes under one parent are reported as the parent",
}


@dataclass
class SyntheticEnv:
    tl: Timeline
    incidents: dict[str, Incident]
    investigator: Investigator

    def investigate(self, kind: str) -> tuple[Incident, Report]:
        incident = self.incidents[kind]
        return incident, self.investigator.investigate(alert_for(incident, self.tl))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyntheticEnv]:
    require_binary("prometheus")
    require_binary("promtool")
    tl = Timeline.ending_at(time.time())
    incidents = generate(SEED, tl, [*LOCALIZED, *GLOBAL, *HISTOGRAM, *KNOWN_MISSES, *KINDS_OF_ERRORS])
    process = replay(incidents, tmp_path_factory.mktemp("synthetic"))
    try:
        yield SyntheticEnv(tl, {i.kind: i for i in incidents}, investigator(Prometheus(process.url), tl))
    finally:
        process.stop()


def _explain(incident: Incident, report: Report) -> str:
    found = [rc.labels for rc in report.root_causes]
    return (
        f"{incident.kind} ({incident.description}): localized={report.localized}, root causes {found}, "
        f"truth {incident.causes}, notes {report.notes}"
    )


def _assert_found(report: Report, causes: list[dict[str, str]], context: str) -> None:
    """Localized, the first root cause a true one, and the root causes exactly the true ones."""
    found = [rc.labels for rc in report.root_causes]
    assert report.localized, context
    assert found[0] in causes, context
    assert {_key(f) for f in found} == {_key(c) for c in causes}, context


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _assert_localized(env: SyntheticEnv, kind: str) -> None:
    incident, report = env.investigate(kind)
    _assert_found(report, incident.causes, _explain(incident, report))


@pytest.mark.parametrize("kind", LOCALIZED)
def test_localizes_the_planted_element(synthetic: SyntheticEnv, kind: str) -> None:
    _assert_localized(synthetic, kind)


@pytest.mark.parametrize("kind", KINDS_OF_ERRORS)
def test_the_numerator_only_label_says_which_kind_of_error(synthetic: SyntheticEnv, kind: str) -> None:
    """`status` is on the errors, not on the requests: the cause is localized on the labels both share,
    and its root cause names the status its new errors are mostly made of."""
    incident, report = synthetic.investigate(kind)
    _assert_found(report, incident.causes, _explain(incident, report))
    assert incident.also and report.root_causes[0].mostly == incident.also[0], _explain(incident, report)
    assert any("only on the numerator" in n for n in report.notes), report.notes


@pytest.mark.parametrize("kind", GLOBAL)
def test_a_global_change_is_not_localized(synthetic: SyntheticEnv, kind: str) -> None:
    incident, report = synthetic.investigate(kind)
    assert not report.localized, _explain(incident, report)
    assert not report.root_causes, _explain(incident, report)


@pytest.mark.parametrize("kind", HISTOGRAM)
def test_localizes_a_latency_quantile(synthetic: SyntheticEnv, kind: str) -> None:
    _assert_localized(synthetic, kind)


@pytest.mark.parametrize(
    "kind",
    [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=r)) for k, r in KNOWN_MISSES.items()],
)
def test_known_misses(synthetic: SyntheticEnv, kind: str) -> None:
    _assert_localized(synthetic, kind)


# ---------------------------------------------------------------- RS cases, replayed as bench/rca_rs.py does

RS_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "riskloc-rs"  # four cases, in the repository
RS_CASES = {
    "case9_0926_1199512718563": None,  # {bitrate}
    "case1_0821_1741394221": None,  # {bitrate, p2p}
    "case21_0921_2227875499": None,  # {cdn, bitrate, p2p}
    "case48_1205_2294432": None,  # two causes, {bitrate=500} and {bitrate=2000}
}


@dataclass
class RSEnv:
    prom: Prometheus
    target: int  # every case's anomalous minute, shifted here
    cases: dict[str, tuple[int, rs_data.Case]]  # name -> (index in the replay, case)


@pytest.fixture(scope="module")
def rs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RSEnv]:
    require_binary("prometheus")
    require_binary("promtool")
    cases = rs_data.load(RS_SAMPLE, None)
    assert sorted(c.name for c in cases) == sorted(RS_CASES)
    work: Path = tmp_path_factory.mktemp("rs")
    target = int(time.time()) // 60 * 60 - 120
    procs.backfill_openmetrics(rs_data.openmetrics(cases, target), work / "data", work)
    process = procs.start_prometheus(
        work, rs_data.PROMETHEUS_CONFIG, data_dir=work / "data", extra_args=rs_data.PROMETHEUS_ARGS
    )
    try:
        yield RSEnv(Prometheus(process.url), target, {c.name: (i, c) for i, c in enumerate(cases)})
    finally:
        process.stop()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=r)) if r else n
        for n, r in RS_CASES.items()
    ],
)
def test_rs_case(rs: RSEnv, name: str) -> None:
    index, case = rs.cases[name]
    alert, config, at = rs_data.alert_for(index, case, rs.target)
    report = Investigator(rs.prom, config, clock=lambda: at).investigate(alert)
    found = [rc.labels for rc in report.root_causes]
    _assert_found(
        report, case.causes, f"{name}: root causes {found}, truth {case.causes}, notes {report.notes}"
    )


# ---------------------------------------------------------------- a metric too large to fetch leaf by leaf

RISKLOC_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "riskloc-synthetic"  # one S-small case


def test_high_cardinality_case_is_localized_without_fetching_its_leaves(tmp_path: Path) -> None:
    """5,760 leaves (a6 x b8 x c6 x d5 x e4) with one cause on a three-label cuboid: localized through
    aggregated queries, none of them returning more than the leaf budget, in a few dozen queries."""
    require_binary("prometheus")
    require_binary("promtool")
    cases = riskloc_data.load(RISKLOC_SAMPLE, "S-small")
    assert [c.name for c in cases] == ["S-small-721166"]
    case = cases[0]
    target = riskloc_data.target_time(time.time())
    run = riskloc_data.replay(cases, target, tmp_path)
    try:
        alert, config, at = riskloc_data.alert_for(case, target)
        investigator = Investigator(Prometheus(run.prometheus.url), config, clock=lambda: at)
        report, again = investigator.investigate(alert), investigator.investigate(alert)
    finally:
        run.prometheus.stop()
    # Its queries run several at a time, yet the evidence comes in one order, whichever answers first.
    assert [(e.id, e.title, e.promql) for e in again.evidence] == [
        (e.id, e.title, e.promql) for e in report.evidence
    ]
    assert again.timings["queries"] == report.timings["queries"]
    assert config.max_leaf_series < case.leaves
    found = [rc.labels for rc in report.root_causes]
    assert report.localized and found == case.causes, f"root causes {found}, notes {report.notes}"
    assert any("limit 2,000" in n for n in report.notes), report.notes
    assert report.timings["queries"] <= 36, report.timings
    fetched = [
        int(e.summary.split()[0])
        for e in report.evidence
        if e.kind == "localization" and "series" in e.summary
    ]
    assert fetched and max(fetched) <= config.max_leaf_series, fetched
    assert not any(e.error for e in report.evidence), [e.error for e in report.evidence if e.error]


def _needle_case(folder: Path, rnd_seed: int = 11, twin: bool = False) -> riskloc_data.Case:
    """12,000 leaves (a10 x b12 x c10 x d10) around their forecast within 5 %, and two small leaves that
    fell by 70 %: less than the noise of the total, and of any aggregate holding them. With `twin`, one
    leaf is two series, the second with a label (`zone`) no other series has."""
    import csv
    import random

    rnd = random.Random(rnd_seed)
    needles = [{"a": "a3", "b": "b7", "c": "c1", "d": "d9"}, {"a": "a8", "b": "b2", "c": "c6", "d": "d4"}]
    folder.mkdir(parents=True)
    path = folder / "1.csv"
    real_total = predict_total = 0.0
    leaves = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["a", "b", "c", "d", *(["zone"] if twin else []), "real", "predict"])
        for a in range(1, 11):
            for b in range(1, 13):
                for c in range(1, 11):
                    for d in range(1, 11):
                        leaf = {"a": f"a{a}", "b": f"b{b}", "c": f"c{c}", "d": f"d{d}"}
                        predict = 8.0 if leaf in needles else rnd.uniform(20, 200)
                        real = predict * (0.3 if leaf in needles else 1 + rnd.uniform(-0.05, 0.05))
                        zones = ([""] + (["z1"] if (a, b, c, d) == (1, 1, 1, 1) else [])) if twin else [None]
                        for zone in zones:
                            out.writerow(
                                [*leaf.values(), *([] if zone is None else [zone])]
                                + [
                                    f"{real:.3f}",
                                    f"{predict:.3f}",
                                ]
                            )
                            real_total += round(real, 3)
                            predict_total += round(predict, 3)
                            leaves += 1
    attributes = ("a", "b", "c", "d", *(("zone",) if twin else ()))
    return riskloc_data.Case("L", "1", path, attributes, needles, leaves, real_total, predict_total)


@pytest.mark.parametrize("twin", [False, True], ids=["one-series-a-leaf", "a-leaf-of-two-series"])
def test_single_series_beyond_the_noise_are_found_in_a_metric_too_large_to_fetch(
    tmp_path: Path, twin: bool
) -> None:
    """Two of 12,000 series fell by 70 % while the total moved less than its own noise: no aggregate
    shows them, so the screen (two instant queries over every series, in Prometheus) finds them, and
    each is then queried on its own; nothing returns more than the leaf budget. The screen compares each
    series with itself when no label but the candidates varies; when a leaf is two series after all
    (a label on one of them only), Prometheus refuses that, and the screen is asked again by leaf."""
    require_binary("prometheus")
    require_binary("promtool")
    case = _needle_case(tmp_path / "case", twin=twin)
    target = riskloc_data.target_time(time.time())
    run = riskloc_data.replay([case], target, tmp_path / "work")
    try:
        alert, config, at = riskloc_data.alert_for(case, target)
        report = Investigator(Prometheus(run.prometheus.url), config, clock=lambda: at).investigate(alert)
    finally:
        run.prometheus.stop()
    found = [rc.labels for rc in report.root_causes]
    assert report.localized, report.notes
    assert sorted(map(str, found)) == sorted(map(str, case.causes)), f"{found}, notes {report.notes}"
    assert any("single series (every label pinned) changed beyond the noise" in n for n in report.notes), (
        report.notes
    )
    screen = [e for e in report.evidence if "incident / baseline" in e.title or "binned" in e.title]
    refused = [e for e in screen if e.title.endswith("series by series")]
    assert len(refused) == (2 if twin else 0) and all(e.error for e in refused), [e.title for e in screen]
    screen = [e for e in screen if e not in refused]
    assert len(screen) == 2 and all(not e.error for e in screen), [e.summary for e in screen]
    assert "topk" in screen[0].promql or "bottomk" in screen[0].promql
    assert ("sum by" in screen[0].promql) == twin, screen[0].promql
    assert report.timings["queries"] <= 40, report.timings
    errors = [e.error for e in report.evidence if e.error and e not in refused]
    assert not errors, errors
