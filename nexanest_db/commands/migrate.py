"""`nndb migrate status|apply`: the migration ledger per service."""

from __future__ import annotations

from typing import Annotated

import typer

from nexanest_db.commands.common import project_checkout, resolve
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
from nexanest_db.commands.output import set_result
from nexanest_db.errors import ConfigError, MigrationError, and_more
from nexanest_db.ledger import ServicePlan
from nexanest_db.operations.migration_scaffold import new_migration
from nexanest_db.operations.migrations import plan_service

app = typer.Typer(help="Schema migrations: status (read-only), apply, and new (scaffold the next file).", no_args_is_help=True)

ServiceFilter = Annotated[str | None, typer.Option("--service", help="only this service (e.g. auth)")]
ExitCode = Annotated[
    bool, typer.Option("--exit-code", help="exit 5 when anything is pending, too (for CI), not only when changed or out of order")
]


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
    stack: Stack,
    project_dir: ProjectDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
    as_json: AsJson = False,
    service: ServiceFilter = None,
    exit_code: ExitCode = False,
) -> None:
    """List applied and pending migrations per service. Read-only (dry run): creates, locks and applies nothing.

    Exits 5 when a migration was edited after being applied or a new one is out of order; with
    --exit-code also when one is pending (so CI can fail a build on it).

    Examples: `nndb migrate status local-db`, `nndb migrate status prod-db --service auth --exit-code`.
    """
    logger = configure_logging(False)
    resolved = resolve(stack, project_dir)
    context = build_context(resolved, logger=logger, connect_timeout_s=connect_timeout, run_lock=False)
    try:
        services = context.services
        if service is not None:
            services = tuple(s for s in services if s.service == service)
            if not services:
                known = ", ".join(s.service for s in context.services)
                raise ConfigError(f"--service {service}: {stack} has no such service; its services: {known}")
        plans = [plan_service(context, one) for one in services]
    finally:
        context.close()
    pending = sum(len(p.pending) for p in plans)
    applied = sum(len(p.applied) for p in plans)
    problems = [line for p in plans for line in p.problems()]
    set_result(
        {
            "stack": stack,
            "services": {p.roles.service: {"subject": p.roles.subject, "migrations": _rows(p)} for p in plans},
            "applied": applied,
            "pending": pending,
            "problems": problems,
        }
    )
    for plan in plans:
        console.print(f"{plan.roles.service} ({plan.roles.subject}{'' if plan.ledger_exists else ', no ledger yet'})", markup=False)
        for row in _rows(plan):
            console.print(f"  {row['label']:<9} {row['description']:<36} {row['state']}", markup=False)
    summary = "up to date" if pending == 0 else f"{pending} pending"
    console.print(f"migrate: {applied} applied, {summary}", markup=False)
    if problems:
        raise MigrationError(problems[0] + and_more(problems))
    if exit_code and pending:
        first = next(f"{p.roles.service} {m.label}" for p in plans for m in p.pending)
        raise MigrationError(f"{pending} migration(s) pending, first {first}; apply them with `nndb migrate apply {stack}` or a deploy")


@app.command("new")
def new(
    service: Annotated[str, typer.Argument(help="the service whose migration it is, e.g. auth")],
    description: Annotated[str, typer.Argument(help='what it does, e.g. "add email index" (becomes the file name)')],
    project_dir: ProjectDir = None,
) -> None:
    """Write the next versioned migration file of SERVICE: sql/migrations/<service>/V<next>__<description>.sql.

    The file holds only a header comment; write the SQL below it, then `nndb migrate status <stack>`
    shows it pending and a deploy (or `nndb migrate apply <stack>`) applies it.

    Example: `nndb migrate new auth "add email index"` -> sql/migrations/auth/V004__add_email_index.sql
    """
    paths = project_checkout(project_dir)
    path = new_migration(paths.sql_dir, service, description)
    shown = path.relative_to(paths.root) if path.is_relative_to(paths.root) else path
    set_result({"service": service, "path": str(shown)})
    console.print(f"migrate: wrote {shown}", markup=False)


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
    """Apply pending migrations: the preflight, init and migration phases of `nndb hooks run` (same lock, same ledger).

    Examples: `nndb migrate apply local-db`, `nndb migrate apply dev-db --statement-timeout 900 --json`.
    """
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
