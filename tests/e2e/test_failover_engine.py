"""`nndb failover` on the real Docker engine: a primary container and a replica bootstrapped by the
shipped config/replica-bootstrap.sh (pg_basebackup through a slot), both from the postgres stand-in
image; switchover and failover as an operator runs them, fencing through the engine.

The containers are started here by hand, as the replica construct runs them, so the command is tested
without the Terraform providers (CI has none); tests/e2e/test_deploy_replicas.py runs the same moves on
containers `cdktf deploy` made. Every container, volume and network is removed afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from nexanest_db.errors import FailoverError
from tests.fixtures.docker_engine import DockerEngine
from tests.support.cli_json import json_result
from tests.support.project import REPO_ROOT, copy_project

pytestmark = pytest.mark.e2e

IMAGE = "nexanest-fixture/postgres:15"
SUPERUSER_PASSWORD = "failover-super-Secret-1"
REPLICATION_PASSWORD = "failover-repl-Secret-2"
SLOT = "replica_1"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result


def published_port(container: str) -> int:
    out = docker("port", container, "5432/tcp").stdout.strip().splitlines()[0]
    return int(out.rsplit(":", 1)[1])


def connect(port: int) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=port, dbname="postgres", user="nexanest", password=SUPERUSER_PASSWORD, autocommit=True, connect_timeout=3
    )


def wait_until(predicate, what: str, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except psycopg.Error:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Pair:
    prefix: str
    project: Path
    primary: str
    replica: str
    primary_port: int
    replica_port: int

    def nndb(self, *args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.project),
            "PYTHONPATH": str(REPO_ROOT),
            "POSTGRES_PASSWORD": SUPERUSER_PASSWORD,
            **(environ or {}),
        }
        return subprocess.run(
            [sys.executable, "-m", "nexanest_db", *args],
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )


def _run_primary(prefix: str, network: str, secrets: Path) -> str:
    name = f"{prefix}-postgres"
    docker(
        "run", "-d", "--name", name, "--network", network, "--network-alias", "postgres", "--restart", "unless-stopped",
        "-e", "POSTGRES_USER=nexanest", "-e", "POSTGRES_PASSWORD_FILE=/run/nndb/superuser",
        "-v", f"{secrets}:/run/nndb:ro", "-v", f"{name}-data:/var/lib/postgresql/data",
        "-p", "127.0.0.1::5432", IMAGE,
    )  # fmt: skip
    return name


def _run_replica(prefix: str, network: str, secrets: Path) -> str:
    name = f"{prefix}-postgres-replica-1"
    docker(
        "run", "-d", "--name", name, "--network", network, "--restart", "unless-stopped",
        "-e", "POSTGRES_USER=nexanest", "-e", "NNDB_PRIMARY_HOST=postgres", "-e", "NNDB_PRIMARY_PORT=5432",
        "-e", "NNDB_REPLICATION_USER=nndb_replication", "-e", f"NNDB_REPLICATION_SLOT={SLOT}",
        "-e", "NNDB_REPLICATION_PASSFILE=/run/nndb/replication.pgpass",
        "-v", f"{secrets}:/run/nndb:ro", "-v", f"{name}-data:/var/lib/postgresql/data",
        "-v", f"{REPO_ROOT / 'config' / 'replica-bootstrap.sh'}:/usr/local/bin/nndb-replica-bootstrap.sh:ro",
        "--entrypoint", "nndb-replica-bootstrap.sh", "-p", "127.0.0.1::5432", IMAGE, "postgres",
    )  # fmt: skip
    return name


@pytest.fixture
def pair(docker_engine: DockerEngine, tmp_path: Path) -> Iterator[Pair]:
    assert IMAGE in docker_engine.images
    prefix = f"nndbfo{uuid.uuid4().hex[:6]}"
    network = f"{prefix}-net"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "superuser").write_text(SUPERUSER_PASSWORD)
    (secrets / "replication.pgpass").write_text(f"*:*:*:nndb_replication:{REPLICATION_PASSWORD}\n")
    for path in secrets.iterdir():
        path.chmod(0o644)  # read as root inside the containers; a throwaway test value
    containers: list[str] = []
    docker("network", "create", network)
    try:
        primary = _run_primary(prefix, network, secrets)
        containers.append(primary)
        primary_port = published_port(primary)
        wait_until(lambda: connect(primary_port).close() is None, "the primary")
        with connect(primary_port) as conn:
            conn.execute(f"CREATE ROLE nndb_replication LOGIN REPLICATION PASSWORD '{REPLICATION_PASSWORD}'")
            conn.execute("SELECT pg_create_physical_replication_slot(%s)", (SLOT,))
        # The official image admits `host all all all`, which does not cover replication connections:
        # the deployed primary will get this line from the stack; here it is added by hand.
        docker("exec", primary, "bash", "-c", 'echo "host replication nndb_replication all scram-sha-256" >> "$PGDATA/pg_hba.conf"')
        with connect(primary_port) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, note text NOT NULL)")
            conn.execute("INSERT INTO orders (note) SELECT 'before' FROM generate_series(1, 100)")
        replica = _run_replica(prefix, network, secrets)
        containers.append(replica)
        replica_port = published_port(replica)

        def streaming() -> bool:
            with connect(primary_port) as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetchone()
            return bool(row and row[0] == 1)

        wait_until(streaming, "the replica to stream from the primary")
        wait_until(lambda: connect(replica_port).close() is None, "the replica to accept connections")
        project = copy_project(tmp_path / "project")
        local = project / "config" / "local.toml"
        text = local.read_text().replace('name_prefix = "nexanest-local"', f'name_prefix = "{prefix}"')
        text = text.replace("port = 5432\n", f"port = {primary_port}\n", 1)
        text += (
            f'\n[replication.postgres.replicas.replica-1]\ndocker = {{ host = "unix:///var/run/docker.sock" }}\n'
            f'endpoint_host = "127.0.0.1"\nport = {replica_port}\n'
        )
        local.write_text(text)
        yield Pair(prefix, project, primary, replica, primary_port, replica_port)
    finally:
        for name in containers:
            docker("rm", "-f", "-v", name, check=False)
            docker("volume", "rm", f"{name}-data", check=False)
        docker("network", "rm", network, check=False)


def test_planned_switchover_fences_the_primary_promotes_the_replica_and_repoints_the_config(pair: Pair) -> None:
    dry = pair.nndb("failover", "local-db", "postgres", "--to", "replica-1", "--planned", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would switch over from primary to replica-1" in dry.stdout and f"fence primary ({pair.primary}" in dry.stdout
    assert docker("inspect", "-f", "{{.State.Running}}", pair.primary).stdout.strip() == "true"  # the dry run changed nothing

    result = pair.nndb("failover", "local-db", "postgres", "--to", "replica-1", "--planned", "--json")
    assert result.returncode == 0, result.stderr
    document = json_result(result.stdout, "failover")
    assert (document["kind"], document["old_primary"], document["new_primary"]) == ("switchover", "primary", "replica-1")
    assert document["write_unavailable_s"] > 0  # how long: benchmarks, not tests

    state = docker("inspect", "-f", "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}", pair.primary).stdout.split()
    assert state == ["false", "no"], "the old primary must be stopped and must not restart by itself"
    with connect(pair.replica_port) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (100,)
        conn.execute("INSERT INTO orders (note) VALUES ('on the new primary')")
    assert '[replication.postgres]\nprimary = "replica-1"' in (pair.project / "config" / "local.toml").read_text()

    # The endpoint follows the config now: status reaches the new primary (the replica's port) as a primary.
    status = pair.nndb("status", "local-db", "--json")
    instance = json_result(status.stdout, "status", ok=False)["instances"]["postgres"]  # timescale and redis are not running
    assert instance["endpoint"] == f"127.0.0.1:{pair.replica_port}" and instance["replication"]["role"] == "primary"

    again = pair.nndb("failover", "local-db", "postgres", "--to", "replica-1", "--planned")
    assert again.returncode == FailoverError.exit_code and "is already the primary" in again.stderr


def test_failover_when_the_primary_is_gone_and_refusal_while_it_answers(pair: Pair) -> None:
    refused = pair.nndb("failover", "local-db", "postgres", "--to", "replica-1")
    assert refused.returncode == FailoverError.exit_code
    assert refused.stderr.strip().splitlines()[-1].endswith("the primary still answers; use --planned for a switchover that loses nothing")
    assert "Traceback" not in refused.stderr

    docker("kill", pair.primary)  # the primary is gone; its restart policy would bring it back: fencing stops that
    result = pair.nndb("failover", "local-db", "postgres", "--to", "replica-1")
    assert result.returncode == 0, result.stderr
    assert "failover from primary to replica-1 done" in result.stdout
    assert docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", pair.primary).stdout.strip() == "no"
    with connect(pair.replica_port) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (100,)
        conn.execute("INSERT INTO orders (note) VALUES ('after the failover')")

    unknown = pair.nndb("failover", "local-db", "postgres", "--to", "replica-9")
    assert unknown.returncode == 2 and "--to replica-9: not a node of postgres" in unknown.stderr
