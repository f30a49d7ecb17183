"""Constructs in isolation, through cdktf's Testing API."""

from __future__ import annotations

import json
from dataclasses import replace

import cdktf
import pytest
from cdktf import DataResource, TerraformStack
from cdktf_cdktf_provider_docker.container import Container
from cdktf_cdktf_provider_docker.volume import Volume

from nexanest_db.constructs import (
    ContainerLimits,
    DeploySecretsProps,
    DestroyGuard,
    DestroyGuardProps,
    DockerEngineProps,
    FileUpload,
    HealthPolicy,
    PostApplyHooks,
    PostApplyHooksProps,
    PostgresInstance,
    PostgresInstanceProps,
    PublishedPort,
)

HEALTH = HealthPolicy(interval_s=30, timeout_s=10, retries=5, start_period_s=10)
PROPS = PostgresInstanceProps(
    container_name="t-postgres",
    image="postgres:15",
    superuser="nexanest",
    password="${var.not_a_value}",
    published=PublishedPort(container_port=5432, host_port=15432, bind_address="127.0.0.1"),
    limits=ContainerLimits(memory_mb=512, cpus=0.5, restart="unless-stopped"),
    health=HEALTH,
    network_name="t-net",
    network_alias="postgres",
    config_path="/etc/postgresql/postgresql.conf",
    config_content="port = 5432\n",
    labels={"com.nexanest.environment": "test"},
    init_scripts=(FileUpload(path="/docker-entrypoint-initdb.d/01-a.sql", content="select 1;"),),
    schema_files=(FileUpload(path="/schemas/auth/001.sql", content="create table t();"),),
)


def synth_in_stack(build) -> dict:  # type: ignore[no-untyped-def]
    stack = TerraformStack(cdktf.Testing.app(), "test")
    build(stack)
    return json.loads(cdktf.Testing.synth(stack))


def synth_postgres(props: PostgresInstanceProps) -> dict:
    return synth_in_stack(lambda scope: PostgresInstance(scope, "pg", props=props))


def only(resources: dict, kind: str) -> dict:
    (value,) = resources["resource"][kind].values()
    return value


def test_postgres_container_follows_adr_layers() -> None:
    synthesized = synth_postgres(PROPS)
    container = only(synthesized, Container.TF_RESOURCE_TYPE)
    assert container["image"].startswith("${docker_image.")
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password" in container["env"]
    assert not any(e.startswith("POSTGRES_PASSWORD=") for e in container["env"])
    assert container["command"] == ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf"]
    files = [u["file"] for u in container["upload"]]
    assert files == sorted(files)
    assert set(files) == {
        "/etc/postgresql/postgresql.conf",
        "/run/secrets/postgres_password",
        "/docker-entrypoint-initdb.d/01-a.sql",
        "/schemas/auth/001.sql",
    }
    assert container["healthcheck"] == {
        "test": ["CMD-SHELL", "pg_isready -U nexanest -h 127.0.0.1 -p 5432"],
        "interval": "30s",
        "timeout": "10s",
        "retries": 5,
        "start_period": "10s",
    }
    # The deploy waits with `nndb wait-ready` (post-apply), not the provider's health wait.
    assert container["wait"] is False and "wait_timeout" not in container
    assert container["ports"] == [{"internal": 5432, "external": 15432, "ip": "127.0.0.1", "protocol": "tcp"}]
    assert container["memory"] == 512 and container["memory_swap"] == 1024 and container["restart"] == "unless-stopped"
    # 0.5 CPU as a CFS quota (kreuzwerker/docker 3.6.2 crashes on `cpus`), and as a label so a change replaces.
    assert "cpus" not in container and container["cpu_period"] == 100_000 and container["cpu_quota"] == 50_000
    assert {"label": "com.nexanest.cpus", "value": "0.5"} in container["labels"]
    assert container["mounts"][0]["target"] == "/var/lib/postgresql/data"
    assert only(synthesized, "docker_image")["keep_locally"] is True


def test_data_volume_is_protected_only_when_asked() -> None:
    assert "lifecycle" not in only(synth_postgres(PROPS), Volume.TF_RESOURCE_TYPE)
    protected = only(synth_postgres(replace(PROPS, protect_data=True)), Volume.TF_RESOURCE_TYPE)
    assert protected["lifecycle"] == {"prevent_destroy": True}


