"""Benchmark: root-cause localization on synthetic incidents, held out from the data it was developed on.

    uv run python bench/synthetic.py [--seed N] [--per-variant N] [--verbose]

About sixty-five incidents of ten families (ratio, global, gauge, counter, histogram, other labels,
then numerator-only labels, small segments, other aggregations and drops; see
exporter/scenarios/synthetic/) are generated with their ground truth, backfilled into one real
Prometheus, and investigated through the webhook's code path with the offline writer. Scoring is
bench/rca_rs.py's: element-set F1 and top-1, per family; global incidents count as correct when
nothing is localized. Each report's verdict (localized, not_localized, or the key of why the
localization did not run) is compared with the one its incident expects. The totals of the first six
families stay comparable with the figures from before the other four existed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.investigator import Investigator  # noqa: E402
from agent.models import Report  # noqa: E402
from agent.texts import phrases  # noqa: E402
from bench.rca_rs import score  # noqa: E402
from exporter.scenarios.synthetic import (  # noqa: E402
    FAMILIES,
    ORIGINAL_FAMILIES,
    Incident,
    Labels,
    Timeline,
    alert_for,
    element_key,
    fmt_el,
    generate,
    investigator,
    kinds,
    replay,
)
from tools.prom import Prometheus  # noqa: E402


@dataclass
class Outcome:
    incident: Incident
    predicted: list[Labels]
    mostly: list[Labels]  # per root cause, the numerator-only values carrying its change
    verdict: str
    notes: list[str]
    seconds: float
    queries: float

    @property
    def correct(self) -> bool:
        """Top-1 for a localized incident; nothing predicted for a global one."""
        if not self.incident.causes:
            return not self.predicted
        return bool(self.predicted) and self.predicted[0] in self.incident.causes

    @property
    def exact(self) -> bool:
        return {element_key(p) for p in self.predicted} == {element_key(c) for c in self.incident.causes}

    @property
    def also_named(self) -> bool:
        """Every secondary element of the incident is named in a root cause (its labels among the cause's,
        or among the numerator-only values the cause's change is mostly made of)."""
        named = [{**p, **m} for p, m in zip(self.predicted, self.mostly, strict=True)]
        return all(any(a.items() <= p.items() for p in named) for a in self.incident.also)


def verdict(report: Report) -> str:
    """The report's verdict: localized, the key of the offline writer's reason when the localization did
    not run (agent/text/offline.yaml `skipped`), or not_localized (it ran and found nothing)."""
    if report.localized:
        return "localized"
    if report.localization_note:
        skipped: dict[str, str] = phrases("offline", report.language)["skipped"]
        return next((k for k, text in skipped.items() if text == report.localization_note), "other")
    return "not_localized"


def investigate(inv: Investigator, incident: Incident, tl: Timeline) -> Outcome:
    t0 = time.perf_counter()
    report = inv.investigate(alert_for(incident, tl))
    seconds = time.perf_counter() - t0
    causes = report.root_causes if report.localized else []
    return Outcome(
        incident,
        [rc.labels for rc in causes],
        [rc.mostly for rc in causes],
        verdict(report),
        list(report.notes),
        seconds,
        report.timings.get("queries", 0.0),
    )


# ---------------------------------------------------------------- the benchmark


def _row(label: str, outcomes: Sequence[Outcome]) -> str:
    local = [o for o in outcomes if o.incident.causes]
    glob = [o for o in outcomes if not o.incident.causes]
    cells = [f"{label:<22}", f"{len(outcomes):>3}"]
    if local:
        s = score([o.predicted for o in local], [o.incident.causes for o in local])
        cells += [f"{s['f1']:>5.3f}", f"{s['precision']:>5.3f}", f"{s['recall']:>6.3f}", f"{s['top1']:>5.3f}"]
    else:
        cells += [f"{'-':>5}", f"{'-':>5}", f"{'-':>6}", f"{'-':>5}"]
    cells.append(f"{sum(o.correct for o in glob) / len(glob):>7.3f}" if glob else f"{'-':>7}")
    cells.append(f"{sum(o.verdict == o.incident.expected for o in outcomes) / len(outcomes):>7.3f}")
    cells.append(f"{statistics.median(o.seconds for o in outcomes):>6.3f}")
    cells.append(f"{statistics.median(o.queries for o in outcomes):>5.0f}")
    return "  ".join(cells)


def table(outcomes: Sequence[Outcome]) -> str:
    head = "  ".join(
        [
            f"{'family':<22}",
            "  n",
            "   F1",
            " prec",
            "recall",
            "top-1",
            "not-loc",
            "verdict",
            "med s",
            "med q",
        ]
    )
    lines = [head, "-" * len(head)]
    for family in FAMILIES:
        rows = [o for o in outcomes if o.incident.family == family]
        if rows:
            lines.append(_row(family, rows))
    lines.append("-" * len(head))
    first = [o for o in outcomes if o.incident.family in ORIGINAL_FAMILIES]
    later = [o for o in outcomes if o.incident.family not in ORIGINAL_FAMILIES]
    for label, group in (
        ("all", outcomes),
        ("first six families", first),
        ("first six but histogram", [o for o in first if o.incident.family != "histogram"]),
        ("the four later ones", later),
    ):
        if group:
            lines.append(_row(label, group))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-variant", type=int, default=None, help="at most N incidents of each variant")
    ap.add_argument("--verbose", action="store_true", help="describe every miss")
    args = ap.parse_args()

    tl = Timeline.ending_at(time.time())
    t0 = time.perf_counter()
    incidents = generate(args.seed, tl, kinds(args.per_variant))
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alertsleuth-synthetic-") as work:
        prom_proc = replay(incidents, Path(work))
        print(
            f"seed {args.seed}: generated {len(incidents)} incidents in {t1 - t0:.1f}s, replayed into "
            f"Prometheus in {time.perf_counter() - t1:.1f}s",
            flush=True,
        )
        try:
            inv = investigator(Prometheus(prom_proc.url), tl)
            outcomes = [investigate(inv, incident, tl) for incident in incidents]
        finally:
            prom_proc.stop()
    if args.verbose:
        for o in outcomes:
            if o.correct and o.exact and o.verdict == o.incident.expected and o.also_named:
                continue
            tag = "MISS" if not o.correct else "PART"
            print(f"{tag} {o.incident.name} {o.incident.kind}: {o.incident.description}")
            print(
                f"     predicted {[fmt_el(p) for p in o.predicted]} "
                f"true {[fmt_el(c) for c in o.incident.causes]}"
                + (f" also {[fmt_el(a) for a in o.incident.also]}" if o.incident.also else "")
            )
            print(f"     verdict {o.verdict}, expected {o.incident.expected}")
            if not o.predicted or not o.correct:
                print(f"     notes {o.notes}")
    print(table(outcomes))
    print(
        "F1/precision/recall/top-1 over incidents with a cause; not-loc: share of global incidents with "
        "nothing localized; verdict: share of incidents whose report reached the verdict expected; "
        "med s/q: median seconds and Prometheus queries per incident"
    )
    with_also = [o for o in outcomes if o.incident.also]
    if with_also:
        print(
            f"secondary elements (`also`, e.g. the status of the new errors) named in a root cause: "
            f"{sum(o.also_named for o in with_also)} of {len(with_also)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
