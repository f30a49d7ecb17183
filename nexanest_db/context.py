"""What every post-apply hook receives (``HookContext``) and returns (``Change``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import psycopg
import redis

from nexanest_db.client_tls import CA_SECRET, CaFile, ClientTls
from nexanest_db.config import Endpoints, EnvironmentConfig, ProjectPaths
from nexanest_db.pg import PostgresSessions
from nexanest_db.redis_session import connect_redis
from nexanest_db.roles import REDIS_DEFAULT_SECRET, ServiceRoles, all_services
from nexanest_db.secrets import CredentialSource


@dataclass(frozen=True, kw_only=True)
class Change:
    """One thing a hook changed, e.g. ``Change(subject="postgres/auth", summary="created role auth_owner")``."""

    subject: str
    summary: str


@dataclass(kw_only=True)
class HookContext:
    """The run context: one per run, shared by every hook of every phase.

    ``stack``, ``config``, ``endpoints`` (config overridden by DB_HOST, POSTGRES_HOST/PORT, ...,
    ``.env.db``), ``credentials``, ``paths`` (project root, ``sql/``), ``backup_dir`` and ``logger``
    are resolved once at the edge (``nndb``); nothing below reads the environment.
    """

    stack: str
    config: EnvironmentConfig
    endpoints: Endpoints
    credentials: CredentialSource
    paths: ProjectPaths
    backup_dir: Path
    logger: logging.Logger
    connect_timeout_s: float = 10.0
    lock_timeout_s: float = 60.0
    statement_timeout_s: float = 300.0
    run_lock: bool = True
    tool_environ: Mapping[str, str] = field(default_factory=dict)  # base environment of client tools (edge.Resolved)
    _passwords: dict[str, str] = field(default_factory=dict, repr=False)
    _redis: redis.Redis | None = field(default=None, repr=False)
    _ca_file: CaFile | None = field(default=None, repr=False)

    @cached_property
    def services(self) -> tuple[ServiceRoles, ...]:
        """Every service with its role names (see ``nexanest_db.roles``), in a stable order."""
        return all_services(self.config)

    def password(self, secret: str) -> str:
        """The value of a logical secret, fetched once per run. Use it at the point of use; never log it."""
        if secret not in self._passwords:
            self._passwords[secret] = self.credentials.get(secret).get_secret_value()
        return self._passwords[secret]

    def previous_password(self, secret: str) -> str | None:
        """The secret's value before its last rotation, if the source knows one (superuser rotation only)."""
        value = self.credentials.previous(secret)
        return value.get_secret_value() if value is not None else None

    def client_tls(self) -> ClientTls | None:
        """With ``tls.enabled``: the sslmode and the run's CA file (written once from ``tls_ca_cert``), else ``None``."""
        tls = self.config.tls
        if not tls.enabled:
            return None
        if self._ca_file is None:
            self._ca_file = CaFile(self.password(CA_SECRET))
        return ClientTls(sslmode=tls.client_sslmode, rootcert=self._ca_file.path)

    @cached_property
    def postgres(self) -> PostgresSessions:
        """Superuser sessions per (instance, database); the first one per instance takes the run lock."""
        return PostgresSessions(
            sql_dir=self.paths.sql_dir,
            config=self.config,
            endpoints_for=self.endpoints.for_instance,
            password_for=self.password,
            secret_hint=self.credentials.describe,
            logger=self.logger,
            previous_for=self.previous_password,
            previous_hint=self.credentials.previous_hint,
            connect_timeout_s=self.connect_timeout_s,
            lock_timeout_s=self.lock_timeout_s,
            statement_timeout_s=self.statement_timeout_s,
            run_lock=self.run_lock,
            tls=self.client_tls,
            tls_hint=self.credentials.describe(CA_SECRET) if self.config.tls.enabled else None,
        )

    def pg(self, instance: str, database: str = "postgres") -> psycopg.Connection:
        """Shorthand for ``context.postgres.connect(instance, database)``."""
        return self.postgres.connect(instance, database)

    def redis(self) -> redis.Redis:
        """The Redis client of the run, authenticated as the default user."""
        if self._redis is None:
            self._redis = connect_redis(
                endpoint=self.endpoints.redis,
                password=self.password(REDIS_DEFAULT_SECRET),
                secret_hint=self.credentials.describe(REDIS_DEFAULT_SECRET),
                timeout_s=self.connect_timeout_s,
                tls=self.client_tls(),
                tls_hint=self.credentials.describe(CA_SECRET) if self.config.tls.enabled else None,
            )
        return self._redis

    def take_changes(self) -> list[Change]:
        """Changes the context itself made while a hook used it, each handed out once.

        Today: a superuser password rotated at the first connection to an instance (the server still
        had the previous credential; see ``nexanest_db.pg``). The runner reports them like a step's.
        """
        if "postgres" not in self.__dict__:
            return []
        return [
            Change(subject=instance, summary=f"password rotated for superuser {user}") for instance, user in self.postgres.take_rotations()
        ]

    def close(self) -> None:
        """End of run: close connections (releasing the run lock)."""
        if "postgres" in self.__dict__:
            self.postgres.close()
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        if self._ca_file is not None:
            self._ca_file.remove()
            self._ca_file = None
