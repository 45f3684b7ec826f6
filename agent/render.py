"""Render a `Report` as GitHub-flavoured Markdown or as one self-contained HTML page.

Both renderings share one view of the report (`_context`) and differ only in their jinja2 template and
in how free text is escaped. Alert labels, annotations and metric label values are untrusted: in HTML
they are autoescaped, in Markdown they are backslash-escaped so they cannot open tags, links or break
tables. Text written by the LLM or the offline writer gets the same treatment; its `[E3]` citations
become links to the evidence anchors and its `inline code` spans stay code.

`fmt_num` and `fmt_pct` are the one place numbers are formatted, so prose written by the offline
writer and the tables shown here carry the same figures.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup, escape

from agent.models import Evidence, Report, Windows
from tools.format import fmt_duration, fmt_labels, fmt_num, fmt_pct, fmt_range, fmt_time, to_utc

__all__ = [
    "render_html",
    "render_markdown",
    "report_filename_stem",
]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

MAX_STAT_ROWS = 15
MAX_SERIES = 5
MAX_SPARK_POINTS = 400
SPARK_WIDTH = 280
SPARK_HEIGHT = 44
SPARK_PAD = 3
TEXT_SPARK_WIDTH = 32
STEM_NAME_MAX = 80

# ---------------------------------------------------------------------------------------------------
# Fixed phrases, per language. Every heading and sentence the templates print comes from here.
# ---------------------------------------------------------------------------------------------------

_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "report": "Root-cause report",
        "report_id": "Report",
        "alert": "Alert",
        "name": "Name",
        "status": "Status",
        "severity": "Severity",
        "starts_at": "Started",
        "ends_at": "Ended",
        "fingerprint": "Fingerprint",
        "labels": "Labels",
        "label": "Label",
        "value": "Value",
        "ann_summary": "Alert summary",
        "ann_description": "Description",
        "annotations": "Other annotations",
        "generator_url": "Source",
        "expression": "Rule expression",
        "baseline_window": "Baseline window",
        "incident_window": "Incident window",
        "summary": "Summary",
        "localization": "Localization",
        "localized_to": "Localized to",
        "localized": "Localized.",
        "not_localized": "Not localized: the change is spread across segments.",
        "root_causes": "Root cause analysis",
        "no_root_causes": "No root-cause candidate was identified.",
        "rank": "#",
        "label_set": "Label set",
        "score": "Score",
        "change": "Baseline → incident",
        "share": "Share explained",
        "statement": "Statement",
        "cited": "Evidence",
        "impact": "Impact",
        "related": "Related context",
        "tickets": "Tickets",
        "remediation": "Remediation",
        "prevention": "Prevention",
        "none": "None.",
        "evidence": "Evidence",
        "no_evidence": "No evidence was collected.",
        "kind": "Kind",
        "range": "Range",
        "step": "step",
        "baseline": "Baseline",
        "incident": "Incident",
        "peak": "Peak",
        "more_rows": "… {n} more",
        "more_series": "… {n} more series",
        "series": "Series",
        "min": "min",
        "max": "max",
        "last": "last",
        "error": "Query error",
        "truncated": "Output truncated: only the most significant segments are kept.",
        "notes": "Notes",
        "llm": "LLM usage",
        "provider": "Provider",
        "model": "Model",
        "calls": "Calls",
        "tool_calls": "Tool calls",
        "tokens": "Tokens",
        "tokens_detail": "{total} (prompt {prompt} + completion {completion})",
        "seconds": "Seconds",
        "fallback": "Fallback reason",
        "offline": "This report was written offline (no LLM).",
        "grounding": "Grounding",
        "grounded": "All figures and citations trace to evidence.",
        "ungrounded": "Not traced to evidence:",
        "timings": "Timings",
        "phase": "Phase",
        "created_at": "Generated",
        "degraded": "Degraded: part of the investigation could not run (see Notes).",
        "still_firing": "still firing",
    },
    "zh": {
        "report": "根因分析报告",
        "report_id": "报告编号",
        "alert": "告警基本信息",
        "name": "告警名称",
        "status": "状态",
        "severity": "级别",
        "starts_at": "开始时间",
        "ends_at": "结束时间",
        "fingerprint": "指纹",
        "labels": "标签",
        "label": "标签",
        "value": "值",
        "ann_summary": "告警摘要",
        "ann_description": "告警描述",
        "annotations": "其他注解",
        "generator_url": "来源链接",
        "expression": "告警规则表达式",
        "baseline_window": "基线窗口",
        "incident_window": "故障窗口",
        "summary": "摘要",
        "localization": "定位结论",
        "localized_to": "已定位到",
        "localized": "已定位。",
        "not_localized": "未能定位：变化分散在多个分段中。",
        "root_causes": "根因分析",
        "no_root_causes": "未识别出根因候选。",
        "rank": "排名",
        "label_set": "维度组合",
        "score": "得分",
        "change": "基线 → 故障期",
        "share": "解释占比",
        "statement": "结论",
        "cited": "证据",
        "impact": "影响",
        "related": "相关情况",
        "tickets": "工单",
        "remediation": "处置步骤",
        "prevention": "预防措施",
        "none": "无。",
        "evidence": "证据",
        "no_evidence": "未收集到证据。",
        "kind": "类型",
        "range": "时间范围",
        "step": "步长",
        "baseline": "基线",
        "incident": "故障期",
        "peak": "峰值",
        "more_rows": "… 另有 {n} 行",
        "more_series": "… 另有 {n} 条序列",
        "series": "序列",
        "min": "最小",
        "max": "最大",
        "last": "最新",
        "error": "查询错误",
        "truncated": "结果已截断：仅保留最显著的分段。",
        "notes": "说明",
        "llm": "大模型使用情况",
        "provider": "提供方",
        "model": "模型",
        "calls": "调用次数",
        "tool_calls": "工具调用次数",
        "tokens": "Token 数",
        "tokens_detail": "{total}（输入 {prompt} + 输出 {completion}）",
        "seconds": "耗时（秒）",
        "fallback": "回退原因",
        "offline": "本报告为离线生成（未使用大模型）。",
        "grounding": "依据核验",
        "grounded": "所有数字与引用均可追溯到证据。",
        "ungrounded": "以下内容未能追溯到证据：",
        "timings": "耗时",
        "phase": "阶段",
        "created_at": "生成时间",
        "degraded": "降级：部分调查步骤未能执行（见“说明”）。",
        "still_firing": "仍在触发",
    },
}

_STATUS: dict[str, dict[str, str]] = {
    "en": {"firing": "FIRING", "resolved": "RESOLVED"},
    "zh": {"firing": "触发中", "resolved": "已恢复"},
}

_KINDS: dict[str, dict[str, str]] = {
    "en": {},
    "zh": {
        "signal": "信号",
        "breakdown": "维度拆分",
        "localization": "定位",
        "rule": "规则",
        "related": "相关告警",
    },
}

_PHASES: dict[str, dict[str, str]] = {
    "en": {},
    "zh": {
        "plan": "规划",
        "evidence": "取证",
        "breakdown": "维度拆分",
        "localize": "定位",
        "write": "撰写",
        "verify": "核验",
        "grounding": "核验",
        "total": "总计",
        "queries": "查询次数",
    },
}


def _lang(language: str) -> str:
    lang = (language or "").strip().lower()
    return lang if lang in _LABELS else "en"


# ---------------------------------------------------------------------------------------------------
# Numbers, times, label sets
# ---------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------
# Free text: code spans, citations, escaping
# ---------------------------------------------------------------------------------------------------

_ID = r"[A-Za-z][A-Za-z0-9_.-]{0,39}"
_INLINE = re.compile(r"(`+)(.+?)\1|\[\s*(" + _ID + r"(?:\s*[,，;、]\s*" + _ID + r")*)\s*\]")
_ID_SPLIT = re.compile(r"\s*[,，;、]\s*")
_EVIDENCE_ID = re.compile(r"E\d+")
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>])")
_MD_BLOCK_START = re.compile(r"^(?:[#=+-]|\d{1,9}[.)](?=\s|$))")
_PARAGRAPH_SPLIT = re.compile(r"\n\s*\n")

Token = tuple[str, Any]


def _collapse(text: str) -> str:
    return " ".join(str(text).split())


def _tokens(text: str, known: frozenset[str]) -> list[Token]:
    """Split one line of text into ("text", str), ("code", str) and ("cite", [ids]) tokens."""
    out: list[Token] = []
    pos = 0
    for m in _INLINE.finditer(text):
        if m.group(2) is not None:
            code = m.group(2).strip()
            if not code:
                continue
            out.append(("text", text[pos : m.start()]))
            out.append(("code", code))
        else:
            ids = _ID_SPLIT.split(m.group(3))
            if not all(i in known or _EVIDENCE_ID.fullmatch(i) for i in ids):
                continue
            out.append(("text", text[pos : m.start()]))
            out.append(("cite", ids))
        pos = m.end()
    out.append(("text", text[pos:]))
    return [t for t in out if t[1]]


def _md_escape(text: str, cell: bool) -> str:
    s = _MD_SPECIAL.sub(r"\\\1", text)
    return s.replace("|", "\\|") if cell else s


def _md_code(text: str, cell: bool = False) -> str:
    """An inline code span that the content cannot close; `|` escaped inside table cells."""
    s = _collapse(text)
    if not s:
        return "–"
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    if s.startswith("`") or s.endswith("`"):
        s = f" {s} "
    if cell:
        s = s.replace("|", "\\|")
    return f"{fence}{s}{fence}"


def _md_inline(text: Any, known: frozenset[str], cell: bool = False, line_start: bool = False) -> str:
    parts: list[str] = []
    for kind, value in _tokens(_collapse(str(text)), known):
        if kind == "code":
            parts.append(_md_code(value, cell))
        elif kind == "cite":
            if len(value) == 1:
                parts.append(f"[[{value[0]}]](#{value[0]})")
            else:
                parts.append("[" + ", ".join(f"[{i}](#{i})" for i in value) + "]")
        else:
            parts.append(_md_escape(value, cell))
    s = "".join(parts)
    if line_start:
        m = _MD_BLOCK_START.match(s)
        if m:
            marker = m.group(0)
            s = (marker[:-1] + "\\" + marker[-1] if marker[0].isdigit() else "\\" + marker) + s[m.end() :]
    return s


def _md_fence(text: str, info: str = "") -> str:
    body = str(text).strip("\n")
    longest = max((len(run) for run in re.findall(r"`{3,}", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def _html_inline(text: Any, known: frozenset[str]) -> Markup:
    parts: list[str] = []
    for kind, value in _tokens(_collapse(str(text)), known):
        if kind == "code":
            parts.append(f"<code>{escape(value)}</code>")
        elif kind == "cite":
            if len(value) == 1:
                i = escape(value[0])
                parts.append(f'<a class="cite" href="#{i}">[{i}]</a>')
            else:
                links = ", ".join(f'<a class="cite" href="#{escape(i)}">{escape(i)}</a>' for i in value)
                parts.append(f"[{links}]")
        else:
            parts.append(str(escape(value)))
    return Markup("".join(parts))


def _paragraphs(text: Any) -> list[str]:
    return [p for p in (_collapse(p) for p in _PARAGRAPH_SPLIT.split(str(text))) if p]


def _known(context: Context) -> frozenset[str]:
    known = context.get("known_ids")
    return known if isinstance(known, frozenset) else frozenset()


@pass_context
def _f_md(context: Context, text: Any) -> str:
    return _md_inline(text, _known(context))


@pass_context
def _f_mdline(context: Context, text: Any) -> str:
    return _md_inline(text, _known(context), line_start=True)


@pass_context
def _f_mdcell(context: Context, text: Any) -> str:
    return _md_inline(text, _known(context), cell=True) or " "


@pass_context
def _f_mdblock(context: Context, text: Any) -> str:
    known = _known(context)
    return "\n\n".join(_md_inline(p, known, line_start=True) for p in _paragraphs(text))


@pass_context
def _f_html(context: Context, text: Any) -> Markup:
    return _html_inline(text, _known(context))


@pass_context
def _f_htmlblock(context: Context, text: Any) -> Markup:
    known = _known(context)
    return Markup("\n").join(
        Markup("<p>") + _html_inline(p, known) + Markup("</p>") for p in _paragraphs(text)
    )


def _f_mdcodecell(text: Any) -> str:
    return _md_code(str(text), cell=True)


def _f_mdcode(text: Any) -> str:
    return _md_code(str(text))


def _f_anchor(value: Any) -> str:
    """An evidence id made safe for raw HTML ids in Markdown."""
    return _UNSAFE_NAME.sub("_", str(value)) or "_"


def _safe_url(value: str | None) -> str | None:
    """Only http(s) URLs become links; anything else (javascript:, data:...) stays text."""
    if value and re.match(r"^https?://[^\s<>\"'`\\]+$", value.strip(), re.IGNORECASE):
        return value.strip()
    return None


# ---------------------------------------------------------------------------------------------------
# Series: SVG sparklines (HTML) and block-character sparklines (Markdown)
# ---------------------------------------------------------------------------------------------------

_BLOCKS = "▁▂▃▄▅▆▇█"


def _series_points(series: Mapping[str, Any]) -> list[tuple[float, float]]:
    raw = series.get("points")
    if raw is None:
        raw = series.get("values")
    pts: list[tuple[float, float]] = []
    if not isinstance(raw, list | tuple):
        return pts
    for p in raw:
        try:
            ts, val = float(p[0]), float(p[1])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        if math.isfinite(ts) and math.isfinite(val):
            pts.append((ts, val))
    pts.sort()
    return pts


def _series_labels(series: Mapping[str, Any]) -> dict[str, str]:
    labels = series.get("labels")
    if labels is None:
        labels = series.get("metric")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _downsample(pts: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    if len(pts) <= limit:
        return pts
    stride = math.ceil(len(pts) / limit)
    out = pts[::stride]
    if out[-1] != pts[-1]:
        out.append(pts[-1])
    return out


def _text_spark(values: list[float], width: int = TEXT_SPARK_WIDTH) -> str:
    if not values:
        return ""
    if len(values) > width:
        buckets = [values[i * len(values) // width : (i + 1) * len(values) // width] for i in range(width)]
        values = [sum(b) / len(b) for b in buckets if b]
    lo, hi = min(values), max(values)
    if hi == lo:
        return _BLOCKS[3] * len(values)
    top = len(_BLOCKS) - 1
    return "".join(_BLOCKS[round((v - lo) / (hi - lo) * top)] for v in values)


def _sparklines(ev: Evidence, windows: Windows | None) -> tuple[list[dict[str, Any]], int]:
    """Up to MAX_SERIES sparklines for an evidence's series, and how many series were left out."""
    if not ev.series:
        return [], 0
    parsed = []
    for s in ev.series:
        if isinstance(s, Mapping):
            pts = _series_points(s)
            if pts:
                parsed.append((_series_labels(s), pts))
    shown = parsed[:MAX_SERIES]
    more = len(parsed) - len(shown)  # series without a usable point are not counted
    if not shown:
        return [], more
    x0 = min(to_utc(ev.start).timestamp(), min(p[0][0] for _, p in shown))
    x1 = max(to_utc(ev.end).timestamp(), max(p[-1][0] for _, p in shown))
    span_x = (x1 - x0) or 1.0
    inner_w = SPARK_WIDTH - 2 * SPARK_PAD
    inner_h = SPARK_HEIGHT - 2 * SPARK_PAD

    def xpos(ts: float) -> float:
        return SPARK_PAD + (ts - x0) / span_x * inner_w

    shade: dict[str, str] | None = None
    if windows is not None:
        a = max(x0, to_utc(windows.incident.start).timestamp())
        b = min(x1, to_utc(windows.incident.end).timestamp())
        if b > a:
            shade = {"x": f"{xpos(a):.1f}", "width": f"{max(xpos(b) - xpos(a), 1.0):.1f}"}

    out: list[dict[str, Any]] = []
    for labels, pts in shown:
        values = [v for _, v in pts]
        lo, hi = min(values), max(values)
        span_y = hi - lo

        def ypos(v: float, lo: float = lo, span_y: float = span_y) -> float:
            if span_y == 0:
                return SPARK_HEIGHT / 2
            return SPARK_PAD + inner_h - (v - lo) / span_y * inner_h

        drawn = _downsample(pts, MAX_SPARK_POINTS)
        coords = [(xpos(t), ypos(v)) for t, v in drawn]
        if len(coords) == 1:
            x, y = coords[0]
            coords = [(x - 2, y), (x + 2, y)]
        out.append(
            {
                "labels": fmt_labels(labels),
                "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in coords),
                "shade": shade,
                "min": fmt_num(lo),
                "max": fmt_num(hi),
                "last": fmt_num(values[-1]),
                "text": _text_spark(values),
                "width": SPARK_WIDTH,
                "height": SPARK_HEIGHT,
            }
        )
    return out, more


