"""One environment's database tier: PostgreSQL 15, TimescaleDB and Redis 7 on one Docker engine."""

from __future__ import annotations

from collections.abc import Callable

from cdktf import CloudBackend, LocalBackend, NamedCloudWorkspace, TerraformElement, TerraformOutput, TerraformStack
from constructs import Construct, Node

from nexanest_db.config import LocalBackend as LocalBackendConfig
from nexanest_db.config import config_file_for
from nexanest_db.constructs import (
    ContainerLimits,
    DatabaseNetwork,
    DatabaseNetworkProps,
    DeploySecrets,
    DeploySecretsProps,
    DestroyGuard,
    DestroyGuardProps,
    DockerEngine,
    DockerEngineProps,
    FileUpload,
    HealthPolicy,
    PostApplyHooks,
    PostApplyHooksProps,
    PostgresExporter,
    PostgresExporterProps,
    PostgresInstance,
    PostgresInstanceProps,
    PostgresTls,
    PublishedPort,
    RedisAclUser,
    RedisExporter,
    RedisExporterProps,
    RedisInstance,
    RedisInstanceProps,
    RedisTls,
)
from nexanest_db.constructs.exporters import POSTGRES_EXPORTER_PORT, REDIS_EXPORTER_PORT
from nexanest_db.constructs.postgres_instance import INIT_DIR, SCHEMAS_DIR
from nexanest_db.constructs.shared import shared_text, standard_labels
from nexanest_db.monitoring import IDENTITIES_FILE, MONITOR_SECRETS
from nexanest_db.rendering import POSTGRES_CONFIG_PATH, REDIS_ACL_PATH, REDIS_CONFIG_PATH, WAL_ARCHIVE_DIR
from nexanest_db.roles import REDIS_DEFAULT_SECRET, SUPERUSER_SECRETS, all_services
from nexanest_db.secrets import external_query, required_secret_names
from nexanest_db.stacks.addresses import add_moved_blocks, stable_logical_id
from nexanest_db.stacks.inputs import StackInputs
from nexanest_db.stacks.replicas import add_replicas, redis_replication_users, replication_role_for

TLS_SECRETS = {"postgres": ("postgres_tls_cert", "postgres_tls_key"), "timescale": ("timescale_tls_cert", "timescale_tls_key")}


