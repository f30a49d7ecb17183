"""Built-in plugin ``monitoring``: the exporters' least-privilege identities (monitoring/identities.toml).

* ``nndb_init_sql``: on every PostgreSQL instance the ``pg_monitor`` login role the exporter uses
  (``sql/init/04-monitoring-role.sql``; password: secret ``<instance>_monitor``, sent as a SCRAM verifier).
* ``nndb_set_permissions``: the Redis ACL user the exporter uses (``reset`` and exactly the commands
  identities.toml lists; password: secret ``redis_monitor`` as ``#<sha256>``). A new Redis container
  already has it from its uploaded ACL file; this step repairs drift and rotates the password.

Idempotent like the other steps: nothing runs, and nothing is reported, when the state already matches.
"""

from __future__ import annotations

import redis

from nexanest_db import scram
from nexanest_db.errors import ConfigError
from nexanest_db.hookspecs import Change, HookContext, hookimpl
from nexanest_db.monitoring import MONITOR_SECRETS, MonitoringIdentities, load_identities
from nexanest_db.operations.redis_acl import monitor_user
from nexanest_db.queries import load_query
from nexanest_db.redis_session import acl_user
from nexanest_db.roles import postgres_instances
from nexanest_db.sqlfiles import StepValues, load_step_file, run_steps

STEP_FILE = "init/04-monitoring-role.sql"


def _identities(context: HookContext) -> MonitoringIdentities:
    return load_identities(context.paths.monitoring_dir)


@hookimpl
def nndb_preflight(context: HookContext) -> None:
    _identities(context)
    load_step_file(context.paths.sql_dir, STEP_FILE)
    for instance in postgres_instances(context.config):
        context.password(MONITOR_SECRETS[instance])
    context.password(MONITOR_SECRETS["redis"])


@hookimpl
def nndb_init_sql(context: HookContext) -> list[Change]:
    identity = _identities(context).postgres
    steps = load_step_file(context.paths.sql_dir, STEP_FILE)
    changes = []
    for instance in postgres_instances(context.config):
        conn = context.pg(instance)
        row = conn.execute(load_query(context.paths.sql_dir, "role-password"), {"role": identity.role}).fetchone()
        values = StepValues(
            identifiers={"monitor_role": identity.role, "monitor_group": identity.member_of[0]},
            literals={
                "connection_limit": identity.connection_limit,
                "monitor_password": scram.current_verifier(context.password(MONITOR_SECRETS[instance]), row[0] if row else None),
            },
        )
        changes += [Change(subject=instance, summary=title) for title in run_steps(conn, steps, values)]
    return changes


@hookimpl
def nndb_set_permissions(context: HookContext) -> list[Change]:
    identity = _identities(context).redis
    client = context.redis()
    wanted = monitor_user(identity, context.password(MONITOR_SECRETS["redis"]), MONITOR_SECRETS["redis"])
    actual = acl_user(client, identity.user)
    if actual is not None and not wanted.differences(actual):  # Redis reorders the rules it reports: compared as a set
        return []
    client.execute_command("ACL", "SETUSER", identity.user, "reset", "on", f"#{wanted.password_sha256}", *identity.commands)
    try:
        client.execute_command("ACL", "SAVE")
    except redis.ResponseError as exc:
        raise ConfigError(
            f"redis at {context.endpoints.redis.host}:{context.endpoints.redis.port}: ACL SAVE failed ({exc}); "
            "the monitoring user is live but will not survive a restart: configure `aclfile` in redis.conf"
        ) from None
    verb = "created" if actual is None else "reset"
    return [Change(subject="redis", summary=f"{verb} Redis monitoring user {identity.user} (INFO/PING/CONFIG GET class only)")]
