"""Built-in plugin ``migrations``: schemas, baselines and versioned migrations, per service.

A thin caller of ``nexanest_db.operations.migrations`` (``check_files``, ``apply_all``), where the
order below is implemented.

Preflight parses every file (syntax errors stop the run with ``file:line`` before any change).
The phase then plans every service against its ledger first — a changed applied file or an
out-of-order new one stops the run before anything is applied anywhere — and only then, per
service: ``sql/init/02-apply-schemas.sql``, the ledger (``sql/ledger/``), and each pending
migration in its own transaction. Everything runs under the run lock (``nexanest_db.pg``).
"""

from __future__ import annotations

from nexanest_db.hookspecs import Change, HookContext, hookimpl
from nexanest_db.operations import migrations


@hookimpl
def nndb_preflight(context: HookContext) -> None:
    migrations.check_files(context)


@hookimpl
def nndb_apply_migrations(context: HookContext) -> list[Change]:
    return migrations.apply_all(context)
