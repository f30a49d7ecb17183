"""One PostgreSQL 15 (or TimescaleDB) container built the ADR-015 way.

Base layer: the official image, referenced as given (tag, or digest for prod).
Configuration layer: postgresql.conf, init scripts and service schemas arrive as
``upload`` blocks (the remote host has none of our files); the superuser
password arrives as a file read through ``POSTGRES_PASSWORD_FILE``. Data lives
in a named volume that survives container replacement.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from cdktf_cdktf_provider_docker.volume import Volume
from constructs import Construct

from nexanest_db.constructs import shared
from nexanest_db.constructs.database_container import (
    TLS_CERT_PATH,
    TLS_KEY_UPLOAD_PATH,
    DatabaseContainerProps,
    DataVolume,
    database_container,
)
from nexanest_db.constructs.shared import FileUpload, HealthPolicy

# Where things live in the container; config/templates/postgres.conf.j2 names some of them (rendering.py).
DATA_DIR = "/var/lib/postgresql/data"
CONFIG_PATH = "/etc/postgresql/postgresql.conf"
HBA_PATH = "/etc/postgresql/pg_hba.conf"
WAL_ARCHIVE_DIR = "/var/lib/postgresql/wal-archive"  # its own volume, where [backup] pitr = true
PASSWORD_FILE = "/run/secrets/postgres_password"  # noqa: S105 - a path, not a password
INIT_DIR = "/docker-entrypoint-initdb.d"
SCHEMAS_DIR = "/schemas"
# tls.enabled: the entrypoint copies the root-owned key upload to this postgres-owned 0600 file, the one postgresql.conf names.
TLS_KEY_PATH = "/run/secrets/tls/server-postgres.key"
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Container-internal socket trusted (as in the official image), loopback for in-container tools,
# everything else only over TLS with SCRAM; the final reject makes a plain remote connection fail clearly.
HBA_CONTENT = """# pg_hba.conf rendered by nexanest-db (tls.enabled): remote clients must use TLS.
# TYPE   DATABASE USER ADDRESS      METHOD
local    all      all               trust
host     all      all  127.0.0.1/32 scram-sha-256
host     all      all  ::1/128      scram-sha-256
hostssl  all      all  all          scram-sha-256
host     all      all  all          reject
"""
# Where [backup] pitr = true: barman on the backup host streams WAL and takes base backups over the replication
# protocol ("all" databases does not match replication connections): that one role, over TLS, with SCRAM.
HBA_REPLICATION = "hostssl  replication {role} all scram-sha-256\n"


# Without TLS (local/dev), only where the instance has streaming replicas: the same rules over plain TCP.
HBA_PLAIN_REPLICATION = """# pg_hba.conf rendered by nexanest-db (streaming replicas, no TLS: local/dev only).
# TYPE   DATABASE    USER ADDRESS      METHOD
local    all         all               trust
host     all         all  127.0.0.1/32 scram-sha-256
host     all         all  ::1/128      scram-sha-256
host     all         all  all          scram-sha-256
host     replication {role} all scram-sha-256
"""


def hba_content(replication_role: str | None, *, tls: bool = True) -> str:
    if not tls:
        if replication_role is None:
            raise ValueError("a pg_hba.conf without TLS is uploaded only for the replication role")
        return HBA_PLAIN_REPLICATION.format(role=replication_role)
    if replication_role is None:
        return HBA_CONTENT
    head, reject = HBA_CONTENT.rsplit("host     all      all  all          reject", 1)
    return head + HBA_REPLICATION.format(role=replication_role) + "host     all      all  all          reject" + reject


TLS_ENTRYPOINT = shared.key_owner_entrypoint(user="postgres", uploaded_key=TLS_KEY_UPLOAD_PATH, key_path=TLS_KEY_PATH)


@dataclass(frozen=True, kw_only=True)
class PostgresTls:
    """The server's TLS pair (PEM; Terraform references, the key marked sensitive)."""

    cert: str
    key: str

    def __post_init__(self) -> None:
        if not self.cert or not self.key:
            raise ValueError("TLS needs both the certificate and the key")


