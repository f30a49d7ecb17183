"""The plugin manager and runner: entry points, phase order, failures named, disabling."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pluggy
import pytest

from nexanest_db.config import ProjectPaths, load_environment, resolve_endpoints
from nexanest_db.context import HookContext
from nexanest_db.errors import ConfigError, MigrationError, PluginInvalid, PluginsMissing, RunFailed
from nexanest_db.hook_manager import BUILT_INS as BUILT_IN_MODULES
from nexanest_db.hook_manager import check_hooks_known, plugin_manager, plugin_table, run_phases
from nexanest_db.hookspecs import PHASE_HOOKS, Change, hookimpl
from nexanest_db.secrets import credentials_for
from tests.support.installed import run_nndb_in, site_with
from tests.support.project import REPO_ROOT, copy_project

REPO = REPO_ROOT
BUILT_INS = {"init_sql", "migrations", "permissions", "redis_acl", "backup", "monitoring"}


def offline_context(tmp_path: Path) -> HookContext:
    """A context whose plugins never connect (the tests register their own plugins only)."""
    config = load_environment("local-db", config_dir=REPO / "config")
    return HookContext(
        stack="local-db",
        config=config,
        endpoints=resolve_endpoints(config, {}),
        credentials=credentials_for(config, {}),
        paths=ProjectPaths.at(REPO),
        backup_dir=tmp_path,
        logger=logging.getLogger("test"),
    )


def bare_manager() -> pluggy.PluginManager:
    return plugin_manager(load_entry_points=False)


class Recorder:
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    @hookimpl
    def nndb_preflight(self, context: HookContext) -> None:
        self.calls.append(f"{self.name}:preflight")

    @hookimpl
    def nndb_register_backups(self, context: HookContext) -> list[Change]:
        self.calls.append(f"{self.name}:backups")
        return [Change(subject=self.name, summary="registered")]

    @hookimpl
    def nndb_init_sql(self, context: HookContext) -> list[Change]:
        self.calls.append(f"{self.name}:init")
        return []


def test_built_ins_are_ordinary_entry_point_plugins() -> None:
    manager = plugin_manager()
    table = dict(plugin_table(manager))
    assert set(table) >= BUILT_INS
    assert table["migrations"] == ["nndb_preflight", "nndb_apply_migrations"]
    assert table["redis_acl"] == ["nndb_preflight", "nndb_set_permissions"]
    assert {manager.get_name(plugin) for plugin, _ in manager.list_plugin_distinfo()} >= BUILT_INS  # loaded from the distribution


def test_phases_run_in_phase_order_whoever_registered_first(tmp_path: Path) -> None:
    for order in (["a", "b"], ["b", "a"]):
        calls: list[str] = []
        manager = bare_manager()
        for name in order:
            manager.register(Recorder(name, calls), name=name)
        report = run_phases(manager, offline_context(tmp_path), hooks=tuple(reversed(PHASE_HOOKS)))
        phases = [call.split(":")[1] for call in calls]
        assert phases == ["preflight", "preflight", "init", "init", "backups", "backups"]
        assert report.change_count == 2
        assert report.summary_line() == "hooks: 2 changes"


def test_a_failing_plugin_is_named_with_its_hook_and_stops_the_run(tmp_path: Path) -> None:
    calls: list[str] = []

    class Broken:
        @hookimpl
        def nndb_init_sql(self, context: HookContext) -> None:
            raise MigrationError("sql/x.sql:3: boom; fix it")

    manager = bare_manager()
    manager.register(Recorder("ok", calls), name="ok")
    manager.register(Broken(), name="team_step")
    with pytest.raises(RunFailed) as excinfo:
        run_phases(manager, offline_context(tmp_path))
    assert str(excinfo.value) == "plugin 'team_step' failed in nndb_init_sql: sql/x.sql:3: boom; fix it"
    assert excinfo.value.exit_code == MigrationError.exit_code
    assert "ok:backups" not in calls  # later phases never ran
    assert [o.plugin for o in excinfo.value.report.outcomes] == ["ok"]


def test_an_unexpected_exception_is_named_too(tmp_path: Path) -> None:
    class Buggy:
        @hookimpl
        def nndb_set_permissions(self) -> None:
            raise KeyError("oops")

    manager = bare_manager()
    manager.register(Buggy(), name="buggy")
    with pytest.raises(RunFailed, match=r"plugin 'buggy' failed in nndb_set_permissions: KeyError: 'oops' \(unexpected"):
        run_phases(manager, offline_context(tmp_path))


def test_wrong_return_type_and_wrappers_are_refused(tmp_path: Path) -> None:
    class Wrong:
        @hookimpl
        def nndb_preflight(self) -> list[str]:
            return ["not a Change"]

    manager = bare_manager()
    manager.register(Wrong(), name="wrong")
    with pytest.raises(RunFailed, match="plugin 'wrong' returned str from nndb_preflight"):
        run_phases(manager, offline_context(tmp_path))

    class Wrapper:
        @hookimpl(wrapper=True)
        def nndb_preflight(self):
            return (yield)

    manager = bare_manager()
    manager.register(Wrapper(), name="wrapper")
    from nexanest_db.hook_manager import check_no_wrappers

    with pytest.raises(ConfigError, match="plugin 'wrapper': nndb_preflight is a wrapper"):
        check_no_wrappers(manager)


def test_disabling_plugins() -> None:
    manager = plugin_manager(disabled=["backup", "redis_acl"])
    assert {"backup", "redis_acl"}.isdisjoint(dict(plugin_table(manager)))
    assert manager.is_blocked("backup")
    with pytest.raises(ConfigError, match="no plugin named 'bakup'; installed: "):
        plugin_manager(disabled=["bakup"])


def test_a_third_party_package_plugs_in_through_the_entry_point_group(tmp_path: Path) -> None:
    """A package that is only 'installed' (a dist-info with an entry point on sys.path) is picked up and run."""
    (tmp_path / "team_audit_step.py").write_text(
        textwrap.dedent(
            """
            from nexanest_db.hookspecs import Change, hookimpl

            @hookimpl
            def nndb_register_backups(context):
                return [Change(subject=context.stack, summary="audit trail registered")]
            """
        )
    )
    dist = tmp_path / "team_audit_step-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: team-audit-step\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nexanest_db]\nteam_audit = team_audit_step\n")
    program = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from tests.unit.test_hook_manager import offline_context
        from nexanest_db.hook_manager import plugin_manager, plugin_table, run_phases
        manager = plugin_manager(disabled={sorted(BUILT_INS)!r})
        report = run_phases(manager, offline_context(Path({str(tmp_path)!r})))
        print(json.dumps({{"table": plugin_table(manager), "report": report.as_dict()}}))
        """
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert ["team_audit", ["nndb_register_backups"]] in payload["table"]
    assert payload["report"]["changes"] == [{"plugin": "team_audit", "subject": "local-db", "summary": "audit trail registered"}]


