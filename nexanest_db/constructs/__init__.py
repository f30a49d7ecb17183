"""Reusable building blocks: each takes ``(scope, id, *, props)`` with frozen, validated props."""

from nexanest_db.constructs.database_container import DatabaseContainerProps, DataVolume, database_container
from nexanest_db.constructs.database_network import DatabaseNetwork, DatabaseNetworkProps
from nexanest_db.constructs.deploy_secrets import DeploySecrets, DeploySecretsProps
from nexanest_db.constructs.destroy_guard import DestroyGuard, DestroyGuardProps
from nexanest_db.constructs.docker_engine import DockerEngine, DockerEngineProps
from nexanest_db.constructs.exporters import ExporterProps, PostgresExporter, PostgresExporterProps, RedisExporter, RedisExporterProps
from nexanest_db.constructs.post_apply_hooks import PostApplyHooks, PostApplyHooksProps
from nexanest_db.constructs.postgres_instance import PostgresInstance, PostgresInstanceProps, PostgresTls
from nexanest_db.constructs.postgres_replica import PostgresReplica, PostgresReplicaProps, PostgresReplicaTls
from nexanest_db.constructs.redis_instance import RedisAclUser, RedisInstance, RedisInstanceProps, RedisTls
from nexanest_db.constructs.redis_replica import RedisReplica, RedisReplicaProps
from nexanest_db.constructs.shared import ContainerLimits, FileUpload, HealthPolicy, PublishedPort
from nexanest_db.constructs.swarm_secrets import SwarmSecret, SwarmSecrets, SwarmSecretsProps

__all__ = [
    "ContainerLimits",
    "DataVolume",
    "DatabaseContainerProps",
    "DatabaseNetwork",
    "DatabaseNetworkProps",
    "DeploySecrets",
    "DeploySecretsProps",
    "DestroyGuard",
    "DestroyGuardProps",
    "DockerEngine",
    "DockerEngineProps",
    "ExporterProps",
    "FileUpload",
    "HealthPolicy",
    "PostApplyHooks",
    "PostApplyHooksProps",
    "PostgresExporter",
    "PostgresExporterProps",
    "PostgresInstance",
    "PostgresInstanceProps",
    "PostgresReplica",
    "PostgresReplicaProps",
    "PostgresReplicaTls",
    "PostgresTls",
    "PublishedPort",
    "RedisAclUser",
    "RedisExporter",
    "RedisExporterProps",
    "RedisInstance",
    "RedisInstanceProps",
    "RedisReplica",
    "RedisReplicaProps",
    "RedisTls",
    "SwarmSecret",
    "SwarmSecrets",
    "SwarmSecretsProps",
    "database_container",
]
