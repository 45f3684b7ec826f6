"""Pure text helpers shared by sinks: the brief message, ticket titles and comments, duration wording,
and fitting a size limit.

Platforms limit message size (WeCom robot markdown 4096 bytes, Slack section 3000 characters, Jira
description 32767 characters...). `fit` shortens at a line boundary and ends with a link to the full
report on alertsleuth, so nothing is cut silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from server.delivery.base import Notice
from tools.format import fmt_labels

Unit = Literal["bytes", "chars"]
Style = Literal["markdown", "slack", "text"]

NO_LINK = "set ALERTSLEUTH_EXTERNAL_URL to link the full report"
DETAILS = ("\n\n<details><summary>Full report</summary>\n\n", "\n\n</details>")  # collapsed, in Markdown
SHORT_LIMIT = 4000  # the brief at the top of a ticket comment, characters


def size(text: str, unit: Unit) -> int:
    return len(text.encode("utf-8")) if unit == "bytes" else len(text)


def _cut(text: str, budget: int, unit: Unit) -> str:
    """The longest prefix of `text` within `budget`, never splitting a UTF-8 character."""
    if unit == "chars":
        return text[: max(0, budget)]
    raw = text.encode("utf-8")[: max(0, budget)]
    return raw.decode("utf-8", errors="ignore")


def fit(text: str, limit: int, *, link: str | None, unit: Unit = "bytes", style: Style = "markdown") -> str:
    """`text` if it fits in `limit`, else a prefix cut at a line break plus a "shortened" line with the
    link to the full report. The result always fits (the tail itself is cut on absurdly small limits)."""
    if size(text, unit) <= limit:
        return text
    where = link_to(link, "full report", style) if link else NO_LINK
    tail = f"\n\n… shortened to fit; {where}"
    budget = limit - size(tail, unit)
    if budget <= 0:
        return _cut(tail.strip(), limit, unit)
    head = _cut(text, budget, unit)
    cut = head.rfind("\n")
    if cut > len(head) // 2:  # prefer a line boundary unless it throws away most of the text
        head = head[:cut]
    return head.rstrip() + tail


def link_to(url: str, text: str, style: Style) -> str:
    if style == "slack":
        return f"<{url}|{text}>"
    if style == "markdown":
        return f"[{text}]({url})"
    return f"{text}: {url}"


def bold(text: str, style: Style) -> str:
    if style == "slack":
        return f"*{text}*"
    if style == "markdown":
        return f"**{text}**"
    return text


def duration(seconds: float) -> str:
    """12s, 4m 05s, 2h 03m, 3d 4h."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def fenced(text: str) -> str:
    """`text` as a Markdown code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def resolved_line(notice: Notice) -> str:
    """What ticket sinks write on resolution: "Resolved after 12m 05s at 2026-11-21T10:12:05Z."."""
    lasted = f" after {duration(notice.duration_seconds)}" if notice.duration_seconds is not None else ""
    at = f" at {notice.ends_at}" if notice.ends_at else ""
    return f"Resolved{lasted}{at}."


def one_line(title: str, limit: int) -> str:
    """`title` with its white space runs (line breaks too) made single spaces, cut to `limit` characters
    with "…" (trackers refuse line breaks in titles and have a length limit)."""
    title = " ".join(title.split())
    return title if len(title) <= limit else title[: limit - 1] + "…"


def analysis_comment(
    notice: Notice,
    limit: int,
    *,
    head: str = "**alertsleuth: analysis updated**\n\n",
    block: tuple[str, str] = DETAILS,
    tail: str = "",
    style: Style = "markdown",
    escape: Callable[[str], str] = str,  # str: the text unchanged
) -> str:
    """The comment on a ticket for a changed analysis: `head`, the brief, then (when the notice carries
    it) the full report Markdown between `block`'s two parts, fitted to what `limit` leaves, and `tail`.
    The defaults are Markdown's (the report collapsed); `escape` makes a text safe for other markup."""
    short = fit(escape(brief(notice, style)), SHORT_LIMIT, link=notice.report_url, unit="chars", style=style)
    if notice.markdown is None:
        return head + short + tail
    open_, close = block
    budget = limit - len(head) - len(short) - len(open_) - len(close) - len(tail)
    report = fit(escape(notice.markdown), budget, link=notice.report_url, unit="chars", style=style)
    return head + short + open_ + report + close + tail


def label_set(labels: dict[str, str]) -> str:
    """`ip_region=上海, user_type=admin` for titles and lists; `(all series)` for the empty set."""
    return fmt_labels(labels, plain=True, empty="(all series)")


def brief(notice: Notice, style: Style = "markdown", *, causes: int = 3) -> str:
    """The short message chat sinks send, in the report's order: title, the first screen (verdict,
    where, since when, severity), then the summary, the top root causes, timing and the link."""
    lines = [bold(notice.title, style)]
    if notice.headline:
        lines += ["", *notice.headline]
    if notice.severity:
        lines.append(f"severity: {notice.severity}")
    if notice.event == "resolved":
        lasted = f", lasted {duration(notice.duration_seconds)}" if notice.duration_seconds else ""
        lines.append(f"Resolved at {notice.ends_at or 'now'}{lasted}.")
    if notice.change:
        lines.append(f"Changed: {notice.change}")
    lines += ["", notice.summary]
    if notice.root_causes and notice.event != "resolved":
        lines += ["", bold("Root causes", style)]
        for rc in notice.root_causes[:causes]:
            lines.append(f"- {label_set(rc.labels)}: {rc.statement}")
        if len(notice.root_causes) > causes:
            lines.append(f"- … {len(notice.root_causes) - causes} more in the report")
    if notice.runbooks and notice.event != "resolved":
        names = ", ".join(notice.runbooks[:3])
        lines += ["", f"Runbooks that fit: {names} (reply `run <name>`: dry run first, then an approval)"]
    lines.append("")
    if notice.report_url:
        lines.append(link_to(notice.report_url, "Full report", style))
    if notice.incident_id:
        started = f", started {notice.starts_at}" if notice.starts_at else ""
        lines.append(f"Incident {notice.incident_id}{started}")
    return "\n".join(lines).strip()
