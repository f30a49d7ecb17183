"""The Prometheus exporters beside the databases: one per PostgreSQL/TimescaleDB instance, one for Redis.

Official community images (quay.io/prometheuscommunity/postgres-exporter, oliver006/redis_exporter;
by digest in prod), on the tier's network, reaching their database by its network alias, publishing
the metrics port like the databases publish theirs. Each logs in as its monitoring identity
(monitoring/identities.toml); the password arrives as an uploaded file, never in the environment
or on a command line:

- postgres_exporter reads ``DATA_SOURCE_PASS_FILE``;
- redis_exporter reads ``REDIS_PASSWORD_FILE``, a JSON object mapping the Redis URI to its password.

No health check: neither official image has a shell to run one (redis_exporter's is ``FROM scratch``);
a dead exporter is what Prometheus's ``up`` and the rules' NndbExporterDown are for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cdktf import Fn
from constructs import Construct

from nexanest_db.constructs.database_container import DatabaseContainerProps, database_container
from nexanest_db.constructs.shared import FileUpload

POSTGRES_EXPORTER_PORT = 9187  # the image's default --web.listen-address
REDIS_EXPORTER_PORT = 9121
PASSWORD_FILE = "/run/secrets/monitor_password"  # noqa: S105 - a path, not a password
REDIS_PASSWORD_MAP_FILE = "/run/secrets/monitor_passwords.json"  # noqa: S105 - a path
CA_FILE = "/run/secrets/tls/ca.pem"
_ALIAS = re.compile(r"^[a-z][a-z0-9-]*$")
_LOGIN = re.compile(r"^[a-zA-Z0-9_-]+$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]*$")


@dataclass(frozen=True, kw_only=True)
class ExporterProps(DatabaseContainerProps):
    """What both exporters are given: the database they scrape and the monitoring identity they log in as."""

    target: str  # the instance's alias on the tier network
    target_port: int
    # Where the PostgreSQL exporter connects instead of ``target`` (its alias stays ``<target>-exporter``): after
    # ``nndb failover`` the promoted replica's published host, with ``target_port`` its published port.
    target_host: str | None = None
    user: str
    password: str  # a sensitive Terraform reference
    # With tls.enabled: the CA bundle (a Terraform reference); the exporter then verifies the server
    # certificate, which must name the alias (docs/secrets.md).
    ca_cert: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not _ALIAS.match(self.target):
            raise ValueError(f"target must be the database's network alias, got {self.target!r}")
        if not _LOGIN.match(self.user):
            raise ValueError(f"monitoring login {self.user!r} must be letters, digits, '_' or '-'")
        if self.target_host is not None and not _HOST.match(self.target_host):
            raise ValueError(f"target_host must be a host name or IP address, got {self.target_host!r}")

    @property
    def network_alias(self) -> str:
        return f"{self.target}-exporter"


@dataclass(frozen=True, kw_only=True)
class PostgresExporterProps(ExporterProps):
    """With ``ca_cert`` the exporter connects with sslmode=verify-full to the alias."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.published.container_port != POSTGRES_EXPORTER_PORT:
            raise ValueError(f"postgres_exporter listens on {POSTGRES_EXPORTER_PORT} in its container")


class PostgresExporter(Construct):
    def __init__(self, scope: Construct, id: str, *, props: PostgresExporterProps) -> None:
        super().__init__(scope, id)
        files = [FileUpload(path=PASSWORD_FILE, content=props.password)]
        # One connection to the maintenance database covers every database: the statistics views are cluster-wide.
        params = "sslmode=disable"
        if props.ca_cert is not None:
            files.append(FileUpload(path=CA_FILE, content=props.ca_cert))
            params = f"sslmode=verify-full&sslrootcert={CA_FILE}"
        built = database_container(
            self,
            props,
            network_alias=props.network_alias,
            files=files,
            env=[
                f"DATA_SOURCE_URI={props.target_host or props.target}:{props.target_port}/postgres?{params}",
                f"DATA_SOURCE_USER={props.user}",
                f"DATA_SOURCE_PASS_FILE={PASSWORD_FILE}",
            ],
        )
        self.image = built.image
        self.container = built.container
        self.container_name: str = props.container_name
        self.host_port: int = props.published.host_port


@dataclass(frozen=True, kw_only=True)
class RedisExporterProps(ExporterProps):
    """With ``ca_cert`` the exporter connects over rediss:// verified against it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.published.container_port != REDIS_EXPORTER_PORT:
            raise ValueError(f"redis_exporter listens on {REDIS_EXPORTER_PORT} in its container")

    @property
    def uri(self) -> str:
        scheme = "rediss" if self.ca_cert is not None else "redis"
        return f"{scheme}://{self.target}:{self.target_port}"


class RedisExporter(Construct):
    def __init__(self, scope: Construct, id: str, *, props: RedisExporterProps) -> None:
        super().__init__(scope, id)
        # {"<uri>": "<password>"}: the exporter looks the password of the address it scrapes up in this map.
        password_map = Fn.format("{%s:%s}", [Fn.jsonencode(props.uri), Fn.jsonencode(props.password)])
        files = [FileUpload(path=REDIS_PASSWORD_MAP_FILE, content=password_map)]
        env = [
            f"REDIS_ADDR={props.uri}",
            f"REDIS_USER={props.user}",
            f"REDIS_PASSWORD_FILE={REDIS_PASSWORD_MAP_FILE}",
        ]
        if props.ca_cert is not None:
            files.append(FileUpload(path=CA_FILE, content=props.ca_cert))
            env.append(f"REDIS_EXPORTER_TLS_CA_CERT_FILE={CA_FILE}")
        built = database_container(self, props, network_alias=props.network_alias, files=files, env=env)
        self.image = built.image
        self.container = built.container
        self.container_name: str = props.container_name
        self.host_port: int = props.published.host_port
