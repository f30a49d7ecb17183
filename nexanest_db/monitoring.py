"""The exporters' monitoring identities, read from ``monitoring/identities.toml`` (the one definition).

The stacks put the Redis user into the ACL file a new Redis container starts with and give each
exporter its login; the ``monitoring`` hook step creates the PostgreSQL role and repairs the Redis
user on every deploy. Passwords are secrets (``MONITOR_SECRETS``), never in this file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from nexanest_db.errors import ConfigError
from nexanest_db.secrets.catalogue import MONITOR_SECRETS  # noqa: F401 -- the secret each exporter logs in with, re-exported

IDENTITIES_FILE = "identities.toml"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ACL_USER = re.compile(r"^[a-zA-Z0-9_-]+$")
_ACL_COMMAND = re.compile(r"^\+[a-z]+(\|[a-z]+)?$")


@dataclass(frozen=True, kw_only=True)
class PostgresMonitorIdentity:
    role: str
    member_of: tuple[str, ...]
    connection_limit: int


@dataclass(frozen=True, kw_only=True)
class RedisMonitorIdentity:
    user: str
    commands: tuple[str, ...]

    @property
    def rules(self) -> tuple[str, ...]:
        """ACL rules after ``reset``: only the listed commands (no keys, no channels)."""
        return self.commands


@dataclass(frozen=True, kw_only=True)
class MonitoringIdentities:
    postgres: PostgresMonitorIdentity
    redis: RedisMonitorIdentity


def load_identities(monitoring_dir: Path) -> MonitoringIdentities:
    """``<monitoring_dir>/identities.toml`` as typed identities, or one ``ConfigError`` line naming the key."""
    path = monitoring_dir / IDENTITIES_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; the exporters' identities live there (restore it from git)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        pg, rd = raw["postgres"], raw["redis"]
        postgres = PostgresMonitorIdentity(
            role=str(pg["role"]), member_of=tuple(str(g) for g in pg["member_of"]), connection_limit=int(pg["connection_limit"])
        )
        redis = RedisMonitorIdentity(user=str(rd["user"]), commands=tuple(str(c) for c in rd["commands"]))
    except KeyError as exc:
        raise ConfigError(f"{path}: missing key {exc.args[0]!r}; see monitoring/README.md, 'Monitoring identities'") from None
    for name in (postgres.role, *postgres.member_of):
        if not _IDENTIFIER.match(name):
            raise ConfigError(f"{path}: postgres: {name!r} is not a plain PostgreSQL identifier")
    if len(postgres.member_of) != 1:
        raise ConfigError(f"{path}: postgres.member_of must name exactly one role (pg_monitor), got {list(postgres.member_of)}")
    if not 1 <= postgres.connection_limit <= 100:
        raise ConfigError(f"{path}: postgres.connection_limit must be 1-100, got {postgres.connection_limit}")
    if not _ACL_USER.match(redis.user) or redis.user == "default":
        raise ConfigError(f"{path}: redis.user {redis.user!r} must be letters, digits, '_' or '-', and not 'default'")
    for command in redis.commands:
        if not _ACL_COMMAND.match(command):
            raise ConfigError(f"{path}: redis.commands: {command!r} must allow one command or subcommand (+info, +config|get)")
    return MonitoringIdentities(postgres=postgres, redis=redis)
