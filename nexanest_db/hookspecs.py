"""Post-apply hook specifications: the contract between ``nndb hooks run`` and its plugins.

After ``cdktf deploy <stack>`` applies, the stack's ``terraform_data`` resource runs
``nndb hooks run <stack>``, which calls these hooks, one per phase, in this order:

1. ``nndb_preflight``        — check every endpoint, credential and tool you will need; change nothing.
2. ``nndb_init_sql``         — databases and roles (``sql/init/01-create-databases.sql``).
3. ``nndb_apply_migrations`` — schemas, baseline and versioned migrations (``sql/init/02-apply-schemas.sql``,
   ``sql/schemas/<service>/``, ``sql/migrations/<service>/``).
4. ``nndb_set_permissions``  — grants (``sql/init/03-set-permissions.sql``) and Redis ACL users.
5. ``nndb_register_backups`` — backup catalog, a first backup, proven by a restore.

Why one hook per phase: pluggy calls the implementations of ONE hook last-registered-first, so
the order between plugins of the same hook depends on who registered when. Phases are separate
hooks, called one after the other, so the order above never depends on registration. Within a
phase the runner calls the implementations by plugin name, Z to A (``nexanest_db.hook_manager``),
and they must be independent of each other.

Writing a plugin (a third-party one is registered exactly like the built-ins)::

    # my_team_step.py
    from nexanest_db.hookspecs import Change, HookContext, hookimpl

    @hookimpl
    def nndb_set_permissions(context: HookContext) -> list[Change]:
        ...
        return [Change(subject="postgres/auth", summary="granted reporting access")]

    # pyproject.toml of your package
    [project.entry-points.nexanest_db]
    my_team_step = "my_team_step"

Rules every implementation follows:

* Arguments are passed by name; declare only the ones you use (pluggy allows a subset). Declare them
  as ordinary parameters: pluggy does not see keyword-only (``*,``) parameters.
* Idempotent: a second run on an up-to-date target changes nothing and returns ``[]``.
* Return the changes you made (``list[Change]``; ``None`` or ``[]`` = nothing changed). Say
  everything else (warnings, "not available" notes) through ``context.logger``, one line each.
* Fail by raising ``nexanest_db.errors.NndbError`` (or a subclass) with a one-line message saying
  what went wrong and what to do; the runner stops the run and reports it as
  ``plugin '<name>' failed in <hook>: <message>``. Any other exception is reported the same way
  and keeps its traceback (``--verbose``).
* Never log, return or raise a secret value. Get secrets with ``context.password(name)`` at the
  point of use; connect through ``context.pg(...)`` / ``context.redis()``.
* Wrappers (``hookwrapper=True`` / ``wrapper=True``) are refused on these hooks: the runner calls
  each implementation on its own so that a failure names its plugin.

Switching a plugin off: ``NNDB_DISABLE_PLUGINS=backup,redis_acl`` or ``nndb hooks run <stack>
--disable-plugin backup`` (names are entry-point names; ``nndb hooks list`` shows them).

Role naming used by the built-in plugins is documented in ``nexanest_db.roles``.
"""

from __future__ import annotations

import pluggy

from nexanest_db.context import Change, HookContext

PROJECT_NAME = "nexanest_db"  # pluggy project name and entry-point group

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PHASE_HOOKS", "PROJECT_NAME", "Change", "HookContext", "hookimpl", "hookspec"]


@hookspec
def nndb_preflight(context: HookContext) -> list[Change] | None:
    """Phase 1 — before anything changes: prove you can do your job.

    Runs: first, every run (``nndb hooks run``, ``nndb migrate apply``).
    Receives: ``context`` — the run's :class:`HookContext`.
    Does: connect to the endpoints you need (``context.pg(instance)``, ``context.redis()``), fetch
    the secrets you will use (``context.password(name)``), check tools and file syntax.
    Must not change anything: a failure here leaves every target untouched (unreachable host,
    wrong password, missing secret, broken migration file all stop the run at this point).
    The one change that can happen here is not yours: when the server refuses the current
    superuser secret but accepts the previous one, the first ``context.pg(instance)`` of the run
    sets the superuser password to the current secret (the runner reports it, as step ``nndb``).
    Returns: ``None`` (changes are not expected here).
    """


@hookspec
def nndb_init_sql(context: HookContext) -> list[Change] | None:
    """Phase 2 — databases and roles exist.

    Runs: after every ``nndb_preflight`` implementation succeeded.
    Receives: ``context``.
    Built-in: ``init_sql`` runs ``sql/init/01-create-databases.sql`` for each service on its instance
    (owner role, login roles and their current passwords, the database).
    Returns: the changes made (``list[Change]``), ``[]``/``None`` when already in place.
    """


@hookspec
def nndb_apply_migrations(context: HookContext) -> list[Change] | None:
    """Phase 3 — each service's schema, baseline and migrations are applied.

    Runs: after ``nndb_init_sql``, so every service database exists.
    Receives: ``context``.
    Built-in: ``migrations`` runs ``sql/init/02-apply-schemas.sql`` (schema, extensions), then the
    baseline (``sql/schemas/<service>/``, ledger version 0) and ``sql/migrations/<service>/V<n>__*.sql``,
    each in its own transaction, recorded in the ledger ``nndb.schema_migrations``.
    Returns: one change per applied migration or created object.
    """


@hookspec
def nndb_set_permissions(context: HookContext) -> list[Change] | None:
    """Phase 4 — least privilege: who may touch what.

    Runs: after ``nndb_apply_migrations``, so the objects to grant on exist.
    Receives: ``context``.
    Built-in: ``permissions`` runs ``sql/init/03-set-permissions.sql`` per service (in one transaction,
    committed only if the privileges actually differ); ``redis_acl`` sets the per-service Redis users.
    Returns: the changes made.
    """


@hookspec
def nndb_register_backups(context: HookContext) -> list[Change] | None:
    """Phase 5 — every database is in the backup catalog with a backup proven restorable.

    Runs: last, after permissions.
    Receives: ``context`` (``context.backup_dir`` is where dumps and the catalog live).
    Built-in: ``backup`` records the environment's policy (schedule, retention, PITR) and, when a
    database has no verified backup yet, takes one (``pg_dump -Fc``) and restores it into a
    scratch database to compare row counts.
    Returns: the changes made.
    """


PHASE_HOOKS: tuple[str, ...] = (
    "nndb_preflight",
    "nndb_init_sql",
    "nndb_apply_migrations",
    "nndb_set_permissions",
    "nndb_register_backups",
)
