"""What else happened around an alert: other firing alerts, targets down, restarts and deploys.

Pure functions turn range-query series into typed findings; `collect_related` runs the few queries
through the Prometheus adapter and keeps each one (PromQL, range, error) for the evidence.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from tools.breakdown import QueryResult, run_range
from tools.errors import PrometheusUnavailable
from tools.format import fmt_label_value, fmt_labels, rfc3339
from tools.prom import Prometheus, Series
from tools.promql import Matcher, Selector

MAX_FINDINGS = 20  # per kind
MAX_SUMMARY_LABELS = 8
MIN_RESTART_SECONDS = 1.0  # start-time changes smaller than this are jitter, not restarts
MAX_CONCURRENCY = 4

# Labels that name the series or the target, not the build: never part of a version.
_NOT_VERSION = frozenset({"__name__", "job", "instance"})
# The metacharacters of RE2 syntax (Go's regexp.QuoteMeta escapes exactly these).
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


# ---------------------------------------------------------------------- formatting


def _stamp(value: datetime | float) -> str:
    return rfc3339(value, seconds=True)


def labels_text(labels: dict[str, str]) -> str:
    """`job=a instance=b k=v ...`: job and instance first, then the rest sorted, at most a few."""
    return fmt_labels(labels, plain=True, sep=" ", first=("job", "instance"), limit=MAX_SUMMARY_LABELS)


# ---------------------------------------------------------------------- findings


@dataclass(frozen=True)
class QueryRange:
    """The evaluation grid of a range query: `start` and `end` in Unix seconds, `step` in seconds."""

    start: float
    end: float
    step: float

    def at_start(self, ts: float) -> bool:
        """Whether `ts` is the grid's first evaluation."""
        return ts <= self.start + 5e-4

    def at_end(self, ts: float) -> bool:
        """Whether `ts` is the grid's last evaluation (the last one at or before `end`)."""
        return ts > self.end - self.step + 5e-4

    def adjacent(self, earlier: float, later: float) -> bool:
        """Whether two sample times are consecutive evaluations (no missing step between them)."""
        return later - earlier <= 1.5 * self.step


@dataclass(frozen=True)
class Interval:
    """A run of consecutive samples: first and last sample times, and whether the run was cut by the
    query range (already under way at its start, still under way at its end)."""

    start: float
    end: float
    open_start: bool
    open_end: bool


def _intervals(ts: Sequence[float], hits: Sequence[bool], rng: QueryRange) -> tuple[Interval, ...]:
    runs: list[Interval] = []
    begin: float | None = None
    last = 0.0
    for t, hit in zip(ts, hits, strict=True):
        if begin is not None and (not hit or not rng.adjacent(last, t)):
            runs.append(Interval(begin, last, rng.at_start(begin), rng.at_end(last)))
            begin = None
        if hit:
            if begin is None:
                begin = t
            last = t
    if begin is not None:
        runs.append(Interval(begin, last, rng.at_start(begin), rng.at_end(last)))
    return tuple(runs)


def _when(intervals: Sequence[Interval], verb: str) -> str:
    """'since T', 'from T1 to T2' or 'N times from T1 to T2'; 'before T1' when the range cut the start."""
    first, last = intervals[0], intervals[-1]
    since = f"before {_stamp(first.start)}" if first.open_start else _stamp(first.start)
    if len(intervals) == 1:
        return f"since {since}" if last.open_end else f"from {since} to {_stamp(last.end)}"
    text = f"{len(intervals)} times from {since} to {_stamp(last.end)}"
    return text + (f", still {verb} at the end" if last.open_end else "")


@dataclass(frozen=True)
class FiringAlert:
    """Another alert that was firing (an `ALERTS{alertstate="firing"}` series)."""

    alertname: str
    labels: dict[str, str]  # without __name__, alertname, alertstate
    intervals: tuple[Interval, ...]

    @property
    def summary(self) -> str:
        text = f"{fmt_label_value(self.alertname)} firing {_when(self.intervals, 'firing')}"
        return text + (f" ({labels_text(self.labels)})" if self.labels else "")


