"""A streaming replica of one PostgreSQL/TimescaleDB instance, on its own Docker engine (docs/topology.md).

The official image of the primary, unchanged. ``config/replica-bootstrap.sh`` (uploaded) is the
entrypoint in front of the image's own: on an empty data volume it clones the primary with
``pg_basebackup`` as the replication role through the replica's physical slot (the post-apply hooks
create both before this container exists: it depends on them), ``-R`` writing ``standby.signal`` and
``primary_conninfo``; then the image's entrypoint starts the server, a hot standby. The replication
password arrives as a file (a sensitive Terraform reference: never in ``cdk.tf.json``), and the
primary's certificate is verified against the uploaded CA where TLS is on.

Its postgresql.conf and pg_hba.conf are the primary's (the clone takes them over after a promotion).
Its health check: accepting connections, and either a standby whose WAL receiver streams or a
promoted primary. The same check in both roles, so that the first deploy after ``nndb failover``
does not replace (restart) the new primary's container; which node must be the primary is
``nndb status``'s and ``nndb failover``'s business (two writable primaries are red).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from cdktf import ITerraformDependable, TerraformProvider
from constructs import Construct

from nexanest_db.constructs import shared
from nexanest_db.constructs.database_container import (
    TLS_CA_PATH,
    TLS_CERT_PATH,
    TLS_KEY_UPLOAD_PATH,
    DatabaseContainerProps,
    DataVolume,
    database_container,
)
from nexanest_db.constructs.postgres_instance import CONFIG_PATH, DATA_DIR, HBA_PATH, TLS_KEY_PATH, hba_content
from nexanest_db.constructs.shared import FileUpload, HealthPolicy

BOOTSTRAP_PATH = "/usr/local/bin/nndb-replica-bootstrap.sh"
REPLICATION_PASSWORD_FILE = "/run/secrets/replication_password"  # noqa: S105 - a path, not a password
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_HOST = re.compile(r"^[A-Za-z0-9.:-]+$")


@dataclass(frozen=True, kw_only=True)
class PostgresReplicaTls:
    """The instance's TLS pair (its certificate names every node's endpoint host) and the CA the replica verifies the primary with."""

    cert: str
    key: str
    ca: str
    sslmode: str = "verify-full"

    def __post_init__(self) -> None:
        if not (self.cert and self.key and self.ca):
            raise ValueError("a TLS replica needs the certificate, the key and the CA")
        if self.sslmode not in {"verify-full", "verify-ca", "require"}:
            raise ValueError(f"sslmode must be verify-full, verify-ca or require, got {self.sslmode!r}")


@dataclass(frozen=True, kw_only=True)
class PostgresReplicaProps(DatabaseContainerProps):
    """``image`` is the primary's, as given; no tier network (the replica is on its own host)."""

    image_example: ClassVar[str] = "postgres:15"

    superuser: str
    provider: TerraformProvider  # the replica host's Docker provider alias (constructs/docker_engine.py)
    primary_host: str
    primary_port: int
    replication_role: str
    slot: str
    replication_password: str  # a sensitive Terraform reference
    health: HealthPolicy
    config_content: str  # the primary's rendered postgresql.conf
    config_local_name: str  # the Terraform local holding it, shared by the instance's replicas
    bootstrap_script: str  # config/replica-bootstrap.sh
    config_path: str = CONFIG_PATH
    tls: PostgresReplicaTls | None = None
    wal_archive_dir: str | None = None  # after a promotion it archives like the primary did
    protect_data: bool = False  # after a failover this volume holds the only primary's data
    depends_on: Sequence[ITerraformDependable] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, value in (("superuser", self.superuser), ("replication_role", self.replication_role), ("slot", self.slot)):
            if not _IDENTIFIER.match(value):
                raise ValueError(f"{name} must be a plain PostgreSQL identifier, got {value!r}")
        if not _HOST.match(self.primary_host):
            raise ValueError(f"primary_host must be a host name or IP address, got {self.primary_host!r}")
        if not 1 <= self.primary_port <= 65535:
            raise ValueError(f"primary_port out of range: {self.primary_port}")
        if not self.replication_password:
            raise ValueError("the replica needs the replication role's password (a sensitive reference)")
        if not self.bootstrap_script.startswith("#!"):
            raise ValueError("bootstrap_script must be the text of config/replica-bootstrap.sh")


def terraform_literal(text: str) -> str:
    """``text`` as a Terraform string literal: a shell script's ``${VAR}`` would otherwise be an interpolation."""
    return text.replace("${", "$${").replace("%{", "%%{")


