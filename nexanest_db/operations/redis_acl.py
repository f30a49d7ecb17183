"""The Redis ACL users nndb manages, and how a live user differs from its wanted rules.

Shared by the ``redis_acl`` and ``monitoring`` hook steps (which repair a user that differs) and
``nndb drift`` (which reports how it differs): one definition, so "up to date" for the hooks and "no
drift" agree. Passwords are compared as SHA-256 digests (``#<hex>`` rules), never as plaintext.

* a service user ``<service>``: ``reset on #<sha256> ~<prefix>* &<prefix>* +@all -@dangerous``
  (``ServiceRoles.redis_rules``); its commands are compared in order (Redis applies them in order);
* the exporter's user (monitoring/identities.toml): ``reset on #<sha256>`` plus exactly the listed
  commands, no keys, no channels; Redis reorders what it reports, so its commands compare as a set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from nexanest_db.monitoring import RedisMonitorIdentity
from nexanest_db.roles import ServiceRoles


def sha256_hex(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def acl_text(value: object) -> str:
    """An ``ACL GETUSER`` field (string or list) as one space-separated string."""
    return " ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value or "")


@dataclass(frozen=True, kw_only=True)
class WantedAclUser:
    """What one managed Redis user must look like (password as its SHA-256 digest)."""

    name: str
    password_sha256: str
    secret: str  # the logical secret its password comes from (for messages; never its value)
    keys: str
    channels: str
    commands: tuple[str, ...]
    commands_ordered: bool

    @property
    def rules(self) -> list[str]:
        """The ``ACL SETUSER`` arguments that make a user exactly this."""
        patterns = [rule for rule in (self.keys, self.channels) if rule]
        return ["reset", "on", f"#{self.password_sha256}", *patterns, *self.commands]

    def differences(self, actual: Mapping[str, object] | None) -> list[str]:
        """How the live user (``ACL GETUSER``) differs, one phrase per rule; empty when it matches."""
        if not actual:
            return ["missing"]
        problems = []
        flags = acl_text(actual.get("flags")).split()
        if "on" not in flags:
            problems.append("is off (wanted on)")
        if "nopass" in flags:
            problems.append("has nopass (any password logs in)")
        passwords = acl_text(actual.get("passwords")).split()
        if passwords != [self.password_sha256]:
            problems.append(f"password differs from secret {self.secret} ({len(passwords)} password(s) set)")
        keys, channels = acl_text(actual.get("keys")), acl_text(actual.get("channels"))
        if keys != self.keys:
            problems.append(f"keys {keys or '(none)'!r}, wanted {self.keys or '(none)'!r}")
        if channels != self.channels:
            problems.append(f"channels {channels or '(none)'!r}, wanted {self.channels or '(none)'!r}")
        commands = acl_text(actual.get("commands"))
        wanted = " ".join(self.commands)
        same = commands == wanted if self.commands_ordered else set(commands.split()) == set(self.commands)
        if not same:
            problems.append(f"commands {commands!r}, wanted {wanted!r}")
        if actual.get("selectors"):
            problems.append("has selectors (wanted none)")
        return problems


def service_user(service: ServiceRoles, password: str) -> WantedAclUser:
    prefix = service.redis_prefix
    keys, channels, *commands = service.redis_rules
    assert keys == f"~{prefix}*" and channels == f"&{prefix}*"
    return WantedAclUser(
        name=service.redis_user,
        password_sha256=sha256_hex(password),
        secret=service.redis_secret,
        keys=keys,
        channels=channels,
        commands=tuple(commands),
        commands_ordered=True,
    )


def monitor_user(identity: RedisMonitorIdentity, password: str, secret: str) -> WantedAclUser:
    return WantedAclUser(
        name=identity.user,
        password_sha256=sha256_hex(password),
        secret=secret,
        keys="",
        channels="",
        commands=("-@all", *identity.rules),
        commands_ordered=False,
    )


def default_user_differences(actual: Mapping[str, object] | None) -> list[str]:
    """The default user (the admin nndb connects as) must be on and password-protected; its other rules are not nndb's."""
    flags = acl_text((actual or {}).get("flags")).split()
    problems = []
    if "nopass" in flags or not acl_text((actual or {}).get("passwords")):
        problems.append("has no password (nopass)")
    if "off" in flags:
        problems.append("is off")
    return problems
