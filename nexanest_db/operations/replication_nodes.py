"""The nodes of one instance as configured (``[replication.<instance>]``), ready for a switchover or failover.

A node is the stack's own container (``primary``) or a replica; each has the address clients use,
the container's name and the Docker engine that runs it. Its fence is ``docker update
--restart=no`` then ``docker stop`` on that engine: the container stops with a clean shutdown and
does not come back when the host reboots. An engine nndb cannot reach cannot be fenced: that is an
error, unless the operator says the host is down (``assume_down``), since a host that is merely cut
off from us may still take writes from the services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from nexanest_db.config import PRIMARY_NODE, EnvironmentConfig, HostPort
from nexanest_db.engine import Engine
from nexanest_db.errors import ConfigError, FailoverError
from nexanest_db.operations.replication import Node
from nexanest_db.pg import MAINTENANCE_DB, open_session

STOP_TIMEOUT_S = 60  # as the container's own stop_timeout: a busy checkpoint finishes


@dataclass(frozen=True, kw_only=True)
class NodeAddress:
    name: str
    endpoint: HostPort
    container: str
    engine: Engine

    def describe(self) -> str:
        return f"{self.name} ({self.container} on {self.engine.description}, {self.endpoint.host}:{self.endpoint.port})"


def container_name(config: EnvironmentConfig, instance: str, node: str) -> str:
    return f"{config.name_prefix}-{instance}" if node == PRIMARY_NODE else f"{config.name_prefix}-{instance}-{node}"


def node_addresses(config: EnvironmentConfig, instance: str, *, current_primary_endpoint: HostPort) -> dict[str, NodeAddress]:
    """Every node of ``instance``; the current primary at ``current_primary_endpoint`` (the stack's endpoint, overrides included)."""
    replication = config.replication.get(instance)  # type: ignore[call-overload]
    if instance not in ("postgres", "timescale"):
        raise ConfigError(f"{instance}: only postgres and timescale have replicas; choose one of them")
    if replication is None or not replication.replicas:
        raise ConfigError(f"[replication.{instance}] declares no replicas in config/{config.environment}.toml; nothing to fail over to")
    own = HostPort(host=config.endpoint_host, port=config.instance(instance).port)
    nodes = {
        PRIMARY_NODE: NodeAddress(
            name=PRIMARY_NODE,
            endpoint=current_primary_endpoint if replication.primary == PRIMARY_NODE else own,
            container=container_name(config, instance, PRIMARY_NODE),
            engine=Engine.for_config(config),
        )
    }
    for name, replica in sorted(replication.replicas.items()):
        nodes[name] = NodeAddress(
            name=name,
            endpoint=current_primary_endpoint if replication.primary == name else HostPort(host=replica.endpoint_host, port=replica.port),
            container=container_name(config, instance, name),
            engine=Engine.for_docker(replica.docker),
        )
    return nodes


def docker_fence(address: NodeAddress, *, assume_down: bool) -> Callable[[], None]:
    def fence() -> None:
        for args in (("update", "--restart=no", address.container), ("stop", "-t", str(STOP_TIMEOUT_S), address.container)):
            result = address.engine.run(*args)
            if result is not None and result.returncode == 0:
                continue
            if result is not None and "No such container" in result.stderr:
                return  # nothing left to take writes there
            if assume_down:
                return
            why = "did not answer" if result is None else (result.stderr.strip().splitlines() or ["failed"])[-1]
            raise FailoverError(
                f"{address.describe()}: cannot fence it, `docker {args[0]}` {why}; if the host is down for sure (powered off), "
                "rerun with --primary-is-down"
            )

    return fence


def build_node(
    address: NodeAddress, *, superuser: str, password: str, tls_kwargs: dict[str, str], connect_timeout_s: float, assume_down: bool = False
) -> Node:
    def connect() -> psycopg.Connection:
        return open_session(
            endpoint=address.endpoint,
            database=MAINTENANCE_DB,
            user=superuser,
            password=password,
            connect_timeout_s=connect_timeout_s,
            application_name="nndb-failover",
            tls_kwargs=tls_kwargs,
        )

    return Node(name=address.name, connect=connect, fence=docker_fence(address, assume_down=assume_down))
