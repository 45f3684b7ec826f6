"""Charts of a report, drawn from its evidence's own series: inline SVG or PNG, one figure per chart.

- `draw(report)` gives the signal chart first (the alert expression over the baseline and incident
  windows, its threshold, the firing period shaded), then one chart per root cause (the cause against
  the rest of the traffic), then small multiples per broken-down label: one row per value, each
  scaled to its own range, over a shared time axis (one axes per chart keeps drawing fast).
- Choosing what to draw (`_plans`) is pure; drawing uses matplotlib's object API (`Figure` and its
  canvases, never pyplot: workers are threads) inside an `rc_context`, one draw at a time, since
  rcParams are process-wide.
- Text from data (label values, alert names) is never mathtext and shows bidi and control characters
  as visible escapes; SVG output has no prolog, DOCTYPE, metadata or external reference, and the same
  report draws the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any, Literal

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.dates import AutoDateLocator, DateFormatter, date2num, num2date
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

from agent.markup import show_bidi_controls
from agent.models import Evidence, Report, RootCause
from agent.sparklines import Point, series_labels, series_points, x_extent
from agent.texts import phrases
from tools.chartdata import downsample
from tools.format import fmt_label_value, fmt_labels, fmt_num, fmt_pct, signal_unit, to_utc

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = ["FONTS", "Chart", "charts_of", "draw"]

_log = logging.getLogger("alertsleuth.charts")

FONTS = ["Noto Sans CJK SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback", "DejaVu Sans"]
"""Font preference, CJK first; the SVG names them all, so a browser picks what it has."""

DPI = 100
SIGNAL_SIZE = (6.4, 2.2)  # inches: 640×220 px at DPI
MARGINS = (0.62, 0.15, 0.32, 0.32)  # inches left, right, top, bottom
ROW_HEIGHT = 0.4  # inches per row of small multiples
ROW_FILL = 0.62  # of a row, for its line; its title above
MAX_PANELS = 8
MAX_POINTS = 2000
MAX_TEXT = 100
COMPARISONS = (">", ">=", "<", "<=", "==", "!=")

SIGNAL_COLOR = "#1f77b4"
CAUSE_COLOR = "#d62728"
REST_COLOR = "#7f7f7f"
FIRING_COLOR = "#d62728"
BASELINE_COLOR = "#7f7f7f"
THRESHOLD_COLOR = "#444444"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")

_LOCK = threading.Lock()
_GLYPH_WARNING = r"(Glyph \d+ .*missing from font|Matplotlib currently does not support)"
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\ud800-\udfff\ufffe\uffff]")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")
_TIME_MIN, _TIME_MAX = 0.0, 253402300799.0  # 1970-01-01 .. 9999-12-31: what the time axis can show
_DEFAULT_ROLE = {"signal": "signal", "breakdown": "series"}

Span = tuple[float, float]
"""(start, end) in unix seconds"""


@dataclass(frozen=True)
class Chart:
    """One drawn chart of a report."""

    key: str
    """"signal", "cause-<rank>", "breakdown-<label>"."""
    title: str
    """in the report's language, as drawn"""
    evidence_id: str
    """the evidence the numbers come from"""
    data: str | bytes
    """SVG text (inline, no prolog) or PNG bytes"""


@dataclass(frozen=True)
class _Line:
    label: str
    points: list[Point]
    color: str


@dataclass(frozen=True)
class _Panel:
    title: str | None
    lines: tuple[_Line, ...]


@dataclass(frozen=True)
class _Plan:
    """What one chart shows, before any drawing."""

    key: str
    title: str
    evidence_id: str
    panels: tuple[_Panel, ...]
    x_range: Span
    ratio: bool
    firing: Span | None
    baseline: Span | None
    time_label: str
    threshold: float | None = None
    threshold_text: str | None = None
    legend: bool = False
    rows: bool = False
    """one row per panel (small multiples) rather than one panel"""