class DatabaseStack(TerraformStack):
    def __init__(self, scope: Construct, id: str, *, inputs: StackInputs) -> None:
        super().__init__(scope, id)
        config = inputs.config
        endpoints = inputs.endpoints

        if isinstance(config.backend, LocalBackendConfig):
            LocalBackend(self, path=config.backend.path)
        else:
            CloudBackend(
                self,
                hostname=config.backend.hostname,
                organization=config.backend.organization,
                workspaces=NamedCloudWorkspace(config.backend.workspace),
            )

        if config.docker.ssh is not None:
            engine_props = DockerEngineProps(host=config.docker.ssh.url(endpoints.db_host_override), ssh_opts=tuple(config.docker.ssh.opts))
        else:
            engine_props = DockerEngineProps(host=config.docker.host or "")
        DockerEngine(self, "engine", props=engine_props)

        def labels_for(service: str) -> dict[str, str]:
            return standard_labels(environment=config.environment, service=service, extra=config.labels)

        network = DatabaseNetwork(
            self,
            "network",
            props=DatabaseNetworkProps(name=config.network.name, internal=config.network.internal, labels=labels_for("database-tier")),
        )
        secrets = DeploySecrets(
            self,
            "secrets",
            props=DeploySecretsProps(
                stack=inputs.stack, names=required_secret_names(config, terraform_only=True), query=external_query(config)
            ),
        )
        hc = config.healthcheck
        health = HealthPolicy(
            interval_s=hc.interval_s,
            timeout_s=hc.timeout_s,
            retries=hc.retries,
            start_period_s=hc.start_period_s,
        )

        def limits(instance: str) -> ContainerLimits:
            spec = config.instance(instance)
            return ContainerLimits(memory_mb=spec.resources.memory_mb, cpus=spec.resources.cpus, restart=spec.restart)

        def published(instance: str) -> PublishedPort:
            spec = config.instance(instance)
            return PublishedPort(
                container_port=spec.container_port, host_port=endpoints.for_instance(instance).port, bind_address=config.bind_address
            )

        # sql/first-start/ goes into both PostgreSQL containers: its text lives once, in a Terraform local.
        first_start = {
            f.relative_path: shared_text(
                self, f"first-start-{f.relative_path.removeprefix('first-start/').removesuffix('.sql')}", f.content
            )
            for f in inputs.sql_under("first-start")
        }
        databases: dict[str, PostgresInstance] = {}
        for instance in ("postgres", "timescale"):
            spec = config.postgres if instance == "postgres" else config.timescale
            services = config.services_on(instance)
            # Only sql/first-start/ runs from /docker-entrypoint-initdb.d (once, on an empty data dir);
            # sql/init/ needs secrets and re-runs on every deploy, so the post-apply hooks execute it.
            init_scripts = [
                FileUpload(path=f"{INIT_DIR}/{relative.removeprefix('first-start/')}", content=text)
                for relative, text in first_start.items()
            ]
            schema_files = [
                FileUpload(path=f"{SCHEMAS_DIR}/{f.relative_path.removeprefix('schemas/')}", content=f.content)
                for service in services
                for f in inputs.sql_under(f"schemas/{service}")
            ]
            tls = None
            if config.tls.enabled:
                cert_secret, key_secret = TLS_SECRETS[instance]
                # The certificate is public, but it comes through the same data source: keep every value sensitive.
                tls = PostgresTls(cert=secrets.sensitive(cert_secret), key=secrets.sensitive(key_secret))
            databases[instance] = PostgresInstance(
                self,
                instance,
                props=PostgresInstanceProps(
                    container_name=f"{config.name_prefix}-{instance}",
                    image=spec.image,
                    superuser=spec.superuser,
                    password=secrets.sensitive(SUPERUSER_SECRETS[instance]),
                    published=published(instance),
                    limits=limits(instance),
                    health=health,
                    network_name=network.name,
                    network_alias=instance,
                    config_path=POSTGRES_CONFIG_PATH,
                    config_content=inputs.rendered.for_instance(instance),
                    labels=labels_for(instance),
                    init_scripts=init_scripts,
                    schema_files=schema_files,
                    protect_data=config.protected,
                    wal_archive_dir=WAL_ARCHIVE_DIR if config.backup.pitr else None,
                    tls=tls,
                    replication_role=replication_role_for(config, instance),
                ),
            )

        redis_tls = None
        if config.tls.enabled:
            redis_tls = RedisTls(
                cert=secrets.sensitive("redis_tls_cert"), key=secrets.sensitive("redis_tls_key"), ca=secrets.sensitive("tls_ca_cert")
            )
        redis = RedisInstance(
            self,
            "redis",
            props=RedisInstanceProps(
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
                published=published("redis"),
                limits=limits("redis"),
                health=health,
                network_name=network.name,
                network_alias="redis",
                config_path=REDIS_CONFIG_PATH,
                config_content=inputs.rendered.redis,
                acl_path=REDIS_ACL_PATH,
                labels=labels_for("redis"),
                tls=redis_tls,
                protect_data=config.protected,
            ),
        )

        exporters = self._exporters(inputs, network_name=network.name, secrets=secrets, labels_for=labels_for)

        instances: dict[str, PostgresInstance | RedisInstance] = {**databases, "redis": redis}
        hooks = PostApplyHooks(
            self,
            "post-apply",
            props=PostApplyHooksProps(
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
            ),
        )
        replicas = add_replicas(self, inputs, primaries=instances, secrets=secrets, health=health, after=[hooks.resource])
        DestroyGuard(
            self,
            "destroy-guard",
            props=DestroyGuardProps(
                stack=inputs.stack,
                depends_on=[
                    hooks.resource,
                    *(instance.container for instance in instances.values()),
                    *(e.container for e in exporters),
                    *replicas.containers,
                ],
                environment=hooks.environment,
            ),
        )

        for instance in ("postgres", "timescale", "redis"):
            endpoint = endpoints.for_instance(instance)
            TerraformOutput(self, f"{instance}_host", value=endpoint.host, description=f"host clients use to reach {instance}")
            TerraformOutput(self, f"{instance}_port", value=endpoint.port, description=f"published {instance} port")
            TerraformOutput(
                self,
                f"{instance}_exporter_port",
                value=endpoints.exporter_ports[instance],
                description=f"published port of {instance}'s Prometheus exporter (/metrics)",
            )

        add_moved_blocks(self)

    def _allocate_logical_id(self, tf_element: TerraformElement | Node) -> str:
        """cdktf's naming hook (``allocateLogicalId``): stable addresses, see ``nexanest_db.stacks.addresses``."""
        return stable_logical_id(self, tf_element)

    def _exporters(
        self, inputs: StackInputs, *, network_name: str, secrets: DeploySecrets, labels_for: Callable[[str], dict[str, str]]
    ) -> list[PostgresExporter | RedisExporter]:
        """One exporter per instance, logging in as its monitoring identity (monitoring/identities.toml)."""
        config = inputs.config
        ca = secrets.sensitive("tls_ca_cert") if config.tls.enabled else None
        exporters: list[PostgresExporter | RedisExporter] = []

        def published(instance: str, container_port: int) -> PublishedPort:
            return PublishedPort(
                container_port=container_port, host_port=inputs.endpoints.exporter_ports[instance], bind_address=config.bind_address
            )

        def limits(instance: str) -> ContainerLimits:
            spec = config.exporters.for_instance(instance)
            return ContainerLimits(memory_mb=spec.resources.memory_mb, cpus=spec.resources.cpus, restart=spec.restart)

        for instance in ("postgres", "timescale"):
            exporters.append(
                PostgresExporter(
                    self,
                    f"{instance}-exporter",
                    props=PostgresExporterProps(
                        container_name=f"{config.name_prefix}-{instance}-exporter",
                        image=config.exporters.for_instance(instance).image,
                        target=instance,
                        target_port=config.instance(instance).container_port,
                        user=inputs.identities.postgres.role,
                        password=secrets.sensitive(MONITOR_SECRETS[instance]),
                        published=published(instance, POSTGRES_EXPORTER_PORT),
                        limits=limits(instance),
                        network_name=network_name,
                        labels=labels_for(f"{instance}-exporter"),
                        ca_cert=ca,
                    ),
                )
            )
        exporters.append(
            RedisExporter(
                self,
                "redis-exporter",
                props=RedisExporterProps(
                    container_name=f"{config.name_prefix}-redis-exporter",
                    image=config.exporters.redis.image,
                    target="redis",
                    target_port=config.redis.container_port,
                    user=inputs.identities.redis.user,
                    password=secrets.sensitive(MONITOR_SECRETS["redis"]),
                    published=published("redis", REDIS_EXPORTER_PORT),
                    limits=limits("redis"),
                    network_name=network_name,
                    labels=labels_for("redis-exporter"),
                    ca_cert=ca,
                ),
            )
        )
        return exporters
