"""The shape of the package: no import cycles, no module too long to read in one sitting.

Both read the source as text (``ast``), so they see every import, even one that never runs in
a test, and they import nothing of engram.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "engram"
MAX_LINES = 600


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted name → file, of every module of the package (a package is its ``__init__``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _lazy_reexports(tree: ast.Module) -> set[ast.AST]:
    """The import statements inside a module-level ``__getattr__`` (PEP 562)."""
    return {
        node
        for function in tree.body
        if isinstance(function, ast.FunctionDef) and function.name == "__getattr__"
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }


def import_graph(package: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """Module → {module of the package it imports → line of the first such import}."""
    known = modules(package)

    def module_of(dotted: str) -> str | None:  # the longest prefix that is a module
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph: dict[str, dict[str, int]] = {}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skipped = _lazy_reexports(tree) if is_package else set()
        edges: dict[str, int] = {}
        for node in ast.walk(tree):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [module_of(alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the package of this module
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(here[: len(here) - node.level + 1])
                    source = f"{base}.{node.module}" if node.module else base
                else:
                    source = node.module or ""
                # `from p import m` imports the module p.m when there is one, else a name of p
                targets = [module_of(f"{source}.{alias.name}") for alias in node.names]
            else:
                continue
            for target in targets:
                if node in skipped and target and target.startswith(name + "."):
                    continue
                if target and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One shortest cycle through each group of modules that import one another (the
    strongly connected components of more than one module, by Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_shortest_cycle(graph, group) for group in groups]


def _shortest_cycle(graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """``[start, ..., start]``: breadth first from the group's first module back to it."""
    start = min(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target in sorted(graph[module]):
            if target == start:
                path = [module]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target in group and target not in came_from:
                came_from[target] = module
                queue.append(target)
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    """``a (line 3) → b (line 12) → a``: each module with the line of its import of the next."""
    steps = [f"{module} (line {graph[module][after]})" for module, after in zip(cycle, cycle[1:])]
    return " → ".join([*steps, cycle[-1]])


def test_no_import_cycles() -> None:
    """No module of engram takes part in an import cycle.

    Every ``import`` statement counts, wherever it stands: at the top, inside a function (a
    "late" import is still a cycle: it only moves the failure to the first call that runs
    it) or under ``if TYPE_CHECKING`` (the type checker follows it). ``from p import x``
    imports the module ``p.x`` when there is one, else a name of ``p``'s ``__init__``.

    Two things do not count. Python's own import of the parent packages (``import a.b``
    first runs ``a/__init__``): counting it would make every package whose ``__init__``
    re-exports its modules a cycle. And a package ``__init__``'s module-level
    ``__getattr__`` (PEP 562) importing one of the package's own modules: that is a lazy
    re-export, which runs only once the package has loaded, so a module that imports its
    package for a re-export closes a cycle only if the ``__init__`` imports it eagerly.
    """
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(graph, c) for c in found)


def test_no_module_over_600_lines() -> None:
    """A module longer than this is several modules: split it by concern."""
    long = {
        name: lines
        for name, path in modules().items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
