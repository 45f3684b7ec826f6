"""Simulated login traffic: the `user_login_total` counter and injectable anomalies.

The simulator is pure logic over an injectable clock: `advance(seconds)` adds the login events of
that much elapsed time, split over regions, user types and outcomes, with mild seeded noise and
fractional accumulation so that no event is lost to rounding. Anomalies override the failure ratio
of the segments they match and may add extra traffic to them for a limited time.

`Ticker` is the only part that touches real time: a daemon thread calling `advance` with the
monotonic time elapsed since its last call.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, Metric

log = logging.getLogger(__name__)

USER_TYPES: tuple[str, ...] = ("normal", "admin")
LOGIN_STATUSES: tuple[str, ...] = ("success", "failed")
DEFAULT_REGION_WEIGHTS: Mapping[str, float] = {
    "beijing": 0.30,
    "shanghai": 0.25,
    "guangzhou": 0.20,
    "shenzhen": 0.15,
    "hangzhou": 0.10,
}
LABEL_NAMES: tuple[str, str, str] = ("user_type", "login_status", "ip_region")

# (user_type, login_status, ip_region), in the order of LABEL_NAMES.
SeriesKey = tuple[str, str, str]
# (ip_region, user_type): one traffic segment.
Segment = tuple[str, str]


class AnomalyValidationError(ValueError):
    """An anomaly parameter is out of range; `field` names the offending parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Anomaly:
    """A time-limited change of the login traffic on the segments it matches.

    `ip_region` / `user_type` of None match every region / user type. While active, the matching
    segments fail with `failure_ratio` and receive `extra_rate` additional events per second in
    total, split over the matching segments in proportion to their normal traffic. Times are
    seconds since the epoch, as returned by the simulator's clock.
    """

    id: str
    ip_region: str | None
    user_type: str | None
    failure_ratio: float
    extra_rate: float
    duration_seconds: float
    starts_at: float
    ends_at: float

    def matches(self, ip_region: str, user_type: str) -> bool:
        return (self.ip_region is None or self.ip_region == ip_region) and (
            self.user_type is None or self.user_type == user_type
        )

    def is_active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    @property
    def starts_at_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.starts_at, tz=UTC)

    @property
    def ends_at_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.ends_at, tz=UTC)


