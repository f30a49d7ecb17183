"""``[replication.<instance>]``: replicas and which node is primary; the endpoint follows it; `nndb failover` edits one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexanest_db.config import load_environment, resolve_endpoints
from nexanest_db.config_edit import set_primary
from nexanest_db.errors import ConfigError
from tests.support.project import REPO_ROOT

REPLICA = """
[replication.postgres]
# which node takes writes; nndb failover sets it
primary = "{primary}"

[replication.postgres.replicas.replica-1]
docker = {{ ssh = {{ user = "deploy", host = "pgdb2.nn.local" }} }}
endpoint_host = "pgdb2.nn.local"
port = 5432
"""


def config_dir_with(tmp_path: Path, extra: str) -> Path:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for source in (REPO_ROOT / "config").glob("*.toml"):
        (config_dir / source.name).write_text(source.read_text())
    (config_dir / "dev.toml").write_text((config_dir / "dev.toml").read_text() + extra)
    return config_dir


def test_no_replication_table_keeps_the_endpoints_as_they_were(tmp_path: Path) -> None:
    config = load_environment("dev-db", config_dir=config_dir_with(tmp_path, ""))
    assert config.replication == {} and config.primary_endpoint("postgres") is None


def test_after_a_failover_the_endpoint_is_the_replicas_unless_overridden(tmp_path: Path) -> None:
    config = load_environment("dev-db", config_dir=config_dir_with(tmp_path, REPLICA.format(primary="replica-1")))
    endpoints = resolve_endpoints(config, {})
    assert (endpoints.postgres.host, endpoints.postgres.port) == ("pgdb2.nn.local", 5432)
    assert endpoints.timescale.host == config.endpoint_host  # only the failed-over instance moves
    overridden = resolve_endpoints(config, {"POSTGRES_HOST": "10.0.0.9", "POSTGRES_PORT": "6543"})
    assert (overridden.postgres.host, overridden.postgres.port) == ("10.0.0.9", 6543)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (REPLICA.format(primary="replica-2"), "replication.postgres: primary: 'replica-2' is not a node of this instance"),
        (REPLICA.format(primary="primary").replace("replicas.replica-1", "replicas.primary"), "'primary' names the stack's own container"),
        (
            REPLICA.format(primary="replica-1").replace("replication.postgres", "replication.redis"),
            "replication.redis.primary: nndb does not move Redis's primary",
        ),
        (REPLICA.replace("port = 5432", "port = 6379").format(primary="primary"), None),
        (
            REPLICA.format(primary="primary").replace(
                'docker = { ssh = { user = "deploy", host = "pgdb2.nn.local" } }',
                'docker = { ssh = { user = "deploy", host = "pgdb.nn.local" } }',
            ),
            "replication.postgres.replicas.replica-1.port: port 5432 on ssh://deploy@pgdb.nn.local clashes with postgres.port",
        ),
        (REPLICA.format(primary="primary").replace("replicas.replica-1", "replicas.exporter"), "'exporter' is the exporter's name"),
        (
            REPLICA.format(primary="primary")
            + REPLICA.format(primary="primary").split("\n\n", 1)[1].replace("replica-1", "replica_1").replace("5432", "5434"),
            "replication slot nndb_replica_replica_1",
        ),
        (REPLICA.format(primary="primary").replace("port = 5432", 'port = 5432\nbind_address = "pgdb2"'), "is not an IP address"),
    ],
    ids=[
        "unknown-primary",
        "replica-named-primary",
        "redis-primary-moved",
        "ports-on-another-host-are-free",
        "port-clash-on-the-primary-host",
        "named-exporter",
        "slot-clash",
        "bind-not-ip",
    ],
)
def test_bad_replication_tables_are_one_line_naming_the_field(tmp_path: Path, extra: str, expected: str | None) -> None:
    if expected is None:  # the control: the same table with another port (or on its own host) is fine
        assert load_environment("dev-db", config_dir=config_dir_with(tmp_path, extra)).replicated_instances == ("postgres",)
        return
    with pytest.raises(ConfigError) as caught:
        load_environment("dev-db", config_dir=config_dir_with(tmp_path, extra))
    message = str(caught.value)
    assert "\n" not in message and "dev.toml" in message and expected in message, message


def test_set_primary_changes_one_line_and_keeps_comments(tmp_path: Path) -> None:
    config_dir = config_dir_with(tmp_path, REPLICA.format(primary="primary"))
    before = (config_dir / "dev.toml").read_text()
    path = set_primary("dev-db", config_dir, instance="postgres", node="replica-1")
    after = path.read_text()
    assert after == before.replace('primary = "primary"', 'primary = "replica-1"')
    assert load_environment("dev-db", config_dir=config_dir).replication["postgres"].primary == "replica-1"
    assert sorted(p.name for p in config_dir.iterdir()) == sorted(p.name for p in (REPO_ROOT / "config").glob("*.toml"))


def test_set_primary_to_an_unknown_node_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    config_dir = config_dir_with(tmp_path, REPLICA.format(primary="primary"))
    before = (config_dir / "dev.toml").read_text()
    with pytest.raises(ConfigError, match="not a node of this instance"):
        set_primary("dev-db", config_dir, instance="postgres", node="replica-7")
    assert (config_dir / "dev.toml").read_text() == before
    assert sorted(p.name for p in config_dir.iterdir()) == sorted(p.name for p in (REPO_ROOT / "config").glob("*.toml"))
