"""Binary lookup for fixtures: a missing Prometheus/Alertmanager skips locally and fails under CI=true."""

from __future__ import annotations

import os

import pytest

from exporter import launch as procs


def require_binary(kind: str) -> str:
    """The path of `kind` (prometheus, promtool, alertmanager); skip without it, fail under CI=true."""
    try:
        return procs.find_binary(kind)
    except procs.BinaryNotFound as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (CI=true: missing binaries fail, never skip)")
        pytest.skip(str(exc))


def require_redmine() -> None:
    """Debian's Redmine; skip without it, fail under CI=true."""
    try:
        procs.find_redmine()
    except procs.BinaryNotFound as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (CI=true: missing binaries fail, never skip)")
        pytest.skip(str(exc))