def test_wal_archive_gets_its_own_protected_volume() -> None:
    synthesized = synth_postgres(replace(PROPS, protect_data=True, wal_archive_dir="/var/lib/postgresql/wal-archive"))
    volumes = synthesized["resource"][Volume.TF_RESOURCE_TYPE]
    assert sorted(v["name"] for v in volumes.values()) == ["t-postgres-data", "t-postgres-wal-archive"]
    assert all(v["lifecycle"] == {"prevent_destroy": True} for v in volumes.values())
    mounts = only(synthesized, Container.TF_RESOURCE_TYPE)["mounts"]
    assert [m["target"] for m in mounts] == ["/var/lib/postgresql/data", "/var/lib/postgresql/wal-archive"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"superuser": "Robert'); drop"}, "superuser must be a plain PostgreSQL identifier"),
        ({"image": "postgres 15"}, "image must be a reference"),
        ({"init_scripts": (FileUpload(path="/tmp/x.sql", content=""),)}, "must live under /docker-entrypoint-initdb.d"),
        ({"schema_files": (FileUpload(path="/schemas/a.sql", content=""), FileUpload(path="/schemas/a.sql", content=""))}, "unique"),
    ],
)
def test_postgres_props_are_validated_on_creation(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(PROPS, **change)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: FileUpload(path="relative.conf", content=""), "absolute"),
        (lambda: FileUpload(path="/a", content="", permissions="777"), "octal"),
        (lambda: PublishedPort(container_port=0, host_port=1, bind_address="0.0.0.0"), "port out of range"),
        (lambda: ContainerLimits(memory_mb=8, cpus=1, restart="no"), "memory_mb"),
        (lambda: ContainerLimits(memory_mb=128, cpus=1, restart="sometimes"), "restart policy"),
        (lambda: ContainerLimits(memory_mb=128, cpus=0.001, restart="no"), "at least 0.01"),
        (lambda: DockerEngineProps(host="pgdb.nn.local"), "unix://, tcp:// or ssh://"),
        (lambda: DockerEngineProps(host="unix:///var/run/docker.sock", ssh_opts=("-v",)), "ssh_opts only apply"),
        (lambda: PostApplyHooksProps(stack="x", content_hashes={"sql": "nope"}, container_ids={"a": "b"}, depends_on=()), "sha256"),
        (lambda: DeploySecretsProps(stack="dev-db", names=("a",), query={"stack": "prod-db"}), "same stack"),
        (lambda: DeploySecretsProps(stack="dev-db", names=(), query={"stack": "dev-db"}), "at least one"),
    ],
)
def test_value_types_reject_bad_values(factory, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        factory()


def test_post_apply_hooks_follow_content_and_containers() -> None:
    digest = "a" * 64

    def build(scope):  # type: ignore[no-untyped-def]
        PostApplyHooks(
            scope,
            "hooks",
            props=PostApplyHooksProps(
                stack="local-db", content_hashes={"sql": digest}, container_ids={"postgres": "${x.id}"}, depends_on=()
            ),
        )

    synthesized = synth_in_stack(build)
    (resource,) = synthesized["resource"]["terraform_data"].values()
    assert resource["triggers_replace"] == {"content_sql": digest, "container_postgres": "${x.id}"}
    # First wait until the databases answer (the containers are created with wait = false), then the hooks.
    assert resource["provisioner"] == [
        {"local-exec": {"command": "nndb wait-ready local-db", "environment": {"NNDB_TRIGGERED_BY": "terraform"}}},
        {"local-exec": {"command": "nndb hooks run local-db", "environment": {"NNDB_TRIGGERED_BY": "terraform"}}},
    ]


def test_destroy_guard_runs_before_destroy_only_and_never_changes() -> None:
    def build(scope):  # type: ignore[no-untyped-def]
        hooks = DataResource(scope, "hooks")
        DestroyGuard(scope, "guard", props=DestroyGuardProps(stack="dev-db", depends_on=[hooks], environment={"NNDB_X": "y"}))

    synthesized = synth_in_stack(build)
    guard = next(r for key, r in synthesized["resource"]["terraform_data"].items() if key.startswith("guard"))
    # Constant input, no triggers: a deploy never replaces (and so never "destroys") the guard.
    assert guard["input"] == {"stack": "dev-db"} and "triggers_replace" not in guard
    assert guard["depends_on"] == ["terraform_data.hooks"]
    assert guard["provisioner"] == [
        {"local-exec": {"command": "nndb before-destroy dev-db", "environment": {"NNDB_X": "y"}, "when": "destroy"}}
    ]
    with pytest.raises(ValueError, match="must depend on what it protects"):
        DestroyGuardProps(stack="dev-db", depends_on=())


# --- exporters ---------------------------------------------------------------------------------------------------------

EXPORTER_PROPS = dict(
    container_name="t-postgres-exporter",
    image="quay.io/prometheuscommunity/postgres-exporter:v0.11.1",
    target="postgres",
    target_port=5432,
    user="nndb_monitor",
    password="${var.not_a_value}",
    published=PublishedPort(container_port=9187, host_port=19187, bind_address="127.0.0.1"),
    limits=ContainerLimits(memory_mb=64, cpus=0.25, restart="unless-stopped"),
    network_name="t-net",
    labels={"com.nexanest.environment": "test"},
)


def test_exporter_props_refuse_what_cannot_work() -> None:
    from nexanest_db.constructs import PostgresExporterProps, RedisExporterProps

    with pytest.raises(ValueError, match="listens on 9187"):
        PostgresExporterProps(**{**EXPORTER_PROPS, "published": PublishedPort(container_port=9999, host_port=1, bind_address="x")})
    with pytest.raises(ValueError, match="network alias"):
        PostgresExporterProps(**{**EXPORTER_PROPS, "target": "Postgres Server"})
    with pytest.raises(ValueError, match="monitoring login"):
        PostgresExporterProps(**{**EXPORTER_PROPS, "user": "nndb monitor"})
    with pytest.raises(ValueError, match="listens on 9121"):
        RedisExporterProps(**{**EXPORTER_PROPS, "target": "redis", "target_port": 6379})


def test_exporters_take_their_password_as_a_file_and_verify_tls_against_the_ca() -> None:
    from nexanest_db.constructs import PostgresExporter, PostgresExporterProps, RedisExporter, RedisExporterProps

    def build(stack) -> None:  # type: ignore[no-untyped-def]
        PostgresExporter(stack, "pg", props=PostgresExporterProps(**{**EXPORTER_PROPS, "ca_cert": "${var.ca}"}))
        redis_props = {**EXPORTER_PROPS, "container_name": "t-redis-exporter", "target": "redis", "target_port": 6379}
        redis_props["published"] = PublishedPort(container_port=9121, host_port=19121, bind_address="127.0.0.1")
        RedisExporter(stack, "rd", props=RedisExporterProps(**redis_props))

    containers = {c["name"]: c for c in synth_in_stack(build)["resource"]["docker_container"].values()}
    pg = containers["t-postgres-exporter"]
    assert "DATA_SOURCE_URI=postgres:5432/postgres?sslmode=verify-full&sslrootcert=/run/secrets/tls/ca.pem" in pg["env"]
    assert not any("not_a_value" in entry for entry in pg["env"]), "the password never goes into the environment"
    assert {u["file"]: u["content"] for u in pg["upload"]} == {
        "/run/secrets/monitor_password": "${var.not_a_value}",
        "/run/secrets/tls/ca.pem": "${var.ca}",
    }
    rd = containers["t-redis-exporter"]
    assert rd["env"] == [
        "REDIS_ADDR=redis://redis:6379",
        "REDIS_PASSWORD_FILE=/run/secrets/monitor_passwords.json",
        "REDIS_USER=nndb_monitor",
    ]
    (password_map,) = rd["upload"]
    assert password_map["file"] == "/run/secrets/monitor_passwords.json"
    assert password_map["content"].startswith('${format("{%s:%s}", jsonencode("redis://redis:6379"), jsonencode(')
    assert "var.not_a_value" in password_map["content"]
