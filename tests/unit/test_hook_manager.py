"""The plugin manager and runner: entry points, phase order, failures named, disabling."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
import pytest

from nexanest_db.config import ProjectPaths, load_environment, resolve_endpoints
from nexanest_db.context import HookContext
from nexanest_db.errors import ConfigError, MigrationError
from nexanest_db.hookspecs import PHASE_HOOKS, Change, hookimpl
from nexanest_db.plugins.manager import RunFailed, plugin_manager, plugin_table, run_phases
from nexanest_db.secrets import credentials_for

REPO = Path(__file__).resolve().parents[2]
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
    from nexanest_db.plugins.manager import check_no_wrappers

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
        from nexanest_db.plugins.manager import plugin_manager, plugin_table, run_phases
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