@dataclass(frozen=True)
class TargetDown:
    """A scrape target whose `up` was 0."""

    job: str
    instance: str
    labels: dict[str, str]  # all of the series' labels but __name__
    intervals: tuple[Interval, ...]

    @property
    def summary(self) -> str:
        return f"up == 0 for {labels_text(self.labels)} {_when(self.intervals, 'down')}"


@dataclass(frozen=True)
class Restart:
    """A change of a process's `process_start_time_seconds`: a restart (or, going back, another process)."""

    job: str
    instance: str
    labels: dict[str, str]  # all of the series' labels but __name__
    previous_start: float
    start: float
    seen_at: float  # the first sample showing the new start time

    @property
    def summary(self) -> str:
        what = "process restarted" if self.start > self.previous_start else "process start time went back"
        return (
            f"{what}: {labels_text(self.labels)} start time {_stamp(self.start)} "
            f"(was {_stamp(self.previous_start)}), seen at {_stamp(self.seen_at)}"
        )


@dataclass(frozen=True)
class VersionChange:
    """A `*_build_info` series of a (job, instance) replaced by one with other labels: a deploy."""

    metric: str
    job: str
    instance: str
    before: dict[str, str]  # the build labels (all but __name__, job, instance)
    after: dict[str, str]
    at: float  # the first sample of the new series

    @property
    def changes(self) -> list[tuple[str, str | None, str | None]]:
        """(label, old value, new value) for each label that differs, `version` first."""
        names = sorted(self.before.keys() | self.after.keys(), key=lambda n: (n != "version", n))
        return [
            (n, self.before.get(n), self.after.get(n))
            for n in names
            if self.before.get(n) != self.after.get(n)
        ]

    @property
    def summary(self) -> str:
        def show(v: str | None) -> str:
            return "(none)" if v is None else fmt_label_value(v)

        diff = ", ".join(f"{n} {show(old)} -> {show(new)}" for n, old, new in self.changes)
        who = labels_text({"job": self.job, "instance": self.instance})
        return f"version changed: {who} {diff} at {_stamp(self.at)} ({fmt_label_value(self.metric)})"


# ---------------------------------------------------------------------- pure analysis


def _is_own_alert(labels: dict[str, str], exclude: dict[str, str]) -> bool:
    if "alertname" not in exclude or labels.get("alertname") != exclude["alertname"]:
        return False
    return all(exclude[k] == v for k, v in labels.items() if k in exclude)


def firing_alerts(series: Sequence[Series], exclude: dict[str, str], rng: QueryRange) -> list[FiringAlert]:
    """Firing alerts from `ALERTS{alertstate="firing"}` series, in order of first firing.

    `exclude` is the alert under investigation (its labels, with alertname): a series is that alert
    when the alertname is the same and every label both carry has the same value, so labels only
    one side has (external labels, `alertstate`) do not matter.
    """
    out: list[FiringAlert] = []
    for s in series:
        labels = {k: v for k, v in s.labels.items() if k not in ("__name__", "alertstate")}
        if s.labels.get("alertstate", "firing") != "firing" or _is_own_alert(labels, exclude):
            continue
        hits = [not math.isnan(v) and v != 0 for v in s.values]
        intervals = _intervals(s.timestamps, hits, rng)
        if intervals:
            name = labels.pop("alertname", "")
            out.append(FiringAlert(name, labels, intervals))
    out.sort(key=lambda a: (a.intervals[0].start, a.alertname, sorted(a.labels.items())))
    return out


def targets_down(series: Sequence[Series], rng: QueryRange) -> list[TargetDown]:
    """Targets whose `up` series has samples equal to 0, with each run of them, first down first."""
    out: list[TargetDown] = []
    for s in series:
        intervals = _intervals(s.timestamps, [v == 0 for v in s.values], rng)
        if intervals:
            labels = {k: v for k, v in s.labels.items() if k != "__name__"}
            out.append(TargetDown(labels.get("job", ""), labels.get("instance", ""), labels, intervals))
    out.sort(key=lambda d: (d.intervals[0].start, d.job, d.instance))
    return out