# ---------------------------------------------------------------------------------------------------
# Public
# ---------------------------------------------------------------------------------------------------


def draw(report: Report, fmt: Literal["svg", "png"] = "svg", *, limit: int = 8) -> list[Chart]:
    """The report's charts, at most `limit`: the signal chart first, then one per root cause (cause vs
    rest), then one figure of small multiples per breakdown evidence (a row per value of its label).

    Evidence without series draws nothing; a chart that fails to draw is left out with a warning.
    """
    if fmt not in ("svg", "png"):
        raise ValueError(f"unknown chart format {fmt!r}: svg or png")
    charts: list[Chart] = []
    if limit <= 0:
        return charts
    try:
        plans = _plans(report)[:limit]
    except Exception as exc:
        _log.warning("no charts for report %s: %r", report.id, exc)
        return charts
    with _LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_GLYPH_WARNING, category=UserWarning)
        for plan in plans:
            try:
                data = _render(plan, fmt, salt=f"alertsleuth:{report.id}:{plan.key}")
            except Exception as exc:  # odd data must not cost the report: that chart is left out
                _log.warning("chart %s (evidence %s) not drawn: %r", plan.key, plan.evidence_id, exc)
                continue
            charts.append(Chart(key=plan.key, title=plan.title, evidence_id=plan.evidence_id, data=data))
    return charts


_CACHE: OrderedDict[tuple[str, str, str], list[Chart]] = OrderedDict()
_CACHE_SIZE = 32
_CACHE_LOCK = threading.Lock()


def charts_of(report: Report, fmt: Literal["svg", "png"] = "svg") -> list[Chart]:
    """`draw(report, fmt)`, remembered for the last few reports (by content): a stored report never
    changes (its tickets are joined around it), and it is rendered again for each read and notice."""
    digest = hashlib.sha256(report.model_dump_json(exclude={"tickets"}).encode()).hexdigest()
    key = (report.id, digest, fmt)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    charts = draw(report, fmt)
    with _CACHE_LOCK:
        _CACHE[key] = charts
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return charts


# ---------------------------------------------------------------------------------------------------
# What to draw
# ---------------------------------------------------------------------------------------------------


def _plans(report: Report) -> list[_Plan]:
    """Every chart the report's evidence allows, in order, with unique keys."""
    t = phrases("charts", report.language)
    plans: list[_Plan | None] = []
    signal = next((ev for ev in report.evidence if ev.kind == "signal" and _lines(ev, "signal")), None)
    if signal is not None:
        plans.append(_guarded(_signal_plan, report, signal, t))
    by_id = {ev.id: ev for ev in report.evidence}
    for rank, cause in enumerate(report.root_causes, 1):
        ev = _localization_of(cause, by_id)
        if ev is not None:
            plans.append(_guarded(_cause_plan, report, ev, t, rank, cause))
    for ev in report.evidence:
        if ev.kind == "breakdown":
            plans.append(_guarded(_breakdown_plan, report, ev, t))
    return _unique_keys(_chosen_first([p for p in plans if p is not None], report.charted))


def _chosen_first(plans: list[_Plan], chosen: Sequence[str]) -> list[_Plan]:
    """The signal chart, then the charts of the evidence the writer chose (in its order), then the
    rest in the fixed order. Choosing never adds a chart: only evidence with series has one."""
    rank = {eid: i for i, eid in enumerate(chosen)}
    head = [p for p in plans if p.key == "signal"]
    picked = sorted(
        (p for p in plans if p.key != "signal" and p.evidence_id in rank), key=lambda p: rank[p.evidence_id]
    )
    placed = {id(p) for p in head + picked}
    return head + picked + [p for p in plans if id(p) not in placed]


