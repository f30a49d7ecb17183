"""A Redis 7 replica of the stack's Redis, on its own Docker engine (docs/topology.md).

The primary's official image and its rendered redis.conf, plus two small files given to
``redis-server`` with ``--include``: ``replica.conf`` (plain text, reviewable in ``cdk.tf.json``:
``replicaof`` the primary's published endpoint, ``masteruser`` the replication ACL user, over TLS
where TLS is on, read-only) and the ``masterauth`` line, whose password is a sensitive Terraform
reference uploaded root-only and copied for the redis user by the entrypoint wrapper (as the TLS
key is). Its ACL file is the primary's, so the services' users log in on the replica too.

No Sentinel (docs/topology.md#redis): a quorum needs three Sentinels on three hosts; promotion is
``REPLICAOF NO ONE`` by hand (docs/runbooks/failover.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from cdktf import Fn, ITerraformDependable, TerraformProvider
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
from nexanest_db.constructs.redis_instance import ACL_PATH, CONFIG_PATH, DATA_DIR, PASSWORD_FILE, RedisTls
from nexanest_db.constructs.redis_instance import TLS_KEY_PATH as REDIS_TLS_KEY_PATH
from nexanest_db.constructs.shared import FileUpload, HealthPolicy

REPLICA_CONFIG_PATH = "/usr/local/etc/redis/replica.conf"
MASTERAUTH_UPLOAD_PATH = "/run/secrets/redis-masterauth.conf"
MASTERAUTH_PATH = "/run/secrets/redis-masterauth-redis.conf"  # the redis user's 0600 copy
_ACL_USER = re.compile(r"^[a-zA-Z0-9_-]+$")
_HOST = re.compile(r"^[A-Za-z0-9.:-]+$")


@dataclass(frozen=True, kw_only=True)
class RedisReplicaProps(DatabaseContainerProps):
    """``image`` is the primary's, as given; no tier network (the replica is on its own host)."""

    image_example: ClassVar[str] = "redis:7-alpine"

    provider: TerraformProvider  # the replica host's Docker provider alias
    primary_host: str
    primary_port: int
    replication_user: str
    replication_password: str  # a sensitive Terraform reference (the primary's ACL holds its SHA-256)
    default_password: str  # a sensitive reference: the health check's login, as on the primary
    acl_content: str  # the primary's ACL file (a Terraform expression of sensitive digests)
    health: HealthPolicy
    config_content: str  # the primary's rendered redis.conf
    config_path: str = CONFIG_PATH
    acl_path: str = ACL_PATH
    tls: RedisTls | None = None
    protect_data: bool = False
    depends_on: Sequence[ITerraformDependable] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not _HOST.match(self.primary_host):
            raise ValueError(f"primary_host must be a host name or IP address, got {self.primary_host!r}")
        if not 1 <= self.primary_port <= 65535:
            raise ValueError(f"primary_port out of range: {self.primary_port}")
        if not _ACL_USER.match(self.replication_user):
            raise ValueError(f"replication_user must be letters, digits, '_' or '-', got {self.replication_user!r}")
        if not (self.replication_password and self.default_password and self.acl_content):
            raise ValueError("the replica needs the replication password, the default user's password and the ACL file")


def replica_config(*, primary_host: str, primary_port: int, user: str, tls: bool) -> str:
    lines = [
        "# Redis replica: rendered by nexanest-db (constructs/redis_replica.py); the primary's redis.conf comes first.",
        f"replicaof {primary_host} {primary_port}",
        f"masteruser {user}",
        "replica-read-only yes",
    ]
    if tls:
        lines.append("tls-replication yes")  # the replica verifies the primary with tls-ca-cert-file (the uploaded CA)
        lines.append(f"tls-ca-cert-file {TLS_CA_PATH}")
    return "\n".join(lines) + "\n"


def replica_entrypoint(tls: bool) -> list[str]:
    """Give the redis user 0600 copies of the masterauth file (and the TLS key), then the image's own entrypoint."""
    steps = [f"install -m 0600 -o redis -g redis {MASTERAUTH_UPLOAD_PATH} {MASTERAUTH_PATH}"]
    if tls:
        steps.append(f"install -m 0600 -o redis -g redis {TLS_KEY_UPLOAD_PATH} {REDIS_TLS_KEY_PATH}")
    script = "set -e; " + "; ".join(steps) + '; exec docker-entrypoint.sh "$@"'
    return ["/bin/sh", "-c", script, "nndb-redis-replica-entrypoint"]


class RedisReplica(Construct):
    BORN_WITH_STABLE_ADDRESSES = True  # no moved block (stacks/addresses.py): never had a hashed address

    def __init__(self, scope: Construct, id: str, *, props: RedisReplicaProps) -> None:
        super().__init__(scope, id)
        tls = props.tls is not None
        files = [
            # The primary's redis.conf once more in cdk.tf.json, as a local every replica shares.
            FileUpload(path=props.config_path, content=shared.shared_text(self, "redis-replica-conf", props.config_content)),
            FileUpload(
                path=REPLICA_CONFIG_PATH,
                content=shared.shared_text(
                    self,
                    "redis-replica-replicaof",
                    replica_config(primary_host=props.primary_host, primary_port=props.primary_port, user=props.replication_user, tls=tls),
                ),
            ),
            FileUpload(path=MASTERAUTH_UPLOAD_PATH, content=Fn.format("masterauth %s\n", [props.replication_password]), permissions="0400"),
            FileUpload(path=props.acl_path, content=props.acl_content, permissions="0600"),
            FileUpload(path=PASSWORD_FILE, content=props.default_password),
        ]
        tls_flags = ""
        if props.tls is not None:
            files += [
                FileUpload(path=TLS_CERT_PATH, content=props.tls.cert, permissions="0444"),
                FileUpload(path=TLS_KEY_UPLOAD_PATH, content=props.tls.key, permissions="0400"),
                FileUpload(path=TLS_CA_PATH, content=props.tls.ca, permissions="0444"),
            ]
            tls_flags = f" --tls --cacert {TLS_CA_PATH}"
        # Healthy: it answers, and its link to the primary is up (a replica that cannot sync is not healthy).
        check = (
            f'REDISCLI_AUTH="$(cat {PASSWORD_FILE})" redis-cli{tls_flags} -p {props.published.container_port} '
            "info replication | grep -q '^master_link_status:up'"
        )
        built = database_container(
            self,
            props,
            network_alias=None,
            files=files,
            command=["redis-server", props.config_path, "--include", REPLICA_CONFIG_PATH, "--include", MASTERAUTH_PATH],
            volumes=[DataVolume(id="data", target=DATA_DIR, protect=props.protect_data)],
            healthcheck=props.health.healthcheck(check),
            entrypoint=replica_entrypoint(tls),
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
