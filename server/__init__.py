"""The service around the investigation (see ARCHITECTURE.md)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version


def version() -> str:
    """The installed `alertsleuth` distribution's version ("unknown" when run from a bare checkout)."""
    try:
        return _distribution_version("alertsleuth")
    except PackageNotFoundError:
        return "unknown"
