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
        pytest.param(
            "local-db",
            "[services.analytics]",
            "[services.billing]",
            "services: unknown service 'billing'; known: auth, portfolio, analytics",
            id="unknown-service",
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
        pytest.param(
            "dev-db", 'user = "deploy"', 'user = ""', "docker.ssh.user: String should have at least 1 character", id="empty-ssh-user"
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
