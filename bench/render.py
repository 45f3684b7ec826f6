"""Benchmark: rendering a report with its charts, and how heavy the page is.

    uv run python bench/render.py [--runs N]

The report is the demo's (a burst of failing admin logins from one region, backfilled into a real
Prometheus as the tests do), investigated once; then each run renders it from cold (the chart cache
cleared): the HTML page with inline SVG charts, the PNG charts tickets and mail get, and the Markdown.
The reference, measured in the same run, is the investigation itself (its queries against the real
Prometheus and the offline writer): the charts' cost is quoted as a ratio of it. Medians; the machine
is shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent import charts  # noqa: E402
from agent.evidence import InvestigationConfig  # noqa: E402
from agent.investigator import Investigator  # noqa: E402
from agent.models import Report  # noqa: E402
from agent.render import render_html, render_markdown  # noqa: E402
from exporter.scenarios.login import burst_prometheus, demo_alert  # noqa: E402
from tools.prom import Prometheus  # noqa: E402


def timed(fn: object, *args: object) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - t0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="alertsleuth-bench-render-") as tmp:
        work = Path(tmp)
        with burst_prometheus(work) as (url, now, sc):
            inv = Investigator(
                Prometheus(url),
                InvestigationConfig(default_for_seconds=120),
                clock=lambda: datetime.fromtimestamp(now, UTC),
            )
            alert = demo_alert(sc)
            inv.investigate(alert)  # warm: imports, fonts, Prometheus' caches
            rows = []
            report: Report | None = None
            for _ in range(args.runs):
                t_inv, out = timed(inv.investigate, alert)
                report = out  # type: ignore[assignment]
                charts._CACHE.clear()
                t_html, page = timed(render_html, report)
                t_again, _ = timed(render_html, report)  # a second read: the charts come from the cache
                t_png, pngs = timed(charts.charts_of, report, "png")
                t_md, _ = timed(render_markdown, report)
                rows.append((t_inv, t_html, t_png, t_md, t_again, page, pngs))
    assert report is not None
    med = {
        name: statistics.median(r[i] for r in rows)
        for i, name in enumerate(("inv", "html", "png", "md", "again"))
    }
    page = str(rows[-1][5])
    pngs = rows[-1][6]
    svgs = page.count("<svg")
    causes = len(report.root_causes)
    print(f"report {report.id}: {len(report.evidence)} evidence, {causes} root cause(s), {svgs} charts")
    print(f"investigation (reference)   median {med['inv'] * 1000:7.1f} ms")
    ratio = med["html"] / med["inv"]
    print(
        f"HTML with SVG charts, cold  median {med['html'] * 1000:7.1f} ms  ({ratio:.2f}x the investigation)"
    )
    print(f"PNG charts, cold            median {med['png'] * 1000:7.1f} ms  ({med['png'] / med['inv']:.2f}x)")
    print(f"Markdown                    median {med['md'] * 1000:7.1f} ms")
    print(f"HTML again (charts cached)  median {med['again'] * 1000:7.1f} ms")
    print(
        f"page weight: HTML {len(page.encode()):,} bytes (one file, no other request); "
        f"PNG {sum(len(c.data) for c in pngs):,} bytes in {len(pngs)} files"
    )  # type: ignore[union-attr]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
