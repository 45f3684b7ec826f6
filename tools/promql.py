"""PromQL parsing and rewriting on a real parse tree.

`promql_parser` (a binding of the Rust PromQL parser) produces the tree; its nodes are read-only, so
we convert them once into small frozen dataclasses of our own, rewrite those, and print them back to
PromQL. No regular expressions touch the query text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

import promql_parser as pp

from tools.errors import UnsupportedQuery

COMPARISONS = frozenset({">", "<", ">=", "<=", "==", "!="})
SET_OPS = frozenset({"and", "or", "unless"})
# Aggregations whose result is grouped by their by/without clause.
GROUPING_AGGS = frozenset(
    {
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "group",
        "stddev",
        "stdvar",
        "quantile",
        "count_values",
        "topk",
        "bottomk",
        "limitk",
        "limit_ratio",
    }
)


class Node:
    """A PromQL expression node."""

    def promql(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.promql()


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str

    def promql(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


@dataclass(frozen=True)
class Selector(Node):
    metric: str | None
    matchers: tuple[Matcher, ...] = ()
    suffix: str = ""  # offset / @ modifiers, printed as parsed

    def promql(self) -> str:
        inner = ",".join(m.promql() for m in self.matchers)
        body = f"{self.metric or ''}{{{inner}}}" if inner or not self.metric else self.metric
        return body + self.suffix


@dataclass(frozen=True)
class Matrix(Node):
    selector: Selector
    range: timedelta

    def promql(self) -> str:
        sel = replace(self.selector, suffix="")
        return f"{sel.promql()}[{pp.display_duration(self.range)}]{self.selector.suffix}"


@dataclass(frozen=True)
class Subquery(Node):
    expr: Node
    range: timedelta
    step: timedelta | None
    suffix: str = ""

    def promql(self) -> str:
        step = pp.display_duration(self.step) if self.step else ""
        inner = self.expr.promql()
        if isinstance(self.expr, Binary | Negation):
            inner = f"({inner})"
        return f"{inner}[{pp.display_duration(self.range)}:{step}]{self.suffix}"


@dataclass(frozen=True)
class Number(Node):
    value: float

    def promql(self) -> str:
        if self.value == int(self.value) and abs(self.value) < 1e15:
            return str(int(self.value))
        return repr(self.value)


@dataclass(frozen=True)
class String(Node):
    value: str

    def promql(self) -> str:
        return _quote(self.value)


@dataclass(frozen=True)
class Paren(Node):
    expr: Node

    def promql(self) -> str:
        return f"({self.expr.promql()})"


@dataclass(frozen=True)
class Negation(Node):
    expr: Node

    def promql(self) -> str:
        return f"-{self.expr.promql()}"


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple[Node, ...]

    def promql(self) -> str:
        return f"{self.func}({', '.join(a.promql() for a in self.args)})"


@dataclass(frozen=True)
class Aggregate(Node):
    op: str
    expr: Node
    param: Node | None = None
    grouping: tuple[str, ...] | None = None  # None: no clause
    without: bool = False

    def promql(self) -> str:
        clause = ""
        if self.grouping is not None:
            clause = f" {'without' if self.without else 'by'} ({', '.join(self.grouping)})"
        args = f"{self.param.promql()}, {self.expr.promql()}" if self.param else self.expr.promql()
        return f"{self.op}{clause} ({args})"


@dataclass(frozen=True)
class Binary(Node):
    op: str
    lhs: Node
    rhs: Node
    return_bool: bool = False
    matching: tuple[str, ...] | None = None  # labels of on()/ignoring()
    ignoring: bool = False
    card: str | None = None  # "group_left" / "group_right"
    group_labels: tuple[str, ...] = ()

    def promql(self) -> str:
        mod = " bool" if self.return_bool else ""
        if self.matching is not None:
            mod += f" {'ignoring' if self.ignoring else 'on'} ({', '.join(self.matching)})"
        if self.card:
            mod += f" {self.card} ({', '.join(self.group_labels)})"
        return f"{self.lhs.promql()} {self.op}{mod} {self.rhs.promql()}"


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


_MATCH_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def parse(text: str) -> Node:
    """Parse PromQL into our tree; raises UnsupportedQuery with the parser's message."""
    try:
        raw = pp.parse(text)
    except Exception as exc:  # the binding raises ValueError/RuntimeError with the parser's text
        raise UnsupportedQuery(f"cannot parse PromQL: {exc}") from exc
    return _convert(raw)


def _suffix(offset: timedelta | None, at: object | None) -> str:
    out = ""
    if offset:
        sign = "-" if offset < timedelta(0) else ""
        out += f" offset {sign}{pp.display_duration(abs(offset))}"
    if at is not None:
        kind = str(getattr(at, "type", "")).rsplit(".", 1)[-1]
        if kind == "Start":
            out += " @ start()"
        elif kind == "End":
            out += " @ end()"
        elif getattr(at, "at", None) is not None:
            out += f" @ {at.at.timestamp():.3f}"  # type: ignore[attr-defined]
    return out