def _guarded(build: Callable[..., _Plan | None], report: Report, ev: Evidence, *args: Any) -> _Plan | None:
    """`build(report, ev, *args)`, or None (with a warning) when the evidence's data trips it."""
    try:
        return build(report, ev, *args)
    except Exception as exc:
        _log.warning("no chart for evidence %s: %r", ev.id, exc)
        return None


def _signal_plan(report: Report, ev: Evidence, t: Mapping[str, str]) -> _Plan | None:
    """The alert signal with its threshold, the firing period and the baseline window."""
    name = report.alert.name
    lines = [
        _Line(_text(fmt_labels(labels, plain=True, empty=name)), pts, PALETTE[i % len(PALETTE)])
        for i, (labels, pts) in enumerate(_lines(ev, "signal"))
    ]
    if not lines:
        return None
    if len(lines) == 1:
        lines = [_Line(lines[0].label, lines[0].points, SIGNAL_COLOR)]
    ratio = _is_ratio((ev.promql, report.expression), lines)
    threshold = _threshold(report)
    threshold_text = None
    if threshold is not None:
        value = fmt_pct(threshold) if ratio else fmt_num(threshold)
        threshold_text = " ".join(t["threshold"].format(op=_comparison(report) or "", value=value).split())
    return _Plan(
        key="signal",
        title=_text(t["signal"].format(name=name)),
        evidence_id=ev.id,
        panels=(_Panel(None, tuple(lines)),),
        x_range=_x_range(ev, lines),
        ratio=ratio,
        firing=_firing(report),
        baseline=_baseline(report),
        time_label=t["time_axis"],
        threshold=threshold,
        threshold_text=threshold_text,
        legend=1 < len(lines) <= len(PALETTE),
    )


def _cause_plan(report: Report, ev: Evidence, t: Mapping[str, str], rank: int, cause: RootCause) -> _Plan:
    """One root cause: the signal restricted to it against the rest of the traffic."""
    (cause_labels, cause_pts), *_ = _lines(ev, "cause")
    name = _text(fmt_labels(sorted((cause.labels or cause_labels).items()), plain=True, empty=t["no_labels"]))
    lines = [_Line(name, cause_pts, CAUSE_COLOR)]
    lines += [_Line(t["rest_of_traffic"], pts, REST_COLOR) for _, pts in _lines(ev, "rest")[:1]]
    return _Plan(
        key=f"cause-{rank}",
        title=_text(t["cause"].format(rank=rank, labels=name)),
        evidence_id=ev.id,
        panels=(_Panel(None, tuple(lines)),),
        x_range=_x_range(ev, lines),
        ratio=_is_ratio((ev.promql, report.expression), lines),
        firing=_firing(report),
        baseline=_baseline(report),
        time_label=t["time_axis"],
        legend=len(lines) > 1,
    )


def _breakdown_plan(report: Report, ev: Evidence, t: Mapping[str, str]) -> _Plan | None:
    """Small multiples of one breakdown: a row per value of the label, then the other values."""
    series = _lines(ev, "series")
    rest = _lines(ev, "rest")[:1]
    if not series and not rest:
        return None
    names = sorted({name for labels, _ in series for name in labels})
    panels = [
        _Panel(title, (_Line(title, pts, PALETTE[i % len(PALETTE)]),))
        for i, (labels, pts) in enumerate(series)
        for title in [_value_title(labels, names, t)]
    ][: MAX_PANELS - len(rest)]
    panels += [_Panel(t["other_values"], (_Line(t["other_values"], pts, REST_COLOR),)) for _, pts in rest]
    label = ", ".join(names) or t["no_labels"]
    lines = [line for panel in panels for line in panel.lines]
    return _Plan(
        key="breakdown-" + (_KEY_UNSAFE.sub("-", "-".join(names)).strip("-") or "all"),
        title=_text(t["breakdown"].format(label=label)),
        evidence_id=ev.id,
        panels=tuple(panels),
        x_range=_x_range(ev, lines),
        ratio=_is_ratio((ev.promql,), lines),
        firing=_firing(report),
        baseline=_baseline(report),
        time_label=t["time_axis"],
        rows=True,
    )


