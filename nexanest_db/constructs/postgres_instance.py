"""One PostgreSQL 15 (or TimescaleDB) container built the ADR-015 way.

Base layer: the official image, referenced as given (tag, or digest for prod).
Configuration layer: postgresql.conf, init scripts and service schemas arrive as
``upload`` blocks (the remote host has none of our files); the superuser
password arrives as a file read through ``POSTGRES_PASSWORD_FILE``. Data lives
in a named volume that survives container replacement.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdktf_cdktf_provider_docker.container import Container
from cdktf_cdktf_provider_docker.image import Image
from cdktf_cdktf_provider_docker.volume import Volume
from constructs import Construct

from nexanest_db.constructs import shared
from nexanest_db.constructs.shared import ContainerLimits, FileUpload, HealthPolicy, PublishedPort
from nexanest_db.rendering import HBA_PATH, TLS_CERT_PATH, TLS_KEY_PATH, TLS_KEY_UPLOAD_PATH

DATA_DIR = "/var/lib/postgresql/data"
PASSWORD_FILE = "/run/secrets/postgres_password"  # noqa: S105 - a path, not a password
INIT_DIR = "/docker-entrypoint-initdb.d"
SCHEMAS_DIR = "/schemas"
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
class PostgresInstanceProps:
    container_name: str
    image: str
    superuser: str
    password: str
    published: PublishedPort
    limits: ContainerLimits
    health: HealthPolicy
    network_name: str
    network_alias: str
    config_path: str
    config_content: str
    labels: Mapping[str, str]
    init_scripts: Sequence[FileUpload] = ()
    schema_files: Sequence[FileUpload] = ()
    protect_data: bool = False
    wal_archive_dir: str | None = None
    tls: PostgresTls | None = None
    # admitted for replication: over TLS (barman with pitr = true, replicas), or in plain TCP where replicas need it without TLS
    replication_role: str | None = None
    log_opts: Mapping[str, str] = field(default_factory=lambda: {"max-size": "10m", "max-file": "3"})

    def __post_init__(self) -> None:
        if self.replication_role is not None and not _ROLE.match(self.replication_role):
            raise ValueError(f"replication_role must be a plain PostgreSQL identifier, got {self.replication_role!r}")
        if not _ROLE.match(self.superuser):
            raise ValueError(f"superuser must be a plain PostgreSQL identifier, got {self.superuser!r}")
        if not self.image or any(c.isspace() for c in self.image):
            raise ValueError(f"image must be a reference like postgres:15, got {self.image!r}")
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
        # keep_locally: destroying the stack must not delete the shared official image from the host.
        self.image = Image(self, "image", name=props.image, keep_locally=True)
        self.data_volume = shared.named_volume(
            self, "data", name=f"{props.container_name}-data", labels=props.labels, protect=props.protect_data
        )
        mounts = [shared.volume_mount(self.data_volume.name, DATA_DIR)]
        if props.wal_archive_dir:
            self.wal_volume: Volume | None = shared.named_volume(
                self, "wal-archive", name=f"{props.container_name}-wal-archive", labels=props.labels, protect=props.protect_data
            )
            mounts.append(shared.volume_mount(self.wal_volume.name, props.wal_archive_dir))
        else:
            self.wal_volume = None

        files = [
            FileUpload(path=props.config_path, content=props.config_content),
            FileUpload(path=PASSWORD_FILE, content=props.password),
            *props.init_scripts,
            *props.schema_files,
        ]
        extra: dict[str, object] = {}
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
            extra["entrypoint"] = list(TLS_ENTRYPOINT)
        elif props.replication_role is not None:  # streaming replicas without TLS (postgresql.conf names the file)
            files.append(
                FileUpload(
                    path=HBA_PATH,
                    content=shared.shared_text(self, "pg-hba-replication", hba_content(props.replication_role, tls=False)),
                    permissions="0444",
                )
            )
        self.container = Container(
            self,
            "container",
            name=props.container_name,
            image=self.image.image_id,
            command=["postgres", "-c", f"config_file={props.config_path}"],
            env=sorted(
                [
                    f"POSTGRES_USER={props.superuser}",
                    f"POSTGRES_PASSWORD_FILE={PASSWORD_FILE}",
                    f"PGDATA={DATA_DIR}/pgdata",
                ]
            ),
            upload=shared.uploads(files),
            mounts=mounts,
            ports=[shared.port(props.published)],
            networks_advanced=[shared.network_attachment(props.network_name, props.network_alias)],
            # Over TCP, not the socket: during first-start init the entrypoint's temporary server
            # listens on the socket only, and "healthy" must mean the real server is accepting.
            healthcheck=props.health.healthcheck(f"pg_isready -U {props.superuser} -h 127.0.0.1 -p {props.published.container_port}"),
            # A clean shutdown flushes WAL; Docker's default 10 s can cut a busy checkpoint short.
            stop_timeout=60,
            destroy_grace_seconds=60,
            **extra,
            **shared.runtime_arguments(limits=props.limits, labels_=props.labels, log_opts=props.log_opts),
        )
        self.container_name: str = props.container_name
        self.host_port: int = props.published.host_port

    @property
    def container_id(self) -> str:
        """The container's id (a Terraform reference): changes exactly when the container is replaced."""
        return self.container.id