def _selector(vs: pp.VectorSelector) -> Selector:
    if vs.matchers.or_matchers:
        raise UnsupportedQuery("selectors with 'or' matchers are not supported")
    matchers = tuple(
        Matcher(m.name, _MATCH_OPS[str(m.op).rsplit(".", 1)[-1]], m.value)
        for m in vs.matchers.matchers
        if not (m.name == "__name__" and vs.name)
    )
    return Selector(vs.name, matchers, _suffix(vs.offset, vs.at))


def _convert(e: pp.Expr) -> Node:
    if isinstance(e, pp.VectorSelector):
        return _selector(e)
    if isinstance(e, pp.MatrixSelector):
        return Matrix(_selector(e.vector_selector), e.range)
    if isinstance(e, pp.NumberLiteral):
        return Number(float(e.val))
    if isinstance(e, pp.StringLiteral):
        return String(e.val)
    if isinstance(e, pp.ParenExpr):
        return Paren(_convert(e.expr))
    if isinstance(e, pp.UnaryExpr):
        return Negation(_convert(e.expr))
    if isinstance(e, pp.SubqueryExpr):
        return Subquery(_convert(e.expr), e.range or timedelta(0), e.step, _suffix(e.offset, e.at))
    if isinstance(e, pp.Call):
        return Call(e.func.name, tuple(_convert(a) for a in e.args))
    if isinstance(e, pp.AggregateExpr):
        grouping: tuple[str, ...] | None = None
        without = False
        if e.modifier is not None:
            grouping = tuple(e.modifier.labels)
            without = str(e.modifier.type).endswith("Without")
        param = _convert(e.param) if e.param is not None else None
        return Aggregate(str(e.op), _convert(e.expr), param, grouping, without)
    if isinstance(e, pp.BinaryExpr):
        mod = e.modifier
        matching = None
        ignoring = False
        card = None
        group: tuple[str, ...] = ()
        return_bool = False
        if mod is not None:
            return_bool = bool(mod.return_bool)
            if mod.matching is not None:
                matching = tuple(mod.matching.labels)
                ignoring = str(mod.matching.type).endswith("Exclude")
            kind = str(mod.card).rsplit(".", 1)[-1]
            if kind == "ManyToOne":
                card = "group_left"
            elif kind == "OneToMany":
                card = "group_right"
            group = tuple(mod.group_labels or ())
        return Binary(
            str(e.op), _convert(e.lhs), _convert(e.rhs), return_bool, matching, ignoring, card, group
        )
    raise UnsupportedQuery(f"unsupported PromQL node {type(e).__name__}")


# ---------------------------------------------------------------- traversal and rewriting


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Matrix):
        return (node.selector,)
    if isinstance(node, Subquery | Paren | Negation):
        return (node.expr,)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Aggregate):
        return (node.param, node.expr) if node.param else (node.expr,)
    if isinstance(node, Binary):
        return (node.lhs, node.rhs)
    return ()


def walk(node: Node) -> Iterable[Node]:
    yield node
    for child in children(node):
        yield from walk(child)


def transform(node: Node, fn: Callable[[Node], Node]) -> Node:
    """Rebuild the tree bottom-up, applying fn to every node after its children."""
    if isinstance(node, Matrix):
        sel = transform(node.selector, fn)
        assert isinstance(sel, Selector)
        node = replace(node, selector=sel)
    elif isinstance(node, Subquery | Paren | Negation):
        node = replace(node, expr=transform(node.expr, fn))
    elif isinstance(node, Call):
        node = replace(node, args=tuple(transform(a, fn) for a in node.args))
    elif isinstance(node, Aggregate):
        param = transform(node.param, fn) if node.param else None
        node = replace(node, expr=transform(node.expr, fn), param=param)
    elif isinstance(node, Binary):
        node = replace(node, lhs=transform(node.lhs, fn), rhs=transform(node.rhs, fn))
    return fn(node)


def unwrap(node: Node) -> Node:
    while isinstance(node, Paren):
        node = node.expr
    return node


def selectors(node: Node) -> list[Selector]:
    return [n for n in walk(node) if isinstance(n, Selector)]


def metric_names(node: Node) -> list[str]:
    """The metric names the expression reads, in order: selectors' names and `{__name__="..."}`."""
    seen: dict[str, None] = {}
    for sel in selectors(node):
        if sel.metric:
            seen.setdefault(sel.metric, None)
        for m in sel.matchers:
            if m.name == "__name__" and m.op == "=":
                seen.setdefault(m.value, None)
    return list(seen)


