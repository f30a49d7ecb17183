"""`nndb migrate status|apply`: the migration ledger per service."""

from __future__ import annotations

import json

import typer

from nexanest_db.commands.common import resolve
from nexanest_db.commands.hookrun import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_STATEMENT_TIMEOUT_S,
    build_context,
    configure_logging,
    console,
)
from nexanest_db.commands.hooks import (
    AsJson,
    BackupDir,
    ConnectTimeout,
    Disable,
    LockTimeout,
    ProjectDir,
    Stack,
    StatementTimeout,
    Verbose,
    run_hooks_command,
)
from nexanest_db.errors import MigrationError
from nexanest_db.ledger import ServicePlan
from nexanest_db.plugins.migrations import plan_service

app = typer.Typer(help="Schema migrations: status (read-only) and apply.", no_args_is_help=True)


def _rows(plan: ServicePlan) -> list[dict[str, object]]:
    changed = {m.version for m, _ in plan.changed}
    out_of_order = {m.version for m in plan.out_of_order}
    rows: list[dict[str, object]] = []
    for migration in plan.migrations:
        applied = plan.applied.get(migration.version)
        if migration.version in changed:
            state = "CHANGED (checksum mismatch)"
        elif migration.version in out_of_order:
            state = "OUT OF ORDER (not applied)"
        elif applied is not None:
            state = f"applied {applied.applied_at:%Y-%m-%d %H:%M:%S} by {applied.applied_by} ({applied.execution_ms} ms)"
        else:
            state = "pending"
        rows.append(
            {
                "version": migration.version,
                "label": migration.label,
                "description": migration.description,
                "script": migration.script,
                "state": state,
            }
        )
    for row in plan.missing_files:
        rows.append(
            {
                "version": row.version,
                "label": f"V{row.version:03d}",
                "description": row.description,
                "script": row.script,
                "state": "applied, file missing",
            }
        )
    return sorted(rows, key=lambda r: int(r["version"]))  # type: ignore[call-overload]


@app.command("status")
def status(
    stack: Stack, project_dir: ProjectDir = None, connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S, as_json: AsJson = False
) -> None:
    """List applied and pending migrations per service. Read-only (dry run): creates, locks and applies nothing.

    Exits non-zero when a migration was edited after being applied or a new one is out of order.
    """
    logger = configure_logging(False)
    resolved = resolve(stack, project_dir)
    context = build_context(resolved, logger=logger, connect_timeout_s=connect_timeout, run_lock=False)
    try:
        plans = [plan_service(context, service) for service in context.services]
    finally:
        context.close()
    pending = sum(len(p.pending) for p in plans)
    applied = sum(len(p.applied) for p in plans)
    problems = [line for p in plans for line in p.problems()]
    if as_json:
        payload = {
            "stack": stack,
            "services": {p.roles.service: {"subject": p.roles.subject, "migrations": _rows(p)} for p in plans},
            "applied": applied,
            "pending": pending,
            "problems": problems,
        }
        console.print_json(json.dumps(payload))
    else:
        for plan in plans:
            console.print(f"{plan.roles.service} ({plan.roles.subject}{'' if plan.ledger_exists else ', no ledger yet'})", markup=False)
            for row in _rows(plan):
                console.print(f"  {row['label']:<9} {row['description']:<36} {row['state']}", markup=False)
        summary = "up to date" if pending == 0 else f"{pending} pending"
        console.print(f"migrate: {applied} applied, {summary}", markup=False)
    if problems:
        raise MigrationError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


@app.command("apply")
def apply(
    stack: Stack,
    project_dir: ProjectDir = None,
    disable: Disable = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
    lock_timeout: LockTimeout = DEFAULT_LOCK_TIMEOUT_S,
    statement_timeout: StatementTimeout = DEFAULT_STATEMENT_TIMEOUT_S,
    backup_dir: BackupDir = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Apply pending migrations: the preflight, init and migration phases of `nndb hooks run` (same lock, same ledger)."""
    run_hooks_command(
        stack,
        hooks=("nndb_preflight", "nndb_init_sql", "nndb_apply_migrations"),
        label="migrate",
        project_dir=project_dir,
        disable=disable,
        backup_dir=backup_dir,
        connect_timeout=connect_timeout,
        lock_timeout=lock_timeout,
        statement_timeout=statement_timeout,
        as_json=as_json,
        verbose=verbose,
    )
