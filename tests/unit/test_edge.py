"""Layer rules checked on the source: the edge (nexanest_db/edge.py) is the only place below the entry points that
sees the process environment, and nothing but the hook manager reaches the built-in hook steps (nexanest_db/plugins/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nexanest_db import edge
from tests.support.project import REPO_ROOT, copy_project

PACKAGE = REPO_ROOT / "nexanest_db"
# Entry points: they only hand os.environ to the edge (cli.main -> output.begin, edge.quiet_node_end_of_life_warning).
ALLOWED = {PACKAGE / "edge.py", PACKAGE / "cli.py"}


def environment_reads(source: str) -> list[int]:
    """Lines that read the process environment: os.environ, os.getenv, os.environb, `from os import environ/getenv`."""
    tree = ast.parse(source)
    found: list[int] = []
    names = {"environ", "environb", "getenv", "getenvb"}
    for node in ast.walk(tree):
        attribute = isinstance(node, ast.Attribute) and node.attr in names and isinstance(node.value, ast.Name) and node.value.id == "os"
        imported = isinstance(node, ast.ImportFrom) and node.module == "os" and any(alias.name in names for alias in node.names)
        if attribute or imported:
            found.append(node.lineno)  # type: ignore[attr-defined]
    return found


def test_the_scan_finds_every_way_to_read_the_environment() -> None:
    assert environment_reads("import os\nos.environ.get('X')\n") == [2]
    assert environment_reads("import os\nx = os.getenv('X')\n") == [2]
    assert environment_reads("from os import environ\n") == [1]
    assert environment_reads("import os\nos.path.join('a')\n# os.environ in a comment\n'os.environ in a string'\n") == []


def test_nothing_below_the_edge_reads_os_environ() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in ALLOWED
        for line in environment_reads(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "read the environment at the edge (nexanest_db/edge.py) and pass the values down"


def test_main_py_only_hands_os_environ_to_the_edge() -> None:
    tree = ast.parse((REPO_ROOT / "main.py").read_text(encoding="utf-8"))
    calls = [
        node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and any(isinstance(a, ast.Attribute) and a.attr == "environ" for a in node.args)
    ]
    assert sorted(calls) == ["quiet_node_end_of_life_warning", "synth_project"]
    assert len(environment_reads((REPO_ROOT / "main.py").read_text(encoding="utf-8"))) == len(calls)


def test_resolve_takes_everything_explicitly(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    below = project / "sql"
    environ = {"POSTGRES_PORT": "6543", "DB_HOST": "db.example"}
    resolved = edge.resolve("local-db", environ=environ, start=below)
    assert resolved.paths.root == project
    assert resolved.endpoints.postgres.port == 6543 and resolved.endpoints.postgres.host == "db.example"
    assert resolved.environ["POSTGRES_PORT"] == "6543"
    elsewhere = edge.resolve("local-db", environ={"NNDB_PROJECT_DIR": str(project)}, start=tmp_path)
    assert elsewhere.paths.root == project and elsewhere.endpoints.postgres.port == 5432


def test_tool_environment_drops_pg_variables_and_env_file_values(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    (project / ".env.db").write_text("AUTH_DB_PASSWORD=from-the-env-file\n", encoding="utf-8")
    resolved = edge.resolve("local-db", environ={"PATH": "/usr/bin", "PGHOST": "stray", "PGPASSFILE": "/x"}, start=project)
    assert resolved.tool_environ == {"PATH": "/usr/bin"}
    assert resolved.environ["AUTH_DB_PASSWORD"] == "from-the-env-file"


def test_project_root_from_a_subdirectory_and_explicitly(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    assert edge.project_root(environ={}, start=project / "sql" / "migrations") == project
    assert edge.project_root(environ={}, start=tmp_path, project_dir=project) == project
    with pytest.raises(Exception, match="not inside a nexanest-db project"):
        edge.project_root(environ={}, start=tmp_path)


PLUGINS = "nexanest_db.plugins"
# The built-in steps are entry points (pyproject.toml); the manager loads them through importlib.metadata.
MAY_REACH_PLUGINS = {PACKAGE / "hook_manager.py"}


def plugin_imports(source: str, *, package: str) -> list[int]:
    """Lines that import nexanest_db.plugins (absolute, `from nexanest_db import plugins`, or relative from ``package``)."""
    found: list[int] = []
    for node in ast.walk(ast.parse(source)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            modules = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        if any(module == PLUGINS or module.startswith(PLUGINS + ".") for module in modules):
            found.append(node.lineno)
    return found


def test_the_plugin_import_scan_finds_every_form() -> None:
    assert plugin_imports("import nexanest_db.plugins.backup\n", package="nexanest_db") == [1]
    assert plugin_imports("from nexanest_db.plugins.backup import x\n", package="nexanest_db") == [1]
    assert plugin_imports("from nexanest_db import plugins\n", package="nexanest_db") == [1]
    assert plugin_imports("from ..plugins import backup\n", package="nexanest_db.commands") == [1]
    assert plugin_imports("from . import migrations\n", package="nexanest_db.plugins") == [1]
    assert plugin_imports("from nexanest_db.operations import backup\nimport pluggy\n", package="nexanest_db") == []


def test_nothing_but_the_hook_manager_imports_the_plugins() -> None:
    sources = [path for path in sorted(PACKAGE.rglob("*.py")) if path not in MAY_REACH_PLUGINS]
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in [*sources, REPO_ROOT / "main.py"]
        for line in plugin_imports(path.read_text(encoding="utf-8"), package=_package_of(path))
    ]
    assert offenders == [], "the built-in steps are reached through the hook manager only; share code through nexanest_db/operations/"


def _package_of(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] != "__init__" else ".".join(parts)
