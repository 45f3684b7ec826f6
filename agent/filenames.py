"""File names for stored reports: one stem per report, safe on any file system."""

from __future__ import annotations

import re

from agent.models import Report
from tools.format import to_utc

__all__ = ["report_filename_stem"]

STEM_NAME_MAX = 80

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def report_filename_stem(report: Report) -> str:
    """`<alertname>_<startsAt as 20261121T163000Z>_<first 8 chars of the id>`, safe as a file name.

    Characters outside [A-Za-z0-9_.-] (CJK, slashes, spaces...) become "_"; the name is capped at 80
    characters and never starts with a dot.
    """
    name = _UNSAFE_NAME.sub("_", report.alert.name)[:STEM_NAME_MAX]
    if name.startswith("."):
        name = "_" + name[1:]
    name = name or "alert"
    stamp = to_utc(report.alert.starts_at).strftime("%Y%m%dT%H%M%SZ")
    rid = _UNSAFE_NAME.sub("_", report.id)[:8] or "report"
    return f"{name}_{stamp}_{rid}"
