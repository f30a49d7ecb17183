"""Built-in plugin ``redis_acl``: one Redis ACL user per service, confined to its key prefix.

User ``<service>`` (password: secret ``redis_<service>``) may use keys ``<prefix>*`` and channels
``<prefix>*`` with every command except the ``@dangerous`` ones (FLUSHALL, KEYS, CONFIG, ACL, ...).
The default user must stay password-protected (it is the admin the hooks connect as).

Idempotent: ``ACL GETUSER`` is compared with the wanted rules first; ``ACL SETUSER`` (passwords as
``#<sha256>``, never plaintext) and ``ACL SAVE`` (so users survive a restart; needs ``aclfile``) run
only when something differs.
"""

from __future__ import annotations

import redis

from nexanest_db.errors import ConfigError
from nexanest_db.hookspecs import Change, HookContext, hookimpl
from nexanest_db.operations.redis_acl import acl_text, service_user, sha256_hex
from nexanest_db.operations.replica_setup import redis_replication_user
from nexanest_db.redis_session import acl_user as get_user
from nexanest_db.roles import REDIS_DEFAULT_SECRET, REDIS_REPLICATION_SECRET, REDIS_REPLICATION_USER


@hookimpl
def nndb_preflight(context: HookContext) -> None:
    context.redis()
    for service in context.services:
        context.password(service.redis_secret)
    if context.config.replicas_of("redis"):
        context.password(REDIS_REPLICATION_SECRET)


@hookimpl
def nndb_set_permissions(context: HookContext) -> list[Change]:
    client = context.redis()
    changes = []
    default = get_user(client, "default") or {}
    if "nopass" in acl_text(default.get("flags")).split() or not acl_text(default.get("passwords")):
        # Raw ACL SETUSER: redis-py's acl_setuser() would also switch the user "off" unless told otherwise.
        client.execute_command("ACL", "SETUSER", "default", "on", "resetpass", f"#{sha256_hex(context.password(REDIS_DEFAULT_SECRET))}")
        changes.append(Change(subject="redis", summary="default user password-protected"))
    for service in context.services:
        wanted = service_user(service, context.password(service.redis_secret))
        actual = get_user(client, service.redis_user)
        if not wanted.differences(actual):
            continue
        client.execute_command("ACL", "SETUSER", service.redis_user, *wanted.rules)
        if actual is None:
            summary = f"created Redis user {service.redis_user} (keys {service.redis_prefix}*)"
        elif not wanted.differences({**actual, "passwords": [wanted.password_sha256]}):
            summary = f"password rotated for Redis user {service.redis_user}"
        else:
            summary = f"reset Redis user {service.redis_user} to keys {service.redis_prefix}*"
        changes.append(Change(subject="redis", summary=summary))
    if context.config.replicas_of("redis"):  # the replicas' user is in the uploaded ACL file; repaired like the others
        wanted = redis_replication_user(context.password(REDIS_REPLICATION_SECRET))
        actual = get_user(client, REDIS_REPLICATION_USER)
        if wanted.differences(actual):
            client.execute_command("ACL", "SETUSER", REDIS_REPLICATION_USER, *wanted.rules)
            verb = "created" if actual is None else "reset"
            changes.append(Change(subject="redis", summary=f"{verb} Redis user {REDIS_REPLICATION_USER} (replication commands only)"))
    if changes:
        try:
            client.execute_command("ACL", "SAVE")
        except redis.ResponseError as exc:
            raise ConfigError(
                f"redis at {context.endpoints.redis.host}:{context.endpoints.redis.port}: ACL SAVE failed ({exc}); "
                "the users are live but will not survive a restart: configure `aclfile` in redis.conf"
            ) from None
    return changes
