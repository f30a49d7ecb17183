"""The replica/failover path in a real `cdktf deploy local-db` (upstream providers), as an operator runs it.

A copy of local-db (tests/support/deploy_replicas.py) declares two PostgreSQL standbys and a Redis
replica on the local engine as a "second host" (one provider alias), everything published on the
bridge gateway (a replica reaches its primary at the published endpoint). In order:

1. deploy: both standbys stream through their slots; a row a service writes on the primary is on
   both once they have replayed the primary's WAL position; they and the Redis replica refuse
   writes; the Redis replica serves what the primary got; `nndb status` and the exporter show both
   standbys streaming (lag, active slots).
2. `nndb failover local-db postgres --to replica-1 --planned`: nothing lost, the old primary stopped
   and fenced (restart=no), the copy's config names replica-1 the primary.
3. the first deploy after the failover: the old primary stays defined but stopped (restart "no", no
   published port, its data volume kept), replica-1 is the one writable node (its container kept,
   not replaced), replica-2 streams from it through the slot the hooks made there (none for
   replica-1 itself), the exporter scrapes replica-1, and `cdktf diff` is clean afterwards.
4. destroy (the guard's verified backups first): nothing with the copy's prefix is left.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections.abc import Iterator

import psycopg
import pytest
import redis

from nexanest_db.config import replication_slot
from tests.fixtures.toolchain import Toolchain
from tests.support.cli_json import json_result
from tests.support.deploy import INSTANCES, DeployedCopy, docker
from tests.support.deploy_replicas import create_replica_copy, inspect, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.needs_providers]

STANDBYS = ("replica-1", "replica-2")
NODES = ("postgres", *(f"postgres-{name}" for name in STANDBYS))  # the three PostgreSQL nodes, by container name after the prefix


@pytest.fixture(scope="module")
def tier(tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain) -> Iterator[DeployedCopy]:
    deployed = create_replica_copy(
        tmp_path_factory.mktemp("e2e-replicas") / "project",
        toolchain,
        label="local-db with replicas e2e",
        replicas={"postgres": STANDBYS, "redis": ("replica-1",)},
    )
    try:
        yield deployed
    finally:
        deployed.teardown()


def superuser(tier: DeployedCopy, node: str) -> psycopg.Connection:
    return tier.connect(node, "nexanest", tier.passwords["POSTGRES_PASSWORD"], "postgres")


def auth_app(tier: DeployedCopy, node: str) -> psycopg.Connection:
    """The auth service's login (its role and grants replicated with the rest: a standby is a byte copy)."""
    return tier.connect(node, "auth_app", tier.passwords["AUTH_DB_PASSWORD"], "auth")


def write_rows(tier: DeployedCopy, node: str, tag: str, count: int) -> str:
    """``count`` users written on ``node`` as the auth service; the node's WAL position after the commit."""
    with auth_app(tier, node) as conn:
        conn.execute(
            "insert into auth.users (email, password_hash) select %s || n || '@nexanest.test', 'x' from generate_series(1, %s) n",
            (f"{tag}-", count),
        )
    with superuser(tier, node) as conn:
        return str(conn.execute("select pg_current_wal_lsn()").fetchone()[0])


def users(tier: DeployedCopy, node: str) -> set[str]:
    with auth_app(tier, node) as conn:
        return {row[0] for row in conn.execute("select email from auth.users")}


def wait_replayed(tier: DeployedCopy, standby: str, lsn: str, timeout_s: float = 60) -> None:
    def replayed() -> bool:
        with superuser(tier, standby) as conn:
            return bool(conn.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0])

    wait_until(replayed, f"{standby} to replay up to {lsn}", timeout_s)


def streaming_clients(tier: DeployedCopy, node: str) -> dict[str, str]:
    """application_name -> state of every WAL sender on ``node`` (the standbys name themselves after their slot)."""
    with superuser(tier, node) as conn:
        return dict(conn.execute("select application_name, state from pg_stat_replication").fetchall())


def slots(tier: DeployedCopy, node: str) -> set[str]:
    with superuser(tier, node) as conn:
        return {row[0] for row in conn.execute("select slot_name from pg_replication_slots")}


def writable(tier: DeployedCopy, node: str) -> bool:
    """Whether ``node`` answers and takes writes (out of recovery); a stopped container does not answer."""
    try:
        with superuser(tier, node) as conn:
            return not conn.execute("select pg_is_in_recovery()").fetchone()[0]
    except psycopg.OperationalError:
        return False


def redis_client(tier: DeployedCopy, node: str, **login: str) -> redis.Redis:
    return redis.Redis(host=tier.host, port=tier.ports[node], socket_timeout=10, decode_responses=True, **login)


def config_primary(tier: DeployedCopy) -> str:
    config = tomllib.loads((tier.root / "config" / "local.toml").read_text())
    return str(config["replication"]["postgres"].get("primary", "primary"))


SLOT_ACTIVE = re.compile(
    r'^pg_replication_slots_active\{database="",server="(?P<server>[^"]+)",slot_name="(?P<slot>[^"]+)"\} (?P<value>\S+)$'
)