@dataclass(frozen=True, kw_only=True)
class PostgresInstanceProps(DatabaseContainerProps):
    image_example: ClassVar[str] = "postgres:15"

    superuser: str
    password: str
    health: HealthPolicy
    network_alias: str
    config_content: str
    config_path: str = CONFIG_PATH
    init_scripts: Sequence[FileUpload] = ()
    schema_files: Sequence[FileUpload] = ()
    protect_data: bool = False
    wal_archive_dir: str | None = None
    tls: PostgresTls | None = None
    # admitted for replication: over TLS (barman with pitr = true, replicas), or in plain TCP where replicas need it without TLS
    replication_role: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.replication_role is not None and not _ROLE.match(self.replication_role):
            raise ValueError(f"replication_role must be a plain PostgreSQL identifier, got {self.replication_role!r}")
        if not _ROLE.match(self.superuser):
            raise ValueError(f"superuser must be a plain PostgreSQL identifier, got {self.superuser!r}")
        for upload in self.init_scripts:
            if not upload.path.startswith(INIT_DIR + "/"):
                raise ValueError(f"init script {upload.path} must live under {INIT_DIR}")
        for upload in self.schema_files:
            if not upload.path.startswith(SCHEMAS_DIR + "/"):
                raise ValueError(f"schema file {upload.path} must live under {SCHEMAS_DIR}")
        paths = [u.path for u in (*self.init_scripts, *self.schema_files)]
        if len(paths) != len(set(paths)):
            raise ValueError("upload paths must be unique")


class PostgresInstance(Construct):
    def __init__(self, scope: Construct, id: str, *, props: PostgresInstanceProps) -> None:
        super().__init__(scope, id)
        volumes = [DataVolume(id="data", target=DATA_DIR, protect=props.protect_data)]
        if props.wal_archive_dir:
            volumes.append(DataVolume(id="wal-archive", target=props.wal_archive_dir, protect=props.protect_data))
        files = [
            FileUpload(path=props.config_path, content=props.config_content),
            FileUpload(path=PASSWORD_FILE, content=props.password),
            *props.init_scripts,
            *props.schema_files,
        ]
        if props.tls is not None:
            files += [
                FileUpload(path=TLS_CERT_PATH, content=props.tls.cert, permissions="0444"),
                FileUpload(path=TLS_KEY_UPLOAD_PATH, content=props.tls.key, permissions="0400"),
                FileUpload(
                    path=HBA_PATH,
                    # Two instances may differ (only one with replicas or PITR): one local per variant.
                    content=shared.shared_text(
                        self, "pg-hba-tls" if props.replication_role else "pg-hba-tls-clients-only", hba_content(props.replication_role)
                    ),
                    permissions="0444",
                ),
            ]
        elif props.replication_role is not None:  # streaming replicas without TLS (postgresql.conf names the file)
            files.append(
                FileUpload(
                    path=HBA_PATH,
                    content=shared.shared_text(self, "pg-hba-replication", hba_content(props.replication_role, tls=False)),
                    permissions="0444",
                )
            )
        built = database_container(
            self,
            props,
            network_alias=props.network_alias,
            files=files,
            command=["postgres", "-c", f"config_file={props.config_path}"],
            env=[
                f"POSTGRES_USER={props.superuser}",
                f"POSTGRES_PASSWORD_FILE={PASSWORD_FILE}",
                f"PGDATA={DATA_DIR}/pgdata",
            ],
            volumes=volumes,
            # Over TCP, not the socket: during first-start init the entrypoint's temporary server
            # listens on the socket only, and "healthy" must mean the real server is accepting.
            healthcheck=props.health.healthcheck(f"pg_isready -U {props.superuser} -h 127.0.0.1 -p {props.published.container_port}"),
            entrypoint=TLS_ENTRYPOINT if props.tls is not None else None,
            # A clean shutdown flushes WAL; Docker's default 10 s can cut a busy checkpoint short.
            stop_timeout_s=60,
        )
        self.image = built.image
        self.data_volume: Volume = built.volumes["data"]
        self.wal_volume: Volume | None = built.volumes.get("wal-archive")
        self.container = built.container
        self.container_name: str = props.container_name
        self.host_port: int = props.published.host_port

    @property
    def container_id(self) -> str:
        """The container's id (a Terraform reference): changes exactly when the container is replaced."""
        return self.container.id
