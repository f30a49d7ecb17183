"""What the primaries need before their replicas exist: the replication role and one slot per replica.

Run by the ``init_sql`` hook step on every deploy (the replica containers depend on the hooks, so on
a first deploy both exist before a replica's ``pg_basebackup`` starts): for each PostgreSQL
instance with replicas (``[replication.<instance>]``), on the node that takes writes,
``sql/init/04-replication-role.sql`` (the role, its password from the ``<instance>_replication``
secret as a SCRAM verifier) and ``sql/init/05-replica-slot.sql`` per replica that streams (after a
failover: every replica but the promoted one, on the promoted one). Idempotent.

Redis's replicas log in with the ACL user the stack uploads in the primary's ACL file
(``stacks/replicas.py``); ``redis_replication_user`` is its wanted shape, which the ``redis_acl``
step repairs and ``nndb drift`` checks.
"""

from __future__ import annotations

from redis import Redis

from nexanest_db import scram
from nexanest_db.config import replication_slot
from nexanest_db.context import HookContext
from nexanest_db.operations.pitr import ROLE_FILE
from nexanest_db.operations.redis_acl import WantedAclUser, sha256_hex
from nexanest_db.queries import load_query
from nexanest_db.redis_session import acl_user
from nexanest_db.roles import (
    REDIS_REPLICATION_RULES,
    REDIS_REPLICATION_SECRET,
    REDIS_REPLICATION_USER,
    REPLICATION_ROLE,
    REPLICATION_SECRETS,
)
from nexanest_db.sqlfiles import StepValues, load_step_file, run_steps

SLOT_FILE = "init/05-replica-slot.sql"


def replicated_postgres(context: HookContext) -> list[str]:
    return [name for name in context.config.replicated_instances if name != "redis"]


def require_postgres_replication_secrets(context: HookContext) -> None:
    """Preflight: the replication secret of every PostgreSQL instance with replicas is there (else the run stops)."""
    for instance in replicated_postgres(context):
        context.password(REPLICATION_SECRETS[instance])


def require_redis_replication_secret(context: HookContext) -> None:
    """Preflight: where Redis has replicas, the secret of their ACL user is there (else the run stops)."""
    if context.config.replicas_of("redis"):
        context.password(REDIS_REPLICATION_SECRET)


def ensure_replica_prerequisites(context: HookContext) -> list[tuple[str, str]]:
    """Role and slots on each replicated PostgreSQL instance; ``(instance, title)`` of each step that changed something."""
    instances = replicated_postgres(context)
    if not instances:
        return []
    role_steps = load_step_file(context.paths.sql_dir, ROLE_FILE)
    slot_steps = load_step_file(context.paths.sql_dir, SLOT_FILE)
    changed: list[tuple[str, str]] = []
    for instance in instances:
        conn = context.pg(instance)
        row = conn.execute(load_query(context.paths.sql_dir, "role-password"), {"role": REPLICATION_ROLE}).fetchone()
        verifier = scram.current_verifier(context.password(REPLICATION_SECRETS[instance]), row[0] if row else None)
        values = StepValues(identifiers={"replication_role": REPLICATION_ROLE}, literals={"replication_password": verifier})
        changed += [(instance, title) for title in run_steps(conn, role_steps, values)]
        primary = context.config.replication[instance].primary  # type: ignore[index]
        for name in context.config.replicas_of(instance):
            if name == primary:
                # The promoted replica streams from nobody: a slot for it on itself would hold WAL forever.
                continue
            slot = replication_slot(name)
            values = StepValues(identifiers={"slot_name": slot}, literals={"slot": slot})
            changed += [(instance, title) for title in run_steps(conn, slot_steps, values)]
    return changed


def redis_replication_user(password: str) -> WantedAclUser:
    """The Redis replicas' user on the primary: on, its password, no keys or channels, replication commands only."""
    return WantedAclUser(
        name=REDIS_REPLICATION_USER,
        password_sha256=sha256_hex(password),
        secret=REDIS_REPLICATION_SECRET,
        keys="",
        channels="",
        commands=("-@all", *REDIS_REPLICATION_RULES),
        commands_ordered=False,
    )


def ensure_redis_replication_user(context: HookContext, client: Redis) -> list[str]:
    """The replicas' user is in the uploaded ACL file; repaired like the services' users. The summaries of what changed."""
    if not context.config.replicas_of("redis"):
        return []
    wanted = redis_replication_user(context.password(REDIS_REPLICATION_SECRET))
    actual = acl_user(client, REDIS_REPLICATION_USER)
    if not wanted.differences(actual):
        return []
    client.execute_command("ACL", "SETUSER", REDIS_REPLICATION_USER, *wanted.rules)
    verb = "created" if actual is None else "reset"
    return [f"{verb} Redis user {REDIS_REPLICATION_USER} (replication commands only)"]
