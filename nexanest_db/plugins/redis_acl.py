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
from nexanest_db.operations.replica_setup import ensure_redis_replication_user, require_redis_replication_secret
from nexanest_db.redis_session import acl_user as get_user
from nexanest_db.roles import REDIS_DEFAULT_SECRET


@hookimpl
def nndb_preflight(context: HookContext) -> None:
    context.redis()
    for service in context.services:
        context.password(service.redis_secret)
    require_redis_replication_secret(context)


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
    changes += [Change(subject="redis", summary=summary) for summary in ensure_redis_replication_user(context, client)]
    if changes:
        try:
            client.execute_command("ACL", "SAVE")
        except redis.ResponseError as exc:
            raise ConfigError(
                f"redis at {context.endpoints.redis.host}:{context.endpoints.redis.port}: ACL SAVE failed ({exc}); "
                "the users are live but will not survive a restart: configure `aclfile` in redis.conf"
            ) from None
    return changes
