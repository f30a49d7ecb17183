"""The ``nexanest_db.secrets`` package: no import cycle, and one catalogue every other secret name comes from."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from nexanest_db.secrets import DEFAULT_CATALOGUE
from tests.support.local_servers import CHILD_PYTHONPATH
from tests.support.project import REPO_ROOT

PACKAGE_DIR = REPO_ROOT / "nexanest_db" / "secrets"
PACKAGE = "nexanest_db.secrets"
MODULES = sorted(f"{PACKAGE}.{path.stem}" for path in PACKAGE_DIR.glob("*.py") if path.stem != "__init__")
# What the secrets layer may build on: nothing above it (roles, context, plugins, stacks, commands).
ALLOWED_OUTSIDE = {"nexanest_db.config", "nexanest_db.errors"}


def imported_modules(path: Path, package: str) -> set[str]:
    """Every ``nexanest_db`` module ``path`` imports, at module level or inside a function (lazy imports count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("nexanest_db"))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the package
                module = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [module])])
            if not module.startswith("nexanest_db"):
                continue
            found.add(module)
            # `from nexanest_db.secrets import vault` imports a submodule, not a name of __init__.
            found.update(
                f"{module}.{alias.name}" for alias in node.names if (PACKAGE_DIR.parent.parent / module.replace(".", "/")).is_dir()
            )
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for module in MODULES:
        path = PACKAGE_DIR / f"{module.rsplit('.', 1)[1]}.py"
        graph[module] = {m for m in imported_modules(path, PACKAGE) if m in MODULES or m == PACKAGE or not m.startswith(PACKAGE)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a path that ends where it started), or ``None``."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target, [*path, target])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_package_has_the_modules_the_docs_name() -> None:
    assert [f"{PACKAGE}.{name}" for name in ("catalogue", "policy", "selection", "sources", "terraform_external", "vault")] == MODULES


def test_no_import_cycle_inside_the_secrets_package() -> None:
    graph = import_graph()
    assert graph[f"{PACKAGE}.vault"] >= {f"{PACKAGE}.catalogue", f"{PACKAGE}.policy"}  # the graph sees real edges
    cycle = find_cycle({module: {m for m in targets if m in MODULES} for module, targets in graph.items()})
    assert cycle is None, " -> ".join(cycle or [])


def test_submodules_never_import_the_package_itself_nor_anything_above_the_layer() -> None:
    for module, targets in import_graph().items():
        assert PACKAGE not in targets, f"{module} imports {PACKAGE} (its __init__ imports every submodule: a cycle)"
        outside = {m for m in targets if not m.startswith(PACKAGE)}
        assert outside <= ALLOWED_OUTSIDE, f"{module} imports {sorted(outside - ALLOWED_OUTSIDE)}"


@pytest.mark.parametrize("module", [*MODULES, PACKAGE, "nexanest_db.roles", "nexanest_db.client_tls", "nexanest_db.monitoring"])
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """A cycle that only bites in one import order shows up when that module is the first one imported."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, env=CHILD_PYTHONPATH, cwd=REPO_ROOT, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_other_module_spells_a_secret_name() -> None:
    """Every list of secret names outside the catalogue derives from it: no module writes one as a literal."""
    names = set(DEFAULT_CATALOGUE.names)
    offenders = []
    for path in sorted((REPO_ROOT / "nexanest_db").rglob("*.py")):
        if path == PACKAGE_DIR / "catalogue.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {node.value!r}")
    assert offenders == []
