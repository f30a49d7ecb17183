"""A service's Redis ACL user as the ``redis_acl`` hook step wants it: shared by that step and ``nndb plan``."""

from __future__ import annotations

import hashlib

from nexanest_db.roles import REDIS_SERVICE_COMMANDS, ServiceRoles

COMMANDS = " ".join(REDIS_SERVICE_COMMANDS)


def password_sha256(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def wanted_rules(service: ServiceRoles, password_hash: str) -> list[str]:
    return ["reset", "on", f"#{password_hash}", *service.redis_rules]


def acl_text(value: object) -> str:
    return " ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value or "")


def acl_matches(actual: dict[str, object] | None, service: ServiceRoles, password_hash: str) -> bool:
    if not actual:
        return False
    prefix = service.redis_prefix
    flags = acl_text(actual.get("flags")).split()
    return (
        "on" in flags
        and "nopass" not in flags
        and acl_text(actual.get("passwords")).split() == [password_hash]
        and acl_text(actual.get("keys")) == f"~{prefix}*"
        and acl_text(actual.get("channels")) == f"&{prefix}*"
        and acl_text(actual.get("commands")) == COMMANDS
        and not actual.get("selectors")
    )
