"""The packages' import graph, read from the source with ``ast``: no loops, and framework-free cores.

Every import of the repository's own packages counts, at module level or inside a function (a
function-level import hides a loop without removing it). The checks: no cycle between top-level
packages; no cycle between the modules of ``api`` or of ``catalog``; no Flask (or werkzeug,
Flask-Caching) in ``catalog``, ``cache`` or ``jobs``; ``jobs`` never imports ``api``; and ``cache``
names no Shelf resource. Each check is a function of the graph, so a test below feeds it a graph
with the fault planted and sees it fail.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "cache", "catalog", "jobs")
FRAMEWORK = ("flask", "flask_caching", "flask_cors", "flask_smorest", "werkzeug", "webargs")
FRAMEWORK_FREE = ("cache", "catalog", "jobs")
CATALOG_WORDS = ("product", "category", "review")
"""Words a key or TTL of Shelf's catalog would name, which the generic cache must not."""

Graph = dict[str, set[str]]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, module: str, modules: Iterable[str]) -> Iterable[str]:
    """Every module ``path`` imports: ``from a import b`` is ``a.b`` where that is one of ``modules``,
    else ``a`` (a name ``a`` defines)."""
    known = set(modules)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base


def module_graph() -> Graph:
    """Each module of ``PACKAGES`` and what it imports: the repository's modules and third parties."""
    paths = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    modules = {module_name(path): path for path in paths}
    graph: Graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imported(path, module, modules):
            if name.split(".")[0] in PACKAGES:
                if name in modules:
                    targets.add(name)
            else:
                targets.add(name.split(".")[0])
        graph[module] = targets - {module}
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def package_graph(graph: Graph) -> Graph:
    """Top-level packages and the other top-level packages of the repository they import."""
    packages: Graph = {}
    for module, targets in graph.items():
        own = module.split(".")[0]
        packages.setdefault(own, set()).update(
            t.split(".")[0] for t in targets if t.split(".")[0] in PACKAGES and t.split(".")[0] != own
        )
    return packages


def inside(graph: Graph, package: str) -> Graph:
    """The graph of ``package``'s own modules, importing each other."""
    ours = {module for module in graph if module.split(".")[0] == package}
    return {module: graph[module] & ours for module in ours}


def framework_imports(graph: Graph) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.split(".")[0] in FRAMEWORK_FREE
        for target in targets
        if target in FRAMEWORK
    )


def jobs_to_api(graph: Graph) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.split(".")[0] == "jobs"
        for target in targets
        if target.split(".")[0] == "api"
    )


def resource_names(sources: dict[str, str]) -> list[str]:
    """Places in ``cache``'s code (docstrings and comments aside) that name a Shelf resource: a string,
    a name or a function of ``product``, ``category`` or ``review``."""
    found = []
    for name, source in sources.items():
        tree = ast.parse(source)
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                words = node.value
            elif isinstance(node, ast.Name | ast.FunctionDef):
                words = getattr(node, "id", None) or node.name
            elif isinstance(node, ast.Attribute):
                words = node.attr
            else:
                continue
            if re.search(r"(^|_|\b)(" + "|".join(CATALOG_WORDS) + r")", words):
                found.append(f"{name}:{getattr(node, 'lineno', '?')}: {words[:60]!r}")
    return found


def cache_sources() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text() for path in (ROOT / "cache").rglob("*.py")}


# --- the repository as it is ------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    return module_graph()


def test_no_cycle_between_top_level_packages(graph):
    assert cycles(package_graph(graph)) == []


@pytest.mark.parametrize("package", ["api", "catalog"])
def test_no_cycle_inside_the_package(graph, package):
    assert cycles(inside(graph, package)) == []


def test_the_core_the_cache_and_the_jobs_import_no_web_framework(graph):
    assert framework_imports(graph) == []


def test_jobs_never_import_the_api(graph):
    assert jobs_to_api(graph) == []


def test_the_cache_names_no_shelf_resource():
    assert resource_names(cache_sources()) == []


# --- each check fails when its rule is broken -------------------------------------------------


def test_a_cycle_between_packages_is_found(graph):
    planted = {**graph, "catalog.models": graph["catalog.models"] | {"api.errors"}}
    assert {"api", "catalog"} <= set(*cycles(package_graph(planted)))


def test_a_cycle_inside_a_package_is_found_even_through_a_function_level_import(tmp_path):
    (tmp_path / "one.py").write_text("from . import two\n")
    (tmp_path / "two.py").write_text("def later():\n    from . import one\n")
    modules = ("pkg.one", "pkg.two")
    planted = {name: set(imported(tmp_path / f"{name[4:]}.py", name, modules)) for name in modules}
    assert cycles({module: targets & set(planted) for module, targets in planted.items()}) == [
        ["pkg.one", "pkg.two"]
    ]


def test_flask_in_the_core_is_found(graph):
    planted = {**graph, "catalog.db": graph["catalog.db"] | {"flask"}}
    assert framework_imports(planted) == ["catalog.db imports flask"]


def test_jobs_importing_the_api_is_found(graph):
    planted = {**graph, "jobs.context": graph["jobs.context"] | {"api"}}
    assert jobs_to_api(planted) == ["jobs.context imports api"]


def test_a_resource_named_in_the_cache_is_found():
    planted = {"cache/keys.py": 'RESOURCE_TAGS = {"product": "p"}\n\ndef category_tree():\n    pass\n'}
    assert len(resource_names(planted)) == 2