def _is_scalar(node: Node) -> bool:
    node = unwrap(node)
    if isinstance(node, Number):
        return True
    if isinstance(node, Negation):
        return _is_scalar(node.expr)
    if isinstance(node, Call) and node.func in {"scalar", "time", "vector"}:
        return node.func != "vector" or _is_scalar(node.args[0])
    if isinstance(node, Binary):
        return _is_scalar(node.lhs) and _is_scalar(node.rhs)
    return False


@dataclass(frozen=True)
class Condition:
    """An alert expression split into the measured signal and its threshold."""

    signal: Node
    op: str | None = None
    threshold: float | None = None
    notes: tuple[str, ...] = ()


def split_condition(node: Node) -> Condition:
    """Strip the threshold comparison (and trailing `and`/`unless` guards) from an alert expression."""
    notes: list[str] = []
    node = unwrap(node)
    while isinstance(node, Binary) and node.op in {"and", "unless"}:
        notes.append(f"ignored guard '{node.op} {node.rhs.promql()}'")
        node = unwrap(node.lhs)
    if isinstance(node, Binary) and node.op in COMPARISONS and not node.return_bool:
        if _is_scalar(node.rhs):
            return Condition(unwrap(node.lhs), node.op, _scalar_value(node.rhs), tuple(notes))
        if _is_scalar(node.lhs):
            return Condition(unwrap(node.rhs), _flip(node.op), _scalar_value(node.lhs), tuple(notes))
        notes.append(f"threshold is another vector ({node.rhs.promql()}); analysing the left side")
        return Condition(unwrap(node.lhs), node.op, None, tuple(notes))
    return Condition(node, None, None, tuple(notes))


def _flip(op: str) -> str:
    return {">": "<", "<": ">", ">=": "<=", "<=": ">="}.get(op, op)


def _scalar_value(node: Node) -> float | None:
    node = unwrap(node)
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Negation):
        inner = _scalar_value(node.expr)
        return -inner if inner is not None else None
    return None


def group_by(node: Node, labels: Iterable[str]) -> Node:
    """Rewrite every grouping aggregation (and vector matching) so `labels` survive to the result.

    `sum(x)` -> `sum by (l)(x)`, `sum by (a)(x)` -> `sum by (a, l)(x)`, `sum without (l, b)(x)` ->
    `sum without (b)(x)`, `a / on(i) b` -> `a / on(i, l) b`.
    """
    extra = tuple(dict.fromkeys(labels))

    def add(node: Node) -> Node:
        if isinstance(node, Aggregate) and node.op in GROUPING_AGGS:
            if node.without and node.grouping is not None:
                return replace(node, grouping=tuple(lbl for lbl in node.grouping if lbl not in extra))
            current = node.grouping or ()
            return replace(
                node, grouping=current + tuple(lbl for lbl in extra if lbl not in current), without=False
            )
        if isinstance(node, Binary) and node.matching is not None:
            if node.ignoring:
                return replace(node, matching=tuple(lbl for lbl in node.matching if lbl not in extra))
            return replace(
                node, matching=node.matching + tuple(lbl for lbl in extra if lbl not in node.matching)
            )
        return node

    return transform(node, add)


def with_matchers(node: Node, matchers: Iterable[Matcher]) -> Node:
    """Add label matchers to every selector (used to restrict a query to one segment)."""
    extra = tuple(matchers)

    def add(node: Node) -> Node:
        if isinstance(node, Selector):
            names = {m.name for m in extra}
            kept = tuple(m for m in node.matchers if m.name not in names or m.op != "=")
            return replace(node, matchers=kept + extra)
        return node

    return transform(node, add)


def window_mean(node: Node, length: timedelta, offset: timedelta, step: timedelta) -> Node:
    """`node`'s mean over the `length` that ends `offset` before the evaluation time, as one instant
    expression. Pushed inside a sum where that is cheap and means the same: a gauge's
    `sum by (l) (avg_over_time(x[length] offset o))`, a counter's `sum by (l) (rate(x[length] offset o))`
    (the mean rate over the window; never shorter than the rate's own range, so the window holds
    samples); else a subquery at `step`."""
    suffix = f" offset {pp.display_duration(offset)}" if offset > timedelta(0) else ""
    agg = unwrap(node)
    if isinstance(agg, Aggregate) and agg.op == "sum" and agg.param is None:
        inner = unwrap(agg.expr)
        if isinstance(inner, Selector) and not inner.suffix:
            moved = Matrix(replace(inner, suffix=suffix), length)
            return replace(agg, expr=Call("avg_over_time", (moved,)))
        if (
            isinstance(inner, Call)
            and inner.func in ("rate", "irate")
            and len(inner.args) == 1
            and isinstance(inner.args[0], Matrix)
            and not inner.args[0].selector.suffix
        ):
            m = inner.args[0]
            moved = Matrix(replace(m.selector, suffix=suffix), max(length, m.range))
            return replace(agg, expr=Call("rate", (moved,)))
    return Call("avg_over_time", (Subquery(node, length, step, suffix),))