def _value_title(labels: Mapping[str, str], names: Sequence[str], t: Mapping[str, str]) -> str:
    """A breakdown panel's title: the label's value alone when the breakdown is by one label."""
    if len(names) == 1 and names[0] in labels:
        return _text(fmt_label_value(labels[names[0]]))
    return _text(fmt_labels(labels, plain=True, empty=t["no_labels"]))


def _lines(ev: Evidence, role: str) -> list[tuple[dict[str, str], list[Point]]]:
    """The (labels, points) of the evidence's series with `role` that have a point to draw."""
    out = []
    for series in ev.series or []:
        if not isinstance(series, Mapping) or series.get("role", _DEFAULT_ROLE.get(ev.kind)) != role:
            continue
        pts = [(ts, v) for ts, v in series_points(series) if _TIME_MIN <= ts <= _TIME_MAX]
        if pts:
            out.append((series_labels(series), downsample(pts, MAX_POINTS)))
    return out


def _localization_of(cause: RootCause, by_id: Mapping[str, Evidence]) -> Evidence | None:
    """The first localization evidence the root cause cites that has a cause series."""
    for eid in cause.evidence_ids:
        ev = by_id.get(eid)
        if ev is not None and ev.kind == "localization" and _lines(ev, "cause"):
            return ev
    return None


def _unique_keys(plans: Iterable[_Plan]) -> list[_Plan]:
    """The plans, a repeated key suffixed with -2, -3, ..."""
    seen: dict[str, int] = {}
    out = []
    for plan in plans:
        n = seen[plan.key] = seen.get(plan.key, 0) + 1
        out.append(plan if n == 1 else replace(plan, key=f"{plan.key}-{n}"))
    return out


def _is_ratio(expressions: Iterable[str | None], lines: Iterable[_Line]) -> bool:
    """A share, shown as percentages (tools.format.signal_unit's rule, the one the text follows)."""
    values = [v for line in lines for _, v in line.points]
    return any(signal_unit(e, values) == "ratio" for e in expressions)


def _threshold(report: Report) -> float | None:
    """The alert's threshold, when the report knows a finite one."""
    v = report.threshold
    return v if v is not None and math.isfinite(v) else None


def _comparison(report: Report) -> str | None:
    return report.comparison if report.comparison in COMPARISONS else None


def _firing(report: Report) -> Span | None:
    """From the alert's start to its end, or the incident window's end, or open-ended."""
    ends = report.alert.ends_at
    if ends is not None and ends.year <= 1:  # Go's zero time: still firing
        ends = None
    if ends is None and report.windows is not None:
        ends = report.windows.incident.end
    start = to_utc(report.alert.starts_at).timestamp()
    end = to_utc(ends).timestamp() if ends is not None else math.inf
    return (start, end) if end > start else None


def _baseline(report: Report) -> Span | None:
    if report.windows is None:
        return None
    tr = report.windows.baseline
    return to_utc(tr.start).timestamp(), to_utc(tr.end).timestamp()


def _x_range(ev: Evidence, lines: Sequence[_Line]) -> Span:
    """The evidence's query range, widened to every line's points."""
    return x_extent(to_utc(ev.start).timestamp(), to_utc(ev.end).timestamp(), [ln.points for ln in lines])


