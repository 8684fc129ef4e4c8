"""etcher-core's modules import one way only (docs/architecture.md has the map).

Two checks of the same rule. The import-linter contract in the root
pyproject.toml pins the layers (``lint-imports``, also run by ``nox -s lint``);
it is run here when import-linter is installed. The cycle check below needs
nothing: it reads every module's imports (those inside functions included:
importing lazily does not untangle a cycle, it hides it; only imports made
for type checkers are left out) and fails on any cycle among ``etcher.*``.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import etcher

PACKAGE = Path(etcher.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[2]


def _module_name(path: Path, root: Path) -> str:
    parts = ["etcher", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.AST, modules: set[str]) -> set[str]:
    """The ``etcher`` modules a module imports anywhere, except under ``if TYPE_CHECKING``."""
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return {name for name in found if name in modules}


def import_graph(root: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` for the ``etcher`` package whose folder is ``root``."""
    files = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)
    return {
        name: _imported(ast.parse(path.read_text(encoding="utf-8")), modules) - {name}
        for name, path in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycle_among_etcher_modules() -> None:
    graph = import_graph(PACKAGE)
    assert {"etcher._session", "etcher._db", "etcher._containers"} <= set(graph)
    # The shipped kit (etcher.testing) included: its families import one way too.
    assert "etcher.testing.containers.edges" in graph
    assert cycles(graph) == []


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    pkg = tmp_path / "etcher"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from etcher.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from etcher import a\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from etcher.a import f\n"
    )
    graph = import_graph(pkg)
    assert cycles(graph) == [["etcher.a", "etcher.b"]]
    assert graph["etcher.c"] == set(), "imports for type checkers only are not edges"


def test_the_layer_contract_holds() -> None:
    cli = pytest.importorskip("importlinter.cli", reason="import-linter is not installed")
    cwd = os.getcwd()
    os.chdir(REPO)  # the contract names the package; grimp finds it on sys.path
    try:
        status = cli.lint_imports(
            config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True
        )
    finally:
        os.chdir(cwd)
    assert status == cli.EXIT_STATUS_SUCCESS, "lint-imports found an import against the layers"
