"""Wiring of the streaming replicas ``[replication.<instance>]`` declares (docs/topology.md).

One Docker provider alias per replica host (the same host for several replicas shares it), and per
replica a ``PostgresReplica`` or ``RedisReplica`` on it, from the primary's image and rendered
configuration, reaching the primary at its published endpoint (the host the clients use). Every
replica container depends on the post-apply hooks: they create the replication role and the
replica's slot (PostgreSQL) on the primary first. Each replica's endpoint is a stack output.

``DatabaseStack`` calls ``add_replicas`` once; ``replication_role_for`` and ``redis_replication_users``
say what the primaries need for their replicas (the replication line of pg_hba.conf, the ACL user).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdktf import ITerraformDependable, TerraformOutput, TerraformStack

from nexanest_db.config import PRIMARY_NODE, EnvironmentConfig, ReplicaConfig, replication_slot
from nexanest_db.constructs import (
    ContainerLimits,
    DeploySecrets,
    DockerEngine,
    DockerEngineProps,
    PostgresInstance,
    PostgresReplica,
    PostgresReplicaProps,
    PostgresReplicaTls,
    PublishedPort,
    RedisAclUser,
    RedisInstance,
    RedisReplica,
    RedisReplicaProps,
    RedisTls,
)
from nexanest_db.constructs.shared import HealthPolicy, standard_labels
from nexanest_db.rendering import POSTGRES_CONFIG_PATH, REDIS_ACL_PATH, REDIS_CONFIG_PATH, WAL_ARCHIVE_DIR
from nexanest_db.roles import (
    REDIS_DEFAULT_SECRET,
    REDIS_REPLICATION_RULES,
    REDIS_REPLICATION_SECRET,
    REDIS_REPLICATION_USER,
    REPLICATION_ROLE,
    REPLICATION_SECRETS,
)
from nexanest_db.stacks.inputs import StackInputs

TLS_PAIRS = {
    "postgres": ("postgres_tls_cert", "postgres_tls_key"),
    "timescale": ("timescale_tls_cert", "timescale_tls_key"),
    "redis": ("redis_tls_cert", "redis_tls_key"),
}


@dataclass(kw_only=True)
class Replicas:
    """What ``add_replicas`` made: the replica constructs by ``<instance>/<name>``, and the provider aliases by engine URL."""

    nodes: dict[str, PostgresReplica | RedisReplica] = field(default_factory=dict)
    engines: dict[str, DockerEngine] = field(default_factory=dict)

    @property
    def containers(self) -> list[ITerraformDependable]:
        return [node.container for node in self.nodes.values()]


def replication_role_for(config: EnvironmentConfig, instance: str) -> str | None:
    """The role the primary's pg_hba.conf admits for replication: barman's (PITR over TLS) or the replicas'."""
    if config.replicas_of(instance) or (config.backup.pitr and config.tls.enabled):
        return REPLICATION_ROLE
    return None


def redis_replication_users(config: EnvironmentConfig, secrets: DeploySecrets) -> list[RedisAclUser]:
    """The replicas' ACL user in the primary's ACL file (replication commands only), where Redis has replicas."""
    if not config.replicas_of("redis"):
        return []
    return [
        RedisAclUser(name=REDIS_REPLICATION_USER, password_sha256=secrets.sha256(REDIS_REPLICATION_SECRET), rules=REDIS_REPLICATION_RULES)
    ]


def provider_aliases(config: EnvironmentConfig) -> dict[str, str]:
    """One alias per distinct replica engine URL, named after its host: ``replica-host-pgdb2-nn-local``."""
    urls = sorted({replica.engine_url() for name in config.replicated_instances for replica in config.replicas_of(name).values()})
    aliases: dict[str, str] = {}
    for url in urls:
        host = re.sub(r"^[a-z]+://(?:[^@/]*@)?", "", url).split("/")[0].split(":")[0] or "local"
        base = "replica-host-" + re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-")[:40]
        alias, n = base, 2
        while alias in aliases.values():
            alias, n = f"{base}-{n}", n + 1
        aliases[url] = alias
    return aliases


def _output_name(instance: str, replica: str) -> str:
    return f"{instance}_{re.sub(r'[^A-Za-z0-9_]', '_', replica)}"


