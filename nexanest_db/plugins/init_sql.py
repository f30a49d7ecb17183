"""Built-in plugin ``init_sql``: the maintenance databases closed (``sql/init/00-harden-maintenance.sql``,
every run), then every service's roles and database (``sql/init/01-create-databases.sql``).

Login-role passwords follow the current credentials on every run: the step compares a SCRAM
verifier with ``pg_authid`` and sends ``ALTER ROLE ... PASSWORD '<verifier>'`` only when the
secret changed (reported as "password rotated for <role>"); the plaintext never leaves this machine.
"""

from __future__ import annotations

from nexanest_db import scram
from nexanest_db.hookspecs import Change, HookContext, hookimpl
from nexanest_db.roles import ServiceRoles, postgres_instances
from nexanest_db.sqlfiles import StepFile, StepValues, load_step_file, run_steps

STEP_FILE = "init/01-create-databases.sql"
MAINTENANCE_STEP_FILE = "init/00-harden-maintenance.sql"


def _steps(context: HookContext) -> StepFile:
    return load_step_file(context.paths.sql_dir, STEP_FILE)


@hookimpl
def nndb_preflight(context: HookContext) -> None:
    _steps(context)
    load_step_file(context.paths.sql_dir, MAINTENANCE_STEP_FILE)
    context.client_tls()  # with tls.enabled: the CA bundle is there (written to the run's CA file) before any connection
    for instance in postgres_instances(context.config):
        context.pg(instance)  # reachable, password right, PostgreSQL 15, run lock held
    for service in context.services:
        for role in service.login_roles:
            context.password(role.secret)  # a missing secret stops the run before anything changes


def _verifier(context: HookContext, service: ServiceRoles, role: str, secret: str) -> str:
    row = context.pg(service.instance).execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    return scram.current_verifier(context.password(secret), row[0] if row else None)


def step_values(context: HookContext, service: ServiceRoles) -> StepValues:
    readonly = service.readonly
    return StepValues(
        identifiers={
            "owner_role": service.owner_role,
            "migrator_role": service.migrator_role,
            "app_role": service.app.name,
            "readonly_role": readonly.name if readonly else None,
            "database": service.database,
        },
        literals={
            "owner_name": service.owner_role,
            "migrator_name": service.migrator_role,
            "app_password": _verifier(context, service, service.app.name, service.app.secret),
            "readonly_password": _verifier(context, service, readonly.name, readonly.secret) if readonly else None,
        },
        flags={"readonly_role_enabled": readonly is not None},
    )


@hookimpl
def nndb_init_sql(context: HookContext) -> list[Change]:
    steps = _steps(context)
    changes = []
    maintenance = load_step_file(context.paths.sql_dir, MAINTENANCE_STEP_FILE)
    for instance in postgres_instances(context.config):
        for title in run_steps(context.pg(instance), maintenance, StepValues()):
            changes.append(Change(subject=instance, summary=title))
    for service in context.services:
        conn = context.pg(service.instance)
        for title in run_steps(conn, steps, step_values(context, service)):
            changes.append(Change(subject=service.subject, summary=title))
    return changes
