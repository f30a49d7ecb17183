"""Whole stacks: each ADR layer, per-environment differences and the edge overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nexanest_db.config import STACKS
from tests.support.project import REPO_ROOT, copy_project, synth


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return synth(REPO_ROOT, tmp_path_factory.mktemp("out"), environ={})


def all_containers(stack: dict) -> dict[str, dict]:
    """Every container by its name after the ``nexanest-<env>-`` prefix: postgres, ..., postgres-exporter, ..."""
    return {c["name"].split("-", 2)[2]: c for c in stack["resource"]["docker_container"].values()}


def containers(stack: dict) -> dict[str, dict]:
    """The database containers."""
    return {name: c for name, c in all_containers(stack).items() if name in ("postgres", "timescale", "redis")}


def exporters(stack: dict) -> dict[str, dict]:
    """The exporter containers, by the instance they watch."""
    return {name.removesuffix("-exporter"): c for name, c in all_containers(stack).items() if name.endswith("-exporter")}


def post_apply(stack: dict) -> dict:
    (hooks,) = [r for key, r in stack["resource"]["terraform_data"].items() if key == "post_apply"]
    return hooks


def upload(container: dict, path: str) -> str:
    (content,) = [u["content"] for u in container["upload"] if u["file"] == path]
    return content


def test_base_layer_images_and_ports(stacks: dict[str, dict]) -> None:
    images = sorted(i["name"] for i in stacks["local-db"]["resource"]["docker_image"].values())
    assert images == [
        "oliver006/redis_exporter:v1.45.0",
        "postgres:15",
        "quay.io/prometheuscommunity/postgres-exporter:v0.11.1",
        "quay.io/prometheuscommunity/postgres-exporter:v0.11.1",
        "redis:7-alpine",
        "timescale/timescaledb:latest-pg15",
    ]
    ports = {name: c["ports"][0]["external"] for name, c in all_containers(stacks["local-db"]).items()}
    assert ports == {
        "postgres": 5432,
        "timescale": 5433,
        "redis": 6379,
        "postgres-exporter": 9187,
        "timescale-exporter": 9188,
        "redis-exporter": 9121,
    }
    for image in stacks["prod-db"]["resource"]["docker_image"].values():
        assert "@sha256:" in image["name"]


def test_providers_target_the_right_engine(stacks: dict[str, dict]) -> None:
    assert stacks["local-db"]["provider"]["docker"] == [{"host": "unix:///var/run/docker.sock"}]
    for name in ("dev-db", "staging-db", "prod-db"):
        # The default provider (no alias) is the database host's; the aliases beside it: staging's Swarm manager
        # ([swarm]), prod's replica host pgdb2.nn.local ([replication.*]).
        (docker,) = [p for p in stacks[name]["provider"]["docker"] if "alias" not in p]
        assert docker["host"] == "ssh://deploy@pgdb.nn.local"
        assert docker["ssh_opts"] == ["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"]
    ssh_opts = ["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"]
    aliased = {name: [p for p in stacks[name]["provider"]["docker"] if "alias" in p] for name in STACKS}
    assert aliased == {
        "local-db": [],
        "dev-db": [],
        "staging-db": [{"alias": "swarm", "host": "ssh://deploy@swarm.nn.local", "ssh_opts": ssh_opts}],
        "prod-db": [{"alias": "replica-host-pgdb2-nn-local", "host": "ssh://deploy@pgdb2.nn.local", "ssh_opts": ssh_opts}],
    }
    # The Swarm secrets use the Swarm alias and the replicas their host's; everything else the default provider.
    for name in STACKS:
        for kind, blocks in stacks[name]["resource"].items():
            for block_id, block in blocks.items():
                if kind == "docker_secret":
                    expected = "docker.swarm"
                elif "_replica_" in block_id:
                    expected = "docker.replica-host-pgdb2-nn-local"
                else:
                    expected = None
                assert block.get("provider") == expected, f"{name}: {kind}.{block_id}"


def test_backends(stacks: dict[str, dict]) -> None:
    assert stacks["local-db"]["terraform"]["backend"] == {"local": {"path": "../../../terraform.local-db.tfstate"}}
    assert stacks["dev-db"]["terraform"]["backend"] == {"local": {"path": "../../../terraform.dev-db.tfstate"}}
    for env in ("staging", "prod"):
        cloud = stacks[f"{env}-db"]["terraform"]["cloud"]
        assert cloud == {"hostname": "app.terraform.io", "organization": "nexanest", "workspaces": {"name": f"nexanest-db-{env}"}}


def test_configuration_layer_reaches_containers_through_uploads(stacks: dict[str, dict]) -> None:
    local = containers(stacks["local-db"])
    postgres_conf = upload(local["postgres"], "/etc/postgresql/postgresql.conf")
    assert "listen_addresses = '*'" in postgres_conf and "shared_buffers = '128MB'" in postgres_conf
    assert "archive_mode = off" in postgres_conf
    assert "timescaledb.telemetry_level = off" in upload(local["timescale"], "/etc/postgresql/postgresql.conf")
    redis_conf = upload(local["redis"], "/usr/local/etc/redis/redis.conf")
    assert "aclfile /data/users.acl" in redis_conf and "maxmemory 128mb" in redis_conf
    assert all(m.get("type") != "bind" for c in local.values() for m in c["mounts"]), "no bind mounts of deployer paths"


def test_prod_archives_wal_and_protects_data(stacks: dict[str, dict]) -> None:
    prod = stacks["prod-db"]
    pg = containers(prod)["postgres"]
    conf = upload(pg, "/etc/postgresql/postgresql.conf")
    assert "archive_mode = on" in conf and "wal_level = replica" in conf
    assert "/var/lib/postgresql/wal-archive" in [m["target"] for m in pg["mounts"]]
    assert all(v["lifecycle"] == {"prevent_destroy": True} for v in prod["resource"]["docker_volume"].values())
    assert all("lifecycle" not in v for v in stacks["local-db"]["resource"]["docker_volume"].values())


def test_secrets_are_references_never_values(stacks: dict[str, dict]) -> None:
    for stack in stacks.values():
        for name, container in containers(stack).items():
            password = upload(container, "/run/secrets/postgres_password" if name != "redis" else "/run/secrets/redis_password")
            assert password.startswith("${sensitive(data.external.secrets.result[")
        (external,) = stack["data"]["external"].values()
        assert external["program"][:3] == ["nndb", "secrets", "terraform-external"]


def test_outputs_are_endpoints_only(stacks: dict[str, dict]) -> None:
    outputs = stacks["dev-db"]["output"]
    assert {k: v["value"] for k, v in outputs.items()} == {
        "postgres_host": "pgdb.nn.local",
        "postgres_port": 5432,
        "timescale_host": "pgdb.nn.local",
        "timescale_port": 5433,
        "redis_host": "pgdb.nn.local",
        "redis_port": 6379,
        "postgres_exporter_port": 9187,
        "timescale_exporter_port": 9188,
        "redis_exporter_port": 9121,
    }


def test_connection_settings_override_config(tmp_path: Path) -> None:
    environ = {"DB_HOST": "db.example.internal", "POSTGRES_PORT": "15432", "REDIS_HOST": "cache.internal"}
    dev = synth(REPO_ROOT, tmp_path, environ=environ, stacks=("dev-db",))["dev-db"]
    assert dev["provider"]["docker"][0]["host"] == "ssh://deploy@db.example.internal"
    assert containers(dev)["postgres"]["ports"][0]["external"] == 15432
    assert dev["output"]["postgres_host"]["value"] == "db.example.internal"
    assert dev["output"]["redis_host"]["value"] == "cache.internal"


def test_env_db_file_is_read_and_exported_variables_win(tmp_path: Path) -> None:
    from nexanest_db.config import effective_environment

    project = copy_project(tmp_path / "p")
    (project / ".env.db").write_text("DB_HOST=from-file\nTIMESCALE_PORT=25433\n")
    environ = effective_environment({"DB_HOST": "from-env"}, project / ".env.db")
    dev = synth(project, tmp_path / "out", environ=environ, stacks=("dev-db",))["dev-db"]
    assert dev["output"]["postgres_host"]["value"] == "from-env"
    assert dev["output"]["timescale_port"]["value"] == 25433


def test_changed_sql_rolls_the_container_and_reruns_hooks(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "p")
    before = synth(project, tmp_path / "before", stacks=("local-db",))["local-db"]
    schema_dir = project / "sql" / "schemas" / "auth"
    schema_dir.mkdir(parents=True, exist_ok=True)
    (schema_dir / "zz_test_added.sql").write_text("-- added by a test\n")
    after = synth(project, tmp_path / "after", stacks=("local-db",))["local-db"]

    def schema_uploads(stack: dict) -> list[str]:
        return sorted(u["file"] for u in containers(stack)["postgres"]["upload"] if u["file"].startswith("/schemas/"))

    assert "/schemas/auth/zz_test_added.sql" in schema_uploads(after)
    assert "/schemas/auth/zz_test_added.sql" not in schema_uploads(before)
    triggers = [post_apply(s)["triggers_replace"] for s in (before, after)]
    assert triggers[0]["content_sql"] != triggers[1]["content_sql"]
    assert triggers[0]["content_config"] == triggers[1]["content_config"]


def test_changed_setting_changes_only_that_container(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "p")
    before = containers(synth(project, tmp_path / "before", stacks=("local-db",))["local-db"])
    config = project / "config" / "local.toml"
    config.write_text(config.read_text().replace("log_min_duration_statement = 1000", "log_min_duration_statement = 250"))
    after = containers(synth(project, tmp_path / "after", stacks=("local-db",))["local-db"])
    changed = sorted(name for name in before if json.dumps(before[name], sort_keys=True) != json.dumps(after[name], sort_keys=True))
    assert changed == ["postgres"]


def test_secrets_query_carries_where_secrets_live_not_values(stacks: dict[str, dict]) -> None:
    from nexanest_db.config import load_environment
    from nexanest_db.secrets import external_query

    for name in ("local-db", "prod-db"):
        (external,) = stacks[name]["data"]["external"].values()
        assert external["query"] == external_query(load_environment(name, config_dir=REPO_ROOT / "config"))


def test_rotated_secret_reruns_hooks_without_touching_containers(stacks: dict[str, dict]) -> None:
    hooks = post_apply(stacks["prod-db"])
    assert hooks["triggers_replace"]["secrets"] == "${sensitive(sha256(jsonencode(data.external.secrets.result)))}"


# --- TLS (ADR-015 "TLS for all connections"): staging and prod enable it, local and dev do not ---------------------


def test_tls_uploads_wrapper_and_conf_in_staging_and_prod(stacks: dict[str, dict]) -> None:
    for name in ("staging-db", "prod-db"):
        found = containers(stacks[name])
        for instance in ("postgres", "timescale"):
            container = found[instance]
            files = {u["file"]: u for u in container["upload"]}
            assert files["/run/secrets/tls/server.crt"]["permissions"] == "0444"
            assert files["/run/secrets/tls/server.key"]["permissions"] == "0400"
            assert f'result["{instance}_tls_cert"]' in files["/run/secrets/tls/server.crt"]["content"]
            assert files["/run/secrets/tls/server.key"]["content"].startswith("${sensitive(")
            assert f'result["{instance}_tls_key"]' in files["/run/secrets/tls/server.key"]["content"]
            entrypoint = container["entrypoint"]
            assert entrypoint[:2] == ["/bin/sh", "-c"]
            assert (
                "install -m 0600 -o postgres -g postgres /run/secrets/tls/server.key /run/secrets/tls/server-postgres.key" in entrypoint[2]
            )
            assert entrypoint[2].endswith('exec docker-entrypoint.sh "$@"')
            assert container["command"] == ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf"]
            conf = files["/etc/postgresql/postgresql.conf"]["content"]
            for line in (
                "ssl = on",
                "ssl_cert_file = '/run/secrets/tls/server.crt'",
                "ssl_key_file = '/run/secrets/tls/server-postgres.key'",
                "ssl_min_protocol_version = 'TLSv1.2'",
                "hba_file = '/etc/postgresql/pg_hba.conf'",
            ):
                assert f"\n{line}\n" in conf
            assert files["/etc/postgresql/pg_hba.conf"]["content"] == "${local.pg_hba_tls}"  # one copy for both instances
            hba_text = stacks[name]["locals"]["pg_hba_tls"]
            hba = [line.split() for line in hba_text.splitlines() if not line.startswith("#")]
            assert hba == [
                ["local", "all", "all", "trust"],
                ["host", "all", "all", "127.0.0.1/32", "scram-sha-256"],
                ["host", "all", "all", "::1/128", "scram-sha-256"],
                ["hostssl", "all", "all", "all", "scram-sha-256"],
                # staging and prod have pitr = true: barman on the backup host streams WAL as this one role
                ["hostssl", "replication", "nndb_replication", "all", "scram-sha-256"],
                ["host", "all", "all", "all", "reject"],
            ]
        query = next(iter(stacks[name]["data"]["external"].values()))["query"]
        assert query["tls"] == "enabled"


def test_redis_tls_uploads_wrapper_conf_and_health_check_in_staging_and_prod(stacks: dict[str, dict]) -> None:
    for name in ("staging-db", "prod-db"):
        redis = containers(stacks[name])["redis"]
        files = {u["file"]: u for u in redis["upload"]}
        assert files["/run/secrets/tls/server.crt"]["permissions"] == "0444"
        assert 'result["redis_tls_cert"]' in files["/run/secrets/tls/server.crt"]["content"]
        assert files["/run/secrets/tls/server.key"]["permissions"] == "0400"
        assert files["/run/secrets/tls/server.key"]["content"].startswith("${sensitive(")
        assert 'result["redis_tls_key"]' in files["/run/secrets/tls/server.key"]["content"]
        assert files["/run/secrets/tls/ca.crt"]["permissions"] == "0444"
        assert 'result["tls_ca_cert"]' in files["/run/secrets/tls/ca.crt"]["content"]
        entrypoint = redis["entrypoint"]
        assert entrypoint[:2] == ["/bin/sh", "-c"]
        assert "install -m 0600 -o redis -g redis /run/secrets/tls/server.key /run/secrets/tls/server-redis.key" in entrypoint[2]
        assert entrypoint[2].endswith('exec docker-entrypoint.sh "$@"')
        assert redis["command"] == ["redis-server", "/usr/local/etc/redis/redis.conf"]
        conf = files["/usr/local/etc/redis/redis.conf"]["content"]
        for line in (
            "port 0",
            "tls-port 6379",
            "tls-cert-file /run/secrets/tls/server.crt",
            "tls-key-file /run/secrets/tls/server-redis.key",
            "tls-auth-clients no",
            'tls-protocols "TLSv1.2 TLSv1.3"',
        ):
            assert f"\n{line}\n" in conf
        assert "\nport 6379\n" not in conf
        test = " ".join(redis["healthcheck"]["test"])
        assert "redis-cli --tls --cacert /run/secrets/tls/ca.crt -p 6379 ping" in test
        assert "--insecure" not in test


def test_no_tls_in_local_and_dev(stacks: dict[str, dict]) -> None:
    for name in ("local-db", "dev-db"):
        for container in containers(stacks[name]).values():
            assert "entrypoint" not in container
            assert not any("/tls/" in u["file"] or u["file"].endswith("pg_hba.conf") for u in container["upload"])
            conf = [u["content"] for u in container["upload"] if u["file"].endswith("postgresql.conf")]
            assert not any("ssl" in c for c in conf)
            redis_conf = [u["content"] for u in container["upload"] if u["file"].endswith("redis.conf")]
            assert not any("tls" in c for c in redis_conf)
        query = next(iter(stacks[name]["data"]["external"].values()))["query"]
        assert "tls" not in query


def test_tls_min_protocol_reaches_the_conf(tmp_path: Path) -> None:
    root = copy_project(tmp_path / "project")
    staging = root / "config" / "staging.toml"
    staging.write_text(staging.read_text().replace('min_protocol = "TLSv1.2"', 'min_protocol = "TLSv1.3"'))
    out = synth(root, tmp_path / "out", environ={}, stacks=("staging-db",))
    conf = upload(containers(out["staging-db"])["timescale"], "/etc/postgresql/postgresql.conf")
    assert "\nssl_min_protocol_version = 'TLSv1.3'\n" in conf
    redis_conf = upload(containers(out["staging-db"])["redis"], "/usr/local/etc/redis/redis.conf")
    assert '\ntls-protocols "TLSv1.3"\n' in redis_conf


# --- exporters (issue 12): one per instance, beside it on the tier's network, logging in as its monitoring identity ---------


def test_exporters_log_in_as_the_monitoring_identities_with_passwords_from_the_secrets(stacks: dict[str, dict]) -> None:
    local = stacks["local-db"]
    found = exporters(local)
    assert sorted(found) == ["postgres", "redis", "timescale"]
    (network,) = local["resource"]["docker_network"]
    for instance in ("postgres", "timescale"):
        exporter = found[instance]
        env = dict(entry.split("=", 1) for entry in exporter["env"])
        assert env == {
            "DATA_SOURCE_URI": f"{instance}:5432/postgres?sslmode=disable",
            "DATA_SOURCE_USER": "nndb_monitor",
            "DATA_SOURCE_PASS_FILE": "/run/secrets/monitor_password",
        }
        assert (
            upload(exporter, "/run/secrets/monitor_password")
            == f'${{sensitive(data.external.{next(iter(local["data"]["external"]))}.result["{instance}_monitor"])}}'
        )
        assert exporter["networks_advanced"][0]["name"] == f"${{docker_network.{network}.name}}"
        assert exporter["ports"][0]["ip"] == "127.0.0.1"
        assert "healthcheck" not in exporter and "cpus" not in exporter
    redis_exporter = found["redis"]
    env = dict(entry.split("=", 1) for entry in redis_exporter["env"])
    assert env == {
        "REDIS_ADDR": "redis://redis:6379",
        "REDIS_USER": "nndb_monitor",
        "REDIS_PASSWORD_FILE": "/run/secrets/monitor_passwords.json",
    }
    password_map = upload(redis_exporter, "/run/secrets/monitor_passwords.json")
    assert password_map.startswith('${format("{%s:%s}", jsonencode("redis://redis:6379"), jsonencode(sensitive(data.external.')
    assert 'result["redis_monitor"]' in password_map
    # The Redis container starts with the exporter's user in its ACL file: only INFO/PING/CONFIG GET-class commands.
    acl = upload(containers(local)["redis"], "/data/users.acl")
    assert 'format("user %s on #%s %s\\n", "nndb_monitor", sensitive(sha256(' in acl
    assert '"+info +ping +config|get +client|setname +slowlog|len +slowlog|get +latency|latest")' in acl


def test_exporter_images_are_pinned_by_digest_in_prod_and_verify_tls_where_it_is_on(stacks: dict[str, dict]) -> None:
    prod_images = [i["name"] for i in stacks["prod-db"]["resource"]["docker_image"].values()]
    assert sum("exporter" in name and "@sha256:" in name for name in prod_images) == 3
    staging = exporters(stacks["staging-db"])
    assert "sslmode=verify-full&sslrootcert=/run/secrets/tls/ca.pem" in " ".join(staging["postgres"]["env"])
    assert "REDIS_ADDR=rediss://redis:6379" in staging["redis"]["env"]
    assert 'result["tls_ca_cert"]' in upload(staging["redis"], "/run/secrets/tls/ca.pem")
