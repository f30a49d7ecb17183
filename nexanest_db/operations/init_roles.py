"""What fills ``sql/init/01-create-databases.sql`` for one service: shared by the ``init_sql`` hook step and ``nndb plan``."""

from __future__ import annotations

from nexanest_db import scram
from nexanest_db.context import HookContext
from nexanest_db.queries import load_query
from nexanest_db.roles import ServiceRoles
from nexanest_db.sqlfiles import StepValues

STEP_FILE = "init/01-create-databases.sql"
MAINTENANCE_STEP_FILE = "init/00-harden-maintenance.sql"


def _verifier(context: HookContext, service: ServiceRoles, role: str, secret: str) -> str:
    row = context.pg(service.instance).execute(load_query(context.paths.sql_dir, "role-password"), {"role": role}).fetchone()
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
