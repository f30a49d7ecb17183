"""Built-in plugin ``init_sql``: the maintenance databases closed (``sql/init/00-harden-maintenance.sql``,
every run), then every service's roles and database (``sql/init/01-create-databases.sql``), and where
an instance has streaming replicas, the replication role and one slot per replica
(``nexanest_db.operations.replica_setup``) before the replica containers start.

Preflight also refuses a run while the database of a service removed from config still holds data
(``nexanest_db.operations.removed_services``): config going away never drops, nor silently orphans, data.

Login-role passwords follow the current credentials on every run: the step compares a SCRAM
verifier with ``pg_authid`` and sends ``ALTER ROLE ... PASSWORD '<verifier>'`` only when the
secret changed (reported as "password rotated for <role>"); the plaintext never leaves this machine.
"""

from __future__ import annotations

from nexanest_db.hookspecs import Change, HookContext, hookimpl
from nexanest_db.operations.init_roles import MAINTENANCE_STEP_FILE, STEP_FILE, step_values
from nexanest_db.operations.removed_services import refuse_removed_services
from nexanest_db.operations.replica_setup import ensure_replica_prerequisites, require_postgres_replication_secrets
from nexanest_db.roles import postgres_instances
from nexanest_db.sqlfiles import StepFile, StepValues, load_step_file, run_steps


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
    refuse_removed_services(context)  # a service deleted from config while its database holds data: stop here
    require_postgres_replication_secrets(context)  # the replication secrets where an instance has replicas


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
    changes += [Change(subject=instance, summary=title) for instance, title in ensure_replica_prerequisites(context)]
    return changes