# ---------------------------------------------------------------------------------------------------
# The view both templates render
# ---------------------------------------------------------------------------------------------------


def _timing_rows(timings: Mapping[str, float], lang: str) -> list[tuple[str, str]]:
    rows = []
    for key, value in timings.items():
        if key.endswith("seconds"):
            phase = key.removesuffix("seconds").rstrip("_") or key
            shown = f"{fmt_num(value)} s"
        else:
            phase, shown = key, fmt_num(value)
        rows.append((_PHASES[lang].get(phase, phase), shown))
    return rows


def _context(report: Report) -> dict[str, Any]:
    lang = _lang(report.language)
    t = _LABELS[lang]
    alert = report.alert
    status_key = alert.status.strip().lower()
    annotations = alert.annotations
    other_annotations = [
        {"key": k, "value": v, "url": _safe_url(v)}
        for k, v in annotations.items()
        if k not in ("summary", "description") and v
    ]
    evidence = []
    for ev in report.evidence:
        sparks, series_more = _sparklines(ev, report.windows)
        evidence.append(
            {
                "ev": ev,
                "kind": _KINDS[lang].get(ev.kind, ev.kind),
                "range": fmt_range(ev.start, ev.end),
                "step": fmt_duration(ev.step),
                "rows": [
                    {
                        "labels": fmt_labels(s.labels),
                        "baseline": fmt_num(s.baseline),
                        "incident": fmt_num(s.incident),
                        "peak": fmt_num(s.peak),
                    }
                    for s in ev.stats[:MAX_STAT_ROWS]
                ],
                "more_rows": t["more_rows"].format(n=len(ev.stats) - MAX_STAT_ROWS)
                if len(ev.stats) > MAX_STAT_ROWS
                else "",
                "sparks": sparks,
                "more_series": t["more_series"].format(n=series_more) if series_more > 0 else "",
            }
        )
    root_causes = [
        {
            "rank": n,
            "rc": rc,
            "labels": fmt_labels(rc.labels),
            "score": fmt_num(rc.score),
            "change": f"{fmt_num(rc.baseline)} → {fmt_num(rc.incident)}",
            "share": fmt_pct(rc.explained_share),
        }
        for n, rc in enumerate(report.root_causes, start=1)
    ]
    llm = None
    if report.llm is not None:
        u = report.llm
        llm = {
            "u": u,
            "tokens": t["tokens_detail"].format(
                total=u.prompt_tokens + u.completion_tokens,
                prompt=u.prompt_tokens,
                completion=u.completion_tokens,
            ),
            "seconds": fmt_num(u.seconds),
        }
    windows = None
    if report.windows is not None:
        w = report.windows
        windows = {
            name: f"{fmt_range(tr.start, tr.end)} ({fmt_duration(tr.seconds)})"
            for name, tr in (("baseline", w.baseline), ("incident", w.incident))
        }
    return {
        "r": report,
        "t": t,
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "known_ids": frozenset(ev.id for ev in report.evidence),
        "status_text": _STATUS[lang].get(status_key, alert.status),
        "status_class": status_key if status_key in ("firing", "resolved") else "other",
        "severity": alert.labels.get("severity"),
        "starts_at": fmt_time(alert.starts_at),
        "ends_at": fmt_time(alert.ends_at) if alert.ends_at and alert.ends_at.year > 1 else t["still_firing"],
        "labels": sorted(alert.labels.items()),
        "ann_summary": annotations.get("summary", ""),
        "ann_description": annotations.get("description", ""),
        "other_annotations": other_annotations,
        "generator_url": alert.generator_url or "",
        "generator_href": _safe_url(alert.generator_url),
        "windows": windows,
        "verdict_labels": fmt_labels(report.root_causes[0].labels) if report.root_causes else None,
        "root_causes": root_causes,
        "evidence": evidence,
        "llm": llm,
        "timings": _timing_rows(report.timings, lang),
        "created_at": fmt_time(report.created_at),
        "tickets": [{"sink": tk.sink, "key": tk.key, "href": _safe_url(tk.url)} for tk in report.tickets],
    }


@functools.cache
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        md=_f_md,
        mdline=_f_mdline,
        mdcell=_f_mdcell,
        mdblock=_f_mdblock,
        mdcode=_f_mdcode,
        mdcodecell=_f_mdcodecell,
        mdfence=_md_fence,
        anchor=_f_anchor,
        prose=_f_html,
        proseblock=_f_htmlblock,
    )
    return env


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown, in the report's language."""
    text = _env().get_template("report.md.j2").render(_context(report))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts, no external assets)."""
    return _env().get_template("report.html.j2").render(_context(report))
