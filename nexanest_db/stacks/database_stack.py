"""One environment's database tier: PostgreSQL 15, TimescaleDB and Redis 7 on one Docker engine.

Wiring only: which constructs, in which order, handed what. Config becomes props in ``stacks/props.py``;
the container skeleton they share is ``constructs/database_container.py``.
"""

from __future__ import annotations

from cdktf import CloudBackend, LocalBackend, NamedCloudWorkspace, TerraformElement, TerraformOutput, TerraformStack
from constructs import Construct, Node

from nexanest_db.config import LocalBackend as LocalBackendConfig
from nexanest_db.constructs import (
    DatabaseNetwork,
    DeploySecrets,
    DestroyGuard,
    DockerEngine,
    PostApplyHooks,
    PostgresExporter,
    PostgresInstance,
    RedisExporter,
    RedisInstance,
)
from nexanest_db.stacks import props
from nexanest_db.stacks.addresses import add_moved_blocks, stable_logical_id
from nexanest_db.stacks.inputs import StackInputs
from nexanest_db.stacks.replicas import add_replicas
from nexanest_db.stacks.swarm import add_swarm_secrets

POSTGRES_INSTANCES = ("postgres", "timescale")


class DatabaseStack(TerraformStack):
    def __init__(self, scope: Construct, id: str, *, inputs: StackInputs) -> None:
        super().__init__(scope, id)
        self._backend(inputs)
        DockerEngine(self, "engine", props=props.engine_props(inputs))
        network = DatabaseNetwork(self, "network", props=props.network_props(inputs))
        secrets = DeploySecrets(self, "secrets", props=props.secrets_props(inputs))
        add_swarm_secrets(self, inputs.config, secrets)  # [swarm]: the services' credentials as Docker secrets on the manager

        init_scripts = props.first_start_scripts(self, inputs)
        self.instances: dict[str, PostgresInstance | RedisInstance] = {
            instance: PostgresInstance(
                self, instance, props=props.postgres_props(inputs, instance, secrets=secrets, network=network, init_scripts=init_scripts)
            )
            for instance in POSTGRES_INSTANCES
        }
        self.instances["redis"] = RedisInstance(self, "redis", props=props.redis_props(inputs, secrets=secrets, network=network))
        # Further containers and resources built from the instances (replicas, swarm secrets) go here:
        # one call each to their own module, before the exporters, hooks and guard that depend on them.

        self.exporters: list[PostgresExporter | RedisExporter] = [
            *(
                PostgresExporter(
                    self, f"{instance}-exporter", props=props.postgres_exporter_props(inputs, instance, secrets=secrets, network=network)
                )
                for instance in POSTGRES_INSTANCES
            ),
            RedisExporter(self, "redis-exporter", props=props.redis_exporter_props(inputs, secrets=secrets, network=network)),
        ]

        hooks = PostApplyHooks(self, "post-apply", props=props.hooks_props(inputs, instances=self.instances, secrets=secrets))
        # [replication.*]: the replicas on their hosts' provider aliases, after the hooks made their role and slots.
        replicas = add_replicas(self, inputs, primaries=self.instances, secrets=secrets, after=[hooks.resource])
        containers = [
            *(instance.container for instance in self.instances.values()),
            *(e.container for e in self.exporters),
            *replicas.containers,
        ]
        DestroyGuard(self, "destroy-guard", props=props.guard_props(inputs, hooks=hooks, protects=containers))

        self._outputs(inputs)
        add_moved_blocks(self)

    def _allocate_logical_id(self, tf_element: TerraformElement | Node) -> str:
        """cdktf's naming hook (``allocateLogicalId``): stable addresses, see ``nexanest_db.stacks.addresses``."""
        return stable_logical_id(self, tf_element)

    def _backend(self, inputs: StackInputs) -> None:
        backend = inputs.config.backend
        if isinstance(backend, LocalBackendConfig):
            LocalBackend(self, path=backend.path)
        else:
            CloudBackend(
                self, hostname=backend.hostname, organization=backend.organization, workspaces=NamedCloudWorkspace(backend.workspace)
            )

    def _outputs(self, inputs: StackInputs) -> None:
        endpoints = inputs.endpoints
        for instance in (*POSTGRES_INSTANCES, "redis"):
            endpoint = endpoints.for_instance(instance)
            TerraformOutput(self, f"{instance}_host", value=endpoint.host, description=f"host clients use to reach {instance}")
            TerraformOutput(self, f"{instance}_port", value=endpoint.port, description=f"published {instance} port")
            TerraformOutput(
                self,
                f"{instance}_exporter_port",
                value=endpoints.exporter_ports[instance],
                description=f"published port of {instance}'s Prometheus exporter (/metrics)",
            )
