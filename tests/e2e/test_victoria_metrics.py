"""VictoriaMetrics as the query backend: a share of the synthetic incidents, imported into a real
single-node VictoriaMetrics instead of backfilled into Prometheus, get the same verdicts.

MetricsQL differs from PromQL where it matters to localization (rate without extrapolation, the
sample before the window counted), so these are the same scenarios, not the same numbers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from exporter.scenarios.synthetic import Timeline, generate, investigator, replay_victoria_metrics
from tests.binaries import require_binary
from tests.e2e.test_localization import GLOBAL, SEED, SyntheticEnv, _assert_localized
from tools.prom import Prometheus

pytestmark = pytest.mark.e2e

SHARE = [
    "ratio/1-label#0",
    "ratio/3-labels#1",
    "counter/3-labels#0",
    "gauge/queue-2#0",
    "labels/sum-3#0",
    "numerator/1-label#0",
    "small-segment/tenant#0",
    "aggregation/max#0",
    "drop/traffic#0",
    "drop/quantile#0",
    "histogram/pod#0",
]


@pytest.fixture(scope="module")
def on_victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyntheticEnv]:
    require_binary("victoria-metrics")
    tl = Timeline.ending_at(time.time())
    incidents = generate(SEED, tl, [*SHARE, *GLOBAL])
    vm = replay_victoria_metrics(incidents, tmp_path_factory.mktemp("victoria"))
    try:
        yield SyntheticEnv(tl, {i.kind: i for i in incidents}, investigator(Prometheus(vm.url), tl))
    finally:
        vm.stop()


@pytest.mark.parametrize("kind", SHARE)
def test_victoria_metrics_localizes_the_planted_element(on_victoria: SyntheticEnv, kind: str) -> None:
    _assert_localized(on_victoria, kind)


@pytest.mark.parametrize("kind", GLOBAL)
def test_victoria_metrics_leaves_a_global_change_unlocalized(on_victoria: SyntheticEnv, kind: str) -> None:
    incident, report = on_victoria.investigate(kind)
    assert not report.localized, report.root_causes
    assert any("spread" in n for n in report.notes), report.notes
