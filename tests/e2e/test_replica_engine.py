"""The synthesized replica container definitions realized on the real Docker engine, beside their primaries.

As tests/e2e/test_container_specs.py does for the primaries (and NOT a deploy: the docker CLI realizes
the blocks of ``cdk.tf.json`` field by field, tests/support/realizer.py): a copy of local-db declares a
PostgreSQL and a Redis replica whose "other host" is the same local engine under its own provider
alias. The primaries start first, the real post-apply hooks run (they create the replication role and
the replica's slot), then the replicas start in the order their ``depends_on`` says. Then: the
PostgreSQL replica was cloned by the uploaded bootstrap script through its slot as the replication
role, streams, is a healthy hot standby (its own health check: in recovery), sees rows written on the
primary before and after it started, and refuses writes; the Redis replica follows the primary as the
replication ACL user, serves the services' users from the shared ACL file, and refuses writes. All of
it twice: without TLS (local/dev), and with ``[tls] enabled`` (staging/prod), where the clone and the
streaming run over TLS verified against the CA (verify-full) and the Redis replica replicates over TLS.

The replicas reach the primaries at their published endpoint, so the copy publishes on the engine's
bridge gateway (reachable from the host and from containers) instead of the loopback. Every container,
volume and network carries this run's prefix and is removed afterwards.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from nexanest_db.config import replication_slot
from nexanest_db.secrets import SECRET_SPECS
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.pki import make_pki
from tests.support.e2e_run import record_phases
from tests.support.local_servers import free_port
from tests.support.project import copy_project
from tests.support.realizer import (
    NETWORK_FIELDS,
    VOLUME_FIELDS,
    Terraform,
    base_environment,
    bridge_gateway,
    configure_replica_copy,
    container_log,
    create_args,
    data_source_values,
    docker,
    fail,
    port_environment,
    teardown,
    upload_tar,
    wait_containers_healthy,
)

pytestmark = pytest.mark.e2e
STACK = "local-db"
PRIMARIES = ("postgres", "timescale", "redis")  # the hooks need all three; the exporters are not realized here
REPLICA = "replica-1"
ALIAS = "replica-host-local"

PASSWORDS = {spec.env_var: f"rp-{spec.name}-pw" for spec in SECRET_SPECS}
# pgpass needs \ and : escaped: the bootstrap script must get this one right or pg_basebackup cannot log in.
PASSWORDS["POSTGRES_REPLICATION_PASSWORD"] = "rp:repl\\pw-1"
PASSWORDS["REDIS_REPLICATION_PASSWORD"] = "rp-redis-repl#pw:2"


@dataclass
class Tier:
    root: Path
    prefix: str
    gateway: str
    ports: dict[str, int]
    env: dict[str, str]
    terraform: Terraform | None = None
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)  # container (name after the prefix) -> evaluated block
    timings: dict[str, float] = field(default_factory=dict)
    hooks_output: str = ""
    ca_file: Path | None = None  # with [tls] enabled: the CA every client verifies the servers with

    @property
    def tls(self) -> bool:
        return self.ca_file is not None

    def name(self, container: str) -> str:
        return f"{self.prefix}-{container}"

    def pg(self, port: int, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(
            host=self.gateway,
            port=port,
            dbname="postgres",
            user="nexanest",
            password=PASSWORDS["POSTGRES_PASSWORD"],
            autocommit=True,
            connect_timeout=5,
            **({"sslmode": "verify-full", "sslrootcert": str(self.ca_file)} if self.ca_file else {}),
            **kwargs,
        )

    def redis(self, port: int, **kwargs: Any) -> redis.Redis:
        tls = {"ssl": True, "ssl_ca_certs": str(self.ca_file), "ssl_cert_reqs": "required"} if self.ca_file else {}
        return redis.Redis(host=self.gateway, port=port, socket_timeout=10, decode_responses=True, **tls, **kwargs)

    def nndb(self, *args: str) -> str:
        result = subprocess.run(["nndb", *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            fail(f"nndb {' '.join(args)} exited {result.returncode}:\n{(result.stdout + result.stderr)[-3000:]}")
        return result.stdout + result.stderr


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float, log_of: str | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (psycopg.Error, redis.RedisError) as exc:
            last = f" (last: {type(exc).__name__}: {str(exc).strip()[:200]})"
        time.sleep(0.5)
    fail(f"timed out after {timeout_s:.0f} s waiting for {what}{last}" + (f"\n{container_log(log_of)}" if log_of else ""))


def wait_healthy(tier: Tier, containers: tuple[str, ...], timeout_s: float) -> None:
    """Every container healthy by its own synthesized health check; fail at once on an exited/unhealthy one."""
    deadline = time.monotonic() + timeout_s
    wait_containers_healthy({tier.name(container): deadline for container in containers}, bound=f"{timeout_s:.0f} s")


def realize_blocks(tier: Tier, containers: tuple[str, ...]) -> None:
    for container in containers:
        block = tier.blocks[container]
        where = f"docker_container ({container})"
        docker(*create_args(block, where, also_ignored=frozenset({"provider", "depends_on"})))
        if block.get("upload"):
            docker("cp", "-", f"{block['name']}:/", stdin=upload_tar(block["upload"], where))
    for container in containers:
        docker("start", tier.name(container))


@pytest.fixture(scope="module", params=["plain", "tls"])
def tier(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine) -> Iterator[Tier]:
    """The tier without TLS (local/dev's shape), then with ``[tls] enabled`` (staging/prod's: hostssl, verify-full)."""
    work = tmp_path_factory.mktemp(f"replicas-{request.param}")
    root = copy_project(work / "project")
    prefix = f"nndb-rp{request.param[0]}-{uuid.uuid4().hex[:8]}"
    gateway = bridge_gateway()
    names = [*PRIMARIES, *(f"{i}-exporter" for i in PRIMARIES), f"postgres-{REPLICA}", f"redis-{REPLICA}"]
    ports = {name: free_port() for name in names}
    configure_replica_copy(root, prefix, gateway, ports, instances=("postgres", "redis"), replica=REPLICA)
    env = {**base_environment(), **PASSWORDS}
    ca_file = None
    if request.param == "tls":
        # One certificate for every node, with a SAN for the address the clients (and the replicas) use.
        pki = make_pki(extra_ips=(gateway,))
        config_file = root / "config" / "local.toml"
        config_file.write_text(config_file.read_text() + '\n[tls]\nenabled = true\nclient_sslmode = "verify-full"\n')
        env |= pki.environ
        ca_file = work / "ca.pem"
        ca_file.write_text(pki.ca_cert)
    env |= port_environment(ports, PRIMARIES)
    state = Tier(root=root, prefix=prefix, gateway=gateway, ports=ports, env=env, ca_file=ca_file)
    try:
        realize(state)
        yield state
    finally:
        teardown(prefix)
        record_phases(f"local-db with replicas, {request.param} (docker CLI, not a deploy)", state.timings)


def realize(tier: Tier) -> None:
    start = time.perf_counter()
    synth = subprocess.run([sys.executable, "main.py"], cwd=tier.root, env=tier.env, capture_output=True, text=True, timeout=300)
    tier.timings["synth"] = time.perf_counter() - start
    if synth.returncode != 0:
        fail(f"python main.py exited {synth.returncode}:\n{(synth.stdout + synth.stderr)[-3000:]}")
    stack_dir = tier.root / "cdktf.out" / "stacks" / STACK
    document = json.loads((stack_dir / "cdk.tf.json").read_text())
    tier.terraform = terraform = Terraform(document=document, secrets=data_source_values(document, stack_dir, tier.env))

    # The replicas' provider alias is the same local engine (the "other host" of this test).
    aliases = {p.get("alias"): p["host"] for p in document["provider"]["docker"]}
    assert aliases == {None: "unix:///var/run/docker.sock", ALIAS: "unix:///var/run/docker.sock"}
    for block_id, block in terraform.resources("docker_container").items():
        evaluated = terraform.evaluate(block, f"docker_container.{block_id}")
        container = evaluated["name"].removeprefix(f"{tier.prefix}-")
        replica = container.endswith(f"-{REPLICA}")
        assert evaluated.get("provider") == (f"docker.{ALIAS}" if replica else None), block_id
        assert evaluated.get("depends_on") == (["terraform_data.post_apply"] if replica else None), block_id
        tier.blocks[container] = evaluated
    assert sorted(tier.blocks) == sorted([*PRIMARIES, *(f"{i}-exporter" for i in PRIMARIES), f"postgres-{REPLICA}", f"redis-{REPLICA}"])

    start = time.perf_counter()
    for block_id, block in terraform.resources("docker_network").items():
        if set(block) - NETWORK_FIELDS:
            fail(f"docker_network.{block_id}: fields this test does not map: {sorted(set(block) - NETWORK_FIELDS)}")
        evaluated = terraform.evaluate(block, f"docker_network.{block_id}")
        assert evaluated["name"].startswith(tier.prefix)
        docker("network", "create", "--driver", evaluated.get("driver", "bridge"), evaluated["name"])
    for block_id, block in terraform.resources("docker_volume").items():
        if set(block) - VOLUME_FIELDS - {"provider"}:
            fail(f"docker_volume.{block_id}: fields this test does not map: {sorted(set(block) - VOLUME_FIELDS)}")
        evaluated = terraform.evaluate(block, f"docker_volume.{block_id}")
        assert evaluated["name"].startswith(tier.prefix)
        docker("volume", "create", evaluated["name"])
    realize_blocks(tier, PRIMARIES)
    wait_healthy(tier, PRIMARIES, timeout_s=180)
    tier.timings["primaries healthy"] = time.perf_counter() - start

    # The post-apply hooks come first (the replicas depend on them): the replication role and the slot.
    start = time.perf_counter()
    tier.hooks_output = tier.nndb("hooks", "run", STACK)
    tier.timings["hooks"] = time.perf_counter() - start
    with tier.pg(tier.ports["postgres"]) as conn:
        conn.execute("CREATE TABLE replicated (id bigserial PRIMARY KEY, note text NOT NULL)")
        conn.execute("INSERT INTO replicated (note) SELECT 'before the replica' FROM generate_series(1, 1000)")
    tier.redis(tier.ports["redis"], username="auth", password=PASSWORDS["AUTH_REDIS_PASSWORD"]).set("auth:before", "1")

    start = time.perf_counter()
    replicas = (f"postgres-{REPLICA}", f"redis-{REPLICA}")
    realize_blocks(tier, replicas)
    wait_healthy(tier, replicas, timeout_s=180)
    tier.timings["replicas healthy"] = time.perf_counter() - start


def test_the_hooks_create_the_replication_role_and_the_replicas_slot(tier: Tier) -> None:
    slot = replication_slot(REPLICA)
    assert f"created replication slot {slot}" in tier.hooks_output, tier.hooks_output
    assert "created replication role nndb_replication" in tier.hooks_output, tier.hooks_output
    with tier.pg(tier.ports["postgres"]) as conn:
        assert conn.execute("SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = 'nndb_replication'").fetchone() == (True, False)
        # the replica streams through its slot, as the replication role, named after the slot
        row = conn.execute(
            "SELECT s.active, r.usename, r.application_name, r.state FROM pg_replication_slots s "
            "JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = %s",
            (slot,),
        ).fetchone()
    assert row == (True, "nndb_replication", slot, "streaming")
    with tier.pg(tier.ports["postgres"]) as conn:
        ssl = conn.execute(
            "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = %s", (slot,)
        ).fetchone()
    assert ssl == (tier.tls,), "the replica streams over TLS exactly where TLS is on"
    # a second hooks run has nothing left to do for the replicas
    again = tier.nndb("hooks", "run", STACK)
    assert "replication slot" not in again and "replication role" not in again, again


def test_postgres_replica_is_a_read_only_hot_standby_that_follows_the_primary(tier: Tier) -> None:
    primary, replica = tier.ports["postgres"], tier.ports[f"postgres-{REPLICA}"]
    log = container_log(tier.name(f"postgres-{REPLICA}"), lines=200)
    assert "empty data directory: cloning" in log and "clone complete; starting as a standby" in log, log
    with tier.pg(replica) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert conn.execute("SHOW hot_standby").fetchone() == ("on",)
        assert conn.execute("SELECT count(*) FROM replicated").fetchone() == (1000,)  # cloned
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO replicated (note) VALUES ('on the replica')")
        # the superuser logs in with its password (pg_hba.conf of the primary, cloned and uploaded alike)
    with tier.pg(primary) as conn:
        conn.execute("INSERT INTO replicated (note) SELECT 'after the replica' FROM generate_series(1, 500)")

    def streamed() -> bool:
        with tier.pg(replica) as conn:
            return conn.execute("SELECT count(*) FROM replicated").fetchone() == (1500,)

    wait_until(streamed, "the replica to replay rows written on the primary", 30, log_of=tier.name(f"postgres-{REPLICA}"))


def test_the_replication_password_reaches_the_replica_only_as_files(tier: Tier) -> None:
    name = tier.name(f"postgres-{REPLICA}")
    inspected = docker("inspect", name).stdout.decode()
    assert PASSWORDS["POSTGRES_REPLICATION_PASSWORD"] not in inspected  # not in env, command or labels
    assert PASSWORDS["POSTGRES_REPLICATION_PASSWORD"].replace("\\", "\\\\") not in inspected
    owner = docker("exec", name, "stat", "-c", "%U %a", "/var/lib/postgresql/.nndb-replication.pgpass").stdout.decode().split()
    assert owner == ["postgres", "600"]
    uploaded = docker("exec", name, "stat", "-c", "%U %a", "/run/secrets/replication_password").stdout.decode().split()
    assert uploaded == ["root", "400"] and int(uploaded[1], 8) & stat.S_IROTH == 0
    conninfo = docker("exec", name, "cat", "/var/lib/postgresql/data/pgdata/postgresql.auto.conf").stdout.decode()
    # pg_basebackup -R wrote primary_conninfo naming the passfile, never a password
    assert "passfile=''/var/lib/postgresql/.nndb-replication.pgpass''" in conninfo and "password=" not in conninfo
    processes = docker("exec", name, "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout.decode()
    assert "walreceiver" in processes and PASSWORDS["POSTGRES_REPLICATION_PASSWORD"] not in processes


def test_redis_replica_follows_the_primary_and_refuses_writes(tier: Tier) -> None:
    primary, replica = tier.ports["redis"], tier.ports[f"redis-{REPLICA}"]
    admin = tier.redis(replica, password=PASSWORDS["REDIS_PASSWORD"])
    info = admin.info("replication")
    assert info["role"] == "slave" and info["master_link_status"] == "up" and info["master_port"] == primary
    # the services' users log in on the replica (the primary's ACL file), and read what was written on the primary
    auth = tier.redis(replica, username="auth", password=PASSWORDS["AUTH_REDIS_PASSWORD"])
    assert auth.get("auth:before") == "1"
    tier.redis(primary, username="auth", password=PASSWORDS["AUTH_REDIS_PASSWORD"]).set("auth:after", "2")
    wait_until(lambda: auth.get("auth:after") == "2", "the Redis replica to receive a write on the primary", 20)
    with pytest.raises(redis.exceptions.ReadOnlyError):
        auth.set("auth:on-the-replica", "3")
    # the replication user can replicate and nothing else
    replicator = tier.redis(primary, username="nndb_replication", password=PASSWORDS["REDIS_REPLICATION_PASSWORD"])
    assert replicator.ping()
    with pytest.raises(redis.exceptions.NoPermissionError):
        replicator.get("auth:before")
    inspected = docker("inspect", tier.name(f"redis-{REPLICA}")).stdout.decode()
    assert PASSWORDS["REDIS_REPLICATION_PASSWORD"] not in inspected
    owner = docker("exec", tier.name(f"redis-{REPLICA}"), "stat", "-c", "%U %a", "/run/secrets/redis-masterauth-redis.conf").stdout.decode()
    assert owner.split() == ["redis", "600"]
