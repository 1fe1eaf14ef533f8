"""The package has no import cycles: every module can be read (and imported) after the ones it uses.

The graph is static, from the source's `import` statements wherever they sit (module level, inside a
function, under TYPE_CHECKING): an import deferred into a function still ties the two modules together,
it only hides the knot from the interpreter. An import of a package's own parent package (a submodule
running its `__init__`) is not an edge; an import of a sibling or of any other module is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nlp_transfer"


def module_names(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the package (packages by their __init__)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(
    module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]
) -> set[str]:
    """The package's modules one import statement names (`from a import b` names a.b when b is a module)."""
    root = module.split(".")[0]
    if isinstance(node, ast.Import):
        targets = {alias.name for alias in node.names}
    else:
        if node.level:  # relative: resolve against this module's package
            base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        targets = {target} | {f"{target}.{alias.name}" for alias in node.names}
    found = set()
    for target in targets:
        if target.split(".")[0] != root:
            continue
        while target and target not in modules:  # `import pkg.mod.attr` -> pkg.mod
            target = target.rpartition(".")[0]
        if target:
            found.add(target)
    return found


def import_graph(package: Path) -> dict[str, set[str]]:
    modules = module_names(package)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= imported(module, path, node, modules)
        # not an edge: the module itself, or a package it lives in (importing it runs that __init__ first anyway)
        graph[module] = {t for t in edges if t != module and not module.startswith(t + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (iterative depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in state and nxt in graph:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 50, "the graph should hold every module of the package"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # a function-level import closes the loop as much as a module-level one
        (
            {"a.py": "from pkg import b\n", "b.py": "def f():\n    from pkg.a import x\n"},
            ["pkg.a", "pkg.b", "pkg.a"],
        ),
        # relative imports and `from package import module`
        (
            {"a.py": "from . import b\n", "b.py": "from .c import y\n", "c.py": "import pkg.a\n"},
            ["pkg.a", "pkg.b", "pkg.c", "pkg.a"],
        ),
        # a submodule importing its own package's __init__ is not a cycle; outside packages are ignored
        (
            {
                "sub/__init__.py": "from pkg.sub.m import x\n",
                "sub/m.py": "from pkg.sub import y\nimport os\n",
            },
            None,
        ),
        ({"a.py": "import pkg.b\n", "b.py": "import json\n"}, None),
    ],
)
def test_the_check_finds_cycles_it_should_and_only_those(
    tmp_path: Path, files: dict[str, str], expected: list[str] | None
) -> None:
    package = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    assert find_cycle(import_graph(package)) == expected