def restarts(series: Sequence[Series], *, min_change: float = MIN_RESTART_SECONDS) -> list[Restart]:
    """Changes of `process_start_time_seconds` by at least `min_change` seconds, oldest first.

    Each sample is compared with the start time the series last established, so jitter around it
    (start times computed as now - uptime) is not a restart.
    """
    out: list[Restart] = []
    for s in series:
        labels = {k: v for k, v in s.labels.items() if k != "__name__"}
        current: float | None = None
        for t, v in zip(s.timestamps, s.values, strict=True):
            if math.isnan(v):
                continue
            if current is not None and abs(v - current) >= min_change:
                out.append(Restart(labels.get("job", ""), labels.get("instance", ""), labels, current, v, t))
            if current is None or abs(v - current) >= min_change:
                current = v
    out.sort(key=lambda r: (r.seen_at, r.job, r.instance))
    return out


def version_changes(series: Sequence[Series]) -> list[VersionChange]:
    """Deploys seen in `*_build_info` series, oldest first.

    Series are grouped by (metric, job, instance). A change is a series that appears (is absent at
    the group's previous sample time) while another one of the group was present there, and that
    later is present while the other is not: the old build went away. Series that live side by side
    to the end are not a change.
    """
    groups: dict[tuple[str, str, str], list[Series]] = defaultdict(list)
    for s in series:
        groups[(s.labels.get("__name__", ""), s.labels.get("job", ""), s.labels.get("instance", ""))].append(
            s
        )
    out: list[VersionChange] = []
    for (metric, job, instance), members in groups.items():
        present = [set(s.timestamps) for s in members]
        times = sorted(set().union(*present))
        for i, t in enumerate(times[1:], start=1):
            prev = times[i - 1]
            for b, s_new in enumerate(members):
                if t not in present[b] or prev in present[b]:
                    continue
                for a, s_old in enumerate(members):
                    if a == b or prev not in present[a]:
                        continue
                    gone = any(u in present[b] and u not in present[a] for u in times[i:])
                    if gone:
                        out.append(
                            VersionChange(
                                metric,
                                job,
                                instance,
                                {k: v for k, v in s_old.labels.items() if k not in _NOT_VERSION},
                                {k: v for k, v in s_new.labels.items() if k not in _NOT_VERSION},
                                t,
                            )
                        )
    out.sort(key=lambda c: (c.at, c.job, c.instance, c.metric))
    return out


# ---------------------------------------------------------------------- queries


def re2_escape(text: str) -> str:
    """`text` as an RE2 regular expression matching exactly it (like Go's regexp.QuoteMeta)."""
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in text)


def job_matcher(jobs: Sequence[str]) -> Matcher:
    """`job="a"` for one job, `job=~"a|b"` (each escaped) for several; needs at least one job."""
    unique = sorted(set(jobs))
    if not unique:
        raise ValueError("job_matcher needs at least one job")
    if len(unique) == 1:
        return Matcher("job", "=", unique[0])
    return Matcher("job", "=~", "|".join(re2_escape(j) for j in unique))


F = TypeVar("F", FiringAlert, TargetDown, Restart, VersionChange)


@dataclass(frozen=True)
class Section(Generic[F]):
    """One kind of related finding: its query (None when not run), the findings kept, and how many."""

    kind: str  # alerts | targets_down | restarts | deploys
    title: str
    noun: str
    query: QueryResult | None
    findings: tuple[F, ...]
    total: int
    note: str | None = None  # why the query did not run

    @property
    def truncated(self) -> bool:
        return self.total > len(self.findings)

    @property
    def lines(self) -> list[str]:
        """One line per finding, or one saying why there are none; then the truncation note."""
        if self.query is None:
            return [self.note or f"{self.noun}: not queried"]
        if self.query.error is not None:
            return [f"{self.noun}: query failed: {self.query.error}"]
        if not self.findings:
            span = f"{_stamp(self.query.start)} to {_stamp(self.query.end)}"
            return [f"no {self.noun} from {span}"]
        out = [f.summary for f in self.findings]
        if self.truncated:
            left = self.total - len(self.findings)
            out.append(f"{left} more {self.noun} left out (at most {len(self.findings)} shown)")
        return out


