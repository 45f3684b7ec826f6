"""The store's queue, outbox and intake under concurrency, on both backends (a SQLite file, a database
of the session's PostgreSQL): threads claiming at once each get their own job or delivery, HA replicas
racing make one incident, a writer holding the lock makes intake give up after its timeout with nothing
stored, and input PostgreSQL cannot hold as it is (NUL, long names, the largest ids) is stored all
the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from agent.models import AlertInfo, Report, utcnow
from server.db import Delivery, Incident, NewDelivery, Store, Told
from server.db.reports import incident_tickets
from server.payloads import MAX_ID
from tools.errors import StoreBusy

T0 = utcnow().replace(microsecond=0) - timedelta(minutes=10)


def _alert(fingerprint: str, starts: timedelta = timedelta(0), **labels: str) -> AlertInfo:
    return AlertInfo(
        name="LoginFailures",
        labels={"alertname": "LoginFailures", **labels},
        starts_at=T0 + starts,
        fingerprint=fingerprint,
    )


def _at_once(n: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(i)` in `n` threads released together; their results (or exceptions)."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except Exception as exc:  # reported by the caller's assertions
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_workers_claiming_at_once_each_get_their_own_job(store: Store) -> None:
    created = [store.intake.ingest("test", "{}", "", [_alert(f"fp-{i}")]).created[0] for i in range(12)]

    def claim_all(i: int) -> list[int]:
        got = []
        while (job := store.jobs.claim(f"w{i}", 600)) is not None:
            assert not hasattr(job, "error")
            got.append(job.incident_id)
        return got

    results = _at_once(4, claim_all)
    assert not [r for r in results if isinstance(r, Exception)], results
    claimed = [i for r in results for i in r]
    assert sorted(claimed) == sorted(created)  # every job once, none twice
    assert store.jobs.depth() == {"running": 12}


def _report(alert: AlertInfo) -> Report:
    return Report(id=f"r-{alert.fingerprint}", alert=alert, expression=None, summary="found it")


def _plan(sinks: Sequence[str]) -> Callable[[Told], list[NewDelivery]]:
    return lambda _told: [NewDelivery(sink=s, event="firing", analysis={"causes": []}) for s in sinks]


def _resolution(_told: Told) -> list[NewDelivery]:
    return [NewDelivery(sink="sink-0", event="resolved")]


def test_dispatchers_claiming_at_once_each_get_their_own_delivery_in_order(store: Store) -> None:
    sinks = [f"sink-{i}" for i in range(6)]
    ids = []
    for i in range(3):
        alert = _alert(f"fp-{i}")
        [inc] = store.intake.ingest("test", "{}", "", [alert]).created
        job = store.jobs.claim("w", 600)
        assert job is not None and not hasattr(job, "error")
        ids += store.jobs.complete(job.id, _report(alert), "# r", "<p>r</p>", {}, plan=_plan(sinks))
        resolved = alert.model_copy(update={"status": "resolved", "ends_at": utcnow()})
        gone = store.intake.ingest("test", "{}", "", [resolved], on_resolved=lambda _a: _resolution)
        assert gone.resolved == [inc]

    order: list[tuple[int, str, str]] = []  # (incident, sink, event), as the dispatchers claimed them
    lock = threading.Lock()

    def claim_all(_i: int) -> list[int]:
        got = []
        while (d := store.deliveries.claim(600)) is not None:
            with lock:
                order.append((d.incident_id, d.sink, d.event))
            got.append(d.id)
            store.deliveries.done(d.id, "sent")
        return got

    results = _at_once(4, claim_all)
    assert not [r for r in results if isinstance(r, Exception)], results
    claimed = [i for r in results for i in r]
    with store.session() as s:
        total = s.scalar(select(func.count()).select_from(Delivery))
        states = set(s.scalars(select(Delivery.state)))
    assert len(claimed) == len(set(claimed)) == total == 3 * 7 and states == {"done"}
    assert set(ids) <= set(claimed)
    for inc in {i for i, _, _ in order}:  # the resolved notice went out after the firing one
        assert order.index((inc, "sink-0", "firing")) < order.index((inc, "sink-0", "resolved"))


def test_replicas_racing_with_near_start_times_make_one_incident(store: Store) -> None:
    """Two HA replicas post the same alert at once, their startsAt a second apart: one incident, the
    other deduplicated into it (on PostgreSQL the fingerprint's lock orders them; on SQLite the write
    lock)."""
    for round_ in range(8):
        fp = f"race-{round_}"
        results = _at_once(
            2,
            lambda i, fp=fp: store.intake.ingest(  # type: ignore[misc]
                "prometheus", "[]", "", [_alert(fp, timedelta(seconds=i))], window=5
            ),
        )
        assert not [r for r in results if isinstance(r, Exception)], results
        assert sorted(len(r.created) for r in results) == [0, 1], results
        with store.session() as s:
            assert s.scalar(select(func.count()).where(Incident.fingerprint == fp)) == 1


def test_a_writer_holding_the_incident_makes_intake_give_up_storing_nothing(store: Store) -> None:
    [inc] = store.intake.ingest("test", "{}", "", [_alert("busy")]).created
    with store.session() as holder:  # another writer, in the middle of its transaction
        holder.execute(update(Incident).where(Incident.id == inc).values(error="held"))
        holder.flush()
        started = time.monotonic()
        with pytest.raises(StoreBusy) as busy:
            store.intake.ingest("test", "{}", "", [_alert("busy")], lock_timeout=0.5)
        took = time.monotonic() - started
    assert 0.4 <= took < 5, took
    assert busy.value.retry_after == 0.5
    found = store.incidents.detail(inc)
    assert found is not None and found.incident.notifications == 1 and len(found.notifications) == 1
    assert store.intake.ingest("test", "{}", "", [_alert("busy")]).deduplicated == [inc]  # free again


def test_input_postgresql_cannot_hold_as_it_is_is_stored_all_the_same(store: Store) -> None:
    """NUL (stored as U+FFFD on PostgreSQL, as it is on SQLite), names longer than 0.1's VARCHARs, and
    the largest id the API takes, looked up."""
    nul = AlertInfo(
        name="Login\x00Failures",
        labels={"alertname": "Login\x00Failures", "k": "v\x00"},
        annotations={"summary": "a\x00b"},
        starts_at=T0,
        fingerprint="fp\x00",
    )
    [inc] = store.intake.ingest("test", '{"a": "\\u0000"}', "g\x00", [nul], receiver="r\x00").created
    assert store.intake.ingest("test", "{}", "", [nul]).deduplicated == [inc]  # found again
    found = store.incidents.detail(inc)
    assert found is not None
    kept = "\x00" if store.engine.dialect.name == "sqlite" else "\ufffd"
    assert found.incident.alertname == f"Login{kept}Failures" and found.incident.labels["k"] == f"v{kept}"
    store.incidents.page(labels=[("k", "v\x00")])  # answers (SQLite's JSON functions cut at NUL)
    store.ask_sessions.record("s\x00", inc, "why\x00?", "because", [{"q": "up\x00"}])
    assert store.ask_sessions.get("s\x00") is not None

    long = _alert("f" * 500, alertname="A" * 1000)
    long = long.model_copy(update={"name": "A" * 1000})
    [other] = store.intake.ingest("test", "{}", "", [long], receiver="R" * 300).created
    assert store.incidents.page(alertname="A" * 1000)[0][0].id == other
    store.reports.save_ticket(other, "s" * 200, "e" * 400, "K" * 400, "http://t")
    with store.session() as s:
        assert [t.key for t in incident_tickets(s, other)] == ["K" * 400]

    assert store.incidents.detail(MAX_ID) is None and not store.jobs.requeue(MAX_ID)
    assert store.deliveries.retry(MAX_ID, MAX_ID) == (None, False)
    assert store.history.likeness(MAX_ID) is None
    assert store.incidents.page(offset=MAX_ID) == ([], 2)