def add_replicas(
    stack: TerraformStack,
    inputs: StackInputs,
    *,
    primaries: Mapping[str, PostgresInstance | RedisInstance],
    secrets: DeploySecrets,
    health: HealthPolicy,
    after: Sequence[ITerraformDependable],
) -> Replicas:
    """Every declared replica on its host's provider alias; ``after``: what must run first (the post-apply hooks)."""
    config = inputs.config
    made = Replicas()
    if not config.replicated_instances:
        return made
    aliases = provider_aliases(config)
    for url, alias in aliases.items():
        replica = next(r for name in config.replicated_instances for r in config.replicas_of(name).values() if r.engine_url() == url)
        ssh_opts = tuple(replica.docker.ssh.opts) if replica.docker.ssh is not None else ()
        made.engines[url] = DockerEngine(stack, alias, props=DockerEngineProps(host=url, ssh_opts=ssh_opts, alias=alias))
    stack_host = inputs.endpoints.db_host_override or config.endpoint_host
    outputs: set[str] = set()
    for instance in config.replicated_instances:
        primary = primaries[instance]
        replication = config.replication[instance]  # type: ignore[index]
        if replication.primary == PRIMARY_NODE:
            current = (stack_host, primary.host_port)
        else:
            moved = config.replicas_of(instance)[replication.primary]
            current = (moved.endpoint_host, moved.port)
        for name, replica in config.replicas_of(instance).items():
            provider = made.engines[replica.engine_url()].provider
            serves_as_primary = replication.primary == name
            # The promoted replica keeps the address it was cloned from: its data directory is never cloned again.
            source = (stack_host, primary.host_port) if serves_as_primary else current
            common = {**_common(inputs, instance, name, replica), "provider": provider}
            if instance == "redis":
                assert isinstance(primary, RedisInstance)
                node: PostgresReplica | RedisReplica = _redis(stack, inputs, name, replica, primary, secrets, health, after, source, common)
            else:
                node = _postgres(stack, inputs, instance, name, replica, secrets, health, after, source, serves_as_primary, common)
            made.nodes[f"{instance}/{name}"] = node
            output = _output_name(instance, name)
            if output in outputs:
                raise ValueError(f"replicas of {instance}: two names give the stack output {output}_host; rename one of them")
            outputs.add(output)
            TerraformOutput(
                stack, f"{output}_host", value=replica.endpoint_host, description=f"host clients use to reach {instance} replica {name}"
            )
            TerraformOutput(stack, f"{output}_port", value=replica.port, description=f"published port of {instance} replica {name}")
    return made


def _common(inputs: StackInputs, instance: str, name: str, replica: ReplicaConfig) -> dict[str, object]:
    config = inputs.config
    spec = config.instance(instance)
    return {
        "container_name": f"{config.name_prefix}-{instance}-{name}",
        "image": spec.image,
        "published": PublishedPort(container_port=spec.container_port, host_port=replica.port, bind_address=replica.bind_address),
        "limits": ContainerLimits(memory_mb=spec.resources.memory_mb, cpus=spec.resources.cpus, restart=spec.restart),
        "labels": standard_labels(environment=config.environment, service=f"{instance}-replica", extra=config.labels),
        "protect_data": config.protected,
    }


def _postgres(
    stack: TerraformStack,
    inputs: StackInputs,
    instance: str,
    name: str,
    replica: ReplicaConfig,
    secrets: DeploySecrets,
    health: HealthPolicy,
    after: Sequence[ITerraformDependable],
    source: tuple[str, int],
    serves_as_primary: bool,
    common: Mapping[str, object],
) -> PostgresReplica:
    config = inputs.config
    tls = None
    if config.tls.enabled:
        cert, key = TLS_PAIRS[instance]
        tls = PostgresReplicaTls(
            cert=secrets.sensitive(cert), key=secrets.sensitive(key), ca=secrets.sensitive("tls_ca_cert"), sslmode=config.tls.client_sslmode
        )
    return PostgresReplica(
        stack,
        f"{instance}-{name}",
        props=PostgresReplicaProps(
            **common,  # type: ignore[arg-type]
            superuser=config.postgres.superuser if instance == "postgres" else config.timescale.superuser,
            primary_host=source[0],
            primary_port=source[1],
            replication_role=REPLICATION_ROLE,
            slot=replication_slot(name),
            replication_password=secrets.sensitive(REPLICATION_SECRETS[instance]),
            health=health,
            config_path=POSTGRES_CONFIG_PATH,
            config_content=inputs.rendered.for_instance(instance),
            config_local_name=f"{instance}-replica-conf",
            bootstrap_script=inputs.replica_bootstrap,
            tls=tls,
            wal_archive_dir=WAL_ARCHIVE_DIR if config.backup.pitr else None,
            serves_as_primary=serves_as_primary,
            depends_on=after,
        ),
    )


def _redis(
    stack: TerraformStack,
    inputs: StackInputs,
    name: str,
    replica: ReplicaConfig,
    primary: RedisInstance,
    secrets: DeploySecrets,
    health: HealthPolicy,
    after: Sequence[ITerraformDependable],
    source: tuple[str, int],
    common: Mapping[str, object],
) -> RedisReplica:
    config = inputs.config
    tls = None
    if config.tls.enabled:
        cert, key = TLS_PAIRS["redis"]
        tls = RedisTls(cert=secrets.sensitive(cert), key=secrets.sensitive(key), ca=secrets.sensitive("tls_ca_cert"))
    return RedisReplica(
        stack,
        f"redis-{name}",
        props=RedisReplicaProps(
            **common,  # type: ignore[arg-type]
            primary_host=source[0],
            primary_port=source[1],
            replication_user=REDIS_REPLICATION_USER,
            replication_password=secrets.sensitive(REDIS_REPLICATION_SECRET),
            default_password=secrets.sensitive(REDIS_DEFAULT_SECRET),
            acl_content=primary.acl_content,
            health=health,
            config_path=REDIS_CONFIG_PATH,
            config_content=inputs.rendered.redis,
            acl_path=REDIS_ACL_PATH,
            tls=tls,
            depends_on=after,
        ),
    )
