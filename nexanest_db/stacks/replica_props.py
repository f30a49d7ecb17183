"""Config to props for the streaming replicas ``[replication.<instance>]`` declares, and what their primaries need.

The replica side of ``stacks/props.py``: each replica is the primary's image and rendered
configuration on its own host's provider alias, reaching the node that takes writes at its published
endpoint. What a primary needs for its replicas (the replication line of pg_hba.conf, the ACL user)
is in ``stacks/props.py`` (``replication_role_for``, ``redis_replication_users``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cdktf import ITerraformDependable, TerraformProvider

from nexanest_db.config import ReplicaConfig, replication_slot
from nexanest_db.constructs import (
    ContainerLimits,
    DeploySecrets,
    PostgresReplicaProps,
    PostgresReplicaTls,
    PublishedPort,
    RedisInstance,
    RedisReplicaProps,
    RedisTls,
)
from nexanest_db.constructs.postgres_instance import WAL_ARCHIVE_DIR
from nexanest_db.constructs.shared import standard_labels
from nexanest_db.roles import (
    REDIS_DEFAULT_SECRET,
    REDIS_REPLICATION_SECRET,
    REDIS_REPLICATION_USER,
    REPLICATION_ROLE,
    REPLICATION_SECRETS,
)
from nexanest_db.secrets.catalogue import CA_SECRET, SERVER_TLS_SECRETS
from nexanest_db.stacks.inputs import StackInputs
from nexanest_db.stacks.props import health_policy


@dataclass(frozen=True, kw_only=True)
class ReplicaPlacement:
    """Where one replica runs and whom it follows: its host's provider, the node it clones/streams from, what runs first."""

    instance: str
    name: str
    replica: ReplicaConfig
    provider: TerraformProvider
    source: tuple[str, int]  # host and port of the node it streams from
    after: Sequence[ITerraformDependable]  # the post-apply hooks: they make the role and the slot first


def _container_name(inputs: StackInputs, at: ReplicaPlacement) -> str:
    return f"{inputs.config.name_prefix}-{at.instance}-{at.name}"


def _published(inputs: StackInputs, at: ReplicaPlacement) -> PublishedPort:
    spec = inputs.config.instance(at.instance)
    return PublishedPort(container_port=spec.container_port, host_port=at.replica.port, bind_address=at.replica.bind_address)


def _limits(inputs: StackInputs, instance: str) -> ContainerLimits:
    spec = inputs.config.instance(instance)
    return ContainerLimits(memory_mb=spec.resources.memory_mb, cpus=spec.resources.cpus, restart=spec.restart)


def _labels(inputs: StackInputs, instance: str) -> dict[str, str]:
    config = inputs.config
    return standard_labels(environment=config.environment, service=f"{instance}-replica", extra=config.labels)


def postgres_replica_props(inputs: StackInputs, at: ReplicaPlacement, *, secrets: DeploySecrets) -> PostgresReplicaProps:
    """A PostgreSQL/TimescaleDB replica: bootstrapped through its slot, verify-full TLS to the primary where TLS is on."""
    config = inputs.config
    tls = None
    if config.tls.enabled:
        cert, key = SERVER_TLS_SECRETS[at.instance]
        tls = PostgresReplicaTls(
            cert=secrets.sensitive(cert), key=secrets.sensitive(key), ca=secrets.sensitive(CA_SECRET), sslmode=config.tls.client_sslmode
        )
    spec = config.postgres if at.instance == "postgres" else config.timescale
    return PostgresReplicaProps(
        container_name=_container_name(inputs, at),
        image=spec.image,
        published=_published(inputs, at),
        limits=_limits(inputs, at.instance),
        labels=_labels(inputs, at.instance),
        provider=at.provider,
        superuser=spec.superuser,
        primary_host=at.source[0],
        primary_port=at.source[1],
        replication_role=REPLICATION_ROLE,
        slot=replication_slot(at.name),
        replication_password=secrets.sensitive(REPLICATION_SECRETS[at.instance]),
        health=health_policy(inputs),
        config_content=inputs.rendered.for_instance(at.instance),
        config_local_name=f"{at.instance}-replica-conf",
        bootstrap_script=inputs.replica_bootstrap,
        tls=tls,
        wal_archive_dir=WAL_ARCHIVE_DIR if config.backup.pitr else None,
        protect_data=config.protected,
        depends_on=at.after,
    )


def redis_replica_props(inputs: StackInputs, at: ReplicaPlacement, *, primary: RedisInstance, secrets: DeploySecrets) -> RedisReplicaProps:
    """A Redis replica: the primary's redis.conf and ACL users, ``replicaof`` the primary as the replication user."""
    config = inputs.config
    tls = None
    if config.tls.enabled:
        cert, key = SERVER_TLS_SECRETS["redis"]
        tls = RedisTls(cert=secrets.sensitive(cert), key=secrets.sensitive(key), ca=secrets.sensitive(CA_SECRET))
    return RedisReplicaProps(
        container_name=_container_name(inputs, at),
        image=config.redis.image,
        published=_published(inputs, at),
        limits=_limits(inputs, "redis"),
        labels=_labels(inputs, "redis"),
        provider=at.provider,
        primary_host=at.source[0],
        primary_port=at.source[1],
        replication_user=REDIS_REPLICATION_USER,
        replication_password=secrets.sensitive(REDIS_REPLICATION_SECRET),
        default_password=secrets.sensitive(REDIS_DEFAULT_SECRET),
        acl_content=primary.acl_content,
        health=health_policy(inputs),
        config_content=inputs.rendered.redis,
        tls=tls,
        protect_data=config.protected,
        depends_on=at.after,
    )
