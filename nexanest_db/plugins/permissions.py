"""Built-in plugin ``permissions``: least-privilege grants per service (``sql/init/03-set-permissions.sql``).

GRANT/REVOKE have no "if not already" form, and re-running them still rewrites catalog rows. So the
file runs in one transaction between two reads of ``sql/queries/privileges-state.sql``: when the
privileges come out identical the transaction is rolled back (nothing written, nothing reported),
otherwise it commits and the objects whose privileges changed are reported.
"""

from __future__ import annotations

import psycopg

from nexanest_db.errors import first_few
from nexanest_db.hookspecs import Change, HookContext, hookimpl
from nexanest_db.operations.permissions import STEP_FILE, permission_values
from nexanest_db.queries import load_query
from nexanest_db.roles import ServiceRoles
from nexanest_db.sqlfiles import load_step_file, run_steps


def _state(conn: psycopg.Connection, query: str, service: ServiceRoles) -> set[tuple[str, str, str]]:
    return set(conn.execute(query, {"database": service.database, "schema": service.schema}).fetchall())


@hookimpl
def nndb_preflight(context: HookContext) -> None:
    load_step_file(context.paths.sql_dir, STEP_FILE)


@hookimpl
def nndb_set_permissions(context: HookContext) -> list[Change]:
    steps = load_step_file(context.paths.sql_dir, STEP_FILE)
    state_query = load_query(context.paths.sql_dir, "privileges-state")
    changes = []
    for service in context.services:
        conn = context.pg(service.instance, service.database)
        changed: list[str] = []
        with conn.transaction():
            before = _state(conn, state_query, service)
            run_steps(conn, steps, permission_values(service))
            after = _state(conn, state_query, service)
            changed = sorted({f"{kind} {name}" for kind, name, _ in after ^ before})
            if not changed:
                raise psycopg.Rollback()
        if changed:
            changes.append(Change(subject=service.subject, summary=f"privileges set on {first_few(changed, 4)}"))
    return changes
