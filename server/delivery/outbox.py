"""The outbox dispatcher: takes due deliveries from the database and hands them to their sinks.

Deliveries are written in the same transaction as the report (or the resolution) that causes them,
so none is lost; here they are attempted, retried with exponential backoff and jitter, and marked done
or failed. A slow or broken sink never blocks or fails an investigation: it runs on its own threads.

One delivery runs through four small stages, one way:

    skip      settled without sending: its sink is gone (failed), or a resolved notice for a sink that
              was never told the incident was firing (done, "skipped")
    notice    the Notice from the stored incident and report, the incident's tickets joined in
    send      the sink's `send(notice, ticket_slot)`
    ticket    the slot records a ticket the moment the sink has one (`TicketRecorder`)

then the outcome is recorded: done, retried later (`backoff`), or failed.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from server.db import ClaimedDelivery, Store
from server.db.reports import Reports
from server.delivery.base import ChatThreadRef, DeliveryError, Notice, Outcome, Sink, TicketRef, TicketSlot
from server.delivery.config import DeliveryConfig
from server.delivery.notice import build_notice
from server.delivery.plan import Planner
from server.delivery.registry import SINKS
from server.leases import LeaseKeeper
from server.metrics import Metrics
from server.poller import Poller

log = logging.getLogger("alertsleuth.delivery")


def build_sinks(config: DeliveryConfig, http: httpx.Client) -> dict[str, Sink]:
    return {name: SINKS[cfg.type](name, cfg, http) for name, cfg in config.sinks.items()}


def backoff(attempts: int, base: float, cap: float, retry_after: float | None, rand: float) -> float:
    """Seconds before attempt `attempts + 1`: base·2^(attempts-1) capped, with "equal jitter" (half
    fixed, half random, so retries of many deliveries spread out), and never before the server's
    Retry-After. `rand` is uniform in [0, 1)."""
    delay = min(cap, base * 2.0 ** min(max(0, attempts - 1), 64))  # 2**1024 would overflow a float
    delay = delay / 2 + delay / 2 * rand
    return max(delay, min(cap, retry_after or 0.0))


# ------------------------------------------------------------------------------------- the stages


@dataclass(frozen=True)
class Skip:
    """A delivery settled without sending: `failed` (its sink is gone) or done with `detail`."""

    failed: bool
    detail: str
    why: str  # the log line


def skip(d: ClaimedDelivery, sinks: Mapping[str, Sink], was_told: Callable[[int, str], bool]) -> Skip | None:
    """Stage 1: whether the delivery is settled without sending it."""
    if d.sink not in sinks:
        return Skip(True, f"sink {d.sink!r} is no longer configured", "delivery failed: sink not configured")
    if d.event == "resolved" and not was_told(d.incident_id, d.sink):
        # Its report never reached this sink (the investigation failed, or the firing notice did).
        return Skip(
            False,
            "skipped: this sink was never told the incident was firing",
            "resolved notice skipped: sink never told",
        )
    return None


def notice_for(
    d: ClaimedDelivery,
    reports: Reports,
    external_url: str | None,
    chart_link: tuple[str, float] | None = None,
) -> tuple[Notice, TicketRef | None]:
    """Stage 2: the notice (its report rendered once, with the incident's tickets) and the ticket the
    sink already holds for the incident; `chart_link` (key, seconds) signs a link to its chart."""
    inc, row, tickets = reports.for_notice(d.incident_id, d.report_id)
    key, seconds = chart_link or (None, 0.0)
    notice = build_notice(
        d.event,
        inc,
        row,
        change=d.change,
        external_url=external_url,
        tickets=tickets,
        chart_link_key=key,
        chart_link_seconds=seconds,
    )
    held = next((t for t in tickets if t.sink == d.sink), None)
    return notice, (TicketRef(held.ext_id, held.key, held.url) if held else None)


class TicketRecorder:
    """Stage 4, called by the sink through its ticket slot: saves the ticket at once, before the rest of
    the attempt, so a retry comments on it instead of opening a second one. Nothing else changes: the
    report shows the ticket when it is next read (server/archive.py `with_tickets`)."""

    def __init__(self, reports: Reports, incident_id: int, sink: str) -> None:
        self.reports, self.incident_id, self.sink = reports, incident_id, sink

    def __call__(self, ref: TicketRef) -> None:
        self.reports.save_ticket(self.incident_id, self.sink, ref.id, ref.key, ref.url)


def send(sink: Sink, notice: Notice, held: TicketRef | None, record: TicketRecorder) -> Outcome:
    """Stage 3: the sink delivers the notice, holding the incident's ticket slot."""
    return sink.send(notice, TicketSlot(held, record))


# ------------------------------------------------------------------------------------- the dispatcher


class Outbox:
    def __init__(
        self,
        store: Store,
        config: DeliveryConfig,
        metrics: Metrics,
        *,
        external_url: str | None,
        chart_link: tuple[str, float] | None = None,  # (ALERTSLEUTH_CHART_LINK_KEY, its links' lifetime)
        workers: int = 2,
        max_attempts: int = 8,
        backoff_seconds: float = 5.0,
        backoff_max_seconds: float = 900.0,
        lease_seconds: float = 120.0,  # the longest a sink's attempt may take before another may retry it
        heartbeat_seconds: float = 10.0,  # the lease of an attempt in hand is renewed this often
        poll_interval: float = 1.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics
        self.external_url = external_url
        self.chart_link = chart_link
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.rand = rand
        self.http = httpx.Client(follow_redirects=False, headers={"User-Agent": "alertsleuth/0.1"})
        self.sinks = build_sinks(config, self.http)
        trackers = [name for name, sink in self.sinks.items() if sink.tickets]
        self.planner = Planner(config.tree(), self.sinks, trackers)  # what each event queues, for which sinks
        self.name = f"d-{uuid.uuid4().hex[:8]}"
        self.leases = LeaseKeeper(
            self.name,
            store.deliveries.renew,
            heartbeat=heartbeat_seconds,
            max_seconds=lease_seconds,
            log=log,
            what="delivery",
        )
        self.poller = Poller(
            self.name,
            workers,
            lambda _thread: store.deliveries.claim(self.leases.lease),
            self.deliver,
            poll_interval,
            log=log,
            source="the outbox",
        )

    def start(self) -> None:
        if not self.sinks:
            return
        # Nothing is put back here: a delivery a dead process was sending is retried once its lease
        # runs out, and one another replica is sending keeps its lease.
        self.leases.start()
        self.poller.start()

    def wake(self) -> None:
        self.poller.wake()

    def stop(self, timeout: float = 15.0) -> None:
        self.poller.stop(timeout)
        self.leases.stop(timeout)
        self.http.close()

    def deliver(self, d: ClaimedDelivery) -> None:
        """One delivery, through the stages, its lease renewed meanwhile."""
        with self.leases.holding((d.id, d.attempts)):
            self._deliver(d)

    def _deliver(self, d: ClaimedDelivery) -> None:
        ctx = {
            "incident": d.incident_id,
            "delivery": d.id,
            "sink": d.sink,
            "event": d.event,
            "attempt": d.attempts,
        }
        skipped = skip(d, self.sinks, self.store.deliveries.was_told)
        if skipped is not None:
            self._skipped(d, skipped, ctx)
            return
        try:
            notice, held = notice_for(d, self.store.reports, self.external_url, self.chart_link)
            if (thread := self.store.chatops.thread_of(d.incident_id, d.sink)) is not None:
                notice = dataclasses.replace(notice, thread=ChatThreadRef(*thread))
            record = TicketRecorder(self.store.reports, d.incident_id, d.sink)
            outcome = send(self.sinks[d.sink], notice, held, record)
        except DeliveryError as exc:
            self._failed(d, str(exc), exc.retryable, exc.retry_after, ctx)
            return
        except Exception as exc:  # a bug in a sink: retried like a transient failure, and logged loudly
            log.exception("sink crashed", extra=ctx)
            self._failed(d, f"{type(exc).__name__}: {exc}", True, None, ctx)
            return
        if outcome.thread is not None:
            t = outcome.thread
            self.store.chatops.record_thread(d.incident_id, t.platform, t.channel, t.thread, d.sink)
        if outcome.closing_comment is not None:
            self.store.reports.close_ticket(d.incident_id, d.sink, outcome.closing_comment)
        if not self.store.deliveries.done(d.id, outcome.detail, d.attempts):
            self._lost(ctx)
            return
        self.metrics.deliveries.labels(d.sink, "skipped" if outcome.skipped else "sent").inc()
        log.info("delivered", extra={**ctx, "detail": outcome.detail})

    def _lost(self, ctx: dict[str, object]) -> None:
        log.warning(
            "delivery outcome discarded: its lease ran out and another sender took it (it may be sent twice)",
            extra=ctx,
        )

    def _skipped(self, d: ClaimedDelivery, skipped: Skip, ctx: dict[str, object]) -> None:
        if skipped.failed:
            if not self.store.deliveries.failed(d.id, skipped.detail, d.attempts):
                return self._lost(ctx)
            self.metrics.deliveries.labels(d.sink, "failed").inc()
            log.error(skipped.why, extra=ctx)
        else:
            if not self.store.deliveries.done(d.id, skipped.detail, d.attempts):
                return self._lost(ctx)
            self.metrics.deliveries.labels(d.sink, "skipped").inc()
            log.info(skipped.why, extra=ctx)

    def _failed(
        self,
        d: ClaimedDelivery,
        error: str,
        retryable: bool,
        retry_after: float | None,
        ctx: dict[str, object],
    ) -> None:
        if retryable and d.attempts < self.max_attempts:
            delay = backoff(
                d.attempts, self.backoff_seconds, self.backoff_max_seconds, retry_after, self.rand()
            )
            if not self.store.deliveries.later(d.id, error, delay, d.attempts):
                return self._lost(ctx)
            self.metrics.deliveries.labels(d.sink, "retried").inc()
            log.warning(
                "delivery failed, will retry", extra={**ctx, "error": error, "retry_in": round(delay, 1)}
            )
        else:
            if not self.store.deliveries.failed(d.id, error, d.attempts):
                return self._lost(ctx)
            self.metrics.deliveries.labels(d.sink, "failed").inc()
            log.error("delivery failed for good", extra={**ctx, "error": error})
