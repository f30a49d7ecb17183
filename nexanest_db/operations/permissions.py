"""The grants of one service (``sql/init/03-set-permissions.sql``): shared by the ``permissions`` hook step and a restore."""

from __future__ import annotations

from nexanest_db.roles import ServiceRoles
from nexanest_db.sqlfiles import StepValues

STEP_FILE = "init/03-set-permissions.sql"


def permission_values(service: ServiceRoles) -> StepValues:
    return StepValues(
        identifiers={
            "database": service.database,
            "schema": service.schema,
            "owner_role": service.owner_role,
            "app_role": service.app.name,
            "readonly_role": service.readonly.name if service.readonly else None,
        },
        flags={"readonly_role_enabled": service.readonly is not None},
    )
