"""Job and delivery leases shared by many processes, on both backends: a held job is not handed out
again, a lease is renewed while its holder works, a lease that runs out is taken over, and the worker
that lost it can no longer end the attempt (one report, one set of deliveries per job); a delivery's
lease likewise, the outcome of an attempt that lost it discarded; the keeper renews what is in hand,
up to its limit."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select

from agent.models import AlertInfo, Report, utcnow
from server.db import ClaimedJob, LeaseLost, NewDelivery, Store
from server.db.models import Delivery, Job, ReportRow
from server.leases import LeaseKeeper


def _store_with_jobs(url: str, n: int = 1) -> Store:
    store = Store(url)
    for i in range(n):
        alert = AlertInfo(
            name="LeaseTest",
            status="firing",
            labels={"alertname": "LeaseTest", "n": str(i)},
            starts_at=utcnow() - timedelta(minutes=5),
            fingerprint=f"lease-{i}",
        )
        store.intake.ingest("alertmanager", "{}", f"g{i}", [alert])
    return store


def _claim(store: Store, worker: str, lease: float) -> ClaimedJob | None:
    got = store.jobs.claim(worker, lease, max_attempts=3)
    assert got is None or isinstance(got, ClaimedJob), got
    return got


def test_a_held_job_is_not_handed_out_and_renewal_keeps_it(database_url: str) -> None:
    store = _store_with_jobs(database_url)
    try:
        first = _claim(store, "a", 0.5)
        assert first is not None and first.worker == "a"
        assert _claim(store, "b", 0.5) is None  # held
        for _ in range(4):  # renewed past its first lease: still held
            time.sleep(0.25)
            assert store.jobs.renew("a", [first.id], 0.5) == {first.id}
        assert _claim(store, "b", 0.5) is None
        assert store.jobs.renew("b", [first.id], 0.5) == set()  # only the holder renews
    finally:
        store.close()


def test_a_lease_that_runs_out_is_taken_over_and_the_loser_writes_nothing(database_url: str) -> None:
    store = _store_with_jobs(database_url)
    try:
        first = _claim(store, "a", 0.3)
        assert first is not None
        time.sleep(0.5)  # "a" stopped renewing (killed): its lease ran out
        second = _claim(store, "b", 30)
        assert second is not None and second.id == first.id and second.attempts == first.attempts + 1
        assert store.jobs.renew("a", [first.id], 30) == set()
        report = Report(id="r-late", alert=first.alert, expression=None, summary="late")
        with pytest.raises(LeaseLost):
            store.jobs.complete(first.id, report, "md", "<p>html</p>", {}, worker="a")
        with pytest.raises(LeaseLost):
            store.jobs.retry_later(first.id, "boom", 1.0, worker="a")
        done = Report(id="r-won", alert=second.alert, expression=None, summary="won")
        store.jobs.complete(second.id, done, "md", "<p>html</p>", {}, worker="b")
        with store.session() as s:
            assert [r for r in s.scalars(select(ReportRow.id))] == ["r-won"]
            job = s.get(Job, first.id)
            assert job is not None and job.state == "done" and job.worker == "b"
    finally:
        store.close()


def test_a_job_whose_workers_keep_dying_fails_after_a_few_more_tries(database_url: str) -> None:
    store = _store_with_jobs(database_url)
    try:
        for n in range(1, 6):  # max_attempts 3, and 2 more for workers lost mid-attempt
            got = _claim(store, f"w{n}", 0.05)
            assert got is not None and got.attempts == n
            time.sleep(0.1)
        failed = store.jobs.claim("w6", 0.05, max_attempts=3)
        assert failed is not None and not isinstance(failed, ClaimedJob)
        assert "lease ran out" in failed.error
    finally:
        store.close()


def test_concurrent_claimers_each_get_a_different_job(database_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = _store_with_jobs(database_url, n=6)
    try:
        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda i: _claim(store, f"w{i}", 30), range(6)))
        ids = [g.id for g in got if g is not None]
        assert len(ids) == 6 and len(set(ids)) == 6
        assert _claim(store, "late", 30) is None
    finally:
        store.close()


def _store_with_delivery(url: str) -> Store:
    store = _store_with_jobs(url)
    job = _claim(store, "w", 60)
    assert job is not None
    report = Report(id="r-lease", alert=job.alert, expression=None, summary="s")
    plan = lambda _told: [NewDelivery(sink="chat", event="firing")]  # noqa: E731
    assert store.jobs.complete(job.id, report, "md", "<p>", {}, plan=plan, worker="w")
    return store


def test_a_delivery_lease_is_renewed_while_sending_and_the_loser_of_one_writes_nothing(
    database_url: str,
) -> None:
    store = _store_with_delivery(database_url)
    try:
        first = store.deliveries.claim(0.5)
        assert first is not None and first.attempts == 1
        for _ in range(4):  # renewed past its first lease: still held
            time.sleep(0.25)
            assert store.deliveries.renew([(first.id, 1)], 0.5) == {(first.id, 1)}
        assert store.deliveries.claim(0.5) is None
        time.sleep(0.7)  # not renewed: it runs out, another sender takes it (attempt 2)
        second = store.deliveries.claim(60)
        assert second is not None and (second.id, second.attempts) == (first.id, 2)
        assert store.deliveries.renew([(first.id, 1)], 60) == set()
        assert store.deliveries.done(first.id, "sent late", attempt=1) is False  # fenced
        with store.session() as s:
            row = s.get(Delivery, first.id)
            assert row is not None and (row.state, row.detail) == ("sending", None)
        assert store.deliveries.done(second.id, "sent", attempt=2) is True
    finally:
        store.close()


def test_the_lease_keeper_renews_what_is_held_until_its_limit() -> None:
    calls: list[list[str]] = []

    def renew(keys: Sequence[str], seconds: float) -> set[str]:
        calls.append(sorted(keys))
        return set(keys) - {"lost"}

    keeper = LeaseKeeper("t", renew, heartbeat=0.1, max_seconds=0.45, log=logging.getLogger("t"), what="test")
    assert keeper.lease == pytest.approx(0.3)
    keeper.start()
    try:
        with keeper.holding("a"), keeper.holding("lost"):
            time.sleep(0.8)
        seen = len(calls)
        time.sleep(0.3)
    finally:
        keeper.stop()
    assert calls and all(c == ["a", "lost"] for c in calls)  # both held, renewed together
    assert 2 <= seen <= 5  # every heartbeat until 0.45 s, then left to run out
    assert len(calls) == seen  # nothing held: nothing renewed
