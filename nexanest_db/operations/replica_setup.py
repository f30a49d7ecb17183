"""What the primaries need before their replicas exist: the replication role and one slot per replica.

Run by the ``init_sql`` hook step on every deploy (the replica containers depend on the hooks, so on
a first deploy both exist before a replica's ``pg_basebackup`` starts): for each PostgreSQL
instance with replicas (``[replication.<instance>]``), on the node that takes writes,
``sql/init/04-replication-role.sql`` (the role, its password from the ``<instance>_replication``
secret as a SCRAM verifier) and ``sql/init/05-replica-slot.sql`` per replica. Idempotent.

Redis's replicas log in with the ACL user the stack uploads in the primary's ACL file
(``stacks/replicas.py``); ``redis_replication_user`` is its wanted shape, which the ``redis_acl``
step repairs and ``nndb drift`` checks.
"""

from __future__ import annotations

from nexanest_db import scram
from nexanest_db.config import replication_slot
from nexanest_db.context import HookContext
from nexanest_db.operations.pitr import ROLE_FILE
from nexanest_db.operations.redis_acl import WantedAclUser, sha256_hex
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
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (REPLICATION_ROLE,)).fetchone()
        verifier = scram.current_verifier(context.password(REPLICATION_SECRETS[instance]), row[0] if row else None)
        values = StepValues(identifiers={"replication_role": REPLICATION_ROLE}, literals={"replication_password": verifier})
        changed += [(instance, title) for title in run_steps(conn, role_steps, values)]
        for name in context.config.replicas_of(instance):
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
