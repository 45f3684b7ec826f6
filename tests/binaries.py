"""Binary lookup for fixtures: a missing Prometheus, Alertmanager, Chromium or PostgreSQL skips, or fails
with CI=true."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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


POSTGRES_BINARIES = ("initdb", "pg_ctl")


def require_postgres() -> str:
    """The folder holding PostgreSQL's server binaries (initdb, pg_ctl: Debian's `postgresql`, `make
    postgres`): POSTGRES_BIN_DIR, else PATH, else Debian's /usr/lib/postgresql/<version>/bin (the newest);
    skip without them, fail under CI=true."""

    def complete(folder: Path) -> bool:
        return all(os.access(folder / b, os.X_OK) for b in POSTGRES_BINARIES)

    named = os.environ.get("POSTGRES_BIN_DIR")
    candidates = [Path(named)] if named else []
    on_path = shutil.which(POSTGRES_BINARIES[0])
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        candidates += [p / "bin" for p in versions]
    found = next((c for c in candidates if complete(c)), None)
    if found is not None:
        return str(found)
    message = (
        "PostgreSQL's initdb and pg_ctl not found (set POSTGRES_BIN_DIR or install Debian's postgresql: "
        "make postgres)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: missing binaries fail, never skip)")
    pytest.skip(message)
