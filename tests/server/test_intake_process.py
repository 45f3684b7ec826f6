"""The intake's transactions in a child process (server/intake_process.py), on both backends.

- a batch written by the child is stored as `Intake` itself stores it, results in order, a refusal
  (IntakeFull, with its retry_after and reason) crossing the pipe as itself;
- a resolution's notices are planned in the child from the routes it was given;
- batches handed over before the first is answered are written and answered in order (a firing, then
  its resolution);
- the child killed under the server: the batch in hand fails with StoreBusy (nothing acknowledged),
  the next batch starts a new child, and the writer in front of it answers again;
- our errors pickle with their keyword-only attributes.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from agent.models import AlertInfo, utcnow
from server.db import Delivery, Incident, Notification, Store
from server.db.intake import IngestRequest, IngestResult, IntakeRules
from server.delivery.config import Route
from server.delivery.plan import Planner
from server.intake_process import IntakeProcess
from server.intake_writer import IntakeWriter, Outcome
from tools.errors import IntakeFull, StoreBusy

T0 = utcnow().replace(microsecond=0) - timedelta(minutes=10)
RULES = IntakeRules(window=300.0, lock_timeout=10.0)
T = TypeVar("T")


def _alert(fp: str, status: str = "firing") -> AlertInfo:
    return AlertInfo(
        name="LoginFailures",
        status=status,
        labels={"alertname": "LoginFailures", "fp": fp},
        starts_at=T0,
        ends_at=T0 + timedelta(minutes=5) if status == "resolved" else None,
        fingerprint=fp,
    )


def _req(*alerts: AlertInfo) -> IngestRequest:
    return IngestRequest("alertmanager", "{}", "g", list(alerts), "team", on_resolved=lambda a: [])


class Child:
    """An `IntakeProcess` in an event loop of the test's own, as the server's runs it."""

    def __init__(self, process: IntakeProcess) -> None:
        self.process = process
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def ingest_many(
        self, requests: list[IngestRequest], rules: IntakeRules
    ) -> list[IngestResult | Exception]:
        return self.run(self.process.write(requests, rules))


@pytest.fixture
def child(store: Store, database_url: str) -> Iterator[Child]:
    planner = Planner(Route(sinks=["chat"]), ["chat"])
    c = Child(IntakeProcess(database_url, planner))
    c.run(c.process.start())
    yield c
    c.run(c.process.stop())
    c.loop.close()


def _count(store: Store, model: type) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_a_batch_written_by_the_child_is_stored_and_answered_in_order(child: Child, store: Store) -> None:
    results = child.ingest_many([_req(_alert("a")), _req(_alert("a")), _req(_alert("b"))], RULES)
    assert all(isinstance(r, IngestResult) for r in results)
    first, repeat, other = (r for r in results if isinstance(r, IngestResult))
    assert first.created and repeat.deduplicated == first.created and other.created != first.created
    assert first.notification_id < repeat.notification_id < other.notification_id
    assert _count(store, Notification) == 3 and _count(store, Incident) == 2
    with store.session() as s:
        stored = s.get(Notification, repeat.notification_id)
        assert stored is not None and stored.source == "alertmanager"


def test_batches_sent_before_the_first_is_answered_are_answered_in_order(child: Child, store: Store) -> None:
    """Pipelined: the next batch is in the child's socket while the last is written. A firing and its
    resolution in batches one after the other are written in that order."""

    async def three() -> list[list[IngestResult | Exception]]:
        writes = [child.process.write([_req(_alert(f"p{i}"))], RULES) for i in range(3)]
        writes.append(child.process.write([_req(_alert("p0", "resolved"))], RULES))
        return await asyncio.gather(*writes)

    results = child.run(three())
    ids = [r.notification_id for (r,) in results if isinstance(r, IngestResult)]
    assert len(ids) == 4 and ids == sorted(ids)
    assert _count(store, Incident) == 3
    (made,), (resolved,) = results[0], results[3]
    assert isinstance(made, IngestResult) and isinstance(resolved, IngestResult)
    assert resolved.resolved == made.created


def test_a_refusal_crosses_the_pipe_as_itself(child: Child, store: Store) -> None:
    full = IntakeRules(window=300.0, lock_timeout=10.0, max_backlog=1)
    results = child.ingest_many([_req(_alert("a")), _req(_alert("b"))], full)
    assert isinstance(results[0], IngestResult)
    refused = results[1]
    assert isinstance(refused, IntakeFull)
    assert (
        refused.reason == "backlog" and refused.retry_after > 0 and "ALERTSLEUTH_MAX_BACKLOG" in str(refused)
    )
    assert _count(store, Notification) == 1


def test_a_resolution_is_planned_in_the_child(child: Child, store: Store) -> None:
    (made,) = child.ingest_many([_req(_alert("r"))], RULES)
    (resolved,) = child.ingest_many([_req(_alert("r", "resolved"))], RULES)
    assert isinstance(made, IngestResult) and isinstance(resolved, IngestResult)
    assert resolved.resolved == made.created
    with store.session() as s:
        rows = s.scalars(select(Delivery)).all()
    assert [(r.sink, r.event, r.incident_id) for r in rows] == [("chat", "resolved", made.created[0])]


def test_a_killed_child_fails_its_batch_and_the_next_batch_gets_a_new_one(child: Child, store: Store) -> None:
    writer = IntakeWriter(child.process, RULES, max_pending=100)
    writer.start()

    async def post(fp: str) -> IngestResult | StoreBusy:
        try:
            return await writer.write(_req(_alert(fp)))
        except StoreBusy as exc:
            return exc

    try:
        before = child.run(post("before"))
        assert isinstance(before, IngestResult) and before.created
        pid = child.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        outcomes = [child.run(post(fp)) for fp in ("during", "after")]
        # The first batch after the kill may find the child's socket closed already (a new child is
        # started before it is sent) or die with it (StoreBusy, Retry-After); the one after is written
        # either way.
        assert isinstance(outcomes[-1], IngestResult) and outcomes[-1].created
        if isinstance(outcomes[0], StoreBusy):
            assert not isinstance(outcomes[0], IntakeFull) and outcomes[0].retry_after > 0
        assert child.process.pid not in (None, pid)
    finally:
        child.run(writer.stop())
    with store.session() as s:
        fingerprints = set(s.scalars(select(Incident.fingerprint)))
    assert {"before", "after"} <= fingerprints


def test_a_batch_in_the_childs_hands_when_it_dies_fails_with_store_busy(child: Child, store: Store) -> None:
    """Killed while it writes: the batch it held fails (503 for its senders), nothing hangs."""
    pid = child.process.pid
    assert pid is not None

    async def killed_under_a_batch() -> list[IngestResult | Exception] | StoreBusy:
        write = asyncio.ensure_future(child.process.write([_req(_alert(f"k{i}")) for i in range(200)], RULES))
        await asyncio.sleep(0)  # handed to the child
        os.kill(pid, signal.SIGKILL)
        try:
            return await asyncio.wait_for(write, 20)
        except StoreBusy as exc:
            return exc

    outcome = child.run(killed_under_a_batch())
    # The child may have written and answered the batch before the signal landed; if not, StoreBusy.
    if isinstance(outcome, StoreBusy):
        assert outcome.retry_after > 0
    else:
        assert all(isinstance(r, IngestResult) for r in outcome)
    (after,) = child.ingest_many([_req(_alert("next"))], RULES)
    assert isinstance(after, IngestResult) and after.created


def test_a_batch_that_cannot_cross_the_pipe_fails_alone(child: Child, store: Store) -> None:
    """A batch that does not pickle is refused with its error; the batches around it are written, in
    order, and the child's answers stay matched to them."""
    odd = _alert("odd").model_copy(update={"annotations": {"x": lambda: 1}})  # a lambda does not pickle

    async def three() -> list[list[Outcome] | BaseException]:
        writes = [child.process.write([_req(a)], RULES) for a in (_alert("x1"), odd, _alert("x2"))]
        return await asyncio.gather(*writes, return_exceptions=True)

    first, refused, last = child.run(three())
    assert isinstance(refused, Exception) and not isinstance(refused, StoreBusy)
    assert isinstance(first, list) and isinstance(last, list)
    (a,), (b,) = first, last
    assert isinstance(a, IngestResult) and isinstance(b, IngestResult) and a.created != b.created
    with store.session() as s:
        assert set(s.scalars(select(Incident.fingerprint))) == {"x1", "x2"}


def test_our_errors_pickle_with_their_attributes() -> None:
    full = pickle.loads(pickle.dumps(IntakeFull("full", retry_after=3.0, reason="pending")))
    assert isinstance(full, IntakeFull) and str(full) == "full"
    assert (full.retry_after, full.reason) == (3.0, "pending")
    busy = pickle.loads(pickle.dumps(StoreBusy("busy", retry_after=1.5)))
    assert type(busy) is StoreBusy and busy.retry_after == 1.5
