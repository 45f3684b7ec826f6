"""Which sinks hear about an alert: an Alertmanager-style route tree, evaluated by pure functions.

    route:
      sinks: [ops-redmine]            # the root matches every alert
      send_resolved: true
      routes:
        - matchers: ['severity="critical"']
          sinks: [oncall-wecom]
          continue: true              # keep looking at the next sibling
        - matchers: ['team=~"db|storage"', 'env!="dev"']
          sinks: [db-jira]

Semantics follow Alertmanager: a route matches when all its matchers match; its children are tried in
order and the first matching child wins unless it has `continue: true`; when no child matches, the
route itself delivers. Children inherit `sinks` and `send_resolved` from their parent when unset.
Regex matchers are anchored (`=~"db|net"` means `^(?:db|net)$`), and a missing label is "".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_MATCHER = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^"\s]*)\s*$"""
)


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    """Strip the quotes and undo `\\"`, `\\\\`, `\\n`, `\\t`; any other backslash is kept, as Alertmanager
    does, so a regex like `code=~"5\\d\\d"` keeps its `\\d`."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text[1:-1], flags=re.S)
    return text


@dataclass(frozen=True)
class RouteMatcher:
    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @classmethod
    def parse(cls, text: str) -> RouteMatcher:
        """`name="value"`, `name!=value`, `name=~"re"`, `name!~"re"` (quotes optional for simple values)."""
        m = _MATCHER.match(text)
        if m is None:
            raise ValueError(f'bad matcher {text!r}: expected name="value", name!=, name=~ or name!~')
        try:
            return cls(_unquote(m.group("name")), m.group("op"), _unquote(m.group("value")))  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"bad matcher {text!r}: {exc}") from None

    def __post_init__(self) -> None:
        # here rather than in parse, so a matcher given as a mapping ({name, op, value}) is checked too
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"bad regex {self.value!r}: {exc}") from None

    def matches(self, labels: dict[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = re.fullmatch(self.value, value) is not None  # anchored: the whole value, like ^(?:re)$
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    matchers: list[RouteMatcher] = Field(default_factory=list)
    sinks: list[str] | None = None  # None: the parent's
    send_resolved: bool | None = None  # None: the parent's (the root's default is true)
    send_updates: bool | None = None  # a changed analysis of a firing incident; None: the parent's (true)
    continue_: bool = Field(False, alias="continue")
    routes: list[Route] = Field(default_factory=list)

    @field_validator("matchers", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("a list of matchers like 'severity=\"critical\"'")
        return [RouteMatcher.parse(v) if isinstance(v, str) else v for v in value]

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class Target:
    sink: str
    send_resolved: bool = True
    send_updates: bool = True


def route(tree: Route, labels: dict[str, str]) -> list[Target]:
    """The sinks an alert with these labels goes to, in route order, each once. A sink reached through
    several routes (`continue`) gets resolved notices or updates if any of them asks for them, as
    Alertmanager would send through each route."""
    found: list[Target] = []
    root = Target(
        "",
        True if tree.send_resolved is None else tree.send_resolved,
        True if tree.send_updates is None else tree.send_updates,
    )
    _walk(tree, labels, tree.sinks or [], root, found)
    merged: dict[str, Target] = {}  # a sink reached by several routes: once, with either's options
    for t in found:
        had = merged.get(t.sink)
        merged[t.sink] = (
            t
            if had is None
            else Target(t.sink, had.send_resolved or t.send_resolved, had.send_updates or t.send_updates)
        )
    return list(merged.values())


def _walk(node: Route, labels: dict[str, str], sinks: list[str], opts: Target, out: list[Target]) -> bool:
    """Deliver through `node` if it matches; True when it matched (so the parent stops unless continue).
    `opts` carries the inherited send_resolved/send_updates."""
    if not node.matches(labels):
        return False
    matched_child = False
    for child in node.routes:
        child_sinks = child.sinks if child.sinks is not None else sinks
        child_opts = Target(
            "",
            opts.send_resolved if child.send_resolved is None else child.send_resolved,
            opts.send_updates if child.send_updates is None else child.send_updates,
        )
        if _walk(child, labels, child_sinks, child_opts, out):
            matched_child = True
            if not child.continue_:
                break
    if not matched_child:
        out.extend(Target(s, opts.send_resolved, opts.send_updates) for s in sinks)
    return True
