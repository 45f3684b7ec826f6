"""Offline benchmark: the RS dataset's localization by the pure core on the CSV's numbers, no Prometheus.

    uv run python bench/rca_rs_offline.py [--data ../shared/datasets/riskloc-rs] [--cases N] [--verbose]

For fast iteration on `tools/analysis.py`: each case's rows become the series a range query would
return (one point a minute per attribute combination, as bench/rca_rs.py replays them with a 59 s
lookback), and the localization step of `agent/localizing.py` is followed with the same pure
functions: the baseline (the file's minutes before the anomaly) and incident (the anomalous minute)
means of `tools.breakdown.leaves_from`, `tools.analysis.localize` on every candidate label when the
finest breakdown fits `max_leaf_series`, else the coarse cube of `tools.cuboids` (labels by
concentration, `best_labels`) with each cause broken down inside itself by `tools.drill.refine`, the
Localizer's own drill-down, here over the CSV (`Offline` is its `Inside`).
The census is every combination in the file, as the label APIs see a backfilled block. Scoring is
bench/rca_rs.py's. The figures are close to that benchmark's, not equal: it is the one of record.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.evidence import InvestigationConfig  # noqa: E402
from bench.rca_rs import DEFAULT_DATA, score  # noqa: E402
from exporter.scenarios.rs import Case, load  # noqa: E402
from tools.analysis import Candidate, Labels, Localization, localize, narrow  # noqa: E402
from tools.breakdown import candidate_labels, leaves_from, segment_stats  # noqa: E402
from tools.cuboids import (  # noqa: E402
    best_labels,
    combinations,
    concentration,
    pack,
    ratio_series,
    rolled_up,
)
from tools.drill import refine  # noqa: E402
from tools.errors import AlertsleuthError  # noqa: E402
from tools.prom import Series  # noqa: E402

Bounds = tuple[tuple[float, float], tuple[float, float]]


class Offline:
    """One case's series and the localization step on them."""

    def __init__(self, case: Case, config: InvestigationConfig) -> None:
        self.case, self.budget = case, config.max_leaf_series
        # The range query's points: every minute from the file's first to the anomalous one.
        rows = [r for r in case.rows if int(r["min"]) <= case.anomaly]
        num: dict[Labels, dict[float, float]] = {}
        den: dict[Labels, dict[float, float]] = {}
        for r in rows:
            key = tuple(sorted((a, r[a]) for a in case.attributes))
            t = float(r["min"])
            num.setdefault(key, {})[t] = num.get(key, {}).get(t, 0.0) + float(r["value"])
            den.setdefault(key, {})[t] = den.get(key, {}).get(t, 0.0) + float(r["cnt"])
        self.num = [_series(k, v) for k, v in num.items()]
        self.den = [_series(k, v) for k, v in den.items()]
        # The census: every combination in the file (the label APIs read the block's index).
        self.census = {a: {r[a] for r in case.rows} for a in case.attributes}
        self.bounds: Bounds = ((float(case.first), case.anomaly - 1e-3), (case.anomaly, case.anomaly + 1.0))
        cands = candidate_labels(
            self.census, max_cardinality=config.max_label_values, max_labels=config.max_labels
        )
        self.labels = cands.labels
        self.values = {n: len(self.census[n]) for n in self.labels}  # each label's values

    def within(self, element: Labels) -> tuple[list[Series], list[Series]]:
        keep = set(element)
        num = [s for s in self.num if keep <= set(s.labels.items())]
        den = [s for s in self.den if keep <= set(s.labels.items())]
        return num, den

    def analyse(self, labels: Sequence[str], cause: Candidate | None = None) -> Localization:
        num, den = rolled_up(*self.within(cause.labels if cause is not None else ()), labels)
        assert den is not None
        leaves = leaves_from(num, den, labels, *self.bounds)
        if cause is not None and cause.trend is not None:
            return narrow(leaves, cause, ratio=True)
        return localize(leaves, ratio=True)

    def run(self) -> Localization | None:
        labels, cardinality = self.labels, self.values
        if not labels:
            return None
        count = combinations(cardinality, labels)
        if count > self.budget:  # the group queries' series: the leaves there can be
            groups = pack(cardinality, labels, self.budget)
            count = math.prod(max(1, len(rolled_up(self.num, None, g)[0])) for g in groups)
        if count <= self.budget:
            return self.analyse(labels)
        self.scores: dict[str, float] = {}
        for label in labels:
            num, den = rolled_up(self.num, self.den, [label])
            assert den is not None
            rows = segment_stats(ratio_series(num, den), *self.bounds)
            self.scores[label] = concentration([st for _, st in rows])
        coarse = best_labels({n: self.scores.get(n, 0.0) for n in labels}, cardinality, self.budget)
        loc = self.analyse(coarse)
        if loc.localized:
            loc, _ = refine(loc, labels, coarse, self.scores, self.budget, self)
        return loc

    # `tools.drill.Inside` over the CSV
    def cardinality(
        self, asked: Sequence[tuple[Labels, Sequence[str]]]
    ) -> list[dict[str, int] | AlertsleuthError]:
        out: list[dict[str, int] | AlertsleuthError] = []
        for within, names in asked:
            keep = set(within)
            rows = [r for r in self.case.rows if keep <= {(a, r[a]) for a in self.case.attributes}]
            out.append({a: len({r[a] for r in rows}) for a in names})
        return out

    def localized(self, asked: Sequence[tuple[Sequence[str], Candidate]]) -> list[Localization | None]:
        return [self.analyse(labels, within) for labels, within in asked]


def _series(key: Labels, points: dict[float, float]) -> Series:
    ts = tuple(sorted(points))
    return Series(dict(key), ts, tuple(points[t] for t in ts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cases", type=int, default=None, help="only the first N cases")
    ap.add_argument("--verbose", action="store_true", help="list the misses")
    args = ap.parse_args()

    cases = load(args.data, args.cases)
    config = InvestigationConfig()
    predicted: list[list[dict[str, str]]] = []
    t0 = time.perf_counter()
    for case in cases:
        loc = Offline(case, config).run()
        pred = [dict(c.labels) for c in loc.causes] if loc is not None and loc.localized else []
        predicted.append(pred)
        if args.verbose and {tuple(sorted(p.items())) for p in pred} != {
            tuple(sorted(c.items())) for c in case.causes
        }:
            top = "ok  " if pred and pred[0] in case.causes else "MISS"
            notes = f" notes {loc.notes}" if loc is not None and not pred else ""
            print(f"{top} {case.name}: predicted {pred} true {case.causes}{notes}")
    elapsed = time.perf_counter() - t0
    s = score(predicted, [c.causes for c in cases])
    print(
        f"cases {len(cases)}  F1 {s['f1']:.3f}  precision {s['precision']:.3f}  recall {s['recall']:.3f}  "
        f"top-1 {s['top1']:.3f}  (TP {s['tp']} FP {s['fp']} FN {s['fn']})  {elapsed:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
