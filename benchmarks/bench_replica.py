"""Replica bootstrap of a ~500 MB primary beside a plain ``pg_basebackup`` of it, and a switchover's write outage (issue 15).

Target: the synthesized replica container (config/replica-bootstrap.sh: ``pg_basebackup -R -S <slot>
-X stream -c fast`` as the replication role, then the image's entrypoint starts a hot standby), from
``docker start`` until it is a streaming standby that answers queries, within 1.3x of a plain
``pg_basebackup -X stream -c fast`` of the same primary, run from the same image on the same engine
into a fresh volume over the same published endpoint. Then (unless ``--no-switchover``) a planned
switchover to the replica with ``operations.replication.switchover`` and the fencing of
``nndb failover`` (docs/topology.md: target under 10 s of write outage).

    python benchmarks/bench_replica.py [--mb 500] [--no-switchover]

Real Docker engine and the stand-in postgres image (scripts/bootstrap.sh). The stack is a copy of
local-db with one PostgreSQL replica on the same engine under its own provider alias, synthesized and
realized as tests/e2e/test_replica_engine.py does (tests/support/realizer.py); the replication role
and the slot come from ``operations.replica_setup`` as in the post-apply hooks. Measured in one run,
printed beside the baseline; exits 1 when a target is missed. Not part of the test suite. Everything
it creates carries a unique prefix and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nexanest_db.commands.hookrun import build_context  # noqa: E402
from nexanest_db.config import ProjectPaths, load_environment, replication_slot, resolve_endpoints  # noqa: E402
from nexanest_db.edge import Resolved  # noqa: E402
from nexanest_db.operations.replica_setup import ensure_replica_prerequisites  # noqa: E402
from nexanest_db.operations.replication import switchover  # noqa: E402
from nexanest_db.operations.replication_nodes import build_node, node_addresses  # noqa: E402
from nexanest_db.secrets import SECRET_SPECS  # noqa: E402
from tests.support.local_servers import free_port  # noqa: E402
from tests.support.project import copy_project  # noqa: E402
from tests.support.realizer import (  # noqa: E402
    Terraform,
    base_environment,
    bridge_gateway,
    configure_replica_copy,
    create_args,
    data_source_values,
    docker,
    teardown,
    upload_tar,
)

TARGET = 1.3
SWITCHOVER_TARGET_S = 10.0
REPLICA = "replica-1"
PASSWORDS = {spec.env_var: f"bench-{spec.name}-pw" for spec in SECRET_SPECS}


def realize_container(block: dict, where: str) -> None:
    docker(*create_args(block, where, also_ignored=frozenset({"provider", "depends_on"})))
    if block.get("upload"):
        docker("cp", "-", f"{block['name']}:/", stdin=upload_tar(block["upload"], where))


def poll(predicate, what: str, timeout_s: float, interval_s: float = 0.1) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except psycopg.Error:
            pass
        if time.monotonic() - start > timeout_s:
            raise SystemExit(f"bench_replica: timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="approximate size of the primary's generated table")
    parser.add_argument("--no-switchover", action="store_true")
    args = parser.parse_args()

    prefix = f"nndb-bench-rp-{uuid.uuid4().hex[:6]}"
    work = Path(tempfile.mkdtemp(prefix="nndb-bench-replica-"))
    try:
        return run(args, prefix, work)
    finally:
        teardown(prefix)


def run(args: argparse.Namespace, prefix: str, work: Path) -> int:
    root = copy_project(work / "project")
    gateway = bridge_gateway()
    ports = {name: free_port() for name in ("postgres", "timescale", "redis", f"postgres-{REPLICA}")}
    ports |= {f"{name}-exporter": free_port() for name in ("postgres", "timescale", "redis")}
    configure_replica_copy(root, prefix, gateway, ports, instances=("postgres",), replica=REPLICA)
    env = {**base_environment(), **PASSWORDS}
    for name in ("postgres", "timescale", "redis"):
        env[f"{name.upper()}_PORT"] = str(ports[name])
        env[f"{name.upper()}_EXPORTER_PORT"] = str(ports[f"{name}-exporter"])
    subprocess.run([sys.executable, "main.py"], cwd=root, env=env, check=True, capture_output=True, timeout=300)
    stack_dir = root / "cdktf.out" / "stacks" / "local-db"
    document = json.loads((stack_dir / "cdk.tf.json").read_text())
    terraform = Terraform(document=document, secrets=data_source_values(document, stack_dir, env))
    blocks = {
        block["name"].removeprefix(f"{prefix}-"): terraform.evaluate(block, f"docker_container.{block_id}")
        for block_id, block in terraform.resources("docker_container").items()
    }
    for block_id, block in terraform.resources("docker_network").items():
        docker("network", "create", terraform.evaluate(block, f"docker_network.{block_id}")["name"])
    for block_id, block in terraform.resources("docker_volume").items():
        docker("volume", "create", terraform.evaluate(block, f"docker_volume.{block_id}")["name"])

    def connect(port: int) -> psycopg.Connection:
        return psycopg.connect(
            host=gateway,
            port=port,
            dbname="postgres",
            user="nexanest",
            password=PASSWORDS["POSTGRES_PASSWORD"],
            autocommit=True,
            connect_timeout=3,
        )

    primary_port, replica_port = ports["postgres"], ports[f"postgres-{REPLICA}"]
    realize_container(blocks["postgres"], "postgres")
    docker("start", blocks["postgres"]["name"])
    poll(lambda: connect(primary_port).close() is None, "the primary", 120, interval_s=0.5)

    # What the post-apply hooks do for a replica: the replication role and its slot (operations.replica_setup).
    paths = ProjectPaths.at(root)
    config = load_environment("local-db", config_dir=paths.config_dir)
    resolved = Resolved(stack="local-db", paths=paths, config=config, environ=env, endpoints=resolve_endpoints(config, env))
    context = build_context(resolved, logger=logging.getLogger("bench"), backup_dir=work / "backups", run_lock=False)
    done = ensure_replica_prerequisites(context)
    assert any("replication slot" in title for _, title in done), done

    rows = args.mb * 1024 * 1024 // 130  # ~130 bytes a row on disk
    load_s = time.monotonic()
    with connect(primary_port) as conn:
        conn.execute("CREATE TABLE bench (id bigint PRIMARY KEY, a text, b text)")
        conn.execute("INSERT INTO bench SELECT g, md5(g::text), md5((g * 7)::text) FROM generate_series(1, %s) g", (rows,))
        conn.execute("VACUUM ANALYZE bench")
        conn.execute("CHECKPOINT")
        size = conn.execute("SELECT pg_size_pretty(sum(pg_database_size(datname))::bigint) FROM pg_database").fetchone()[0]
    print(
        f"primary: {size} in all databases ({rows} rows generated in {time.monotonic() - load_s:.0f} s), load average {os.getloadavg()[0]:.2f}"
    )

    # Baseline: plain pg_basebackup from the same image, same engine, same endpoint, into a fresh volume.
    # Run before and after the replica (the page cache and the load of a shared machine move between
    # runs); the replica is compared with the faster of the two.
    passfile = f"*:*:*:nndb_replication:{PASSWORDS['POSTGRES_REPLICATION_PASSWORD']}\n"
    conninfo = f"host={gateway} port={primary_port} user=nndb_replication passfile=/run/pgpass sslmode=disable"
    image = blocks["postgres"]["image"]

    def baseline(n: int) -> float:
        name = f"{prefix}-baseline-{n}"
        docker("volume", "create", f"{name}-data")
        docker("create", "--name", name, "-v", f"{name}-data:/backup", "--entrypoint", "pg_basebackup", image,
               "-d", conninfo, "-D", "/backup/data", "-X", "stream", "-c", "fast")  # fmt: skip
        docker("cp", "-", f"{name}:/", stdin=upload_tar([{"file": "/run/pgpass", "content": passfile, "permissions": "0600"}], "baseline"))
        start = time.monotonic()
        docker("start", "-a", name, timeout=1800)  # fails on pg_basebackup's non-zero exit
        return time.monotonic() - start

    baselines = [baseline(1)]

    # The synthesized replica: docker start until it streams and answers as a standby.
    slot = replication_slot(REPLICA)
    replica = blocks[f"postgres-{REPLICA}"]
    realize_container(replica, "replica")

    def streaming_standby() -> bool:
        with connect(replica_port) as conn:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone() != (True,):
                return False
        with connect(primary_port) as conn:
            row = conn.execute("SELECT state FROM pg_stat_replication WHERE application_name = %s", (slot,)).fetchone()
        return row == ("streaming",)

    start = time.monotonic()
    docker("start", replica["name"])
    poll(streaming_standby, "the replica to stream", 1800)
    ours_s = time.monotonic() - start
    with connect(replica_port) as conn:
        assert conn.execute("SELECT count(*) FROM bench").fetchone() == (rows,)
    baselines.append(baseline(2))
    base_s = min(baselines)

    failed = False
    ratio = ours_s / base_s
    verdict = "ok" if ratio <= TARGET else "MISSED"
    failed |= ratio > TARGET
    print(
        f"replica bootstrap (docker start -> streaming hot standby) {ours_s:6.1f}s   "
        f"baseline pg_basebackup -X stream -c fast {base_s:6.1f}s (runs before/after: {baselines[0]:.1f}s / {baselines[1]:.1f}s)   "
        f"ratio {ratio:4.2f} (target <= {TARGET}) {verdict}   load average {os.getloadavg()[0]:.2f}"
    )

    if not args.no_switchover:
        addresses = node_addresses(config, "postgres", current_primary_endpoint=resolved.endpoints.postgres)
        nodes = {
            name: build_node(address, superuser="nexanest", password=PASSWORDS["POSTGRES_PASSWORD"], tls_kwargs={}, connect_timeout_s=3)
            for name, address in addresses.items()
        }
        report = switchover(nodes["primary"], nodes[REPLICA], sql_dir=paths.sql_dir)
        outage = report.write_unavailable_s or 0.0
        with connect(replica_port) as conn:
            conn.execute("INSERT INTO bench VALUES (0, 'after', 'switchover')")  # the promoted replica takes writes
        verdict = "ok" if outage < SWITCHOVER_TARGET_S else "MISSED"
        failed |= outage >= SWITCHOVER_TARGET_S
        steps = ", ".join(f"{line.split(':')[0]} @{at:.1f}s" for line, at in report.steps)
        print(f"switchover write outage {outage:7.2f}s   (target < {SWITCHOVER_TARGET_S:g} s) {verdict}   steps: {steps}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
