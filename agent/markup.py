"""Free text → safe Markdown or HTML, and the jinja2 filters the report templates use for it.

Alert labels, annotations, metric label values and the text written by the LLM or the offline writer
are untrusted. In Markdown they are backslash-escaped so they cannot open tags, links or break tables;
in HTML they are escaped. Within such text, `inline code` spans stay code and `[E3]` citations become
links to the evidence anchors, but only for ids the report knows (the template context's `known_ids`)
or ids shaped like `E<n>`.

Bidi controls (U+202A–U+202E, U+2066–U+2069) would reorder what a reader sees (`admin\u202egnp.exe`
shows as `adminexe.png`): every value a template prints shows them as that visible text instead
(`show_bidi_controls`, the templates' `finalize`), and no URL holding one becomes a link.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup, escape

__all__ = ["FILTERS", "safe_url", "show_bidi_controls"]

_ID = r"[A-Za-z][A-Za-z0-9_.-]{0,39}"
_INLINE = re.compile(r"(`+)(.+?)\1|\[\s*(" + _ID + r"(?:\s*[,，;、]\s*" + _ID + r")*)\s*\]")
_ID_SPLIT = re.compile(r"\s*[,，;、]\s*")
_EVIDENCE_ID = re.compile(r"E\d+")
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>])")
_MD_BLOCK_START = re.compile(r"^(?:[#=+-]|\d{1,9}[.)](?=\s|$))")
_PARAGRAPH_SPLIT = re.compile(r"\n\s*\n")
_UNSAFE_ANCHOR = re.compile(r"[^A-Za-z0-9_.-]")
_SAFE_URL = re.compile(r"^https?://[^\s<>\"'`\\\u202a-\u202e\u2066-\u2069]+$", re.IGNORECASE)
_BIDI_CONTROLS = {c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}

Token = tuple[str, Any]


def safe_url(value: str | None) -> str | None:
    """Only http(s) URLs become links; anything else (javascript:, data:...) stays text."""
    if value and _SAFE_URL.match(value.strip()):
        return value.strip()
    return None


def show_bidi_controls(value: Any) -> Any:
    """`value` with each bidi control as the visible text `\\u202e`; anything but text unchanged. Safe
    on escaped markup (the replacement is plain ASCII), so it runs last, on every printed value."""
    if isinstance(value, Markup):
        return Markup(str.translate(value, _BIDI_CONTROLS))
    if isinstance(value, str):
        return value.translate(_BIDI_CONTROLS)
    return value


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


def _paragraphs(text: Any) -> list[str]:
    return [p for p in (_collapse(p) for p in _PARAGRAPH_SPLIT.split(str(text))) if p]


# ---------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------


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
    """A fenced code block that the content cannot close."""
    body = str(text).strip("\n")
    longest = max((len(run) for run in re.findall(r"`{3,}", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


# ---------------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------
# jinja2 filters
# ---------------------------------------------------------------------------------------------------


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
    return _UNSAFE_ANCHOR.sub("_", str(value)) or "_"


FILTERS: dict[str, Callable[..., Any]] = {
    "md": _f_md,
    "mdline": _f_mdline,
    "mdcell": _f_mdcell,
    "mdblock": _f_mdblock,
    "mdcode": _f_mdcode,
    "mdcodecell": _f_mdcodecell,
    "mdfence": _md_fence,
    "anchor": _f_anchor,
    "prose": _f_html,
    "proseblock": _f_htmlblock,
}
"""The jinja2 filters of the report templates, by the name the templates call them."""


def environment(directory: Path) -> Environment:
    """A jinja2 environment for the templates in `directory`, as every page of alertsleuth is made:
    HTML templates (`*.html`, `*.html.j2`) autoescaped, undefined names an error, bidi controls shown
    (`show_bidi_controls` on every printed value), and the filters of this module."""
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=show_bidi_controls,
    )
    env.filters.update(FILTERS)
    return env
