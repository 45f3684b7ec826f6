"""The house's structure, checked with `ast` so it stays true: dependencies run one way
(server → agent → tools), the product never imports the demo exporter, tests or benchmarks, there is
no import cycle among the product's modules (imports inside functions included), and no module grows
past about 600 lines (650, to leave room)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("tools", "agent", "server")
LAYER = {"tools": 0, "agent": 1, "server": 2}
MAX_LINES = 650


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(packages: tuple[str, ...]) -> dict[str, Path]:
    return {_module_name(p): p for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(path: Path, name: str) -> set[str]:
    """Every module `path` imports, anywhere in it (top level, functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules(PRODUCT)
    return {name: {m for m in _imports(path, name) if m in mods and m != name} for name, path in mods.items()}


def test_dependencies_run_one_way() -> None:
    wrong = []
    for name, path in _modules(PRODUCT).items():
        layer = LAYER[name.split(".")[0]]
        for imported in _imports(path, name):
            top = imported.split(".")[0]
            if top in ("exporter", "tests", "bench"):
                wrong.append(f"{name} imports {imported} (the product must not import {top}/)")
            elif top in LAYER and LAYER[top] > layer:
                wrong.append(f"{name} imports {imported} (against server → agent → tools)")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_benchmarks_do_not_import_tests() -> None:
    wrong = [
        f"{name} imports {imported}"
        for name, path in _modules(("bench",)).items()
        for imported in _imports(path, name)
        if imported.split(".")[0] == "tests"
    ]
    assert not wrong, "\n".join(wrong)


def test_modules_stay_small() -> None:
    big = {
        name: n
        for name, path in _modules((*PRODUCT, "exporter")).items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines (split them by job): {big}"


def test_the_checker_sees_a_cycle_and_a_lazy_import(tmp_path: Path) -> None:
    """The graph includes imports made inside functions, which is how the old agent circle hid."""
    path = tmp_path / "mod.py"
    path.write_text("def f():\n    from agent.llm_writer import X\n    from . import sibling\n")
    assert {"agent.llm_writer", "agent.llm_writer.X"} <= _imports(path, "agent.mod")
    assert "agent.sibling" in _imports(path, "agent.mod")
