"""The replica constructs in isolation (cdktf's Testing API), and the stack wiring of ``[replication.*]``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cdktf
import pytest
from cdktf import TerraformStack

from nexanest_db.config import load_environment, replication_slot
from nexanest_db.constructs import (
    ContainerLimits,
    DockerEngine,
    DockerEngineProps,
    HealthPolicy,
    PostgresReplica,
    PostgresReplicaProps,
    PostgresReplicaTls,
    PublishedPort,
    RedisReplica,
    RedisReplicaProps,
    RedisTls,
)
from nexanest_db.constructs.postgres_replica import replica_healthcheck_command
from nexanest_db.stacks.replicas import provider_aliases
from tests.support.project import REPO_ROOT, copy_project, synth
from tests.support.realizer import UNESCAPED, unescape

HEALTH = HealthPolicy(interval_s=30, timeout_s=10, retries=5, start_period_s=10)
BOOTSTRAP = (REPO_ROOT / "config" / "replica-bootstrap.sh").read_text()
ALIAS = "replica-host-pgdb2"


def postgres_props(provider, **changes) -> PostgresReplicaProps:  # type: ignore[no-untyped-def]
    props = PostgresReplicaProps(
        container_name="t-postgres-replica-1",
        image="postgres:15",
        superuser="nexanest",
        provider=provider,
        primary_host="pgdb.nn.local",
        primary_port=5432,
        replication_role="nndb_replication",
        slot="nndb_replica_replica_1",
        replication_password="${var.not_a_value}",
        published=PublishedPort(container_port=5432, host_port=15432, bind_address="10.0.0.12"),
        limits=ContainerLimits(memory_mb=512, cpus=0.5, restart="unless-stopped"),
        health=HEALTH,
        config_path="/etc/postgresql/postgresql.conf",
        config_content="port = 5432\n",
        config_local_name="postgres-replica-conf",
        bootstrap_script=BOOTSTRAP,
        labels={"com.nexanest.environment": "test"},
    )
    return replace(props, **changes)


def synth_with_engine(build) -> dict:  # type: ignore[no-untyped-def]
    stack = TerraformStack(cdktf.Testing.app(), "test")
    engine = DockerEngine(stack, ALIAS, props=DockerEngineProps(host="ssh://deploy@pgdb2.nn.local", alias=ALIAS))
    build(stack, engine.provider)
    return json.loads(cdktf.Testing.synth(stack))


def only(document: dict, kind: str) -> dict:
    (value,) = document["resource"][kind].values()
    return value


def uploads(container: dict) -> dict[str, dict]:
    return {u["file"]: u for u in container["upload"]}


def test_postgres_replica_clones_through_its_slot_on_its_own_host() -> None:
    document = synth_with_engine(lambda stack, provider: PostgresReplica(stack, "r", props=postgres_props(provider)))
    assert document["provider"]["docker"] == [{"alias": ALIAS, "host": "ssh://deploy@pgdb2.nn.local"}]
    container = only(document, "docker_container")
    # every resource of the replica lives on the replica host's provider alias
    for kind in ("docker_container", "docker_image", "docker_volume"):
        assert only(document, kind)["provider"] == f"docker.{ALIAS}", kind
    assert only(document, "docker_image")["name"] == "postgres:15" and only(document, "docker_image")["keep_locally"] is True
    assert container["entrypoint"] == ["/usr/local/bin/nndb-replica-bootstrap.sh"]
    assert container["command"] == ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf", "-c", "hot_standby=on"]
    env = dict(entry.split("=", 1) for entry in container["env"])
    assert env == {
        "PGDATA": "/var/lib/postgresql/data/pgdata",
        "NNDB_PRIMARY_HOST": "pgdb.nn.local",
        "NNDB_PRIMARY_PORT": "5432",
        "NNDB_REPLICATION_USER": "nndb_replication",
        "NNDB_REPLICATION_SLOT": "nndb_replica_replica_1",
        "NNDB_REPLICATION_PASSWORD_FILE": "/run/secrets/replication_password",
        "NNDB_PRIMARY_SSLMODE": "disable",
    }
    files = uploads(container)
    assert files["/run/secrets/replication_password"] == {
        "file": "/run/secrets/replication_password",
        "content": "${var.not_a_value}",
        "permissions": "0400",
    }
    assert files["/usr/local/bin/nndb-replica-bootstrap.sh"]["permissions"] == "0555"
    # shared texts are Terraform locals: one copy in cdk.tf.json however many replicas
    # a Terraform literal: the script's ${VAR} escaped as $${VAR}, or Terraform would evaluate it
    assert "${PGDATA" in BOOTSTRAP and unescape(document["locals"]["replica-bootstrap"]) == BOOTSTRAP
    assert not UNESCAPED.search(document["locals"]["replica-bootstrap"])
    assert files["/usr/local/bin/nndb-replica-bootstrap.sh"]["content"] == "${local.replica-bootstrap}"
    assert "host     replication nndb_replication all scram-sha-256" in document["locals"]["pg-hba-replication"]
    assert container["ports"] == [{"external": 15432, "internal": 5432, "ip": "10.0.0.12", "protocol": "tcp"}]
    assert "networks_advanced" not in container  # another host: the primary is reached at its published endpoint
    assert (
        "NOT pg_is_in_recovery() OR EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')"
        in container["healthcheck"]["test"][1]
    )
    assert "moved" not in json.dumps(document)


def test_postgres_replica_with_tls_verifies_the_primary_and_serves_tls() -> None:
    tls = PostgresReplicaTls(cert="${var.cert}", key="${var.key}", ca="${var.ca}", sslmode="verify-full")
    document = synth_with_engine(lambda stack, provider: PostgresReplica(stack, "r", props=postgres_props(provider, tls=tls)))
    container = only(document, "docker_container")
    env = dict(entry.split("=", 1) for entry in container["env"])
    assert env["NNDB_PRIMARY_SSLMODE"] == "verify-full" and env["NNDB_PRIMARY_SSLROOTCERT"] == "/run/secrets/tls/ca.crt"
    assert container["entrypoint"][:2] == ["/bin/sh", "-c"]
    assert "install -m 0600 -o postgres -g postgres /run/secrets/tls/server.key" in container["entrypoint"][2]
    assert container["entrypoint"][2].endswith('exec /usr/local/bin/nndb-replica-bootstrap.sh "$@"')
    files = uploads(container)
    assert files["/run/secrets/tls/server.key"]["permissions"] == "0400"
    assert {"/run/secrets/tls/server.crt", "/run/secrets/tls/ca.crt", "/etc/postgresql/pg_hba.conf"} <= set(files)
    assert "hostssl  replication nndb_replication all scram-sha-256" in document["locals"]["pg-hba-tls"]


def test_a_replica_is_healthy_streaming_or_promoted_with_one_check() -> None:
    check = replica_healthcheck_command(superuser="nexanest", port=5432)
    assert check.startswith("pg_isready -U nexanest -h 127.0.0.1 -p 5432 && ") and check.endswith('" = t')
    # in recovery is not enough: a standby must stream; promoted, it is out of recovery. One check for both roles,
    # so a failover does not change (and a deploy does not replace) the new primary's container.
    assert "SELECT NOT pg_is_in_recovery() OR EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')" in check


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"slot": "Bad-Slot"}, "slot must be a plain PostgreSQL identifier"),
        ({"primary_host": "pgdb nn"}, "primary_host must be a host name"),
        ({"primary_port": 0}, "primary_port out of range"),
        ({"replication_password": ""}, "needs the replication role's password"),
        ({"bootstrap_script": "echo hi"}, "bootstrap_script must be the text of config/replica-bootstrap.sh"),
        ({"image": "postgres 15"}, "image must be a reference"),
    ],
)
def test_postgres_replica_props_are_validated(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        postgres_props(None, **change)


def test_tls_and_alias_props_are_validated() -> None:
    with pytest.raises(ValueError, match="sslmode must be"):
        PostgresReplicaTls(cert="c", key="k", ca="a", sslmode="prefer")
    with pytest.raises(ValueError, match="provider alias must be"):
        DockerEngineProps(host="unix:///var/run/docker.sock", alias="Has Space")


def redis_props(provider, **changes) -> RedisReplicaProps:  # type: ignore[no-untyped-def]
    props = RedisReplicaProps(
        container_name="t-redis-replica-1",
        image="redis:7-alpine",
        provider=provider,
        primary_host="pgdb.nn.local",
        primary_port=6379,
        replication_user="nndb_replication",
        replication_password="${var.repl}",
        default_password="${var.default}",
        acl_content="${var.acl}",
        published=PublishedPort(container_port=6379, host_port=16379, bind_address="10.0.0.12"),
        limits=ContainerLimits(memory_mb=256, cpus=0.5, restart="unless-stopped"),
        health=HEALTH,
        config_path="/usr/local/etc/redis/redis.conf",
        config_content="port 6379\n",
        acl_path="/data/users.acl",
        labels={"com.nexanest.environment": "test"},
    )
    return replace(props, **changes)


def test_redis_replica_follows_the_primary_with_its_acl_user() -> None:
    document = synth_with_engine(lambda stack, provider: RedisReplica(stack, "r", props=redis_props(provider)))
    container = only(document, "docker_container")
    assert container["provider"] == f"docker.{ALIAS}"
    assert container["command"] == [
        "redis-server",
        "/usr/local/etc/redis/redis.conf",
        "--include",
        "/usr/local/etc/redis/replica.conf",
        "--include",
        "/run/secrets/redis-masterauth-redis.conf",
    ]
    files = uploads(container)
    assert document["locals"]["redis-replica-replicaof"].splitlines()[1:] == [
        "replicaof pgdb.nn.local 6379",
        "masteruser nndb_replication",
        "replica-read-only yes",
    ]
    # the password only as a sensitive reference, root-only, copied for the redis user by the entrypoint
    masterauth = files["/run/secrets/redis-masterauth.conf"]
    assert masterauth["content"].startswith('${format("masterauth %s\\n", ') and masterauth["permissions"] == "0400"
    assert (
        "install -m 0600 -o redis -g redis /run/secrets/redis-masterauth.conf /run/secrets/redis-masterauth-redis.conf"
        in (container["entrypoint"][2])
    )
    assert files["/data/users.acl"] == {"file": "/data/users.acl", "content": "${var.acl}", "permissions": "0600"}
    assert container["healthcheck"]["test"][1].endswith("info replication | grep -q '^master_link_status:up'")
    assert "REDISCLI_AUTH=" in container["healthcheck"]["test"][1] and " -a " not in container["healthcheck"]["test"][1]


def test_redis_replica_over_tls_replicates_over_tls() -> None:
    tls = RedisTls(cert="${var.cert}", key="${var.key}", ca="${var.ca}")
    document = synth_with_engine(lambda stack, provider: RedisReplica(stack, "r", props=redis_props(provider, tls=tls)))
    container = only(document, "docker_container")
    assert "tls-replication yes" in document["locals"]["redis-replica-replicaof"]
    assert "install -m 0600 -o redis -g redis /run/secrets/tls/server.key /run/secrets/tls/server-redis.key" in container["entrypoint"][2]
    assert "--tls --cacert /run/secrets/tls/ca.crt" in container["healthcheck"]["test"][1]


# --- the stack wiring (stacks/replicas.py) --------------------------------------------------------

REPLICAS = """
[replication.postgres.replicas.replica-1]
docker = { ssh = { user = "deploy", host = "pgdb2.nn.local" } }
endpoint_host = "pgdb2.nn.local"
port = 5432
bind_address = "10.0.0.12"

