"""Benchmark: root-cause localization on the RS dataset (135 real labelled incidents), through Prometheus.

    uv run python bench/rca_rs.py [--data ../shared/datasets/riskloc-rs] [--cases N] [--verbose]

Every case is replayed into a real Prometheus: the per-minute failures (`value`) and totals (`cnt`)
of each attribute combination become the gauges `rs_failed` and `rs_total`, timestamps shifted so
that the anomalous minute is two minutes ago, backfilled with promtool. The alert is the failure
ratio at the anomalous minute, and the investigation is the webhook's own code path with the
offline writer. Scoring is the dataset's: element-set F1 (an element matches only when equal), and
top-1 accuracy (the first predicted element is a true one). Prometheus runs with a 59 s lookback
so that a combination absent in a minute counts as absent, as in the CSV.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.investigator import Investigator  # noqa: E402
from exporter import launch as procs  # noqa: E402
from exporter.scenarios.rs import PROMETHEUS_ARGS, PROMETHEUS_CONFIG, alert_for, load, openmetrics  # noqa: E402
from tools.prom import Prometheus  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "riskloc-rs"


def score(predicted: list[list[dict[str, str]]], truth: list[list[dict[str, str]]]) -> dict[str, float]:
    tp = fp = fn = top1 = 0
    for pred, true in zip(predicted, truth, strict=True):
        p = {tuple(sorted(e.items())) for e in pred}
        t = {tuple(sorted(e.items())) for e in true}
        tp += len(p & t)
        fp += len(p - t)
        fn += len(t - p)
        if pred and tuple(sorted(pred[0].items())) in t:
            top1 += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "top1": top1 / len(truth),
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cases", type=int, default=None, help="only the first N cases")
    ap.add_argument("--verbose", action="store_true", help="print every case")
    args = ap.parse_args()

    cases = load(args.data, args.cases)
    work = Path(tempfile.mkdtemp(prefix="alertsleuth-rs-"))
    target = int(time.time()) // 60 * 60 - 120
    t0 = time.perf_counter()
    procs.backfill_openmetrics(openmetrics(cases, target), work / "data", work)
    prom_proc = procs.start_prometheus(
        work, PROMETHEUS_CONFIG, data_dir=work / "data", extra_args=PROMETHEUS_ARGS
    )
    print(f"replayed {len(cases)} cases into Prometheus in {time.perf_counter() - t0:.1f}s", flush=True)
    predicted: list[list[dict[str, str]]] = []
    seconds: list[float] = []
    queries: list[float] = []
    try:
        prom = Prometheus(prom_proc.url)
        for index, case in enumerate(cases):
            alert, config, clock = alert_for(index, case, target)
            investigator = Investigator(prom, config, clock=lambda c=clock: c)  # type: ignore[misc]
            t = time.perf_counter()
            report = investigator.investigate(alert)
            seconds.append(time.perf_counter() - t)
            queries.append(report.timings.get("queries", 0.0))
            pred = [rc.labels for rc in report.root_causes] if report.localized else []
            predicted.append(pred)
            if args.verbose:
                ok = "ok " if pred and pred[0] in case.causes else "MISS"
                print(
                    f"{ok} {case.name}: predicted {pred} true {case.causes}"
                    + (f" notes {report.notes}" if not pred else ""),
                    flush=True,
                )
    finally:
        prom_proc.stop()
    s = score(predicted, [c.causes for c in cases])
    print(
        f"cases {len(cases)}  F1 {s['f1']:.3f}  precision {s['precision']:.3f}  recall {s['recall']:.3f}  "
        f"top-1 {s['top1']:.3f}  (TP {s['tp']} FP {s['fp']} FN {s['fn']})"
    )
    print(
        f"seconds per case: median {statistics.median(seconds):.3f}, max {max(seconds):.3f}; "
        f"Prometheus queries per case: median {statistics.median(queries):.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
