"""The import graph of modules/ and studio/: engine code never imports the studio, and nothing imports in a circle.

Built from the source with `ast` (top-level and function-level imports, relative imports resolved), so it
also sees the lazy imports that hide a cycle from the interpreter.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("modules", "studio")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imported_names(name: str, path: Path) -> set[str]:
    """Absolute dotted names of everything `path` imports (and, for `from X import Y`, also X.Y)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of modules/ and studio/ it imports."""
    sources = _sources()
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        targets = set()
        for imported in _imported_names(name, path):
            # `import a.b.c` or `from a.b import c`: the deepest part that is one of our modules.
            parts = imported.split(".")
            while parts and ".".join(parts) not in sources:
                parts.pop()
            if parts and ".".join(parts) != name:
                targets.add(".".join(parts))
        graph[name] = targets
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; returns the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A concrete cycle inside a strongly connected component: a -> b -> ... -> a."""
    members = set(component)
    start = component[0]
    # Breadth-first from start back to start, staying inside the component.
    paths = {w: [start, w] for w in sorted(graph[start] & members)}
    queue = list(paths)
    while queue:
        v = queue.pop(0)
        if start in graph[v]:
            return paths[v] + [start]
        for w in sorted(graph[v] & members):
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    raise AssertionError(f"no cycle through {start} in {component}")


def test_modules_never_import_studio() -> None:
    graph = import_graph()
    arrows = sorted(f"{a} -> {b}" for a, targets in graph.items() if a.startswith("modules")
                    for b in targets if b.startswith("studio"))
    assert not arrows, "modules/ must not import studio/:\n" + "\n".join(arrows)


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = [" -> ".join(one_cycle(graph, c)) for c in strongly_connected(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_graph_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The parser itself: a function-level relative import is an arrow."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    src = pkg / "a.py"
    src.write_text("def f():\n    from .b import thing\n    from . import c\n")
    assert {"pkg.b", "pkg.b.thing", "pkg.c", "pkg"} <= _imported_names("pkg.a", src)
