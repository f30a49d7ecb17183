"""`nndb hooks run|list`: the post-apply hooks (what `cdktf deploy` runs after the apply)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from nexanest_db.commands.common import resolve
from nexanest_db.commands.hookrun import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_STATEMENT_TIMEOUT_S,
    build_context,
    configure_logging,
    console,
    disabled_plugins,
    endpoints_line,
)
from nexanest_db.commands.output import set_result
from nexanest_db.commands.progress import Steps
from nexanest_db.errors import RunFailed
from nexanest_db.hook_manager import StepOutcome, plugin_manager, plugin_table, run_phases
from nexanest_db.hookspecs import PHASE_HOOKS

app = typer.Typer(help="Post-apply hooks: init SQL, schemas and migrations, permissions, backup registration.", no_args_is_help=True)

Stack = Annotated[str, typer.Argument(help="local-db, dev-db, staging-db or prod-db")]
ProjectDir = Annotated[
    Path | None,
    typer.Option(
        "--project-dir", help="project root (default: walk up from cwd, or NNDB_PROJECT_DIR)", exists=True, file_okay=False, dir_okay=True
    ),
]
Disable = Annotated[list[str] | None, typer.Option("--disable-plugin", help="skip this plugin (repeatable; also NNDB_DISABLE_PLUGINS)")]
BackupDir = Annotated[
    Path | None,
    typer.Option(
        "--backup-dir",
        help="base directory for dumps and catalog, created if missing (default: config backup.directory; NNDB_BACKUP_DIR)",
        file_okay=False,
        dir_okay=True,
    ),
]
# Commands that read an existing catalog: a mistyped directory is an error, not an empty catalog.
ExistingBackupDir = Annotated[
    Path | None,
    typer.Option(
        "--backup-dir",
        help="base directory of dumps and catalog; must exist (default: config backup.directory; NNDB_BACKUP_DIR)",
        exists=True,
        file_okay=False,
        dir_okay=True,
    ),
]
MIN_TIMEOUT_S = 0.1
ConnectTimeout = Annotated[float, typer.Option("--connect-timeout", min=MIN_TIMEOUT_S, help="seconds to wait for each server (> 0)")]
LockTimeout = Annotated[float, typer.Option("--lock-timeout", min=0, help="seconds to wait for another run to finish (0: do not wait)")]
StatementTimeout = Annotated[
    float,
    typer.Option("--statement-timeout", min=1, help="seconds any one statement (a migration's too) may take before the run stops"),
]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON document instead of text")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="debug logging (tracebacks of plugin bugs)")]


def print_outcome(outcome: StepOutcome) -> None:
    for change in outcome.changes:
        console.print(f"  + {outcome.plugin:<12} {change.subject:<20} {change.summary}", markup=False)


def _outcome_reporter(steps: Steps) -> Callable[[StepOutcome], None]:
    """Each finished hook step with its elapsed time (stamped when not on a terminal), then its changes."""

    def report(outcome: StepOutcome) -> None:
        steps.note(f"{outcome.hook} {outcome.plugin}: done in {outcome.seconds:.1f}s ({len(outcome.changes)} changes)")
        print_outcome(outcome)

    return report


def run_hooks_command(
    stack: str,
    *,
    hooks: tuple[str, ...],
    label: str,
    project_dir: Path | None,
    disable: list[str] | None,
    backup_dir: Path | None,
    connect_timeout: float,
    lock_timeout: float,
    as_json: bool,
    verbose: bool,
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT_S,
) -> None:
    logger = configure_logging(verbose)
    resolved = resolve(stack, project_dir)
    manager = plugin_manager(disabled=disabled_plugins(resolved, disable))
    context = build_context(
        resolved,
        logger=logger,
        backup_dir=backup_dir,
        connect_timeout_s=connect_timeout,
        lock_timeout_s=lock_timeout,
        statement_timeout_s=statement_timeout,
    )
    steps = Steps()
    console.print(f"{label} {stack}: {endpoints_line(resolved)}", markup=False)
    try:
        report = run_phases(manager, context, hooks=hooks, on_outcome=_outcome_reporter(steps))
    except RunFailed as failure:
        set_result(failure.report.as_dict())
        console.print(failure.report.failure_line(label), markup=False)
        raise
    set_result(report.as_dict())
    if report.disabled:
        console.print(f"  (disabled: {', '.join(report.disabled)})", markup=False)
    console.print(f"{report.summary_line(label)} in {report.seconds:.2f}s", markup=False)


@app.command("run")
def run(
    stack: Stack,
    project_dir: ProjectDir = None,
    disable: Disable = None,
    backup_dir: BackupDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
    lock_timeout: LockTimeout = DEFAULT_LOCK_TIMEOUT_S,
    statement_timeout: StatementTimeout = DEFAULT_STATEMENT_TIMEOUT_S,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Run every post-apply phase in order; idempotent (a second run reports `hooks: 0 changes (up to date)`).

    Examples: `nndb hooks run local-db`, `nndb hooks run dev-db --disable-plugin backup --json`.
    """
    run_hooks_command(
        stack,
        hooks=PHASE_HOOKS,
        label="hooks",
        project_dir=project_dir,
        disable=disable,
        backup_dir=backup_dir,
        connect_timeout=connect_timeout,
        lock_timeout=lock_timeout,
        statement_timeout=statement_timeout,
        as_json=as_json,
        verbose=verbose,
    )


@app.command("list")
def list_plugins(stack: Stack, project_dir: ProjectDir = None, disable: Disable = None) -> None:
    """Show the installed plugins, the phase hooks each implements, and which are disabled.

    Examples: `nndb hooks list local-db`, `nndb hooks list prod-db --disable-plugin backup --json`.
    """
    resolved = resolve(stack, project_dir)
    manager = plugin_manager(disabled=disabled_plugins(resolved, disable))
    table = plugin_table(manager)
    disabled = [name for name, plugin in manager.list_name_plugin() if plugin is None]
    set_result({"stack": stack, "plugins": [{"name": name, "hooks": list(hooks)} for name, hooks in table], "disabled": disabled})
    for name, hooks in table:
        console.print(f"{name:<14} {', '.join(hooks) or '-'}", markup=False)
    for name in disabled:
        console.print(f"{name:<14} (disabled)", markup=False)
