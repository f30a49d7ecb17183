"""Helpers for the hook tests: run the hooks in-process or as `nndb` exactly like Terraform does."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nexanest_db.commands.hookrun import build_context
from nexanest_db.context import HookContext
from nexanest_db.edge import Resolved, resolve
from nexanest_db.hook_manager import RunReport, plugin_manager, run_phases
from nexanest_db.hookspecs import PHASE_HOOKS
from tests.fixtures.servers import DbStack
from tests.support.local_servers import CHILD_PYTHONPATH

NNDB = str(Path(sys.executable).parent / "nndb")
MIGRATE_HOOKS = ("nndb_preflight", "nndb_init_sql", "nndb_apply_migrations")


def resolved_for(db_stack: DbStack, environ: Mapping[str, str] | None = None) -> Resolved:
    """The edge's resolution (what `nndb` runs), from an explicit environment (no os.environ: xdist/thread safe)."""
    env = dict(environ if environ is not None else db_stack.environ)
    return resolve(db_stack.stack, environ=env, start=db_stack.project)


def context_for(db_stack: DbStack, environ: Mapping[str, str] | None = None, **options: Any) -> HookContext:
    options.setdefault("backup_dir", db_stack.backup_dir)
    return build_context(resolved_for(db_stack, environ), logger=logging.getLogger("nexanest_db.hooks.test"), **options)


def run_in_process(
    db_stack: DbStack,
    *,
    hooks: Sequence[str] = PHASE_HOOKS,
    disabled: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> RunReport:
    return run_phases(plugin_manager(disabled=disabled), context_for(db_stack, environ, **options), hooks=hooks)


def nndb(db_stack: DbStack, *args: str, environ: Mapping[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`nndb <args>` in a subprocess, from the project directory, with only the stack's environment."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(db_stack.project),
        **CHILD_PYTHONPATH,
        **(environ if environ is not None else db_stack.environ),
    }
    return subprocess.run([NNDB, *args], cwd=db_stack.project, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def summaries(report: RunReport) -> list[str]:
    return [f"{change.subject}: {change.summary}" for _, change in report.changes]


def write_migration(db_stack: DbStack, service: str, name: str, text: str) -> Path:
    path = db_stack.project / "sql" / "migrations" / service / name
    path.write_text(text, encoding="utf-8")
    return path
