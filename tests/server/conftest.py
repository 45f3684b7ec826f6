"""Fixtures the server's tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.db import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """The store on the test's database (SQLite or PostgreSQL: `database_url`'s parameter)."""
    s = Store(database_url)
    yield s
    s.close()
