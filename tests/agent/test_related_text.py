"""The related-context lines follow the report's language (pure: findings in, lines out)."""

from __future__ import annotations

from agent.related_text import section_lines
from tools.related import FiringAlert, Interval, Restart, Section, TargetDown, VersionChange

T0 = 1_764_590_400.0  # 2025-12-01T12:00:00Z
OPEN = Interval(T0, T0 + 600, open_start=False, open_end=True)


def section(kind: str, *findings: object, total: int | None = None) -> Section:  # type: ignore[type-arg]
    return Section(kind, kind, kind, None, tuple(findings), total or len(findings))  # type: ignore[arg-type]


def test_english_lines_read_as_before() -> None:
    alerts = section("alerts", FiringAlert("DiskFull", {"job": "db"}, (OPEN,)), total=3)
    assert section_lines(alerts, "en") == [
        "DiskFull firing since 2025-12-01T12:00:00Z (job=db)",
        "2 more firing alerts left out (at most 1 shown)",
    ]


def test_chinese_lines_for_every_kind() -> None:
    down = section("targets_down", TargetDown("api", "a:1", {"job": "api", "instance": "a:1"}, (OPEN,)))
    restart = section("restarts", Restart("api", "a:1", {"job": "api"}, T0 - 60, T0, T0 + 15))
    deploy = section(
        "deploys", VersionChange("api_build_info", "api", "a:1", {"version": "1"}, {"version": "2"}, T0)
    )
    assert section_lines(down, "zh") == ["job=api instance=a:1 的 up == 0，自 2025-12-01T12:00:00Z 起"]
    assert section_lines(restart, "zh")[0].startswith("进程重启：job=api 启动时间 2025-12-01T12:00:00Z")
    assert section_lines(deploy, "zh") == [
        "版本变更：job=api instance=a:1 version 1 -> 2，时间 2025-12-01T12:00:00Z（api_build_info）"
    ]