@dataclass(frozen=True)
class Shape:
    """How an alert signal decomposes for localization.

    kind: "ratio" (num / den, both additive; `avg` is sum / count), "additive" (a sum or a count over
    series), "quantile" (`histogram_quantile(q, sum by (le) (...))`: `num` is the bucket sum,
    `quantile` is q), "extreme" (`max`, `min`, `topk`, `bottomk`: `num` is `max` or `min` of the
    aggregated expression, whose leaves are the series that make the extreme), or "other".
    """

    kind: str
    num: Node
    den: Node | None = None
    scale: float = 1.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    quantile: float | None = None


EXTREMES = {"max": "max", "topk": "max", "min": "min", "bottomk": "min"}  # aggregation -> its leaves'


def _additive(node: Node) -> bool:
    node = unwrap(node)
    if isinstance(node, Aggregate):
        return node.op in {"sum", "count"}
    if isinstance(node, Binary) and node.op in {"+", "-"}:
        return _additive(node.lhs) and _additive(node.rhs)
    return False


def _keeps(agg: Aggregate, label: str) -> bool:
    """Does the aggregation keep `label` in its result?"""
    if agg.without:
        return label not in (agg.grouping or ())
    return label in (agg.grouping or ())


def bucket_rates(buckets: Aggregate, le: str, labels: Sequence[str]) -> Aggregate:
    """The histogram's cumulative count at bucket `le`, summed by `labels` only (`le` dropped), from
    the bucket sum of a quantile shape: `sum by (le) (rate(x_bucket[5m]))`, le="0.5", [route] ->
    `sum by (route) (rate(x_bucket{le="0.5"}[5m]))`."""
    inner = with_matchers(buckets.expr, [Matcher("le", "=", le)])
    return Aggregate("sum", inner, None, tuple(dict.fromkeys(labels)))


def slower_than(buckets: Aggregate, le: str, labels: Sequence[str]) -> tuple[Node, Node]:
    """(observations above bucket `le`, all observations), by `labels`: the quantile as a ratio."""
    total = bucket_rates(buckets, "+Inf", labels)
    return Binary("-", total, bucket_rates(buckets, le, labels)), total


def shape_of(signal: Node) -> Shape:
    """Recognise ratios of sums (failure ratios, error rates), plain sums and histogram quantiles."""
    node = unwrap(signal)
    scale = 1.0
    # `ratio * 100` or `100 * ratio`
    if isinstance(node, Binary) and node.op == "*" and not node.return_bool:
        if _is_scalar(node.rhs) and (value := _scalar_value(node.rhs)) is not None:
            node, scale = unwrap(node.lhs), value
        elif _is_scalar(node.lhs) and (value := _scalar_value(node.lhs)) is not None:
            node, scale = unwrap(node.rhs), value
    if (
        isinstance(node, Call)
        and node.func == "histogram_quantile"
        and len(node.args) == 2
        and (q := _scalar_value(node.args[0])) is not None
        and isinstance(buckets := unwrap(node.args[1]), Aggregate)
        and buckets.op == "sum"
        and _keeps(buckets, "le")
    ):
        return Shape("quantile", buckets, None, scale, quantile=q)
    if isinstance(node, Binary) and node.op == "/" and _additive(node.lhs) and _additive(node.rhs):
        return Shape("ratio", unwrap(node.lhs), unwrap(node.rhs), scale)
    if isinstance(node, Aggregate) and node.op == "avg":  # avg = sum / count, over the same series
        total, count = replace(node, op="sum"), replace(node, op="count")
        return Shape(
            "ratio", total, count, scale, (f"{node.op}: localized as {total.promql()} / {count.promql()}",)
        )
    if isinstance(node, Aggregate) and node.op in EXTREMES:
        op = EXTREMES[node.op]
        return Shape("extreme", Aggregate(op, node.expr, None, node.grouping, node.without), None, scale)
    if _additive(node):
        return Shape("additive", node, None, scale)
    return Shape(
        "other",
        node,
        None,
        scale,
        (
            f"signal shape '{type(node).__name__}' is not a sum or a ratio "
            "of sums; breakdowns are compared value by value",
        ),
    )


def outer_grouping(node: Node) -> tuple[str, ...]:
    """Labels the signal keeps in its result (the alert's own identifying labels)."""
    node = unwrap(node)
    if isinstance(node, Aggregate):
        return node.grouping if (node.grouping and not node.without) else ()
    if isinstance(node, Binary):
        if node.matching is not None and not node.ignoring and node.op not in SET_OPS:
            return node.matching
        return tuple(dict.fromkeys(outer_grouping(node.lhs) + outer_grouping(node.rhs)))
    return ()
