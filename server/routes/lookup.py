"""The routes' one "not found": a read that finds nothing answers 404 saying what is missing
("no incident 7"), the same for every resource."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import HTTPException, status
from fastapi.concurrency import run_in_threadpool

T = TypeVar("T")


def present(value: T | None, missing: str) -> T:
    """`value`, or a 404 saying `missing` when there is none: None, or False from an existence check."""
    if value is None or value is False:
        raise HTTPException(status.HTTP_404_NOT_FOUND, missing)
    return value


async def found(missing: str, read: Callable[..., T | None], *args: Any) -> T:
    """`read(*args)` in the thread pool (the event loop never waits on the store), as `present` takes it."""
    return present(await run_in_threadpool(read, *args), missing)
