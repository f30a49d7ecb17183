"""A deploy-scenario project copy (tests/support/deploy.py) with streaming replicas on the local engine as a "second host".

The replicas are declared under ``[replication.<instance>.replicas.<name>]`` with the same engine URL
(one provider alias, ``replica-host-local``). A replica reaches its primary at the primary's published
endpoint, and the loopback inside a container is the container itself: so the whole copy publishes
on the default bridge's gateway address, which the host and every container reach (as
tests/e2e/test_replica_engine.py does). The databases' ports are in the copy's config, not in
``*_PORT``: after ``nndb failover`` the config's ``[replication.<instance>] primary`` must be what
every later command and deploy reaches, and an exported ``POSTGRES_PORT`` would win over it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psycopg
import redis

from tests.fixtures.toolchain import Toolchain
from tests.support.deploy import DeployedCopy, docker
from tests.support.local_servers import free_port
from tests.support.realizer import bridge_gateway

ENGINE = "unix:///var/run/docker.sock"


def create_replica_copy(directory: Path, toolchain: Toolchain, *, label: str, replicas: Mapping[str, tuple[str, ...]]) -> DeployedCopy:
    """A local-db copy publishing on the bridge gateway, with ``replicas`` (instance -> names) on this engine.

    ``copy.ports`` gains ``<instance>-<replica>`` for each replica's published port.
    """
    gateway = bridge_gateway()
    replica_ports = {f"{instance}-{name}": free_port() for instance, names in replicas.items() for name in names}
    extra = "".join(
        f"\n[replication.{instance}.replicas.{name}]\n"
        f'docker = {{ host = "{ENGINE}" }}\n'
        f'endpoint_host = "{gateway}"\nbind_address = "{gateway}"\nport = {replica_ports[f"{instance}-{name}"]}\n'
        for instance, names in replicas.items()
        for name in names
    )
    deployed = DeployedCopy.create(
        directory,
        toolchain,
        label=label,
        host=gateway,
        ports_in_config=True,
        replacements={
            'bind_address = "127.0.0.1"': f'bind_address = "{gateway}"',
            'endpoint_host = "127.0.0.1"': f'endpoint_host = "{gateway}"',
        },
        extra_toml=extra,
    )
    deployed.ports.update(replica_ports)
    return deployed


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    """Poll ``predicate`` (database errors count as "not yet") until it holds; fail naming ``what`` and the last error."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        try:
            if predicate():
                return
        except (psycopg.Error, redis.RedisError) as exc:
            last = f" (last: {type(exc).__name__}: {str(exc).strip()[:200]})"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{last}")
        time.sleep(0.3)


def inspect(container: str, template: str) -> str:
    return docker("inspect", "--format", template, container)
