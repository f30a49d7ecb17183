"""Every bad-config case stops synth with one line naming the file and the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nexanest_db.config import load_environment, resolve_endpoints
from nexanest_db.errors import ConfigError
from tests.support.project import REPO_ROOT, copy_project

CONFIG_DIR = REPO_ROOT / "config"


def broken_config(tmp_path: Path, environment: str, old: str, new: str) -> Path:
    """A copy of config/ where ``old`` (which must occur) becomes ``new`` in ``<environment>.toml``."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for source in CONFIG_DIR.glob("*.toml"):
        (config_dir / source.name).write_text(source.read_text())
    target = config_dir / f"{environment}.toml"
    text = target.read_text()
    assert old in text, f"test setup: {old!r} not in {target.name}"
    target.write_text(text.replace(old, new, 1))
    return config_dir


@pytest.mark.parametrize(
    ("stack", "old", "new", "expected"),
    [
        pytest.param(
            "local-db", "[postgres]\n", "[postgres]\nshared_bufers = 1\n", "postgres.shared_bufers: unknown key", id="unknown-key"
        ),
        pytest.param("dev-db", "port = 5432\n", 'port = "5432"\n', "postgres.port: Input should be a valid integer", id="wrong-type"),
        pytest.param(
            "local-db",
            'superuser = "nexanest"\nresources',
            'superuser = "nexanest"\nxresources',
            "postgres.resources: required field is missing",
            id="missing-field",
        ),
        pytest.param(
            "prod-db",
            'image = "redis:7-alpine@sha256:',
            'image = "redis:7-alpine"\n#',
            "redis.image: prod images must be pinned by digest",
            id="prod-image-without-digest",
        ),
        pytest.param("staging-db", "port = 6379", "port = 5433", "redis.port: port 5433 clashes with timescale.port", id="port-clash"),
        pytest.param(
            "prod-db",
            "allow_all_interfaces = true\n",
            "",
            "bind_address: 0.0.0.0 publishes PostgreSQL, TimescaleDB, Redis and the exporters on every interface of the prod host",
            id="prod-all-interfaces-not-allowed",
        ),
        pytest.param(
            "staging-db",
            "internal = false",
            "internal = true",
            "network.internal: Docker publishes no ports from an internal network",
            id="internal-network-with-published-ports",
        ),
        pytest.param("prod-db", 'source = "vault"', 'source = "env"', "secrets.source: prod accepts only 'vault'", id="prod-without-vault"),
        pytest.param(
            "local-db",
            'path = "../../../terraform.local-db.tfstate"',
            'path = "/var/lib/terraform.tfstate"',
            "backend.path: Value error, must be relative",
            id="absolute-state-path",
        ),
        pytest.param(
            "staging-db",
            'type = "cloud"\norganization = "nexanest"\nworkspace = "nexanest-db-staging"',
            'type = "local"\npath = "../../../x.tfstate"',
            "backend.type: staging must use the Terraform Cloud backend",
            id="staging-local-backend",
        ),
        pytest.param(
            "local-db", "max_connections = 100", "port = 1", "postgres.settings: Value error, 'port' is managed", id="managed-setting"
        ),
        # Services come from config (any name the roles, Redis user, folders and variables can be made of), not from a list.
        pytest.param(
            "local-db",
            "[services.analytics]",
            '[services."Analytics-2"]',
            "services.Analytics-2: 'Analytics-2' is not a service name; use 1-40 lowercase letters",
            id="bad-service-name",
        ),
        pytest.param(
            "local-db",
            "[services.analytics]",
            "[services.default]",
            "services.default: the name is reserved (Redis's default user",
            id="reserved-service-name",
        ),
        pytest.param(
            "local-db",
            "[services.analytics]",
            "[services.nndb_tools]",
            "services.nndb_tools: the name is reserved",
            id="tool-prefix-service-name",
        ),
        pytest.param(
            "local-db",
            "readonly_role = true",
            'readonly_role = true\nsecrets = { db_password_env = "ANALYTICS_PASSWORD_FILE" }',
            "services.analytics.secrets.db_password_env: Value error, ANALYTICS_PASSWORD_FILE: must not end in _FILE",
            id="service-env-var-file-suffix",
        ),
        pytest.param(
            "staging-db",
            "[tls]\nenabled = true",
            "[tls]\nenabled = false",
            "tls.enabled: staging must set tls.enabled = true",
            id="staging-without-tls",
        ),
        pytest.param(
            "prod-db",
            "[tls]\nenabled = true\nclient_sslmode",
            "[tls]\nclient_sslmode",
            "tls.enabled: prod must set tls.enabled = true",
            id="prod-tls-default-off",
        ),
        pytest.param(
            "local-db",
            "[postgres]\n",
            '[tls]\nclient_sslmode = "prefer"\n\n[postgres]\n',
            "tls.client_sslmode: Input should be",
            id="weak-sslmode",
        ),
        pytest.param(
            "local-db", "max_connections = 100", "ssl = false", "postgres.settings: Value error, 'ssl' is managed", id="managed-ssl"
        ),
        pytest.param("dev-db", 'user = "deploy"', 'user = ""', "docker.ssh.user: String should match pattern", id="empty-ssh-user"),
        # Isolation: every service alone in its database, schema and Redis key space.
        pytest.param(
            "local-db",
            'database = "portfolio"',
            'database = "auth"',
            "services.portfolio.database: 'auth' on postgres is also services.auth.database",
            id="two-services-one-database",
        ),
        *[
            pytest.param(
                "local-db", 'database = "auth"', f'database = "{db}"', f"services.auth.database: '{db}' is reserved", id=f"database-{db}"
            )
            for db in ("template1", "template0", "postgres", "nndb_verify_auth_x")
        ],
        *[
            pytest.param(
                "local-db",
                'schema = "auth"',
                f'schema = "{schema}"',
                f"services.auth.schema: '{schema}' is reserved",
                id=f"schema-{schema}",
            )
            for schema in ("nndb", "public", "information_schema", "pg_catalog", "pg_toast")
        ],
        pytest.param(
            "local-db",
            'redis_prefix = "portfolio:"',
            'redis_prefix = "auth:"',
            "services.portfolio.redis_prefix: 'auth:' overlaps services.auth.redis_prefix 'auth:'",
            id="same-redis-prefix",
        ),
        # Settings: validated per type, never written raw.
        pytest.param(
            "local-db",
            'maxmemory = "128mb"',
            'maxmemory = "128mb\\nprotected-mode no\\nenable-debug-command yes\\ndir /"',
            "redis.settings.maxmemory: contains a control character",
            id="redis-newline-injection",
        ),
        pytest.param(
            "local-db",
            'shared_buffers = "128MB"',
            "shared_buffers = \"128MB\\nlisten_addresses = '*'\"",
            "postgres.settings.shared_buffers: contains a control character",
            id="postgres-newline-injection",
        ),
        pytest.param(
            "local-db",
            'shared_buffers = "128MB"',
            'shared_buffers = "128MB\' # x"',
            'postgres.settings: shared_buffers: "128MB\' # x" is not a plain value',
            id="postgres-quote-injection",
        ),
        pytest.param(
            "local-db",
            'maxmemory = "128mb"',
            'maxmemory = "128mb \\"x\\""',
            "redis.settings: maxmemory: '128mb \"x\"' is not a plain value",
            id="redis-quote",
        ),
        pytest.param(
            "local-db", 'maxmemory = "128mb"', "maxmemory = nan", "redis.settings: maxmemory: nan is not a usable number", id="redis-nan"
        ),
        pytest.param(
            "local-db", 'maxmemory = "128mb"', 'loadmodule = "x.so"', "redis.settings: loadmodule: reaches outside", id="redis-loadmodule"
        ),
        pytest.param(
            "local-db", 'maxmemory = "128mb"', 'dbfilename = "x"', "redis.settings: dbfilename: reaches outside", id="redis-dbfilename"
        ),
        pytest.param(
            "local-db", 'maxmemory = "128mb"', 'rename-command = "x"', "redis.settings: rename-command: reaches outside", id="redis-rename"
        ),
        pytest.param(
            "local-db", "max_connections = 100", 'include = "x"', "postgres.settings: include: reaches outside", id="postgres-include"
        ),
        pytest.param(
            "local-db",
            "max_connections = 100",
            'restore_command = "cp x y"',
            "postgres.settings: restore_command: reaches outside",
            id="postgres-command",
        ),
        pytest.param(
            "local-db",
            "max_connections = 100",
            'log_directory = "/etc"',
            "postgres.settings: log_directory: reaches outside",
            id="postgres-log-directory",
        ),
        pytest.param(
            "local-db",
            'shared_preload_libraries = "timescaledb"',
            'shared_preload_libraries = "/tmp/evil.so"',
            "timescale.settings: shared_preload_libraries: '/tmp/evil.so' is not a plain value",
            id="preload-path",
        ),
        # Values that reach the outside world.
        pytest.param(
            "local-db", 'image = "redis:7-alpine"', 'image = "   "', "redis.image: '   ' is not an image reference", id="blank-image"
        ),
        pytest.param(
            "local-db",
            'image = "redis:7-alpine"',
            'image = "redis:7 --privileged"',
            "redis.image: 'redis:7 --privileged' is not an",
            id="image-flag",
        ),
        pytest.param(
            "local-db",
            'bind_address = "127.0.0.1"',
            'bind_address = "not an ip; rm -rf"',
            "bind_address: 'not an ip; rm -rf' is not an IP address",
            id="bind-address-not-ip",
        ),
        pytest.param(
            "local-db",
            'endpoint_host = "127.0.0.1"',
            'endpoint_host = "host name; x"',
            "endpoint_host: 'host name; x' is not a host name or IP address",
            id="endpoint-host",
        ),
        pytest.param(
            "local-db",
            'path = "../../../terraform.local-db.tfstate"',
            'path = "../../../../../../etc/terraform.tfstate"',
            "backend.path: '../../../../../../etc/terraform.tfstate' leaves the project",
            id="state-path-escapes",
        ),
        pytest.param(
            "local-db",
            'path = "../../../terraform.local-db.tfstate"',
            'path = "../../../"',
            "backend.path: '../../../' leaves the project",
            id="state-path-is-the-root",
        ),
        *[
            pytest.param(
                "local-db",
                "[backup]\n",
                f'[backup]\ndirectory = "{directory}"\n',
                "backup.directory: ",
                id=f"backup-directory-{directory.strip('/.') or 'dots'}",
            )
            for directory in ("/var/backups", "../../../escape", "backups/../..", ".")
        ],
        pytest.param(
            "local-db",
            'host = "unix:///var/run/docker.sock"',
            'host = "unix:///x\\ny"',
            "docker.host: contains a control character",
            id="control-char-anywhere",
        ),
        pytest.param(
            "dev-db",
            'user = "deploy"',
            'user = "deploy -oProxyCommand=x"',
            "docker.ssh.user: String should match pattern",
            id="ssh-user-flag",
        ),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, stack: str, old: str, new: str, expected: str) -> None:
    config_dir = broken_config(tmp_path, stack.removesuffix("-db"), old, new)
    with pytest.raises(ConfigError) as caught:
        load_environment(stack, config_dir=config_dir)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{config_dir / stack.removesuffix('-db')}.toml: ")
    assert expected.replace("Value error, ", "") in message


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    config_dir = broken_config(tmp_path, "local", 'environment = "local"', "environment = ")
    with pytest.raises(ConfigError, match=r"local\.toml: not valid TOML: .*line 2"):
        load_environment("local-db", config_dir=config_dir)


def test_environment_must_match_file_name(tmp_path: Path) -> None:
    config_dir = broken_config(tmp_path, "dev", 'environment = "dev"', 'environment = "prod"')
    with pytest.raises(ConfigError, match=r"dev\.toml: environment: must be 'dev'"):
        load_environment("dev-db", config_dir=config_dir)


def test_unknown_stack_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown stack 'qa-db': choose one of local-db, dev-db, staging-db, prod-db"):
        load_environment("qa-db", config_dir=CONFIG_DIR)


def test_port_override_must_be_a_port() -> None:
    config = load_environment("local-db", config_dir=CONFIG_DIR)
    with pytest.raises(ConfigError, match="POSTGRES_PORT: must be a port number 1-65535, got 'abc'"):
        resolve_endpoints(config, {"POSTGRES_PORT": "abc"})


def test_port_override_clash_is_refused() -> None:
    config = load_environment("local-db", config_dir=CONFIG_DIR)
    with pytest.raises(ConfigError, match="ports clash after overrides"):
        resolve_endpoints(config, {"REDIS_PORT": "5432"})


def test_synth_of_bad_config_prints_one_line_and_writes_nothing(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    target = project / "config" / "prod.toml"
    target.write_text(target.read_text().replace('image = "postgres:15@sha256:', 'image = "postgres:15"\n#', 1))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "TIMESCALE_", "REDIS_", "DB_HOST"))}
    result = subprocess.run([sys.executable, "main.py"], cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"synth: error: {target}: postgres.image: prod images must be pinned by digest (name@sha256:<64 hex>), got 'postgres:15'"
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (project / "cdktf.out").exists(), "a failed synth must not leave a partial cdktf.out"


@pytest.mark.parametrize("value", ["128mb\nprotected-mode no", "1\r2", "x\x00", "a\u2028b", "\t"])
def test_setting_values_with_control_characters_are_refused_by_type_too(value: str) -> None:
    """Below the file-level check, the models refuse them on their own (configs built another way)."""
    from pydantic import ValidationError

    from nexanest_db.config import PostgresInstanceConfig, RedisInstanceConfig

    common = {"image": "redis:7", "port": 6379, "resources": {"memory_mb": 128, "cpus": 1.0}}
    with pytest.raises(ValidationError, match="maxmemory: the value contains a control character"):
        RedisInstanceConfig.model_validate({**common, "settings": {"maxmemory": value}})
    with pytest.raises(ValidationError, match="work_mem: the value contains a control character"):
        PostgresInstanceConfig.model_validate({**common, "settings": {"work_mem": value}})


def test_shipped_settings_render_one_line_each() -> None:
    from nexanest_db.rendering import render_configs

    for stack in ("local-db", "dev-db", "staging-db", "prod-db"):
        config = load_environment(stack, config_dir=CONFIG_DIR)
        rendered = render_configs(config, templates_dir=CONFIG_DIR / "templates")
        for key, value in config.redis.settings.items():
            assert [line for line in rendered.redis.splitlines() if line.startswith(f"{key} ")] == [f"{key} {value}"]
        assert "enable-debug-command" not in rendered.redis
