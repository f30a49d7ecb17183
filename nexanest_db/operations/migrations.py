"""A service's migrations planned against its ledger: shared by the ``migrations`` hook step, ``nndb migrate status`` and ``nndb plan``."""

from __future__ import annotations

from nexanest_db.context import HookContext
from nexanest_db.errors import MigrationError
from nexanest_db.ledger import ServicePlan, make_plan, read_ledger
from nexanest_db.migration_files import BASELINE_VERSION, Migration, discover
from nexanest_db.roles import ServiceRoles


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
