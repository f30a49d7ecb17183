"""Per-environment configuration: typed, validated, resolved once at the edge.

Each environment has one TOML file, ``config/<environment>.toml``; the stack
name is ``<environment>-db``. ``load_environment`` turns it into a frozen
``EnvironmentConfig`` or raises one ``ConfigError`` line naming the file and
the field. ``resolve_endpoints`` applies the ADR connection settings
(``DB_HOST``, ``POSTGRES_HOST``/``_PORT``, ...) from the process environment
and ``.env.db``. Nothing below the CLI/``main.py`` reads the environment: they
pass the results of these functions down.
"""

from __future__ import annotations

import io
import ipaddress
import math
import os
import posixpath
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Annotated, Literal

from dotenv.parser import parse_stream
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nexanest_db.errors import ConfigError, and_more

STACKS: tuple[str, ...] = ("local-db", "dev-db", "staging-db", "prod-db")
# A service name becomes role names (<name>_migrator: 63 characters at most), a Redis ACL user, the folders
# sql/schemas/<name>/ and sql/migrations/<name>/ and environment variable names (<NAME>_DB_PASSWORD).
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Names another part of the tier already uses: Redis's own user, the tool's roles and databases (nndb_*), PostgreSQL's pg_*.
RESERVED_SERVICE_NAMES: frozenset[str] = frozenset({"default", "public", "postgres", "timescale", "redis"})
RESERVED_SERVICE_PREFIXES: tuple[str, ...] = ("nndb", "pg_")
# A secret's environment variable (the catalogue derives <NAME>_FILE and <NAME>_PREVIOUS from it).
_ENV_VAR = re.compile(r"^[A-Z][A-Z0-9_]{0,99}$")
INSTANCES: tuple[str, ...] = ("postgres", "timescale", "redis")
PROTECTED_ENVIRONMENTS: frozenset[str] = frozenset({"staging", "prod"})
DEV_DEFAULT_ENVIRONMENTS: frozenset[str] = frozenset({"local", "dev"})

_DIGEST = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SETTING_KEY = re.compile(r"^[a-z][a-z0-9_.-]*$")
MANAGED_SETTINGS: frozenset[str] = frozenset(
    {
        "listen_addresses",
        "port",
        "bind",
        "aclfile",
        "dir",
        "archive_mode",
        "archive_command",
        "wal_level",
        "password_encryption",
        "ssl",
        "ssl_cert_file",
        "ssl_key_file",
        "ssl_ca_file",
        "ssl_min_protocol_version",
        "hba_file",
        "tls-port",
        "tls-cert-file",
        "tls-key-file",
        "tls-ca-cert-file",
        "tls-auth-clients",
        "tls-protocols",
    }
)
_DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# A Docker image reference: [registry[:port]/]name[/name...][:tag][@sha256:digest] — nothing else.
_IMAGE = re.compile(
    r"^(?:[a-zA-Z0-9][a-zA-Z0-9.-]*(?::[0-9]{1,5})?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_SSH_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
# Setting values are written into postgresql.conf / redis.conf: plain tokens only (sizes such as
# 128MB, numbers, enums such as allkeys-lru, comma lists of names such as timescaledb,pg_stat_statements).
_PG_SETTING_VALUE = re.compile(r"^[A-Za-z0-9_.+-]+(?:\s*,\s*[A-Za-z0-9_.+-]+)*$")
_REDIS_SETTING_VALUE = re.compile(r"^[A-Za-z0-9_.+-]+(?: [A-Za-z0-9_.+-]+)*$")
# Settings that reach outside the server's own data (files, programs, libraries, other config
# files) or switch its protections off: never from the environment's TOML.
POSTGRES_REFUSED_SETTINGS: frozenset[str] = frozenset(
    {
        "include",
        "include_dir",
        "include_if_exists",
        "config_file",
        "data_directory",
        "ident_file",
        "external_pid_file",
        "unix_socket_directories",
        "unix_socket_group",
        "unix_socket_permissions",
        "dynamic_library_path",
        "local_preload_libraries",
        "session_preload_libraries",
        "log_directory",
        "log_filename",
        "restore_command",
        "archive_cleanup_command",
        "recovery_end_command",
        "archive_library",
        "ssl_passphrase_command",
        "ssl_crl_file",
        "ssl_crl_dir",
        "krb_server_keyfile",
        "allow_system_table_mods",
        "ignore_system_indexes",
        "zero_damaged_pages",
        "fsync",
        "full_page_writes",
        "log_statement",
        "log_min_duration_sample",
    }
)
REDIS_REFUSED_SETTINGS: frozenset[str] = frozenset(
    {
        "include",
        "loadmodule",
        "rename-command",
        "enable-debug-command",
        "enable-module-command",
        "enable-protected-configs",
        "protected-mode",
        "requirepass",
        "masterauth",
        "masteruser",
        "user",
        "dbfilename",
        "appendfilename",
        "appenddirname",
        "logfile",
        "pidfile",
        "unixsocket",
        "unixsocketperm",
        "replicaof",
        "slaveof",
        "tls-replication",
        "tls-cluster",
        "cluster-enabled",
        "cluster-config-file",
    }
)
RESERVED_DATABASES: frozenset[str] = frozenset({"postgres", "template0", "template1"})
RESERVED_SCHEMAS: frozenset[str] = frozenset({"nndb", "public", "information_schema"})
# Scratch databases of backup verification are named nndb_verify_<db>_<random>: no service may use the prefix.
TOOL_DATABASE_PREFIX = "nndb_"


def _control_characters(value: str) -> bool:
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029" for ch in value)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def check_setting_value(key: str, value: str | int | float | bool, pattern: re.Pattern[str], kind: str) -> None:
    """One setting value, by type; raises ``ValueError`` naming the key (never writes anything raw)."""
    if isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key}: {value} is not a usable number")
    if isinstance(value, int | float):
        return
    if _control_characters(value):
        raise ValueError(f"{key}: the value contains a control character (a newline would add lines to {kind}); give one plain value")
    if value == "" and kind == "redis.conf":
        return
    if not pattern.match(value):
        raise ValueError(
            f"{key}: {_shown(value)} is not a plain value (a size such as 128MB, a number, a word such as allkeys-lru"
            f"{', or a comma list of names' if kind == 'postgresql.conf' else ''}); quotes, spaces, paths and other characters are refused"
        )