def _text(text: str, limit: int = MAX_TEXT) -> str:
    """Text from data as drawn: at most `limit` characters, control and bidi characters as visible
    escapes (`\\u202e`), so nothing reorders or hides what a reader sees."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return str(show_bidi_controls(text))


# ---------------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------------


def _rc(salt: str) -> dict[RcKeyType, Any]:
    """The settings a chart draws with (on top of the process' own): fonts, sizes, ticks, grid, SVG."""
    return {
        "font.family": ["sans-serif"],
        "font.sans-serif": FONTS,
        "font.size": 8,
        "text.usetex": False,
        "text.parse_math": False,
        "axes.unicode_minus": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 9,
        "axes.titley": 1.0,  # placed, not fitted around the axes: saves a layout pass
        "axes.titlepad": 4,
        "axes.titlelocation": "left",
        "axes.grid.axis": "y",
        "grid.linewidth": 0.4,
        "grid.alpha": 0.5,
        "xtick.labelsize": 7,
        "ytick.labelsize": 7,
        "xtick.major.size": 2,
        "ytick.major.size": 2,
        "xtick.major.pad": 1.5,
        "ytick.major.pad": 1.5,
        "figure.dpi": DPI,
        "figure.facecolor": "white",
        "savefig.dpi": DPI,
        "savefig.bbox": "standard",
        "savefig.facecolor": "white",
        "savefig.transparent": False,
        "svg.fonttype": "none",
        "svg.hashsalt": salt,
        "svg.id": None,
        "path.simplify": True,
        "timezone": "UTC",
    }


def _render(plan: _Plan, fmt: str, *, salt: str) -> str | bytes:
    """The plan drawn as SVG text or PNG bytes."""
    with rc_context(_rc(salt)):
        fig = _figure(plan)
        return _svg(fig, plan.title) if fmt == "svg" else _png(fig)


def _figure(plan: _Plan) -> Figure:
    """One axes: the lines of one panel at the signal chart's size, or one row per panel (small
    multiples sharing the time axis, each row scaled to its own values)."""
    left, right, top, bottom = MARGINS
    width, height = SIGNAL_SIZE
    if plan.rows:
        height = top + bottom + ROW_HEIGHT * len(plan.panels)
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height
    )
    ax = fig.add_subplot()
    origin = float(date2num(datetime(1970, 1, 1, tzinfo=UTC)))

    def days(ts: float) -> float:
        return origin + ts / 86400.0

    x0, x1 = plan.x_range
    for span, color, alpha in ((plan.baseline, BASELINE_COLOR, 0.12), (plan.firing, FIRING_COLOR, 0.13)):
        clipped = _clip(span, x0, x1)
        if clipped is not None:
            ax.axvspan(days(clipped[0]), days(clipped[1]), color=color, alpha=alpha, lw=0, zorder=0)
    if plan.rows:
        _rows(ax, plan, days)
    else:
        _lines_panel(ax, plan, days)
    if x1 > x0:
        ax.set_xlim(days(x0), days(x1))
    times = AutoDateLocator(tz=UTC, minticks=3, maxticks=8).tick_values(*num2date(ax.get_xlim(), UTC))
    ax.xaxis.set_major_locator(FixedLocator(times))
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M" if x1 - x0 <= 86400 else "%m-%d %H:%M", tz=UTC))
    ax.set_title(plan.title, parse_math=False)
    fig.text(1 - 0.05 / width, 0.04 / height, plan.time_label, ha="right", va="bottom", fontsize=6.5)
    return fig


def _lines_panel(ax: Axes, plan: _Plan, days: Callable[[float], float]) -> None:
    """The lines of the plan's one panel on a common value axis, with the threshold and a legend."""
    (panel,) = plan.panels
    handles = [_plot(ax, line.points, line.color, days, lambda v: v) for line in panel.lines]
    if plan.threshold is not None:
        ax.axhline(plan.threshold, ls="--", lw=0.9, color=THRESHOLD_COLOR)
        if plan.threshold_text:
            ax.text(
                0.995,
                plan.threshold,
                plan.threshold_text,
                transform=ax.get_yaxis_transform(),
                ha="right",
                va="bottom",
                fontsize=7,
                color=THRESHOLD_COLOR,
                parse_math=False,
            )
    values = [v for line in panel.lines for _, v in line.points]
    y0, y1 = _value_range(values + ([] if plan.threshold is None else [plan.threshold]))
    ax.set_ylim(y0, y1)
    ax.yaxis.set_major_locator(FixedLocator(MaxNLocator(nbins=4).tick_values(y0, y1)))
    fmt_value = fmt_pct if plan.ratio else fmt_num
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_value(v)))
    ax.grid(axis="y")
    if plan.legend:
        legend = ax.legend(
            handles, [ln.label for ln in panel.lines], loc="upper left", fontsize=7, frameon=False
        )
        for text in legend.get_texts():
            text.set_parse_math(False)