def replica_entrypoint(tls: bool) -> list[str]:
    """The bootstrap script; with TLS, after giving postgres its own 0600 copy of the key (as the primary's wrapper does)."""
    if not tls:
        return [BOOTSTRAP_PATH]
    script = f'set -e; install -m 0600 -o postgres -g postgres {TLS_KEY_UPLOAD_PATH} {TLS_KEY_PATH}; exec {BOOTSTRAP_PATH} "$@"'
    return ["/bin/sh", "-c", script, "nndb-replica-entrypoint"]


def replica_healthcheck_command(*, superuser: str, port: int) -> str:
    """Accepting connections over TCP, and either out of recovery (promoted) or a standby whose WAL receiver streams
    (in recovery is not enough: a standby that lost its primary replays nothing)."""
    query = "SELECT NOT pg_is_in_recovery() OR EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')"
    return f'pg_isready -U {superuser} -h 127.0.0.1 -p {port} && test "$(psql -XtAq -U {superuser} -d postgres -p {port} -c "{query}")" = t'


class PostgresReplica(Construct):
    BORN_WITH_STABLE_ADDRESSES = True  # no moved block (stacks/addresses.py): never had a hashed address

    def __init__(self, scope: Construct, id: str, *, props: PostgresReplicaProps) -> None:
        super().__init__(scope, id)
        volumes = [DataVolume(id="data", target=DATA_DIR, protect=props.protect_data)]
        if props.wal_archive_dir:
            volumes.append(DataVolume(id="wal-archive", target=props.wal_archive_dir, protect=props.protect_data))

        tls = props.tls is not None
        # Texts every replica of the instance (or every replica) shares: one copy each in cdk.tf.json, as Terraform locals.
        config_local = shared.shared_text(self, f"{props.config_local_name}", props.config_content)
        files = [
            FileUpload(path=props.config_path, content=config_local),
            FileUpload(
                path=BOOTSTRAP_PATH,
                content=shared.shared_text(self, "replica-bootstrap", terraform_literal(props.bootstrap_script)),
                permissions="0555",
            ),
            # Read by the bootstrap script (as root) into the postgres user's 0600 passfile.
            FileUpload(path=REPLICATION_PASSWORD_FILE, content=props.replication_password, permissions="0400"),
            # The primary's pg_hba.conf, one copy in cdk.tf.json (the same Terraform local).
            FileUpload(
                path=HBA_PATH,
                content=shared.shared_text(
                    self, "pg-hba-tls" if tls else "pg-hba-replication", hba_content(props.replication_role, tls=tls)
                ),
            ),
        ]
        env = {
            "PGDATA": f"{DATA_DIR}/pgdata",
            "NNDB_PRIMARY_HOST": props.primary_host,
            "NNDB_PRIMARY_PORT": str(props.primary_port),
            "NNDB_REPLICATION_USER": props.replication_role,
            "NNDB_REPLICATION_SLOT": props.slot,
            "NNDB_REPLICATION_PASSWORD_FILE": REPLICATION_PASSWORD_FILE,
            "NNDB_PRIMARY_SSLMODE": "disable",
        }
        if props.tls is not None:
            files += [
                FileUpload(path=TLS_CERT_PATH, content=props.tls.cert, permissions="0444"),
                FileUpload(path=TLS_KEY_UPLOAD_PATH, content=props.tls.key, permissions="0400"),
                FileUpload(path=TLS_CA_PATH, content=props.tls.ca, permissions="0444"),
            ]
            env |= {"NNDB_PRIMARY_SSLMODE": props.tls.sslmode, "NNDB_PRIMARY_SSLROOTCERT": TLS_CA_PATH}
        port = props.published.container_port
        built = database_container(
            self,
            props,
            network_alias=None,
            files=files,
            # hot_standby is PostgreSQL 15's default; stated so the container definition says what it is.
            command=["postgres", "-c", f"config_file={props.config_path}", "-c", "hot_standby=on"],
            env=[f"{key}={value}" for key, value in env.items()],
            volumes=volumes,
            healthcheck=props.health.healthcheck(replica_healthcheck_command(superuser=props.superuser, port=port)),
            entrypoint=replica_entrypoint(tls),
            stop_timeout_s=60,
            provider=props.provider,
            depends_on=props.depends_on,
        )
        self.image = built.image
        self.data_volume = built.volumes["data"]
        self.container = built.container
        self.container_name: str = props.container_name
        self.host_port: int = props.published.host_port

    @property
    def container_id(self) -> str:
        return self.container.id