[replication.postgres.replicas.replica-2]
docker = { ssh = { user = "deploy", host = "pgdb3.nn.local" } }
endpoint_host = "pgdb3.nn.local"
port = 5432

[replication.redis.replicas.replica-1]
docker = { ssh = { user = "deploy", host = "pgdb2.nn.local" } }
endpoint_host = "pgdb2.nn.local"
port = 6379
"""


@pytest.fixture(scope="module")
def dev_with_replicas(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    project = copy_project(tmp_path_factory.mktemp("project"))
    dev = project / "config" / "dev.toml"
    dev.write_text(dev.read_text() + REPLICAS)
    return project, synth(project, project / "out", environ={}, stacks=("dev-db",))["dev-db"]


def test_one_provider_alias_per_replica_host(dev_with_replicas: tuple[Path, dict]) -> None:
    project, dev = dev_with_replicas
    config = load_environment("dev-db", config_dir=project / "config")
    assert provider_aliases(config) == {
        "ssh://deploy@pgdb2.nn.local": "replica-host-pgdb2-nn-local",
        "ssh://deploy@pgdb3.nn.local": "replica-host-pgdb3-nn-local",
    }
    hosts = [(p.get("alias"), p["host"]) for p in dev["provider"]["docker"]]
    assert hosts == [
        (None, "ssh://deploy@pgdb.nn.local"),
        ("replica-host-pgdb2-nn-local", "ssh://deploy@pgdb2.nn.local"),
        ("replica-host-pgdb3-nn-local", "ssh://deploy@pgdb3.nn.local"),
    ]
    containers = dev["resource"]["docker_container"]
    assert containers["postgres_replica_1"]["provider"] == "docker.replica-host-pgdb2-nn-local"
    assert containers["redis_replica_1"]["provider"] == "docker.replica-host-pgdb2-nn-local"
    assert containers["postgres_replica_2"]["provider"] == "docker.replica-host-pgdb3-nn-local"


def test_replicas_reach_the_primary_at_its_published_endpoint_after_the_hooks(dev_with_replicas: tuple[Path, dict]) -> None:
    _, dev = dev_with_replicas
    containers = dev["resource"]["docker_container"]
    for name in ("postgres_replica_1", "postgres_replica_2", "redis_replica_1"):
        assert containers[name]["depends_on"] == ["terraform_data.post_apply"], name  # role and slot exist first
        assert containers[name]["image"] == f"${{docker_image.{name}.image_id}}"
    env = dict(entry.split("=", 1) for entry in containers["postgres_replica_2"]["env"])
    assert (env["NNDB_PRIMARY_HOST"], env["NNDB_PRIMARY_PORT"]) == ("pgdb.nn.local", "5432")
    assert env["NNDB_REPLICATION_SLOT"] == replication_slot("replica-2") == "nndb_replica_replica_2"
    assert containers["postgres_replica_2"]["ports"][0]["ip"] == "127.0.0.1"  # the replica's own bind_address default
    images = {i["name"] for key, i in dev["resource"]["docker_image"].items() if "replica" in key}
    assert images == {dev["resource"]["docker_image"]["postgres"]["name"], dev["resource"]["docker_image"]["redis"]["name"]}
    # the primary admits the replication role without TLS (dev) through its own pg_hba.conf, which its config names
    primary = {u["file"]: u["content"] for u in containers["postgres"]["upload"]}
    assert primary["/etc/postgresql/pg_hba.conf"] == "${local.pg_hba_replication}"
    assert "hba_file = '/etc/postgresql/pg_hba.conf'" in primary["/etc/postgresql/postgresql.conf"]
    timescale = {u["file"] for u in containers["timescale"]["upload"]}
    assert "/etc/postgresql/pg_hba.conf" not in timescale  # no replicas there: the image's own rules, as before
    # Redis: the replicas' user is in the primary's ACL file, with replication commands only
    acl = next(u["content"] for u in containers["redis"]["upload"] if u["file"] == "/data/users.acl")
    assert '"nndb_replication", sensitive(sha256(data.external.secrets.result["redis_replication"])), "+psync +replconf +ping"' in acl
    # the destroy guard covers the replicas (after a failover one of them holds the primary's data)
    masterauth = next(u["content"] for u in containers["redis_replica_1"]["upload"] if u["file"] == "/run/secrets/redis-masterauth.conf")
    assert masterauth == '${format("masterauth %s\\n", sensitive(data.external.secrets.result["redis_replication"]))}'
    guard = dev["resource"]["terraform_data"]["destroy_guard"]
    assert {"docker_container.postgres_replica_1", "docker_container.redis_replica_1"} <= set(guard["depends_on"])


def test_replica_endpoints_are_outputs_and_the_query_names_the_replicated_instances(dev_with_replicas: tuple[Path, dict]) -> None:
    _, dev = dev_with_replicas
    outputs = {k: v["value"] for k, v in dev["output"].items() if "replica" in k}
    assert outputs == {
        "postgres_replica_1_host": "pgdb2.nn.local",
        "postgres_replica_1_port": 5432,
        "postgres_replica_2_host": "pgdb3.nn.local",
        "postgres_replica_2_port": 5432,
        "redis_replica_1_host": "pgdb2.nn.local",
        "redis_replica_1_port": 6379,
    }
    (source,) = dev["data"]["external"].values()
    assert source["query"]["replicas"] == "postgres,redis"


def test_no_secret_value_in_a_stack_with_replicas(dev_with_replicas: tuple[Path, dict]) -> None:
    _, dev = dev_with_replicas
    for name, local in dev["locals"].items():  # plain texts: nothing Terraform would evaluate
        assert not UNESCAPED.search(local), name
    text = json.dumps(dev)
    assert "dev_password" not in text
    for name in ("postgres_replication", "redis_replication"):
        assert f'sensitive(data.external.secrets.result[\\"{name}\\"])' in text


def test_after_a_failover_the_other_replicas_follow_the_new_primary_and_the_old_one_stays_stopped(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    dev = project / "config" / "dev.toml"
    # replica-1 on a port of its own: the endpoint moves to it, the old primary's and the clone source's port must not
    replicas = REPLICAS.replace('endpoint_host = "pgdb2.nn.local"\nport = 5432', 'endpoint_host = "pgdb2.nn.local"\nport = 15432', 1)
    before = synth(project, tmp_path / "before", environ={}, stacks=("dev-db",))
    dev.write_text(
        dev.read_text()
        + replicas.replace(
            "[replication.postgres.replicas.replica-1]",
            '[replication.postgres]\nprimary = "replica-1"\n\n[replication.postgres.replicas.replica-1]',
        )
    )
    document = synth(project, tmp_path / "out", environ={}, stacks=("dev-db",))["dev-db"]
    containers = document["resource"]["docker_container"]
    promoted = dict(entry.split("=", 1) for entry in containers["postgres_replica_1"]["env"])
    other = dict(entry.split("=", 1) for entry in containers["postgres_replica_2"]["env"])
    assert (promoted["NNDB_PRIMARY_HOST"], promoted["NNDB_PRIMARY_PORT"]) == ("pgdb.nn.local", "5432")  # unchanged: never clones again
    assert (other["NNDB_PRIMARY_HOST"], other["NNDB_PRIMARY_PORT"]) == ("pgdb2.nn.local", "15432")
    # the clients' endpoint is the new primary; the fenced old primary publishes nothing (a stopped container reads
    # back without ports: with one, every plan would replace it), its volume and everything else as before
    assert (document["output"]["postgres_host"]["value"], document["output"]["postgres_port"]["value"]) == ("pgdb2.nn.local", 15432)
    unfenced = before["dev-db"]["resource"]["docker_container"]["postgres"]
    assert [p["external"] for p in unfenced["ports"]] == [5432] and "ports" not in containers["postgres"]
    assert containers["postgres"]["mounts"] == unfenced["mounts"] and containers["postgres"]["env"] == unfenced["env"]
    # the instance's exporter watches the new primary at its endpoint; timescale's still its own container
    exporter_env = {name: dict(e.split("=", 1) for e in containers[name]["env"]) for name in ("postgres_exporter", "timescale_exporter")}
    assert exporter_env["postgres_exporter"]["DATA_SOURCE_URI"].startswith("pgdb2.nn.local:15432/postgres?")
    assert exporter_env["timescale_exporter"]["DATA_SOURCE_URI"].startswith("timescale:5432/postgres?")
    # One health check for both roles: the failover changes nothing in the new primary's container (no replacement).
    assert containers["postgres_replica_1"]["healthcheck"] == containers["postgres_replica_2"]["healthcheck"]
    # The fenced old primary stays defined (its volume is kept) but a deploy neither starts it nor keeps it running;
    # timescale, whose primary did not move, is unchanged.
    fenced, unmoved = containers["postgres"], containers["timescale"]
    assert (fenced["start"], fenced["must_run"], fenced["restart"]) == (False, False, "no")
    assert "start" not in unmoved and (unmoved["must_run"], unmoved["restart"]) == (True, "unless-stopped")


def test_with_tls_only_the_instance_with_replicas_admits_replication(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    dev = project / "config" / "dev.toml"
    dev.write_text(dev.read_text() + REPLICAS.split("[replication.postgres.replicas.replica-2]")[0] + "\n[tls]\nenabled = true\n")
    document = synth(project, tmp_path / "out", environ={}, stacks=("dev-db",))["dev-db"]
    containers = document["resource"]["docker_container"]

    def hba(name: str) -> str:
        return next(u["content"] for u in containers[name]["upload"] if u["file"] == "/etc/postgresql/pg_hba.conf")

    assert hba("postgres") == hba("postgres_replica_1") == "${local.pg_hba_tls}"
    assert hba("timescale") == "${local.pg_hba_tls_clients_only}"
    assert "hostssl  replication nndb_replication" in document["locals"]["pg_hba_tls"]
    assert "replication" not in document["locals"]["pg_hba_tls_clients_only"]
    env = dict(entry.split("=", 1) for entry in containers["postgres_replica_1"]["env"])
    assert env["NNDB_PRIMARY_SSLMODE"] == "verify-full"