def _rows(ax: Axes, plan: _Plan, days: Callable[[float], float]) -> None:
    """One row per panel, top down: its line scaled from its lowest value (0 unless negative) to its
    highest, those written on the value axis (but 0), and its title above the line."""
    n = len(plan.panels)
    fmt_value = fmt_pct if plan.ratio else fmt_num
    ticks: list[float] = []
    labels: list[str] = []
    for i, panel in enumerate(plan.panels):
        base = float(n - 1 - i)
        lo, hi = _row_range([v for line in panel.lines for _, v in line.points])

        def scaled(v: float, base: float = base, lo: float = lo, hi: float = hi) -> float:
            return base + ROW_FILL * (v - lo) / (hi - lo)

        for line in panel.lines:
            _plot(ax, line.points, line.color, days, scaled)
        ax.axhline(base, lw=0.4, color=BASELINE_COLOR, alpha=0.6)
        if panel.title:
            ax.text(
                0.004,
                base + ROW_FILL + 0.04,
                panel.title,
                transform=ax.get_yaxis_transform(),
                va="bottom",
                fontsize=7,
                parse_math=False,
            )
        ticks += [base, base + ROW_FILL]
        labels += ["" if lo == 0 else fmt_value(lo), fmt_value(hi)]  # a zero is the row's base line
    ax.set_ylim(-0.08, n - 0.02)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda _v, pos: labels[pos] if pos is not None else ""))
    ax.tick_params(axis="y", labelsize=6)


def _plot(
    ax: Axes, points: Sequence[Point], color: str, days: Callable[[float], float], y: Callable[[float], float]
) -> Any:
    """One line (a marker when it has a single point), its values through `y`."""
    (line,) = ax.plot(
        [days(ts) for ts, _ in points],
        [y(v) for _, v in points],
        color=color,
        lw=1.2,
        marker="o" if len(points) == 1 else None,
        ms=3.5,
    )
    return line


def _row_range(values: Sequence[float]) -> tuple[float, float]:
    """A row's value range over non-empty `values`: from 0 (or the lowest, when negative) to the
    highest, never empty."""
    lo, hi = min(0.0, min(values)), max(values)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _value_range(values: Sequence[float]) -> tuple[float, float]:
    """The value axis over non-empty `values`, with a margin, from 0 when none is negative."""
    lo, hi = min(values), max(values)
    if lo >= 0:
        return 0.0, hi * 1.1 if hi > 0 else 1.0
    span = hi - lo or abs(lo)
    return lo - 0.08 * span, hi + 0.1 * span


def _clip(span: Span | None, x0: float, x1: float) -> Span | None:
    """The part of `span` on the axis [x0, x1]; None when none of it is."""
    if span is None:
        return None
    a, b = max(span[0], x0), min(span[1], x1)
    return (a, b) if b > a else None


def _svg(fig: Figure, title: str) -> str:
    """The figure as an `<svg>` element to inline in HTML: no prolog, DOCTYPE nor metadata (none is
    asked for), labelled with its title."""
    FigureCanvasSVG(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue().decode("utf-8")
    text = text[text.index("<svg") :]
    return text.replace("<svg ", f'<svg role="img" aria-label="{escape(title, quote=True)}" ', 1)


def _png(fig: Figure) -> bytes:
    """The figure as PNG at `DPI`, without software or date metadata."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()
