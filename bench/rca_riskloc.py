"""Benchmark: root-cause localization on riskloc's synthetic dataset (200 generated cases), in Prometheus.

    uv run python bench/rca_riskloc.py [--data ../shared/datasets/riskloc-synthetic]
        [--families S-small,S,L] [--cases N] [--verbose]

Each family (S-small: 160 cases of 5,760 leaves; S: 20 of 48,000; L: 20 of 36,000) is replayed into a
Prometheus of its own, one family after another (promtool needs about 3 GB for one family): every leaf
is the gauge `rl_value{case, <attributes>}`, ten minutes at its forecast (`predict`) then two at its
observed value (`real`); see exporter/scenarios/riskloc.py. The alert is the case's total beyond the
midpoint of the two totals, and the investigation is the webhook's own code path with the offline
writer. Scoring is the riskloc repository's: element-set F1 (an element matches only when equal),
TP, FP and FN summed per family, plus top-1 accuracy (the first predicted element is a true one). The
published figures (the dataset's README: that repository's `run.py`, default parameters) are printed
next to ours; they are for whole families.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.investigator import Investigator  # noqa: E402
from bench.rca_rs import score  # noqa: E402
from exporter.scenarios import riskloc as rl  # noqa: E402
from tools.prom import Prometheus  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "riskloc-synthetic"

# Element-set F1 on exactly these cases, from the dataset's README.
PUBLISHED = {
    "RiskLoc": {"S-small": 0.757, "S": 0.686, "L": 0.759, "all": 0.750},
    "AutoRoot": {"S-small": 0.455, "S": 0.516, "L": 0.633, "all": 0.475},
}

Element = dict[str, str]


@dataclass
class Outcome:
    case: rl.Case
    predicted: list[Element]
    seconds: float
    queries: float


@dataclass
class FamilyRun:
    family: str
    outcomes: list[Outcome] = field(default_factory=list)


def _fixed(at: datetime) -> Callable[[], datetime]:
    return lambda: at


def _fmt(element: Element) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(element.items()))


def _peak_rss_mb(pid: int) -> float | None:
    """A live process's peak resident set (VmHWM), in MB; None off Linux."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_family(data: Path, family: str, limit: int | None, verbose: bool) -> FamilyRun:
    t0 = time.perf_counter()
    cases = rl.load(data, family, limit)
    leaves = sum(c.leaves for c in cases)
    target = rl.target_time(time.time())
    run = FamilyRun(family)
    with tempfile.TemporaryDirectory(prefix=f"alertsleuth-riskloc-{family}-") as work:
        t1 = time.perf_counter()
        replay = rl.replay(cases, target, Path(work))
        # the largest child so far: promtool, unless an earlier family's was larger
        promtool_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"{family}: {len(cases)} cases, {leaves:,} leaves, {replay.samples:,} samples: loaded in "
            f"{t1 - t0:.1f}s, {replay.text_bytes / 1e9:.2f} GB of OpenMetrics written in "
            f"{replay.write_seconds:.1f}s, backfilled in {replay.backfill_seconds:.1f}s (largest child's "
            f"peak RSS so far, promtool's: {promtool_mb:.0f} MB), Prometheus ready "
            f"{time.perf_counter() - t0:.1f}s after the start",
            flush=True,
        )
        prom_proc = replay.prometheus
        try:
            prom = Prometheus(prom_proc.url)
            for case in cases:
                alert, config, clock = rl.alert_for(case, target)
                t = time.perf_counter()
                report = Investigator(prom, config, clock=_fixed(clock)).investigate(alert)
                seconds = time.perf_counter() - t
                pred = [rc.labels for rc in report.root_causes] if report.localized else []
                run.outcomes.append(Outcome(case, pred, seconds, report.timings.get("queries", 0.0)))
                if verbose:
                    ok = "ok  " if pred and pred[0] in case.causes else "MISS"
                    print(
                        f"{ok} {case.name} ({seconds:.1f}s): predicted {[_fmt(p) for p in pred]} "
                        f"true {[_fmt(c) for c in case.causes]}"
                        + (f" notes {report.notes} ({report.localization_note})" if not pred else ""),
                        flush=True,
                    )
            peak = _peak_rss_mb(prom_proc.proc.pid)
        finally:
            prom_proc.stop()
    spent = sum(o.seconds for o in run.outcomes)
    print(
        f"{family}: investigated in {spent:.1f}s; Prometheus peak RSS "
        + (f"{peak:.0f} MB" if peak is not None else "unknown"),
        flush=True,
    )
    return run


HEAD = (
    f"{'family':<8} {'cases':>5} {'F1':>6} {'prec':>6} {'recall':>6} {'top-1':>6} {'TP':>5} {'FP':>5} "
    f"{'FN':>5} {'med s':>6} {'max s':>6} {'med q':>5} | {'RiskLoc':>7} {'AutoRoot':>8}"
)


def row(label: str, outcomes: list[Outcome]) -> str:
    s = score([o.predicted for o in outcomes], [o.case.causes for o in outcomes])
    seconds = [o.seconds for o in outcomes]
    riskloc, autoroot = (
        "-" if (f1 := PUBLISHED[name].get(label)) is None else f"{f1:.3f}" for name in ("RiskLoc", "AutoRoot")
    )
    return (
        f"{label:<8} {len(outcomes):>5} {s['f1']:>6.3f} {s['precision']:>6.3f} {s['recall']:>6.3f} "
        f"{s['top1']:>6.3f} {s['tp']:>5} {s['fp']:>5} {s['fn']:>5} {statistics.median(seconds):>6.2f} "
        f"{max(seconds):>6.2f} {statistics.median(o.queries for o in outcomes):>5.0f} | "
        f"{riskloc:>7} {autoroot:>8}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--families", default=",".join(rl.FAMILIES), help="comma-separated, of S-small,S,L")
    ap.add_argument("--cases", type=int, default=None, help="only the first N cases of each family")
    ap.add_argument("--verbose", action="store_true", help="print every case")
    args = ap.parse_args()
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in rl.FAMILIES]
    if unknown or not families:
        ap.error(f"unknown families {unknown}; choose among {', '.join(rl.FAMILIES)}")

    t0 = time.perf_counter()
    runs = [run_family(args.data, family, args.cases, args.verbose) for family in families]
    print()
    print(HEAD)
    print("-" * len(HEAD))
    for run in runs:
        print(row(run.family, run.outcomes))
    print("-" * len(HEAD))
    everything = [o for run in runs for o in run.outcomes]
    print(row("all", everything))
    print(
        f"TP/FP/FN summed over the row's cases; med/max s: seconds per case; med q: Prometheus queries per "
        f"case; RiskLoc/AutoRoot: published F1 on whole families. {time.perf_counter() - t0:.0f}s in all."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
