"""A service's migrations planned against its ledger: shared by the ``migrations`` hook step, ``nndb migrate status`` and ``nndb plan``.

Applying them (the ``migrations`` step: ``check_files``, ``apply_all``): preflight parses every file
(syntax errors stop the run with ``file:line`` before any change). The phase then plans every service
against its ledger first — a changed applied file or an out-of-order new one stops the run before
anything is applied anywhere — and only then, per service: ``sql/init/02-apply-schemas.sql``, the
ledger (``sql/ledger/``), and each pending migration in its own transaction. Everything runs under the
run lock (``nexanest_db.pg``).
"""

from __future__ import annotations

import psycopg

from nexanest_db.context import Change, HookContext
from nexanest_db.errors import MigrationError, and_more
from nexanest_db.ledger import MigrationApplier, ServicePlan, make_plan, read_ledger
from nexanest_db.migration_files import BASELINE_VERSION, Migration, discover
from nexanest_db.roles import ServiceRoles
from nexanest_db.sqlfiles import StepFile, StepValues, load_step_file, run_steps


def service_migrations(context: HookContext, service: ServiceRoles) -> list[Migration]:
    migrations = discover(context.paths.sql_dir, service.service)
    for migration in migrations:
        # Parse now: a syntax error is reported before anything runs. A versioned file with no statement
        # (`nndb migrate new` writes only a header) would be recorded as applied and could never be
        # filled in without a checksum mismatch, so it stops the run instead.
        if not migration.statements and migration.version != BASELINE_VERSION:
            raise MigrationError(
                f"{migration.sources[0].display}: no SQL statement in it (only comments); write the migration below its header, or delete the file"
            )
    return migrations


def plan_service(context: HookContext, service: ServiceRoles) -> ServicePlan:
    migrations = service_migrations(context, service)
    if context.postgres.database_exists(service.instance, service.database):
        exists, applied = read_ledger(context.pg(service.instance, service.database), service.service, context.paths.sql_dir)
    else:
        exists, applied = False, {}
    return make_plan(service, migrations, applied, ledger_exists=exists)


SCHEMA_STEPS = "init/02-apply-schemas.sql"
LEDGER_STEPS = "ledger/01-create-ledger.sql"


def check_files(context: HookContext) -> None:
    """The ``migrations`` step's preflight: every step file and migration file parses (``file:line`` on a syntax error)."""
    load_step_file(context.paths.sql_dir, SCHEMA_STEPS)
    load_step_file(context.paths.sql_dir, LEDGER_STEPS)
    for service in context.services:
        service_migrations(context, service)


def apply_all(context: HookContext) -> list[Change]:
    """Plan every service first, then per service: schema steps, the ledger, each pending migration (the ``migrations`` step).

    A failure part-way carries what did commit (``committed`` on the exception) for the run's report.
    """
    sql_dir = context.paths.sql_dir
    schema_steps = load_step_file(sql_dir, SCHEMA_STEPS)
    ledger_steps = load_step_file(sql_dir, LEDGER_STEPS)
    plans = [plan_service(context, service) for service in context.services]
    problems = [line for plan in plans for line in plan.problems()]
    if problems:
        raise MigrationError(problems[0] + and_more(problems, then="`nndb migrate status` lists them"))

    changes: list[Change] = []
    try:
        _apply_plans(context, plans, schema_steps, ledger_steps, changes)
    except Exception as exc:
        exc.committed = tuple(changes)  # type: ignore[attr-defined]  # what did commit is reported with the failure
        raise
    return changes


def _apply_plans(
    context: HookContext, plans: list[ServicePlan], schema_steps: StepFile, ledger_steps: StepFile, changes: list[Change]
) -> None:
    sql_dir = context.paths.sql_dir
    for plan in plans:
        service = plan.roles
        for row in plan.missing_files:
            context.logger.warning(
                "%s: V%03d %s is in the ledger but its file is gone (%s)", service.subject, row.version, row.description, row.script
            )
        conn = context.pg(service.instance, service.database)
        values = StepValues(
            identifiers={
                "schema": service.schema,
                "owner_role": service.owner_role,
                "migrator_role": service.migrator_role,
                "database": service.database,
            }
        )
        for title in [*run_steps(conn, schema_steps, values), *run_steps(conn, ledger_steps, values)]:
            changes.append(Change(subject=service.subject, summary=title))

        def notice(migration: Migration, message: str, subject: str = service.subject) -> None:
            context.logger.info("%s %s: %s", subject, migration.label, message)

        if not plan.pending:
            continue  # up to date: the migrator never logs in

        def login(password: str, service: ServiceRoles = service) -> psycopg.Connection:
            return context.postgres.login_as(service.instance, service.database, user=service.migrator_role, password=password)

        applier = MigrationApplier(conn, login, service, sql_dir, notice)
        try:
            for migration in plan.pending:
                elapsed_ms = applier.apply(migration)
                changes.append(
                    Change(subject=service.subject, summary=f"applied {migration.label} {migration.description} ({elapsed_ms} ms)")
                )
        finally:
            applier.close()