def active_slots(metrics: str) -> dict[str, dict[str, str]]:
    """postgres_exporter's pg_replication_slots_active samples: scraped server -> slot -> value."""
    found: dict[str, dict[str, str]] = {}
    for line in metrics.splitlines():
        if match := SLOT_ACTIVE.match(line):
            found.setdefault(match["server"], {})[match["slot"]] = match["value"]
    return found


def status(tier: DeployedCopy) -> dict:
    result = tier.nndb("status", "local-db", "--json")
    document = json.loads(result.stdout)
    assert document["schema"] == "nndb/status/1", result.stdout[-2000:] + result.stderr[-2000:]
    return document["result"]


def test_replicas_through_deploy_switchover_and_the_deploy_after_it(tier: DeployedCopy) -> None:
    pw = tier.passwords
    slot_1, slot_2 = replication_slot("replica-1"), replication_slot("replica-2")

    # 1. first deploy: the primaries, the hooks (replication role, one slot per standby), then the replicas
    output = tier.cdktf("deploy", "deploy").output
    (ready,) = [line for line in output.splitlines() if "ready local-db:" in line]
    assert all(f"{tier.host}:{tier.ports[i]}" in ready for i in INSTANCES), ready
    assert f"created replication slot {slot_1}" in output and f"created replication slot {slot_2}" in output, output[-4000:]
    aliases = {
        p.get("alias"): p["host"]
        for p in json.loads((tier.root / "cdktf.out" / "stacks" / "local-db" / "cdk.tf.json").read_text())["provider"]["docker"]
    }
    assert aliases == {None: "unix:///var/run/docker.sock", "replica-host-local": "unix:///var/run/docker.sock"}
    start = time.perf_counter()
    wait_until(lambda: streaming_clients(tier, "postgres") == {slot_1: "streaming", slot_2: "streaming"}, "both standbys to stream", 180)
    tier.timings["standbys streaming (after deploy)"] = time.perf_counter() - start
    assert slots(tier, "postgres") == {slot_1, slot_2}
    lsn = write_rows(tier, "postgres", "before-switchover", 200)
    for standby in NODES[1:]:
        wait_replayed(tier, standby, lsn)
        assert users(tier, standby) == users(tier, "postgres") and len(users(tier, standby)) == 200
        with auth_app(tier, standby) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("insert into auth.users (email, password_hash) values ('on-a-standby@nexanest.test', 'x')")
        with superuser(tier, standby) as conn:
            assert conn.execute("select pg_is_in_recovery()").fetchone() == (True,)
    # Redis: the replica follows the primary as the replication user, serves the services' users, refuses writes
    redis_auth = {"username": "auth", "password": pw["AUTH_REDIS_PASSWORD"]}
    redis_client(tier, "redis", **redis_auth).set("auth:replicated", "from-the-primary")
    replica_auth = redis_client(tier, "redis-replica-1", **redis_auth)
    wait_until(lambda: replica_auth.get("auth:replicated") == "from-the-primary", "the Redis replica to receive the key", 30)
    with pytest.raises(redis.exceptions.ReadOnlyError):
        replica_auth.set("auth:on-the-replica", "x")
    info = redis_client(tier, "redis-replica-1", password=pw["REDIS_PASSWORD"]).info("replication")
    assert (info["role"], info["master_link_status"], info["master_port"]) == ("slave", "up", tier.ports["redis"])
    # nndb status: the primary's role and each standby's lag, by the name it streams under
    report = status(tier)
    replication = report["instances"]["postgres"]["replication"]
    assert replication["role"] == "primary"
    clients = {client["application_name"]: client for client in replication["clients"]}
    assert set(clients) == {slot_1, slot_2}
    for client in clients.values():
        assert client["state"] == "streaming" and isinstance(client["replay_lag_bytes"], int) and client["replay_lag_bytes"] >= 0
        assert isinstance(client["replay_lag_s"], float | int) and client["replay_lag_s"] >= 0
    assert report["instances"]["timescale"]["replication"] == {"role": "primary", "clients": [], "nodes": {}}
    # every other configured node as it answers: both standbys streaming
    nodes = report["instances"]["postgres"]["replication"]["nodes"]
    assert {name: (node["role"], node["receiver"]) for name, node in nodes.items()} == {
        "replica-1": ("standby", "streaming"),
        "replica-2": ("standby", "streaming"),
    }, nodes
    assert nodes["replica-1"]["endpoint"] == f"{tier.host}:{tier.ports['postgres-replica-1']}"
    assert report["instances"]["postgres"]["state"] == "ok", report["instances"]["postgres"]
    # the exporter sees both slots active on the primary (the numbers NndbReplicationSlotInactive watches)
    assert active_slots(tier.scrape("postgres-exporter", "pg_up 1")) == {"postgres:5432": {slot_1: "1", slot_2: "1"}}

    # 2. switchover to replica-1: writes stop, replica-1 catches up, the old primary is fenced, replica-1 promoted
    last = write_rows(tier, "postgres", "just-before-switchover", 50)
    committed = users(tier, "postgres")
    assert len(committed) == 250
    start = time.perf_counter()
    moved = tier.nndb("failover", "local-db", "postgres", "--to", "replica-1", "--planned", "--json")
    tier.timings["nndb failover --planned"] = time.perf_counter() - start
    assert moved.returncode == 0, moved.stdout[-3000:] + moved.stderr[-3000:]
    result = json_result(moved.stdout, "failover")
    assert (result["kind"], result["old_primary"], result["new_primary"]) == ("switchover", "primary", "replica-1")
    assert config_primary(tier) == "replica-1"
    old = tier.container("postgres")
    assert inspect(old, "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}") == "false no"
    assert writable(tier, "postgres-replica-1") and users(tier, "postgres-replica-1") == committed, "the switchover lost rows"
    with superuser(tier, "postgres-replica-1") as conn:
        assert conn.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn or pg_current_wal_lsn() >= %s::pg_lsn", (last, last)).fetchone()[
            0
        ]
    promoted_id = inspect(tier.container("postgres-replica-1"), "{{.Id}}")
    # its data volume is the evidence and the way back: a deploy keeps it (the container is recreated once, unpublished)
    old_volume = f"{old}-data"
    volume_created = docker("volume", "inspect", "--format", "{{.CreatedAt}}", old_volume)

    # 3. the first deploy after the failover: the old primary stays stopped, replica-2 follows replica-1
    output = tier.cdktf("deploy after the failover", "deploy").output
    (ready,) = [line for line in output.splitlines() if "ready local-db:" in line]
    assert f"{tier.host}:{tier.ports['postgres-replica-1']}" in ready, ready
    assert inspect(old, "{{.State.Running}} {{.State.Status}} {{.HostConfig.RestartPolicy.Name}}") in (
        "false exited no",
        "false created no",
    )
    assert inspect(tier.container("postgres-replica-1"), "{{.Id}}") == promoted_id, "the deploy replaced (restarted) the new primary"
    assert users(tier, "postgres-replica-1") == committed
    start = time.perf_counter()
    wait_until(lambda: streaming_clients(tier, "postgres-replica-1") == {slot_2: "streaming"}, "replica-2 to stream from replica-1", 180)
    tier.timings["replica-2 streaming from replica-1"] = time.perf_counter() - start
    assert [node for node in NODES if writable(tier, node)] == ["postgres-replica-1"], "exactly one writable primary"
    # the hooks ran against the new primary: replica-2's slot there (a base backup copies no slot), none for itself
    assert slots(tier, "postgres-replica-1") == {slot_2}
    assert f"created replication slot {slot_2}" in output, output[-4000:]
    lsn = write_rows(tier, "postgres-replica-1", "after-failover", 30)
    wait_replayed(tier, "postgres-replica-2", lsn)
    assert users(tier, "postgres-replica-2") == users(tier, "postgres-replica-1") and len(users(tier, "postgres-replica-2")) == 280
    with auth_app(tier, "postgres-replica-2") as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("insert into auth.users (email, password_hash) values ('on-a-standby@nexanest.test', 'x')")
    report = status(tier)
    assert report["instances"]["postgres"]["endpoint"].endswith(f":{tier.ports['postgres-replica-1']}"), report["instances"]["postgres"]
    assert report["instances"]["postgres"]["replication"]["role"] == "primary"
    assert [c["application_name"] for c in report["instances"]["postgres"]["replication"]["clients"]] == [slot_2]
    # the old primary is known to be fenced (it answers nothing), replica-2 streams: no split brain, status not red
    nodes = report["instances"]["postgres"]["replication"]["nodes"]
    assert {name: (node["role"], node["receiver"]) for name, node in nodes.items()} == {
        "primary": ("fenced", ""),
        "replica-2": ("standby", "streaming"),
    }, nodes
    assert report["instances"]["postgres"]["state"] == "ok", report["instances"]["postgres"]
    # monitoring followed the move: the instance's exporter scrapes the new primary, not the stopped old one
    new_primary = f"{tier.host}:{tier.ports['postgres-replica-1']}"
    assert active_slots(tier.scrape("postgres-exporter", "pg_up 1")) == {new_primary: {slot_2: "1"}}
    # a deploy that changes nothing keeps it that way (the old primary is not started on a read of its state)
    plan = tier.cdktf("diff after the failover deploy", "diff").output
    assert "No changes." in plan, plan[-6000:]
    assert inspect(old, "{{.State.Running}}") == "false", "the old primary was started"
    assert docker("volume", "inspect", "--format", "{{.CreatedAt}}", old_volume) == volume_created
    assert inspect(old, "{{range .Mounts}}{{.Name}} {{end}}").split() == [old_volume]
    assert inspect(old, "{{json .HostConfig.PortBindings}}") in ("{}", "null"), "a fenced old primary publishes nothing"

    # 4. destroy: the guard's verified backups first (from the new primary), then nothing with the prefix is left
    output = tier.cdktf("destroy", "destroy").output
    assert "before-destroy local-db: 3 backups taken and proven by restore" in output, output[-3000:]
    assert tier.names_on_engine() == {"containers": "", "volumes": "", "networks": ""}
