"""Built-in plugin ``backup``: register every service database in the backup catalog, with a proven backup.

A thin caller of ``nexanest_db.operations.backup`` (what registration records, when it takes a
backup, the key and PITR checks are documented there). Scheduled backups afterwards are ``nndb backup
run <stack>`` (cron / CI), which reuses the same operations.
"""

from __future__ import annotations

from nexanest_db.hookspecs import Change, HookContext, hookimpl
from nexanest_db.operations import backup


@hookimpl
def nndb_preflight(context: HookContext) -> None:
    backup.check_ready(context)  # a missing or refused backup key stops the run before anything changes


@hookimpl
def nndb_register_backups(context: HookContext) -> list[Change]:
    return backup.register_databases(context)
