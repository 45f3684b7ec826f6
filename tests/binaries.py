"""Binary lookup for fixtures: a missing Prometheus, Alertmanager or Chromium skips, or fails with CI=true."""

from __future__ import annotations

import os
import shutil

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


BROWSER_BINARIES = {
    # kind: (environment variable naming it, names to look for on PATH)
    "chromium": ("CHROMIUM_BIN", ("chromium", "chromium-browser", "google-chrome")),
    "chromedriver": ("CHROMEDRIVER_BIN", ("chromedriver",)),
}


def require_browser_binary(kind: str) -> str:
    """The path of `kind` (chromium, chromedriver: Debian's `chromium` and `chromium-driver`, `make
    browser`); skip without it, fail under CI=true."""
    variable, names = BROWSER_BINARIES[kind]
    named = os.environ.get(variable)
    found = (
        named if named and os.access(named, os.X_OK) else next(filter(None, map(shutil.which, names)), None)
    )
    if found:
        return found
    message = f"{kind} not found (set {variable} or install it: make browser)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: missing binaries fail, never skip)")
    pytest.skip(message)