Port = Annotated[int, Field(ge=1, le=65535)]
Identifier = Annotated[str, Field(pattern=_IDENTIFIER.pattern)]
DockerName = Annotated[str, Field(pattern=_DOCKER_NAME.pattern)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SshTarget(_Model):
    """How the Docker provider reaches a remote engine (``ssh://user@host:port``)."""

    user: str = Field(pattern=_SSH_USER.pattern)
    host: str = Field(min_length=1)
    port: Port = 22
    opts: list[str] = Field(default_factory=list)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host(value)

    def url(self, host_override: str | None = None) -> str:
        host = host_override or self.host
        suffix = "" if self.port == 22 else f":{self.port}"
        return f"ssh://{self.user}@{host}{suffix}"


class DockerConfig(_Model):
    """The Docker engine that runs the database tier."""

    host: str | None = Field(default=None, description="Engine URL for a local engine, e.g. unix:///var/run/docker.sock")
    ssh: SshTarget | None = None

    @model_validator(mode="after")
    def _one_target(self) -> DockerConfig:
        if (self.host is None) == (self.ssh is None):
            raise ValueError("set exactly one of docker.host (local engine) or [docker.ssh] (remote engine)")
        return self


class NetworkConfig(_Model):
    name: DockerName
    # Docker publishes no port of a container attached only to an internal network, and every
    # stack publishes its databases' ports (the hooks and the services reach them there): refused
    # below rather than deployed unreachable.
    internal: bool = False
    # ADR-015: "no direct internet access". A prod stack may bind its published ports to every
    # interface (0.0.0.0 / ::) only when its config says so deliberately.
    allow_all_interfaces: bool = False


class Resources(_Model):
    memory_mb: int = Field(ge=64, le=1024 * 1024)
    cpus: float = Field(gt=0, le=256)


class InstanceConfig(_Model):
    """One database container: image, published port, limits and settings."""

    image: str = Field(min_length=1)
    port: Port
    container_port: Port
    resources: Resources
    restart: Literal["no", "on-failure", "always", "unless-stopped"] = "unless-stopped"
    settings: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        if not _IMAGE.match(value):
            raise ValueError(
                f"{_shown(value)} is not an image reference; expected [registry/]name[:tag][@sha256:<digest>], e.g. postgres:15"
            )
        return value

    @field_validator("settings")
    @classmethod
    def _settings_keys(cls, value: dict[str, str | int | float | bool]) -> dict[str, str | int | float | bool]:
        for key in value:
            if not _SETTING_KEY.match(key):
                raise ValueError(f"{_shown(key)} is not a valid setting name")
            if key in MANAGED_SETTINGS:
                raise ValueError(f"{key!r} is managed by the tool (templates/backup policy); remove it from settings")
        return value


class PostgresInstanceConfig(InstanceConfig):
    superuser: Identifier = "nexanest"
    container_port: Port = 5432

    @field_validator("settings")
    @classmethod
    def _postgres_values(cls, value: dict[str, str | int | float | bool]) -> dict[str, str | int | float | bool]:
        for key, setting in value.items():
            if key in POSTGRES_REFUSED_SETTINGS:
                raise ValueError(f"{key}: reaches outside the server's own data or disables a protection; not settable from config")
            check_setting_value(key, setting, _PG_SETTING_VALUE, "postgresql.conf")
        return value


class RedisInstanceConfig(InstanceConfig):
    container_port: Port = 6379

    @field_validator("settings")
    @classmethod
    def _redis_values(cls, value: dict[str, str | int | float | bool]) -> dict[str, str | int | float | bool]:
        for key, setting in value.items():
            if key in REDIS_REFUSED_SETTINGS or key.startswith("tls-"):
                raise ValueError(f"{key}: reaches outside the server's own data or disables a protection; not settable from config")
            check_setting_value(key, setting, _REDIS_SETTING_VALUE, "redis.conf")
        return value


# The upstream releases monitoring/README.md checked the rules' metric names against (by digest in prod).
DEFAULT_POSTGRES_EXPORTER_IMAGE = "quay.io/prometheuscommunity/postgres-exporter:v0.11.1"
DEFAULT_REDIS_EXPORTER_IMAGE = "oliver006/redis_exporter:v1.45.0"


class ExporterConfig(_Model):
    """One Prometheus exporter container beside a database (monitoring/README.md: the scrape config).

    ``port`` is the published port, bound to ``bind_address`` like the databases'; the exporter
    listens on its image's default port inside the container.
    """

    image: str = Field(min_length=1)
    port: Port
    resources: Resources = Resources(memory_mb=64, cpus=0.25)
    restart: Literal["no", "on-failure", "always", "unless-stopped"] = "unless-stopped"


class ExportersConfig(_Model):
    """The exporters of the tier: one per PostgreSQL/TimescaleDB instance, one for Redis."""

    postgres: ExporterConfig = ExporterConfig(image=DEFAULT_POSTGRES_EXPORTER_IMAGE, port=9187)
    timescale: ExporterConfig = ExporterConfig(image=DEFAULT_POSTGRES_EXPORTER_IMAGE, port=9188)
    redis: ExporterConfig = ExporterConfig(image=DEFAULT_REDIS_EXPORTER_IMAGE, port=9121)

    def for_instance(self, name: str) -> ExporterConfig:
        return {"postgres": self.postgres, "timescale": self.timescale, "redis": self.redis}[name]


class HealthcheckConfig(_Model):
    """ADR-015 'Monitoring and Maintenance': 30s / 10s / 5 retries."""

    interval_s: int = Field(default=30, ge=1)
    timeout_s: int = Field(default=10, ge=1)
    retries: int = Field(default=5, ge=1)
    start_period_s: int = Field(default=10, ge=0)
    deploy_wait_timeout_s: int = Field(default=300, ge=10, le=3600)


class LocalBackend(_Model):
    type: Literal["local"]
    path: str

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if Path(value).is_absolute():
            raise ValueError("must be relative (synth must not depend on the machine); e.g. ../../../terraform.local-db.tfstate")
        if not value.startswith("../../../"):
            raise ValueError(
                "must point outside cdktf.out (terraform runs in cdktf.out/stacks/<stack>/), e.g. ../../../terraform.<stack>.tfstate"
            )
        # Resolved from cdktf.out/stacks/<stack>/, it must land in the project itself, not above it.
        inside = posixpath.normpath(value.removeprefix("../../../"))
        if inside in {".", ""} or inside.startswith("..") or value.endswith("/"):
            raise ValueError(
                f"{_shown(value)} leaves the project; state stays in the project root, e.g. ../../../terraform.<stack>.tfstate"
            )
        return value


class CloudBackend(_Model):
    type: Literal["cloud"]
    organization: str = Field(min_length=1)
    workspace: str = Field(min_length=1)
    hostname: str = "app.terraform.io"


class VaultSecretRef(_Model):
    """Where one secret lives in Vault KV v2."""

    path: str = Field(min_length=1)
    key: str = Field(min_length=1)
    version: int | None = Field(default=None, ge=1)


class VaultConfig(_Model):
    mount: str = Field(default="secret", min_length=1)
    auth: Literal["token", "approle"] = "token"
    approle_mount: str = "approle"
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Where each service's secrets live when [secrets.vault.secrets] names none for it:
    # <services_path>/<service>, keys db_password, readonly_password, redis_password (docs/secrets.md).
    services_path: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")
    secrets: dict[str, VaultSecretRef]


class SecretsConfig(_Model):
    source: Literal["env", "vault"]
    vault: VaultConfig | None = None

    @model_validator(mode="after")
    def _vault_needs_settings(self) -> SecretsConfig:
        if self.source == "vault" and self.vault is None:
            raise ValueError("source = 'vault' needs a [secrets.vault] table")
        return self


# --- backup repository off the database host (issue 11 point 4; docs/backups.md#repository) ------------
_REPOSITORY_URL = re.compile(
    r"^ssh://(?P<user>[a-z_][a-z0-9_.-]{0,31})@(?P<host>[A-Za-z0-9.:\[\]-]+?)(?::(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9._/-]*)$"
)


class BackupRepository(_Model):
    """Where the catalog and the dumps of every stack of the environment live: ``<path>/<stack>/`` on a
    backup host reached over ssh. The ssh identity comes from the operator's ssh config or agent, never
    from here (``ssh_opts`` may name a config file, never a secret)."""

    url: str = Field(description="ssh://user@host[:port]/absolute/path")
    ssh_opts: list[str] = Field(default_factory=list, description="extra ssh options, e.g. ['-F', '/etc/nndb/ssh_config']")
    lock_timeout_s: float = Field(default=900.0, gt=0, le=86400, description="how long a writer waits for the repository lock")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        match = _REPOSITORY_URL.match(value)
        if match is None or ".." in value.split("/") or (match["port"] and not 0 < int(match["port"]) < 65536):
            raise ValueError(f"{_shown(value)} must be ssh://user@host[:port]/absolute/path (letters, digits, . _ - / only)")
        check_host(match["host"].strip("[]"))
        return value

    @property
    def user(self) -> str:
        return self._parts()["user"]

    @property
    def host(self) -> str:
        return self._parts()["host"].strip("[]")

    @property
    def port(self) -> int | None:
        port = self._parts()["port"]
        return int(port) if port else None

    @property
    def path(self) -> str:
        return self._parts()["path"].rstrip("/") or "/"

    def _parts(self) -> re.Match[str]:
        match = _REPOSITORY_URL.match(self.url)
        assert match is not None  # checked by the validator
        return match


class BackupPolicy(_Model):
    schedule: str = Field(min_length=1, description="cron expression, e.g. '0 2 * * *' (ADR: daily)")
    retention_days: int = Field(ge=1, le=3650)
    pitr: bool = False
    directory: str = Field(default="backups", min_length=1, description="catalog and dump directory, relative to the project root")
    # Off the host (docs/backups.md#repository): unset, the directory above is the repository.
    repository: BackupRepository | None = None

    @field_validator("directory")
    @classmethod
    def _inside_project(cls, value: str) -> str:
        normal = posixpath.normpath(value)
        if Path(value).is_absolute() or normal == "." or normal.startswith("..") or "\\" in value:
            raise ValueError(
                f"{_shown(value)} must be a directory inside the project, relative to its root, e.g. backups "
                "(for another place use --backup-dir or NNDB_BACKUP_DIR)"
            )
        return value


class TlsConfig(_Model):
    """TLS for the PostgreSQL and TimescaleDB instances (ADR-015 "TLS for all connections"; Redis not yet).

    ``enabled``: the servers get ``ssl = on`` and a pg_hba.conf that admits remote clients only over
    TLS (``hostssl``); the hooks, migrations and backups connect with ``sslmode = client_sslmode``
    against the CA bundle of the ``tls_ca_cert`` secret. Staging and prod must enable it.
    """

    enabled: bool = False
    client_sslmode: Literal["verify-full", "verify-ca", "require"] = "verify-full"
    min_protocol: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"


class DestroyPolicy(_Model):
    """What ``cdktf destroy`` needs before any container or data volume goes (docs/deploy.md).

    ``require_confirmation``: the destroy runs only with ``NNDB_CONFIRM_DESTROY=<stack>`` in its
    environment. Whatever the setting, every service database gets a backup proven by a restore
    first (``NNDB_DESTROY_WITHOUT_BACKUP=<stack>`` skips it when the databases cannot answer).
    """

    require_confirmation: bool = True


def check_env_var_name(value: str | None) -> str | None:
    """A secret's environment variable name (or ``None``): ``ValueError`` naming what is wrong."""
    if value is None:
        return None
    if not _ENV_VAR.match(value):
        raise ValueError(f"{_shown(value)} is not an environment variable name (A-Z, 0-9, _; starting with a letter)")
    if value.endswith(("_FILE", "_PREVIOUS")):
        raise ValueError(f"{value}: must not end in _FILE or _PREVIOUS (the tool derives those variants from the name)")
    return value


class ServiceSecretNames(_Model):
    """``[services.<name>.secrets]``: environment variables other than the derived ones (docs/secrets.md).

    Unset, a service ``<name>`` reads ``<NAME>_DB_PASSWORD``, ``<NAME>_READONLY_PASSWORD`` and
    ``<NAME>_REDIS_PASSWORD`` (each with its ``*_FILE`` variant); Vault references are set in
    ``[secrets.vault.secrets]`` or derived from ``secrets.vault.services_path``.
    """

    db_password_env: str | None = None
    readonly_password_env: str | None = None
    redis_password_env: str | None = None

    @field_validator("db_password_env", "readonly_password_env", "redis_password_env")
    @classmethod
    def _env_var(cls, value: str | None) -> str | None:
        return check_env_var_name(value)


class ServiceConfig(_Model):
    """One microservice's slice of the tier (ADR: each service owns its schema).

    A service is this table plus its folders ``sql/schemas/<name>/`` and ``sql/migrations/<name>/``:
    its roles, Redis ACL user, secrets and backups all follow from the name (docs/runbooks/add-service.md).
    """

    instance: Literal["postgres", "timescale"]
    database: Identifier
    schema_: Identifier = Field(alias="schema")
    redis_prefix: str = Field(pattern=r"^[a-z][a-z0-9_-]*:$")
    readonly_role: bool = False
    secrets: ServiceSecretNames = ServiceSecretNames()


class ReplicaConfig(_Model):
    """A streaming replica of one instance (PostgreSQL/TimescaleDB standby, Redis replica), on its own Docker engine (docs/topology.md)."""

    docker: DockerConfig
    endpoint_host: str = Field(min_length=1, description="host name clients and nndb use to reach the replica's published port")
    port: Port
    # The replica host's own address to publish on (the stack's bind_address is the primary host's).
    bind_address: str = Field(default="127.0.0.1", min_length=1, description="address on the replica's host its port binds to")

    @field_validator("endpoint_host")
    @classmethod
    def _endpoint_host(cls, value: str) -> str:
        return check_host(value)

    @field_validator("bind_address")
    @classmethod
    def _bind_ip(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{_shown(value)} is not an IP address; the replica's port binds to an address such as 10.0.0.12") from None
        return value

    def engine_url(self) -> str:
        """The replica's engine as the Docker provider's ``host`` (one provider alias per distinct URL)."""
        return self.docker.ssh.url() if self.docker.ssh is not None else self.docker.host or ""


PRIMARY_NODE = "primary"


class InstanceReplication(_Model):
    """``[replication.<instance>]``: the instance's replicas, and which node takes writes."""

    primary: str = Field(
        default=PRIMARY_NODE,
        description="the node taking writes: 'primary' (the stack's own container) or a replica's name; `nndb failover` sets it",
    )
    replicas: dict[DockerName, ReplicaConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_primary(self) -> InstanceReplication:
        if PRIMARY_NODE in self.replicas:
            raise ValueError(f"replicas: {PRIMARY_NODE!r} names the stack's own container; give the replica another name")
        if "exporter" in self.replicas:
            raise ValueError(
                "replicas: 'exporter' is the exporter's name (container <prefix>-<instance>-exporter); give the replica another name"
            )
        if self.primary != PRIMARY_NODE and self.primary not in self.replicas:
            known = ", ".join([PRIMARY_NODE, *sorted(self.replicas)])
            raise ValueError(f"primary: {self.primary!r} is not a node of this instance (known: {known})")
        return self

    def nodes(self) -> list[str]:
        return [PRIMARY_NODE, *sorted(self.replicas)]


# Docker limits object names (secrets, services) to 64 characters.
SWARM_SECRET_NAME_MAX = 64
# The longest credential word of a published secret's name (nexanest_db.swarm.CREDENTIALS; a unit test keeps them equal).
SWARM_LONGEST_CREDENTIAL = "readonly_password"
SWARM_MAX_GENERATION = 9999


class SwarmServiceConfig(_Model):
    """``[swarm.services.<service>]``: one application service whose credentials are published on the Swarm."""

    generation: int = Field(
        ge=1,
        le=SWARM_MAX_GENERATION,
        description="rotation generation of the service's published credentials; bump it with every rotation of any of them",
    )


class SwarmConfig(_Model):
    """``[swarm]``: the application services on Docker Swarm read their credentials as Docker secrets (docs/topology.md).

    Every published service gets ``<secret_prefix>-<service>-<credential>-v<generation>`` on the
    Swarm manager, for its current generation and the ``keep_previous`` ones before it, so a rotation
    creates the new secret beside the old one until the services have moved over.
    """

    docker: DockerConfig = Field(description="the Swarm manager's engine: host = 'unix:///...' (the local engine) or [swarm.docker.ssh]")
    provider_alias: str = Field(
        default="swarm", pattern=r"^[a-z][a-z0-9_]{0,31}$", description="alias of the Docker provider for the manager"
    )
    secret_prefix: DockerName | None = Field(default=None, description="first part of every secret name; default: name_prefix")
    keep_previous: int = Field(default=1, ge=0, le=5, description="older generations kept published beside the current one")
    services: dict[str, SwarmServiceConfig] = Field(min_length=1)


def replication_slot(replica: str) -> str:
    """The physical replication slot a PostgreSQL replica streams through (``-S`` of its pg_basebackup)."""
    return "nndb_replica_" + re.sub(r"[^a-z0-9_]", "_", replica.lower())


class EnvironmentConfig(_Model):
    """Everything one stack needs; produced only by ``load_environment``."""

    environment: Literal["local", "dev", "staging", "prod"]
    docker: DockerConfig
    network: NetworkConfig
    bind_address: str = Field(
        default="127.0.0.1", min_length=1, description="host address published ports bind to (default: loopback only)"
    )
    endpoint_host: str = Field(min_length=1, description="host name clients and hooks use to reach the published ports")
    name_prefix: DockerName
    postgres: PostgresInstanceConfig
    timescale: PostgresInstanceConfig
    redis: RedisInstanceConfig
    healthcheck: HealthcheckConfig = HealthcheckConfig()
    labels: dict[str, str] = Field(default_factory=dict)
    backend: LocalBackend | CloudBackend = Field(discriminator="type")
    secrets: SecretsConfig
    backup: BackupPolicy
    services: dict[str, ServiceConfig]
    tls: TlsConfig = TlsConfig()
    destroy: DestroyPolicy = DestroyPolicy()
    exporters: ExportersConfig = ExportersConfig()
    replication: dict[Literal["postgres", "timescale", "redis"], InstanceReplication] = Field(default_factory=dict)
    swarm: SwarmConfig | None = None

    def replicas_of(self, instance: str) -> dict[str, ReplicaConfig]:
        """The replicas ``[replication.<instance>]`` declares (name -> config), sorted by name; empty when none."""
        replication = self.replication.get(instance)  # type: ignore[call-overload]
        return dict(sorted(replication.replicas.items())) if replication is not None else {}

    @property
    def replicated_instances(self) -> tuple[str, ...]:
        """The instances with at least one replica, in ``INSTANCES`` order."""
        return tuple(name for name in INSTANCES if self.replicas_of(name))

    def primary_endpoint(self, instance: str) -> HostPort | None:
        """Where the instance's writable node answers when a failover moved it to a replica, else ``None``."""
        replication = self.replication.get(instance)  # type: ignore[call-overload]
        if replication is None or replication.primary == PRIMARY_NODE:
            return None
        replica = replication.replicas[replication.primary]
        return HostPort(host=replica.endpoint_host, port=replica.port)

    @field_validator("bind_address")
    @classmethod
    def _bind_ip(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"{_shown(value)} is not an IP address; published ports bind to an address such as 127.0.0.1 or 0.0.0.0"
            ) from None
        return value

    @field_validator("endpoint_host")
    @classmethod
    def _endpoint_host(cls, value: str) -> str:
        return check_host(value)

    @property
    def stack(self) -> str:
        return f"{self.environment}-db"

    @property
    def protected(self) -> bool:
        """Staging and prod: data volumes carry ``prevent_destroy``."""
        return self.environment in PROTECTED_ENVIRONMENTS

    @property
    def dev_defaults_allowed(self) -> bool:
        return self.environment in DEV_DEFAULT_ENVIRONMENTS

    def instance(self, name: str) -> InstanceConfig:
        return {"postgres": self.postgres, "timescale": self.timescale, "redis": self.redis}[name]

    def services_on(self, instance: str) -> dict[str, ServiceConfig]:
        return {name: svc for name, svc in sorted(self.services.items()) if svc.instance == instance}

    @model_validator(mode="after")
    def _cross_field_rules(self) -> EnvironmentConfig:
        ports = {"postgres.port": self.postgres.port, "timescale.port": self.timescale.port, "redis.port": self.redis.port}
        ports.update({f"exporters.{name}.port": self.exporters.for_instance(name).port for name in INSTANCES})
        seen: dict[int, str] = {}
        for field, port in ports.items():
            if port in seen:
                raise ValueError(f"{field}: port {port} clashes with {seen[port]}")
            seen[port] = field
        if self.environment == "prod":
            for name in INSTANCES:
                image = self.instance(name).image
                if not _DIGEST.match(image):
                    raise ValueError(f"{name}.image: prod images must be pinned by digest (name@sha256:<64 hex>), got {image!r}")
            for name in INSTANCES:
                image = self.exporters.for_instance(name).image
                if not _DIGEST.match(image):
                    raise ValueError(f"exporters.{name}.image: prod images must be pinned by digest (name@sha256:<64 hex>), got {image!r}")
            if self.secrets.source != "vault":
                raise ValueError("secrets.source: prod accepts only 'vault'")
        if self.network.internal:
            raise ValueError(
                "network.internal: Docker publishes no ports from an internal network, and the stack publishes its "
                "databases' and exporters' ports; set internal = false and restrict access with bind_address and the host firewall"
            )
        if self.environment == "prod" and ipaddress.ip_address(self.bind_address).is_unspecified and not self.network.allow_all_interfaces:
            raise ValueError(
                f"bind_address: {self.bind_address} publishes PostgreSQL, TimescaleDB, Redis and the exporters on every interface "
                "of the prod host (ADR-015: no direct internet access); set it to the host's private address, or set "
                "[network] allow_all_interfaces = true deliberately"
            )
        self._replicas_placed()
        if self.protected and not self.tls.enabled:
            raise ValueError(f"tls.enabled: {self.environment} must set tls.enabled = true (ADR-015: TLS for all connections)")
        if self.protected and self.backend.type != "cloud":
            raise ValueError(f"backend.type: {self.environment} must use the Terraform Cloud backend ('cloud')")
        if not self.protected and self.backend.type != "local":
            raise ValueError(f"backend.type: {self.environment} uses a local backend ('local')")
        if not self.services:
            raise ValueError("services: no [services.<name>] table; a stack serves at least one service (docs/runbooks/add-service.md)")
        for name in sorted(self.services):
            check_service_name(name)
        self._services_isolated()
        self._swarm_names_fit()
        return self

    def _swarm_names_fit(self) -> None:
        """Every published service is one of the stack's, and its longest secret name fits Docker's limit."""
        if self.swarm is None:
            return
        prefix = self.swarm.secret_prefix or self.name_prefix
        for name in sorted(self.swarm.services):
            if name not in self.services:
                raise ValueError(f"swarm.services.{name}: not a service of this stack; known: {', '.join(sorted(self.services))}")
            longest = f"{prefix}-{name}-{SWARM_LONGEST_CREDENTIAL}-v{SWARM_MAX_GENERATION}"
            if len(longest) > SWARM_SECRET_NAME_MAX:
                raise ValueError(
                    f"swarm.secret_prefix: {prefix!r} makes the secret names of {name} longer than Docker's "
                    f"{SWARM_SECRET_NAME_MAX} characters (e.g. {longest}); set a shorter swarm.secret_prefix"
                )

    def _replicas_placed(self) -> None:
        """Replicas: no two published ports clash on one engine, one slot per replica, Redis promoted by hand only."""
        own_engine = self.docker.ssh.url() if self.docker.ssh is not None else self.docker.host or ""
        taken: dict[tuple[str, int], str] = {
            (own_engine, port): field
            for field, port in [(f"{name}.port", self.instance(name).port) for name in INSTANCES]
            + [(f"exporters.{name}.port", self.exporters.for_instance(name).port) for name in INSTANCES]
        }
        for instance in INSTANCES:
            replication = self.replication.get(instance)  # type: ignore[call-overload]
            if replication is None:
                continue
            if instance == "redis" and replication.primary != PRIMARY_NODE:
                raise ValueError(
                    "replication.redis.primary: nndb does not move Redis's primary (docs/runbooks/failover.md: REPLICAOF NO ONE "
                    "by hand); keep primary = 'primary'"
                )
            slots: dict[str, str] = {}
            for name, replica in sorted(replication.replicas.items()):
                where = f"replication.{instance}.replicas.{name}"
                key = (replica.engine_url(), replica.port)
                if key in taken:
                    raise ValueError(f"{where}.port: port {replica.port} on {key[0]} clashes with {taken[key]}")
                taken[key] = f"{where}.port"
                slot = replication_slot(name)
                if slot in slots:
                    raise ValueError(f"{where}: its replication slot {slot} is also replicas.{slots[slot]}'s; rename one of them")
                slots[slot] = name
                if (
                    self.environment == "prod"
                    and ipaddress.ip_address(replica.bind_address).is_unspecified
                    and not self.network.allow_all_interfaces
                ):
                    raise ValueError(
                        f"{where}.bind_address: {replica.bind_address} publishes the replica on every interface of its host "
                        "(ADR-015: no direct internet access); set the host's private address"
                    )

    def _services_isolated(self) -> None:
        """Each service alone in its database, schema and Redis key space (ADR: each service owns its schema)."""
        databases: dict[tuple[str, str], str] = {}
        prefixes: dict[str, str] = {}
        for name, service in sorted(self.services.items()):
            where = f"services.{name}"
            if service.database in RESERVED_DATABASES or service.database.startswith(TOOL_DATABASE_PREFIX):
                raise ValueError(
                    f"{where}.database: {service.database!r} is reserved (maintenance/template databases, nndb_* for the tool); "
                    "give the service a database of its own"
                )
            if service.schema_ in RESERVED_SCHEMAS or service.schema_.startswith("pg_"):
                raise ValueError(
                    f"{where}.schema: {service.schema_!r} is reserved (nndb holds the migration ledger; public, information_schema, pg_*); "
                    "give the service a schema of its own"
                )
            key = (service.instance, service.database)
            if key in databases:
                raise ValueError(
                    f"{where}.database: {service.database!r} on {service.instance} is also services.{databases[key]}.database; "
                    "every service needs a database of its own"
                )
            databases[key] = name
            for other_prefix, other in prefixes.items():
                if service.redis_prefix.startswith(other_prefix) or other_prefix.startswith(service.redis_prefix):
                    raise ValueError(
                        f"{where}.redis_prefix: {service.redis_prefix!r} overlaps services.{other}.redis_prefix {other_prefix!r}; "
                        "each service's Redis keys need a prefix no other service's keys start with"
                    )
            prefixes[service.redis_prefix] = name


def check_service_name(name: str) -> str:
    """A ``[services.<name>]`` key the roles, Redis user, folders and variable names can all be made from."""
    if not _SERVICE_NAME.match(name):
        raise ValueError(
            f"services.{name}: {_shown(name)} is not a service name; use 1-40 lowercase letters, digits and _ starting with a letter "
            "(it names roles, the Redis user, sql/schemas/<name>/ and <NAME>_DB_PASSWORD)"
        )
    if name in RESERVED_SERVICE_NAMES or name.startswith(RESERVED_SERVICE_PREFIXES):
        raise ValueError(
            f"services.{name}: the name is reserved (Redis's default user, the instances, nndb_* for the tool, pg_*); "
            "give the service another name"
        )
    return name


def check_host(value: str) -> str:
    """A host name or IP address (it ends up in URLs and connection strings): nothing else."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOST_NAME.match(value):
        raise ValueError(f"{_shown(value)} is not a host name or IP address")
    return value


def _control_character_key(raw: object, path: str = "") -> str | None:
    """The dotted key of the first string (key or value) in ``raw`` holding a control character."""
    if isinstance(raw, str):
        return path if _control_characters(raw) else None
    if isinstance(raw, dict):
        for key, value in raw.items():
            where = f"{path}.{key}" if path else str(key)
            if _control_characters(str(key)):
                return path or "(top level)"
            found = _control_character_key(value, where)
            if found:
                return found
    if isinstance(raw, list):
        for index, value in enumerate(raw):
            found = _control_character_key(value, f"{path}[{index}]")
            if found:
                return found
    return None


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p in {"local", "cloud"} and loc and loc[0] == "backend")]
    return ".".join(parts)


def _one_line(source: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = _field_path(tuple(first["loc"]))
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling against config/README.md)"
    elif first["type"] == "missing":
        msg = "required field is missing"
    where = f"{source}: {loc}" if loc else str(source)
    return f"{where}: {msg}{and_more(err.errors(), noun='problem')}"


def config_file_for(stack: str, config_dir: Path) -> Path:
    if stack not in STACKS:
        raise ConfigError(f"unknown stack {stack!r}: choose one of {', '.join(STACKS)}")
    return config_dir / f"{stack.removesuffix('-db')}.toml"


def load_environment(stack: str, *, config_dir: Path) -> EnvironmentConfig:
    """Read and validate ``config/<env>.toml`` for ``stack``; one-line ``ConfigError`` on any problem."""
    path = config_file_for(stack, config_dir)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; every stack needs its config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config file as UTF-8") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; every stack needs its config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    expected = stack.removesuffix("-db")
    if raw.get("environment") != expected:
        raise ConfigError(f"{path}: environment: must be {expected!r} to match the file name, got {raw.get('environment')!r}")
    bad = _control_character_key(raw)
    if bad:
        raise ConfigError(f"{path}: {bad}: contains a control character (newline, tab, ...); config values are single-line plain text")
    try:
        return EnvironmentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(path, exc)) from None


# --- connection settings (ADR names) -------------------------------------------------------

ENDPOINT_VARIABLES: tuple[str, ...] = (
    "DB_HOST",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "TIMESCALE_HOST",
    "TIMESCALE_PORT",
    "REDIS_HOST",
    "REDIS_PORT",
    "POSTGRES_EXPORTER_PORT",
    "TIMESCALE_EXPORTER_PORT",
    "REDIS_EXPORTER_PORT",
)


@dataclass(frozen=True, kw_only=True)
class HostPort:
    host: str
    port: int


@dataclass(frozen=True, kw_only=True)
class Endpoints:
    """Where clients (and the post-apply hooks) reach each instance."""

    postgres: HostPort
    timescale: HostPort
    redis: HostPort
    db_host_override: str | None = None
    # Published port of each instance's exporter (config ``exporters.<instance>.port``, or ``<INSTANCE>_EXPORTER_PORT``).
    exporter_ports: Mapping[str, int] = dataclass_field(default_factory=dict)

    def for_instance(self, name: str) -> HostPort:
        return {"postgres": self.postgres, "timescale": self.timescale, "redis": self.redis}[name]

    def exporter(self, name: str) -> HostPort:
        """Where the exporter of instance ``name`` answers: the instance's host, the exporter's published port."""
        return HostPort(host=self.for_instance(name).host, port=self.exporter_ports[name])


MAX_ENV_FILE_BYTES = 1 << 20


def read_bounded(path: Path, *, limit: int) -> bytes:
    """The bytes of a regular file, at most ``limit``; a FIFO, device or directory is never opened for reading.

    ``O_NONBLOCK`` so that opening a FIFO does not wait for a writer; the type is checked on the open
    descriptor (no race with a swapped path). Raises ``OSError`` (unreadable) or ``ValueError`` (why not).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = (
                "a FIFO"
                if stat.S_ISFIFO(info.st_mode)
                else "a device"
                if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                else "not a regular file"
            )
            raise ValueError(f"is {kind}, not a regular file")
        data = os.read(fd, limit + 1) if info.st_size <= limit else b"x" * (limit + 1)
        while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"is larger than {limit // 1024} KiB")
    return data


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``.env``-style file with python-dotenv (``KEY=value``, ``#`` comments, quotes, ``export``).

    The same rules Docker Compose and python-dotenv apply: an inline `` # comment`` is not part of
    the value, quotes are removed; an unterminated quote or a line that is no assignment is one
    ``ConfigError`` naming the file and line, as is a file that is binary, huge or not a file.
    """
    try:
        data = read_bounded(path, limit=MAX_ENV_FILE_BYTES)
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror}); fix its permissions or remove it") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (a binary file?); .env.db holds KEY=value lines") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}; .env.db holds KEY=value lines") from None
    if "\0" in text:
        raise ConfigError(f"{path}: contains NUL bytes (a binary file?); .env.db holds KEY=value lines")
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line + binding.original.string[
            : len(binding.original.string) - len(binding.original.string.lstrip())
        ].count("\n")
        if binding.error:
            raise ConfigError(f"{path}:{line}: cannot parse this line (an unterminated quote?); expected KEY=value")
        if binding.key is None:
            continue  # a comment or blank line
        if binding.value is None or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", binding.key):
            raise ConfigError(f"{path}:{line}: expected KEY=value")
        values[binding.key] = binding.value
    return values


def find_env_file(start: Path) -> Path | None:
    """The nearest ``.env.db`` at or above ``start`` (Terraform runs hooks from cdktf.out/stacks/<stack>)."""
    for directory in (start, *start.parents):
        candidate = directory / ".env.db"
        if candidate.is_file():
            return candidate
    return None


def effective_environment(environ: Mapping[str, str], env_file: Path | None) -> dict[str, str]:
    """Process environment over ``.env.db``: an exported variable always wins."""
    merged = read_env_file(env_file) if env_file else {}
    merged.update(environ)
    return merged


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ConfigError(f"{name}: must be a port number 1-65535, got {raw!r}")
    return int(raw)


def resolve_endpoints(config: EnvironmentConfig, environ: Mapping[str, str]) -> Endpoints:
    """Config endpoints overridden by ``DB_HOST`` then the per-instance ``*_HOST``/``*_PORT``."""
    db_host = environ.get("DB_HOST") or None
    base_host = db_host or config.endpoint_host

    def one(prefix: str, default_port: int, moved: HostPort | None = None) -> HostPort:
        # After a failover the config names a replica as the primary: its host and port, unless overridden.
        return HostPort(
            host=environ.get(f"{prefix}_HOST") or (moved.host if moved else base_host),
            port=_port(environ, f"{prefix}_PORT", moved.port if moved else default_port),
        )

    endpoints = Endpoints(
        postgres=one("POSTGRES", config.postgres.port, config.primary_endpoint("postgres")),
        timescale=one("TIMESCALE", config.timescale.port, config.primary_endpoint("timescale")),
        redis=one("REDIS", config.redis.port),
        db_host_override=db_host,
        exporter_ports={
            name: _port(environ, f"{name.upper()}_EXPORTER_PORT", config.exporters.for_instance(name).port) for name in INSTANCES
        },
    )
    published = [endpoints.postgres.port, endpoints.timescale.port, endpoints.redis.port]
    if len(set(published)) != 3:
        raise ConfigError(f"POSTGRES_PORT/TIMESCALE_PORT/REDIS_PORT: ports clash after overrides: {published}")
    exporters = [endpoints.exporter_ports[name] for name in INSTANCES]
    if len(set(published + exporters)) != 6:
        raise ConfigError(f"*_EXPORTER_PORT: exporter ports clash with each other or a database after overrides: {exporters}")
    return endpoints


# --- project layout ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProjectPaths:
    """Where the data the tool reads lives: ``config/`` and ``sql/``."""

    root: Path
    config_dir: Path
    sql_dir: Path
    # monitoring/ (the exporters' identities); None: <root>/monitoring. The post-apply resource ships a copy.
    monitoring: Path | None = None

    @property
    def monitoring_dir(self) -> Path:
        return self.monitoring or self.root / "monitoring"

    @classmethod
    def at(cls, root: Path) -> ProjectPaths:
        return cls(root=root, config_dir=root / "config", sql_dir=root / "sql")


def find_project_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding ``cdktf.json`` and ``config/``."""
    for directory in (start, *start.parents):
        if (directory / "cdktf.json").is_file() and (directory / "config").is_dir():
            return directory
    raise ConfigError(
        f"{start}: not inside a nexanest-db project (no cdktf.json + config/ above it); run from the project or pass --project-dir"
    )