@dataclass(frozen=True)
class RelatedResult:
    """The four kinds of related findings of one alert, each with the query it came from."""

    alerts: Section[FiringAlert]
    targets_down: Section[TargetDown]
    restarts: Section[Restart]
    deploys: Section[VersionChange]

    @property
    def sections(self) -> tuple[Section[Any], ...]:
        return (self.alerts, self.targets_down, self.restarts, self.deploys)

    @property
    def queries(self) -> list[QueryResult]:
        """The queries that ran, each with its PromQL, range, step, series and error."""
        return [s.query for s in self.sections if s.query is not None]


def _whole_second(dt: datetime) -> datetime:
    # prometheus-api-client sends range bounds rounded to whole seconds: record what Prometheus saw.
    return datetime.fromtimestamp(round(dt.timestamp()), UTC)


def collect_related(
    prom: Prometheus,
    *,
    jobs: Sequence[str],
    alert_labels: dict[str, str],
    start: datetime,
    end: datetime,
    step: float,
    lookback_seconds: float = 3600,
    max_findings: int = MAX_FINDINGS,
) -> RelatedResult:
    """Run the related queries from `start - lookback_seconds` to `end` (at most 4, concurrently).

    `jobs` are the `job` values of the alert's underlying series; with none, only ALERTS is queried.
    `alert_labels` are the alert's own labels, alertname included: that alert is left out.
    A query Prometheus rejects is recorded on its section; PrometheusUnavailable propagates.
    """
    q_start, q_end = _whole_second(start - timedelta(seconds=lookback_seconds)), _whole_second(end)
    rng = QueryRange(q_start.timestamp(), q_end.timestamp(), step)
    exprs = {"alerts": Selector("ALERTS", (Matcher("alertstate", "=", "firing"),)).promql()}
    if named := [j for j in jobs if j]:
        job = job_matcher(named)
        exprs["targets_down"] = Selector("up", (job,)).promql()
        exprs["restarts"] = Selector("process_start_time_seconds", (job,)).promql()
        exprs["deploys"] = Selector(None, (Matcher("__name__", "=~", ".+_build_info"), job)).promql()

    with ThreadPoolExecutor(max_workers=min(MAX_CONCURRENCY, len(exprs))) as pool:
        futures = {kind: pool.submit(run_range, prom, e, q_start, q_end, step) for kind, e in exprs.items()}
        results = {kind: fut.result() for kind, fut in futures.items()}
    for r in results.values():
        if isinstance(r.exception, PrometheusUnavailable):
            raise r.exception

    def section(
        kind: str, title: str, noun: str, analyse: Callable[[list[Series]], Sequence[F]]
    ) -> Section[F]:
        q = results.get(kind)
        if q is None:
            return Section(kind, title, noun, None, (), 0, f"{noun} not queried: no job to look at")
        found = analyse(q.series) if q.error is None else []
        return Section(kind, title, noun, q, tuple(found[:max_findings]), len(found))

    return RelatedResult(
        alerts=section(
            "alerts",
            "Other alerts firing",
            "other firing alerts",
            lambda s: firing_alerts(s, alert_labels, rng),
        ),
        targets_down=section(
            "targets_down", "Scrape targets down", "targets down", lambda s: targets_down(s, rng)
        ),
        restarts=section("restarts", "Process restarts", "restarts", restarts),
        deploys=section("deploys", "Version changes (deploys)", "version changes", version_changes),
    )
