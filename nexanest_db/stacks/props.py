"""Config to props: one small factory per construct ``DatabaseStack`` wires.

Here, in the stacks layer, because this is where an environment's config meets the constructs:
the constructs stay free of ``EnvironmentConfig``/``StackInputs`` (they take frozen, validated
props and are tested with hand-made ones, tests/unit/test_constructs.py), and the stack stays
wiring. Each factory reads ``StackInputs`` and, where a value is a Terraform reference, the
constructs already built (the secrets, the network); none of them creates a resource, except
``first_start_scripts``, whose text becomes a stack-level Terraform local.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cdktf import ITerraformDependable
from constructs import Construct

from nexanest_db.config import EnvironmentConfig, config_file_for
from nexanest_db.constructs import (
    ContainerLimits,
    DatabaseNetwork,
    DatabaseNetworkProps,
    DeploySecrets,
    DeploySecretsProps,
    DestroyGuardProps,
    DockerEngineProps,
    FileUpload,
    HealthPolicy,
    PostApplyHooks,
    PostApplyHooksProps,
    PostgresExporterProps,
    PostgresInstance,
    PostgresInstanceProps,
    PostgresTls,
    PublishedPort,
    RedisAclUser,
    RedisExporterProps,
    RedisInstance,
    RedisInstanceProps,
    RedisTls,
)
from nexanest_db.constructs.exporters import POSTGRES_EXPORTER_PORT, REDIS_EXPORTER_PORT
from nexanest_db.constructs.postgres_instance import INIT_DIR, SCHEMAS_DIR, WAL_ARCHIVE_DIR
from nexanest_db.constructs.shared import shared_text, standard_labels
from nexanest_db.monitoring import IDENTITIES_FILE, MONITOR_SECRETS
from nexanest_db.roles import (
    REDIS_DEFAULT_SECRET,
    REDIS_REPLICATION_RULES,
    REDIS_REPLICATION_SECRET,
    REDIS_REPLICATION_USER,
    REPLICATION_ROLE,
    SUPERUSER_SECRETS,
    all_services,
)
from nexanest_db.secrets import external_query, required_secret_names
from nexanest_db.secrets.catalogue import CA_SECRET, SERVER_TLS_SECRETS
from nexanest_db.stacks.inputs import StackInputs

TLS_SECRETS = SERVER_TLS_SECRETS  # the catalogue's pairs (nexanest_db.secrets.catalogue)

DatabaseInstance = PostgresInstance | RedisInstance


# --- pieces several factories share ------------------------------------------------------------------------------------


def labels_for(inputs: StackInputs, service: str) -> dict[str, str]:
    config = inputs.config
    return standard_labels(environment=config.environment, service=service, extra=config.labels)


def health_policy(inputs: StackInputs) -> HealthPolicy:
    hc = inputs.config.healthcheck
    return HealthPolicy(interval_s=hc.interval_s, timeout_s=hc.timeout_s, retries=hc.retries, start_period_s=hc.start_period_s)


def instance_limits(inputs: StackInputs, instance: str) -> ContainerLimits:
    spec = inputs.config.instance(instance)
    return ContainerLimits(memory_mb=spec.resources.memory_mb, cpus=spec.resources.cpus, restart=spec.restart)


def instance_port(inputs: StackInputs, instance: str) -> PublishedPort:
    """The stack's own container publishes on the stack's endpoint port, overrides included; after ``nndb failover``
    moved the primary to a replica, the endpoint is that replica's, and the fenced old primary keeps its configured port
    (where ``nndb failover`` addresses it, operations/replication_nodes.py): taking the replica's port would replace it
    and hand the promoted replica its own address as the node it was cloned from (its container replaced, restarted)."""
    config = inputs.config
    moved = config.primary_endpoint(instance) is not None
    return PublishedPort(
        container_port=config.instance(instance).container_port,
        host_port=config.instance(instance).port if moved else inputs.endpoints.for_instance(instance).port,
        bind_address=config.bind_address,
    )


# --- what a primary needs for its replicas ([replication.<instance>]) -------------------------------------------------


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


# --- engine, network, secrets ------------------------------------------------------------------------------------------


def engine_props(inputs: StackInputs) -> DockerEngineProps:
    docker = inputs.config.docker
    if docker.ssh is not None:
        return DockerEngineProps(host=docker.ssh.url(inputs.endpoints.db_host_override), ssh_opts=tuple(docker.ssh.opts))
    return DockerEngineProps(host=docker.host or "")


def network_props(inputs: StackInputs) -> DatabaseNetworkProps:
    network = inputs.config.network
    return DatabaseNetworkProps(name=network.name, internal=network.internal, labels=labels_for(inputs, "database-tier"))


def secrets_props(inputs: StackInputs) -> DeploySecretsProps:
    config = inputs.config
    return DeploySecretsProps(stack=inputs.stack, names=required_secret_names(config, terraform_only=True), query=external_query(config))


# --- the database instances --------------------------------------------------------------------------------------------


def first_start_scripts(scope: Construct, inputs: StackInputs) -> tuple[FileUpload, ...]:
    """sql/first-start/ for /docker-entrypoint-initdb.d, its text once in a Terraform local (both PostgreSQL containers get it).

    Only sql/first-start/ runs from there (once, on an empty data dir); sql/init/ needs secrets and
    re-runs on every deploy, so the post-apply hooks execute it.
    """
    scripts = []
    for f in inputs.sql_under("first-start"):
        name = f.relative_path.removeprefix("first-start/")
        text = shared_text(scope, f"first-start-{name.removesuffix('.sql')}", f.content)
        scripts.append(FileUpload(path=f"{INIT_DIR}/{name}", content=text))
    return tuple(scripts)


def postgres_props(
    inputs: StackInputs, instance: str, *, secrets: DeploySecrets, network: DatabaseNetwork, init_scripts: Sequence[FileUpload]
) -> PostgresInstanceProps:
    """``postgres`` or ``timescale``: its image, superuser, rendered postgresql.conf and its services' schemas."""
    config = inputs.config
    spec = config.postgres if instance == "postgres" else config.timescale
    tls = None
    if config.tls.enabled:
        cert_secret, key_secret = TLS_SECRETS[instance]
        # The certificate is public, but it comes through the same data source: keep every value sensitive.
        tls = PostgresTls(cert=secrets.sensitive(cert_secret), key=secrets.sensitive(key_secret))
    return PostgresInstanceProps(
        container_name=f"{config.name_prefix}-{instance}",
        image=spec.image,
        superuser=spec.superuser,
        password=secrets.sensitive(SUPERUSER_SECRETS[instance]),
        published=instance_port(inputs, instance),
        limits=instance_limits(inputs, instance),
        health=health_policy(inputs),
        network_name=network.name,
        network_alias=instance,
        config_content=inputs.rendered.for_instance(instance),
        labels=labels_for(inputs, instance),
        init_scripts=tuple(init_scripts),
        schema_files=[
            FileUpload(path=f"{SCHEMAS_DIR}/{f.relative_path.removeprefix('schemas/')}", content=f.content)
            for service in config.services_on(instance)
            for f in inputs.sql_under(f"schemas/{service}")
        ],
        protect_data=config.protected,
        wal_archive_dir=WAL_ARCHIVE_DIR if config.backup.pitr else None,
        tls=tls,
        replication_role=replication_role_for(config, instance),
        # `nndb failover` moved the primary to a replica and stopped this container: a deploy keeps it stopped.
        fenced=config.primary_endpoint(instance) is not None,
    )


