"""Wiring of the streaming replicas ``[replication.<instance>]`` declares (docs/topology.md).

One Docker provider alias per replica host (the same host for several replicas shares it), and per
replica a ``PostgresReplica`` or ``RedisReplica`` on it, from the primary's image and rendered
configuration, reaching the primary at its published endpoint (the host the clients use). Every
replica container depends on the post-apply hooks: they create the replication role and the
replica's slot (PostgreSQL) on the primary first. Each replica's endpoint is a stack output.

``DatabaseStack`` calls ``add_replicas`` once. Wiring only: the props come from ``stacks/replica_props.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdktf import ITerraformDependable, TerraformOutput, TerraformStack

from nexanest_db.config import PRIMARY_NODE, EnvironmentConfig
from nexanest_db.constructs import (
    DeploySecrets,
    DockerEngine,
    DockerEngineProps,
    PostgresInstance,
    PostgresReplica,
    RedisInstance,
    RedisReplica,
)
from nexanest_db.stacks.inputs import StackInputs
from nexanest_db.stacks.replica_props import ReplicaPlacement, postgres_replica_props, redis_replica_props


@dataclass(kw_only=True)
class Replicas:
    """What ``add_replicas`` made: the replica constructs by ``<instance>/<name>``, and the provider aliases by engine URL."""

    nodes: dict[str, PostgresReplica | RedisReplica] = field(default_factory=dict)
    engines: dict[str, DockerEngine] = field(default_factory=dict)

    @property
    def containers(self) -> list[ITerraformDependable]:
        return [node.container for node in self.nodes.values()]


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
            serves_as_primary = replication.primary == name
            at = ReplicaPlacement(
                instance=instance,
                name=name,
                replica=replica,
                provider=made.engines[replica.engine_url()].provider,
                # The promoted replica keeps the address it was cloned from: its data directory is never cloned again.
                source=(stack_host, primary.host_port) if serves_as_primary else current,
                after=after,
            )
            node: PostgresReplica | RedisReplica
            if isinstance(primary, RedisInstance):
                node = RedisReplica(stack, f"redis-{name}", props=redis_replica_props(inputs, at, primary=primary, secrets=secrets))
            else:
                node = PostgresReplica(stack, f"{instance}-{name}", props=postgres_replica_props(inputs, at, secrets=secrets))
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