def test_the_built_ins_are_the_entry_points_pyproject_declares() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["entry-points"]["nexanest_db"]
    assert declared == BUILT_IN_MODULES
    assert set(BUILT_IN_MODULES) == BUILT_INS


STALE = {name: module for name, module in BUILT_IN_MODULES.items() if name != "monitoring"}


@pytest.mark.parametrize(
    ("metadata", "named"),
    [(None, "steps init_sql, migrations, permissions, redis_acl, backup, monitoring are"), (STALE, "step monitoring is")],
    ids=["not-installed", "stale"],
)
def test_without_the_built_ins_a_run_stops_with_one_line_saying_to_reinstall(
    tmp_path: Path, metadata: dict[str, str] | None, named: str
) -> None:
    site = site_with(tmp_path / "site", entry_points=metadata)
    project = copy_project(tmp_path / "project")
    for args in (("hooks", "list", "local-db"), ("hooks", "run", "local-db", "--disable-plugin", "backup")):
        result = run_nndb_in(site, *args, cwd=project)
        assert result.returncode == PluginsMissing.exit_code == 6, result.stderr
        assert result.stderr.splitlines() == [
            f"nndb: error: the built-in hook {named} not installed (entry-point group 'nexanest_db': the installed metadata is "
            "missing or stale); reinstall the tool: `pip install -e .` in the project (or scripts/setup.sh)"
        ]
    document = json.loads(run_nndb_in(site, "hooks", "list", "local-db", "--json", cwd=project).stdout)
    assert (document["ok"], document["error"]["kind"], document["error"]["exit_code"]) == (False, "PluginsMissing", 6)


def test_a_misspelled_hook_is_one_line_naming_plugin_and_hook() -> None:
    class Typo:
        @hookimpl
        def nndb_prefligth(self, context: HookContext) -> None:
            raise AssertionError("never called")

    manager = bare_manager()
    manager.register(Typo(), name="team_step")
    with pytest.raises(PluginInvalid) as excinfo:
        check_hooks_known(manager)
    assert str(excinfo.value) == (
        "plugin 'team_step': nndb_prefligth is not a hook of nexanest_db (misspelled?); the hooks are "
        f"{', '.join(PHASE_HOOKS)}; fix it, or skip the plugin with --disable-plugin"
    )
    assert excinfo.value.exit_code == 6


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def nndb_prefligth(context):\n    return []\n", "nndb: error: plugin 'team_step': nndb_prefligth is not a hook of nexanest_db"),
        (
            "def nndb_preflight(ctx):\n    return []\n",
            "nndb: error: a plugin does not fit the hook specs (Plugin 'team_step' for hook 'nndb_preflight'",
        ),
    ],
    ids=["misspelled-hook", "unknown-argument"],
)
def test_an_installed_plugin_that_does_not_fit_the_specs_is_one_line(tmp_path: Path, source: str, expected: str) -> None:
    module = "from nexanest_db.hookspecs import hookimpl\n\n@hookimpl\n" + source
    site = site_with(tmp_path / "site", entry_points={**BUILT_IN_MODULES, "team_step": "team_step"}, modules={"team_step": module})
    project = copy_project(tmp_path / "project")
    result = run_nndb_in(site, "hooks", "list", "local-db", cwd=project)
    assert result.returncode == 6, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(expected) and line.endswith("--disable-plugin")
    skipped = run_nndb_in(site, "hooks", "list", "local-db", "--disable-plugin", "team_step", cwd=project)
    assert skipped.returncode == 0, skipped.stderr
    assert "team_step      (disabled)" in skipped.stdout
