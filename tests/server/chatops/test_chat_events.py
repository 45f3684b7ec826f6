"""Inbound chat events taken once across replicas, on both backends (a SQLite file, a database of the
session's PostgreSQL): a platform's retry of an event is dropped by whichever store on the database sees
it, the first of many racing stores takes it, and ids older than a day are forgotten."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from agent.models import utcnow
from server.db import Store
from server.db.chatops import EVENTS_KEPT


@pytest.fixture
def replicas(database_url: str) -> Iterator[list[Store]]:
    stores = [Store(database_url) for _ in range(3)]
    try:
        yield stores
    finally:
        for store in stores:
            store.close()


def test_a_retry_reaching_another_replica_is_dropped(replicas: list[Store]) -> None:
    a, b, _ = replicas
    assert a.chatops.first_sight("slack", "Ev01")
    assert not b.chatops.first_sight("slack", "Ev01")  # Slack's retry, load-balanced elsewhere
    assert not a.chatops.first_sight("slack", "Ev01")
    assert b.chatops.first_sight("feishu", "Ev01")  # the same id on another platform is another event
    assert b.chatops.first_sight("slack", "Ev02")


def _race(stores: list[Store], event: str) -> list[bool]:
    """Each store takes the event from two threads at once: what each was told."""
    start = threading.Barrier(len(stores) * 2)
    taken: list[bool] = []

    def take(store: Store) -> None:
        start.wait()
        taken.append(store.chatops.first_sight("slack", event))

    threads = [threading.Thread(target=take, args=(s,)) for s in stores for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return taken


def test_of_replicas_racing_on_one_event_exactly_one_takes_it(replicas: list[Store]) -> None:
    for n in range(5):
        taken = _race(replicas, f"EvRace{n}")
        assert sorted(taken) == [False] * 5 + [True], taken


def test_ids_older_than_a_day_are_forgotten(store: Store) -> None:
    then = utcnow() - EVENTS_KEPT - EVENTS_KEPT / 10
    assert store.chatops.first_sight("slack", "EvOld", now=then)
    assert not store.chatops.first_sight("slack", "EvOld", now=then + EVENTS_KEPT / 2)
    assert store.chatops.first_sight("slack", "EvNew")  # now: the old id is deleted on the way
    assert store.chatops.first_sight("slack", "EvOld")  # a day on, the same id is a new event
