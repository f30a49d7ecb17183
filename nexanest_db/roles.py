"""Role and user naming: the one place that says which role a service gets and which secret guards it.

Per service ``<svc>`` (every ``[services.<svc>]`` table of the config; secret names from ``nexanest_db.secrets.catalogue``):

* ``<svc>_owner`` — NOLOGIN; owns the service's database, schema and every object its migrations create.
* ``<svc>_migrator`` — LOGIN NOINHERIT, member of ``<svc>_owner`` only: the session migrations run in
  (``SET ROLE <svc>_owner`` and nothing more). No password except a one-run random one during a run.
* ``<svc>_app`` — LOGIN; the service connects as it: read/write on its own schema only. Password: secret ``<svc>_app``.
* ``<svc>_readonly`` — LOGIN, only where ``readonly_role = true`` (analytics): SELECT only. Secret ``<svc>_readonly``.
* Redis ACL user ``<svc>`` — keys and channels under ``redis_prefix`` only. Password: secret ``redis_<svc>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexanest_db.config import EnvironmentConfig, ServiceConfig
from nexanest_db.secrets.catalogue import (  # noqa: F401 -- the secret names re-exported for the steps
    REDIS_DEFAULT_SECRET,
    REDIS_REPLICATION_SECRET,
    REPLICATION_SECRETS,
    SUPERUSER_SECRETS,
    app_secret,
    readonly_secret,
    redis_secret,
)

# The replication login on each PostgreSQL instance where [backup] pitr = true (barman) or the instance has
# replicas (their pg_basebackup and streaming): sql/init/04-replication-role.sql, secret <instance>_replication.
REPLICATION_ROLE = "nndb_replication"
# Redis replicas authenticate to the primary as this ACL user (masteruser/masterauth): replication commands only.
REDIS_REPLICATION_USER = "nndb_replication"
REDIS_REPLICATION_RULES: tuple[str, ...] = ("+psync", "+replconf", "+ping")
REDIS_SERVICE_COMMANDS: tuple[str, ...] = ("+@all", "-@dangerous")


@dataclass(frozen=True, kw_only=True)
class LoginRole:
    name: str
    secret: str


@dataclass(frozen=True, kw_only=True)
class ServiceRoles:
    service: str
    instance: str
    database: str
    schema: str
    redis_prefix: str
    owner_role: str
    migrator_role: str
    app: LoginRole
    readonly: LoginRole | None

    @property
    def login_roles(self) -> tuple[LoginRole, ...]:
        return (self.app,) if self.readonly is None else (self.app, self.readonly)

    @property
    def redis_user(self) -> str:
        return self.service

    @property
    def redis_secret(self) -> str:
        return redis_secret(self.service)

    @property
    def redis_rules(self) -> tuple[str, ...]:
        """The ACL rules of the service's Redis user, password aside: its key and channel prefix, no admin commands.

        Used twice, so the two always agree: the ACL file uploaded with a new Redis container (users
        exist from its first second) and the ``redis_acl`` hook (repairs drift, rotates passwords).
        """
        return (f"~{self.redis_prefix}*", f"&{self.redis_prefix}*", *REDIS_SERVICE_COMMANDS)

    @property
    def subject(self) -> str:
        """How reports name this service's database: ``<instance>/<database>``."""
        return f"{self.instance}/{self.database}"


def service_roles(name: str, service: ServiceConfig) -> ServiceRoles:
    readonly = LoginRole(name=f"{name}_readonly", secret=readonly_secret(name)) if service.readonly_role else None
    return ServiceRoles(
        service=name,
        instance=service.instance,
        database=service.database,
        schema=service.schema_,
        redis_prefix=service.redis_prefix,
        owner_role=f"{name}_owner",
        migrator_role=f"{name}_migrator",
        app=LoginRole(name=f"{name}_app", secret=app_secret(name)),
        readonly=readonly,
    )


def all_services(config: EnvironmentConfig) -> tuple[ServiceRoles, ...]:
    """Every service in a stable order (instance, then service name)."""
    return tuple(service_roles(name, svc) for name, svc in sorted(config.services.items(), key=lambda item: (item[1].instance, item[0])))


def postgres_instances(config: EnvironmentConfig) -> tuple[str, ...]:
    """The PostgreSQL instances that host at least one service, in a stable order."""
    return tuple(sorted({svc.instance for svc in config.services.values()}))
