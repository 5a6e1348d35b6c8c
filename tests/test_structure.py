"""The package's structure, as docs/architecture.md draws it: layers that import only downward, no import circle,
and short functions.

Every ``import`` statement in ``kdlab/`` counts, including the lazy ones inside functions: a lazy import that goes
back up a layer is still an upward dependency.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kdlab"

LAYERS = [
    ["__init__", "config", "checks", "record"],
    ["data", "models", "metrics"],
    ["methods"],
    ["train"],
    ["teachers", "experiments", "probes", "recipes", "bench", "trainer"],
    ["tables", "viz", "results"],
    ["widgets", "workbook", "notation", "book", "lab", "runner", "__main__"],
]
"""Each unit (a top-level module or sub-package of kdlab) imports only from units of earlier layers, or of its own
layer when that makes no circle. ``kdlab/__init__.py`` is the package's face and sits at the bottom."""

SAME_LAYER_FORBIDDEN = {("data", "models"), ("models", "data")}
"""Same-layer pairs that must not import each other at all (docs/architecture.md: data and models are siblings)."""

MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(node: ast.ImportFrom | ast.Import, path: Path) -> list[str]:
    """The kdlab modules an import statement loads (a ``from pkg import sub`` loads ``pkg.sub`` when it is one)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "kdlab"]
    if node.level:
        base = package_of(path).split(".")
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "kdlab":
        return []
    found = [target]
    for alias in node.names:
        if f"{target}.{alias.name}" in MODULES:
            found.append(f"{target}.{alias.name}")
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the kdlab modules it imports (resolved to modules that exist; a name inside a module counts as
    that module)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in resolve(node, path):
                    while target not in MODULES and "." in target:
                        target = target.rpartition(".")[0]
                    if target in MODULES and target != name:
                        graph[name].add(target)
        graph.setdefault(name, set())
    return graph


def unit_of(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def test_every_module_has_a_layer():
    missing = sorted({unit_of(m) for m in MODULES} - set(LAYER_OF))
    assert not missing, f"modules not placed in a layer (add them to LAYERS and docs/architecture.md): {missing}"


def test_imports_only_go_down_the_layers():
    upward = []
    for module, targets in import_graph().items():
        for target in targets:
            a, b = unit_of(module), unit_of(target)
            if a == b:
                continue
            if LAYER_OF[b] > LAYER_OF[a] or (a, b) in SAME_LAYER_FORBIDDEN:
                upward.append(f"{module} (layer {LAYER_OF[a]}) imports {target} (layer {LAYER_OF[b]})")
    assert not upward, "imports that go back up a layer:\n" + "\n".join(sorted(upward))


def test_other_packages_are_imported_through_their_face():
    """``from ..methods import X``, never ``from ..methods.swtat import X``, from outside ``kdlab.methods``: a package
    may then reorganise its files without touching its users."""
    into_submodules = []
    for module, targets in import_graph().items():
        for target in targets:
            if unit_of(target) != unit_of(module) and target.count(".") > 1:
                into_submodules.append(f"{module} imports {target}")
    assert not into_submodules, "import these through the package face:\n" + "\n".join(sorted(into_submodules))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (the import circles)."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def test_no_import_circle():
    assert strongly_connected(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_relative_and_lazy_imports():
    graph = import_graph()
    assert "kdlab.config" in graph["kdlab"]  # `from .config import ...` in the package face
    assert any(unit_of(t) == "methods" for t in graph["kdlab.train"])  # the trainer knows the Distiller


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_is_longer_than_60_lines(path):
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"split these by meaning: {long}"