def redis_props(inputs: StackInputs, *, secrets: DeploySecrets, network: DatabaseNetwork) -> RedisInstanceProps:
    """Redis with its complete ACL file: the default user, every service's user and the exporter's."""
    config = inputs.config
    tls = None
    if config.tls.enabled:
        tls = RedisTls(
            cert=secrets.sensitive(TLS_SECRETS["redis"][0]),
            key=secrets.sensitive(TLS_SECRETS["redis"][1]),
            ca=secrets.sensitive(CA_SECRET),
        )
    return RedisInstanceProps(
        container_name=f"{config.name_prefix}-redis",
        image=config.redis.image,
        password=secrets.sensitive(REDIS_DEFAULT_SECRET),
        acl_users=[
            RedisAclUser(name="default", password_sha256=secrets.sha256(REDIS_DEFAULT_SECRET), rules=("~*", "&*", "+@all")),
            *(
                RedisAclUser(name=svc.redis_user, password_sha256=secrets.sha256(svc.redis_secret), rules=svc.redis_rules)
                for svc in all_services(config)
            ),
            # The exporter's user exists from the container's first second, like the services'.
            RedisAclUser(
                name=inputs.identities.redis.user,
                password_sha256=secrets.sha256(MONITOR_SECRETS["redis"]),
                rules=inputs.identities.redis.rules,
            ),
            *redis_replication_users(config, secrets),
        ],
        published=instance_port(inputs, "redis"),
        limits=instance_limits(inputs, "redis"),
        health=health_policy(inputs),
        network_name=network.name,
        network_alias="redis",
        config_content=inputs.rendered.redis,
        labels=labels_for(inputs, "redis"),
        tls=tls,
        protect_data=config.protected,
    )


