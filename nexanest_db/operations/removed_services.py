"""Services removed from config whose database is still on the server: refused while it holds data.

A service is its ``[services.<name>]`` table (plus its ``sql/`` folders). Deleting the table stops
the hooks from managing the service, but its database, roles and Redis user stay where they are: the
tool never drops data because a config line went away. What it does instead, before anything
changes (the ``init_sql`` step's preflight):

* every database on the PostgreSQL instances that no ``[services.*]`` table names (the maintenance
  and template databases and the tool's ``nndb_*`` scratch databases aside) and whose migration
  ledger names a service config no longer has is a *removed service's* database;
* one that holds data (a user table with a row; the ledger itself does not count) stops the run
  with one line naming the database and what to do (docs/runbooks/add-service.md#removing-a-service);
* an empty one is only reported (a warning): nothing is lost, drop it whenever convenient.

A database restored beside the live one (``nndb backup restore --into``) names a configured service
in its ledger and is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexanest_db.context import HookContext
from nexanest_db.errors import ConfigError
from nexanest_db.queries import compose_query, load_query

# Every stack deploys both PostgreSQL instances, whether or not a service lives there (a removed
# service may have been the last one on its instance).
POSTGRES_INSTANCES: tuple[str, ...] = ("postgres", "timescale")
# The tool's own schema in every service database (the migration ledger): rows there are not the service's data.
TOOL_SCHEMA = "nndb"
RUNBOOK = "docs/runbooks/add-service.md#removing-a-service"


@dataclass(frozen=True, kw_only=True)
class RemovedService:
    """A database on ``instance`` whose ledger names ``services``, none of which config has any more."""

    instance: str
    database: str
    services: tuple[str, ...]
    tables_with_rows: tuple[str, ...]  # schema.table of every user table holding at least one row

    @property
    def subject(self) -> str:
        return f"{self.instance}/{self.database}"

    @property
    def holds_data(self) -> bool:
        return bool(self.tables_with_rows)


def find_removed_services(context: HookContext) -> list[RemovedService]:
    """Every removed service's database on the stack's PostgreSQL instances, with the tables that hold rows."""
    sql_dir = context.paths.sql_dir
    configured = set(context.config.services)
    found: list[RemovedService] = []
    for instance in POSTGRES_INSTANCES:
        databases = [service.database for service in context.config.services_on(instance).values()]
        rows = context.pg(instance).execute(load_query(sql_dir, "unconfigured-databases"), {"configured": databases}).fetchall()
        for (database,) in rows:
            try:
                removed = _inspect(context, instance, database, configured)
            finally:
                context.postgres.close_database(instance, database)  # no session left on a database nobody manages
            if removed is not None:
                found.append(removed)
    return found


def _inspect(context: HookContext, instance: str, database: str, configured: set[str]) -> RemovedService | None:
    sql_dir = context.paths.sql_dir
    conn = context.pg(instance, database)
    has_ledger = conn.execute(load_query(sql_dir, "ledger-exists")).fetchone()
    if not has_ledger or not has_ledger[0]:
        return None  # not a database the tool ever managed (someone's own): none of the hooks' business
    services = tuple(row[0] for row in conn.execute(load_query(sql_dir, "ledger-services")).fetchall())
    gone = tuple(service for service in services if service not in configured)
    if not gone or len(gone) < len(services):
        return None  # its ledger names a configured service: a copy restored beside the live database, not a removal
    with_rows = []
    for schema, table in conn.execute(load_query(sql_dir, "backup-tables")).fetchall():
        if schema == TOOL_SCHEMA:
            continue
        row = conn.execute(compose_query(sql_dir, "table-has-rows", table=(schema, table))).fetchone()
        if row and row[0]:
            with_rows.append(f"{schema}.{table}")
    return RemovedService(instance=instance, database=database, services=gone, tables_with_rows=tuple(with_rows))


def refuse_removed_services(context: HookContext) -> None:
    """Stop the run (``ConfigError``, one line) when a removed service's database holds data; warn about empty ones."""
    removed = find_removed_services(context)
    for entry in removed:
        if not entry.holds_data:
            context.logger.warning(
                "%s: database %s belonged to service %s, which config/%s.toml no longer has; it holds no data: "
                "drop it (and the service's roles) when convenient (%s)",
                entry.subject,
                entry.database,
                ", ".join(entry.services),
                context.config.environment,
                RUNBOOK,
            )
    loaded = [entry for entry in removed if entry.holds_data]
    if not loaded:
        return
    first = loaded[0]
    service = first.services[0]
    tables = len(first.tables_with_rows)
    example = first.tables_with_rows[0]
    more = f" (and {len(loaded) - 1} more removed service database{'s' if len(loaded) > 2 else ''} with data)" if len(loaded) > 1 else ""
    raise ConfigError(
        f"{first.subject}: database {first.database} of service {service} still holds data ({tables} table{'s' if tables != 1 else ''} "
        f"with rows, e.g. {example}) but config/{context.config.environment}.toml has no [services.{service}] any more; "
        f"put the table back, or retire the service first: export a last backup and drop the database ({RUNBOOK}){more}"
    )