def _check_ratio(field: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise AnomalyValidationError(field, f"{field} must be between 0 and 1, got {value!r}")


class _LoginCollector:
    """Exposes the simulator's counts as the `user_login_total` counter family."""

    def __init__(self, sim: LoginSimulator) -> None:
        self._sim = sim

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily("user_login", "Simulated user login attempts.", labels=list(LABEL_NAMES))
        for key, value in self._sim.counts().items():
            family.add_metric(list(key), float(value))
        yield family


class LoginSimulator:
    """Simulated login events counted in a registry of its own.

    `rate` is the total number of login events per second across all segments. Each region gets
    `rate * weight / sum(weights)`, of which `admin_share` are admin logins; normal and admin logins
    fail with their base failure ratios unless an active anomaly says otherwise. `noise` is the
    half-width of a uniform multiplicative factor drawn per series and per `advance` call.
    """

    def __init__(
        self,
        rate: float = 20.0,
        *,
        seed: int | None = None,
        region_weights: Mapping[str, float] | None = None,
        admin_share: float = 0.1,
        normal_failure_ratio: float = 0.03,
        admin_failure_ratio: float = 0.05,
        noise: float = 0.1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"rate must be a non-negative number, got {rate!r}")
        weights = dict(DEFAULT_REGION_WEIGHTS if region_weights is None else region_weights)
        if not weights or any(not (math.isfinite(w) and w > 0) for w in weights.values()):
            raise ValueError("region_weights must be a non-empty mapping of positive weights")
        for name, value in (
            ("admin_share", admin_share),
            ("normal_failure_ratio", normal_failure_ratio),
            ("admin_failure_ratio", admin_failure_ratio),
        ):
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if not (math.isfinite(noise) and 0.0 <= noise < 1.0):
            raise ValueError(f"noise must be in [0, 1), got {noise!r}")

        self.rate = float(rate)
        self.seed = seed
        self.admin_share = float(admin_share)
        self.base_failure_ratios: dict[str, float] = {
            "normal": float(normal_failure_ratio),
            "admin": float(admin_failure_ratio),
        }
        self.noise = float(noise)
        self.clock = clock
        total_weight = sum(weights.values())
        self.region_weights: dict[str, float] = {r: w / total_weight for r, w in weights.items()}
        self.regions: tuple[str, ...] = tuple(self.region_weights)
        self.user_types: tuple[str, ...] = USER_TYPES

        # Share of the total traffic that each segment gets.
        user_shares = {"normal": 1 - self.admin_share, "admin": self.admin_share}
        self._segment_share: dict[Segment, float] = {
            (region, user_type): region_share * user_shares[user_type]
            for region, region_share in self.region_weights.items()
            for user_type in USER_TYPES
        }
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._counts: dict[SeriesKey, int] = {}
        self._pending: dict[SeriesKey, float] = {}
        for region in self.regions:
            for user_type in USER_TYPES:
                for status in LOGIN_STATUSES:
                    self._counts[(user_type, status, region)] = 0
                    self._pending[(user_type, status, region)] = 0.0
        self._anomalies: dict[str, Anomaly] = {}

        self.registry = CollectorRegistry()
        self.registry.register(_LoginCollector(self))

    # --- counts -----------------------------------------------------------------------------

    def counts(self) -> dict[SeriesKey, int]:
        """A snapshot of every series, keyed by (user_type, login_status, ip_region)."""
        with self._lock:
            return dict(self._counts)

    def count(self, user_type: str, login_status: str, ip_region: str) -> int:
        with self._lock:
            return self._counts[(user_type, login_status, ip_region)]

    # --- traffic ----------------------------------------------------------------------------

    def advance(self, seconds: float, now: float | None = None) -> int:
        """Add the login events of the interval `[now - seconds, now]`; returns how many were added.

        `now` defaults to the clock. Anomalies that start or end inside the interval apply to the
        part of it they cover. Anomalies that have ended by `now` are forgotten afterwards.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a non-negative number, got {seconds!r}")
        with self._lock:
            end = self.clock() if now is None else now
            start = end - seconds
            expected = self._expected_events(start, end)
            added = 0
            for key, value in expected.items():
                if value > 0 and self.noise > 0:
                    value *= self._random.uniform(1 - self.noise, 1 + self.noise)
                pending = self._pending[key] + value
                whole = math.floor(pending)
                self._pending[key] = pending - whole
                self._counts[key] += whole
                added += whole
            self._prune(end)
            return added

    def _expected_events(self, start: float, end: float) -> dict[SeriesKey, float]:
        expected = dict.fromkeys(self._counts, 0.0)
        if end <= start:
            return expected
        anomalies = sorted(self._anomalies.values(), key=lambda a: a.starts_at)
        cuts = {start, end}
        for anomaly in anomalies:
            cuts.update(t for t in (anomaly.starts_at, anomaly.ends_at) if start < t < end)
        edges = sorted(cuts)
        for lo, hi in zip(edges, edges[1:], strict=False):
            mid = (lo + hi) / 2
            active = [a for a in anomalies if a.is_active(mid)]
            for (region, user_type), share in self._segment_share.items():
                segment_rate = self.rate * share
                failure_ratio = self.base_failure_ratios[user_type]
                for anomaly in active:  # ordered by start: the latest one sets the failure ratio
                    if anomaly.matches(region, user_type):
                        failure_ratio = anomaly.failure_ratio
                        segment_rate += anomaly.extra_rate * self._share_within(anomaly, region, user_type)
                events = segment_rate * (hi - lo)
                expected[(user_type, "failed", region)] += events * failure_ratio
                expected[(user_type, "success", region)] += events * (1 - failure_ratio)
        return expected

    def _share_within(self, anomaly: Anomaly, region: str, user_type: str) -> float:
        """The part of an anomaly's extra traffic that goes to one of its matching segments."""
        matching = [s for s in self._segment_share if anomaly.matches(*s)]
        total = sum(self._segment_share[s] for s in matching)
        if total <= 0:
            return 1 / len(matching)
        return self._segment_share[(region, user_type)] / total

    # --- anomalies --------------------------------------------------------------------------

    def inject(
        self,
        *,
        failure_ratio: float,
        duration_seconds: float,
        ip_region: str | None = None,
        user_type: str | None = None,
        extra_rate: float = 0.0,
        now: float | None = None,
    ) -> Anomaly:
        """Start an anomaly now; raises `AnomalyValidationError` (a ValueError) on bad parameters."""
        if ip_region is not None and ip_region not in self.region_weights:
            raise AnomalyValidationError(
                "ip_region", f"ip_region must be one of {', '.join(self.regions)}; got {ip_region!r}"
            )
        if user_type is not None and user_type not in USER_TYPES:
            raise AnomalyValidationError(
                "user_type", f"user_type must be one of {', '.join(USER_TYPES)}; got {user_type!r}"
            )
        _check_ratio("failure_ratio", failure_ratio)
        if not (math.isfinite(extra_rate) and extra_rate >= 0):
            raise AnomalyValidationError("extra_rate", f"extra_rate must be >= 0, got {extra_rate!r}")
        if not (math.isfinite(duration_seconds) and duration_seconds > 0):
            raise AnomalyValidationError(
                "duration_seconds", f"duration_seconds must be > 0, got {duration_seconds!r}"
            )
        with self._lock:
            start = self.clock() if now is None else now
            anomaly = Anomaly(
                id=uuid.uuid4().hex[:12],
                ip_region=ip_region,
                user_type=user_type,
                failure_ratio=float(failure_ratio),
                extra_rate=float(extra_rate),
                duration_seconds=float(duration_seconds),
                starts_at=start,
                ends_at=start + duration_seconds,
            )
            self._prune(start)
            self._anomalies[anomaly.id] = anomaly
        log.info("anomaly injected: %s", anomaly)
        return anomaly

    def clear(self, id: str | None = None) -> int:
        """End one anomaly (or all when `id` is None); returns how many were removed."""
        with self._lock:
            self._prune(self.clock())
            if id is None:
                removed = len(self._anomalies)
                self._anomalies.clear()
            else:
                removed = 1 if self._anomalies.pop(id, None) is not None else 0
        if removed:
            log.info("anomalies cleared: %s", "all" if id is None else id)
        return removed

    def active(self, now: float | None = None) -> list[Anomaly]:
        """The anomalies active at `now` (default: the clock), oldest first."""
        with self._lock:
            at = self.clock() if now is None else now
            return sorted((a for a in self._anomalies.values() if a.is_active(at)), key=lambda a: a.starts_at)

    def get(self, id: str, now: float | None = None) -> Anomaly | None:
        """The anomaly with this id if it is active at `now`."""
        return next((a for a in self.active(now) if a.id == id), None)

    def _prune(self, now: float) -> None:
        for anomaly_id in [i for i, a in self._anomalies.items() if a.ends_at <= now]:
            del self._anomalies[anomaly_id]


class Ticker:
    """A daemon thread calling `sim.advance` with the monotonic time elapsed between calls."""

    def __init__(
        self,
        sim: LoginSimulator,
        interval: float = 0.2,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval!r}")
        self.sim = sim
        self.interval = interval
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="login-simulator-ticker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        last = self._monotonic()
        while not self._stop.wait(self.interval):
            current = self._monotonic()
            try:
                self.sim.advance(max(0.0, current - last))
            except Exception:  # keep ticking: a bad tick must not end the demo
                log.exception("simulator tick failed")
            last = current