# --- the exporters (one per instance, logging in as its monitoring identity: monitoring/identities.toml) -------------


def _exporter_common(inputs: StackInputs, instance: str, container_port: int, *, secrets: DeploySecrets, network: DatabaseNetwork) -> dict:
    config = inputs.config
    spec = config.exporters.for_instance(instance)
    return {
        "container_name": f"{config.name_prefix}-{instance}-exporter",
        "image": spec.image,
        "target": instance,
        "target_port": config.instance(instance).container_port,
        "password": secrets.sensitive(MONITOR_SECRETS[instance]),
        "published": PublishedPort(
            container_port=container_port, host_port=inputs.endpoints.exporter_ports[instance], bind_address=config.bind_address
        ),
        "limits": ContainerLimits(memory_mb=spec.resources.memory_mb, cpus=spec.resources.cpus, restart=spec.restart),
        "network_name": network.name,
        "labels": labels_for(inputs, f"{instance}-exporter"),
        "ca_cert": secrets.sensitive(CA_SECRET) if config.tls.enabled else None,
        # After `nndb failover` the instance's primary is the promoted replica, at its published endpoint: the exporter
        # follows it there (the stopped old primary answers nothing; its exporter would report pg_up 0).
        "moved_to": (moved.host, moved.port) if (moved := config.primary_endpoint(instance)) is not None else None,
    }


def postgres_exporter_props(
    inputs: StackInputs, instance: str, *, secrets: DeploySecrets, network: DatabaseNetwork
) -> PostgresExporterProps:
    common = _exporter_common(inputs, instance, POSTGRES_EXPORTER_PORT, secrets=secrets, network=network)
    return PostgresExporterProps(user=inputs.identities.postgres.role, **common)


def redis_exporter_props(inputs: StackInputs, *, secrets: DeploySecrets, network: DatabaseNetwork) -> RedisExporterProps:
    common = _exporter_common(inputs, "redis", REDIS_EXPORTER_PORT, secrets=secrets, network=network)
    return RedisExporterProps(user=inputs.identities.redis.user, **common)


# --- post-apply hooks and the destroy guard ----------------------------------------------------------------------------


def hooks_props(inputs: StackInputs, *, instances: Mapping[str, DatabaseInstance], secrets: DeploySecrets) -> PostApplyHooksProps:
    """Re-run the hooks when the SQL, the rendered or stack config, the identities, a container or a secret changes."""
    return PostApplyHooksProps(
        stack=inputs.stack,
        content_hashes={
            "sql": inputs.sql_tree_hash,
            "config": inputs.config_hash,
            "config_file": inputs.config_file_hash,
            "monitoring": inputs.monitoring_file_hash,
        },
        container_ids={name: instance.container_id for name, instance in instances.items()},
        depends_on=[instance.container for instance in instances.values()],
        secrets_fingerprint=secrets.fingerprint(),
        config_file=str(config_file_for(inputs.stack, inputs.paths.config_dir)),
        sql_dir=str(inputs.paths.sql_dir),
        monitoring_file=str(inputs.paths.monitoring_dir / IDENTITIES_FILE),
    )


def guard_props(inputs: StackInputs, *, hooks: PostApplyHooks, protects: Sequence[ITerraformDependable]) -> DestroyGuardProps:
    """Destroy runs ``nndb before-destroy`` first: the guard depends on the hooks and on every container it protects."""
    return DestroyGuardProps(stack=inputs.stack, depends_on=[hooks.resource, *protects], environment=hooks.environment)
