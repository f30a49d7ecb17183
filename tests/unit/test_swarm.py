"""The Swarm hand-off without an engine: ``[swarm]`` validation, secret names and generations, the construct's shape."""

from __future__ import annotations

import json
from pathlib import Path

import cdktf
import pytest
from cdktf import TerraformStack, TerraformVariable

from nexanest_db.config import SWARM_LONGEST_CREDENTIAL, load_environment
from nexanest_db.constructs import DockerEngineProps, SwarmSecret, SwarmSecrets, SwarmSecretsProps
from nexanest_db.errors import ConfigError
from nexanest_db.swarm import CREDENTIALS, generations, published_secrets, secret_name, swarm_secret_names
from tests.support.project import REPO_ROOT

SWARM = """
[swarm]
keep_previous = {keep}
[swarm.docker]
host = "unix:///var/run/docker.sock"
[swarm.services.auth]
generation = {auth}
[swarm.services.analytics]
generation = 1
"""


def config_dir_with(tmp_path: Path, extra: str, environment: str = "local") -> Path:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for source in (REPO_ROOT / "config").glob("*.toml"):
        (config_dir / source.name).write_text(source.read_text())
    target = config_dir / f"{environment}.toml"
    target.write_text(target.read_text() + extra)
    return config_dir


def test_the_longest_credential_word_is_what_validation_assumes() -> None:
    assert max(CREDENTIALS, key=len) == SWARM_LONGEST_CREDENTIAL


def test_names_carry_service_credential_and_generation() -> None:
    assert secret_name("nexanest-staging", "auth", "db_password", 3) == "nexanest-staging-auth-db_password-v3"
    with pytest.raises(ValueError, match="unknown credential"):
        secret_name("p", "auth", "password", 1)
    with pytest.raises(ValueError, match="generation must be >= 1"):
        secret_name("p", "auth", "db_password", 0)
    with pytest.raises(ValueError, match="longer than Docker's 64"):
        secret_name("p" * 50, "auth", "db_password", 1)


@pytest.mark.parametrize(("keep", "current", "expected"), [(0, 4, (4,)), (1, 4, (3, 4)), (2, 4, (2, 3, 4)), (3, 1, (1,)), (2, 2, (1, 2))])
def test_generations_kept_are_the_current_and_the_previous_ones(tmp_path: Path, keep: int, current: int, expected: tuple[int, ...]) -> None:
    config = load_environment("local-db", config_dir=config_dir_with(tmp_path, SWARM.format(keep=keep, auth=current)))
    assert config.swarm is not None
    assert generations(config.swarm, "auth") == expected


def test_published_secrets_of_a_rotation(tmp_path: Path) -> None:
    config = load_environment("local-db", config_dir=config_dir_with(tmp_path, SWARM.format(keep=1, auth=2)))
    published = published_secrets(config)
    assert [(p.name, p.current) for p in published] == [
        ("nexanest-local-analytics-db_password-v1", True),
        ("nexanest-local-analytics-readonly_password-v1", True),
        ("nexanest-local-analytics-redis_password-v1", True),
        ("nexanest-local-auth-db_password-v1", False),
        ("nexanest-local-auth-db_password-v2", True),
        ("nexanest-local-auth-redis_password-v1", False),
        ("nexanest-local-auth-redis_password-v2", True),
    ]
    auth_db = published[4]
    assert (auth_db.secret, auth_db.target, auth_db.file_variable) == ("auth_app", "auth_db_password", "AUTH_DB_PASSWORD_FILE")
    assert (published[1].secret, published[1].file_variable) == ("analytics_readonly", "ANALYTICS_READONLY_PASSWORD_FILE")
    assert (published[6].secret, published[6].file_variable) == ("redis_auth", "AUTH_REDIS_PASSWORD_FILE")
    assert swarm_secret_names(config) == ("analytics_app", "analytics_readonly", "redis_analytics", "auth_app", "redis_auth")


def test_without_swarm_nothing_is_published() -> None:
    config = load_environment("local-db", config_dir=REPO_ROOT / "config")
    assert config.swarm is None and published_secrets(config) == ()


def test_staging_publishes_every_service_at_generation_1() -> None:
    config = load_environment("staging-db", config_dir=REPO_ROOT / "config")
    assert config.swarm is not None and config.swarm.docker.ssh is not None
    assert config.swarm.provider_alias == "swarm" and config.swarm.docker.ssh.url() == "ssh://deploy@swarm.nn.local"
    names = [p.name for p in published_secrets(config)]
    assert len(names) == 7 and all(name.startswith("nexanest-staging-") and name.endswith("-v1") for name in names)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            SWARM.format(keep=1, auth=1).replace("services.analytics]", "services.billing]"),
            "swarm.services.billing: not a service of this stack",
        ),
        (SWARM.format(keep=1, auth=0), "swarm.services.auth.generation: Input should be greater than or equal to 1"),
        (SWARM.format(keep=6, auth=1), "swarm.keep_previous: Input should be less than or equal to 5"),
        (
            SWARM.format(keep=1, auth=1).replace("keep_previous", 'provider_alias = "Swarm-1"\nkeep_previous'),
            "swarm.provider_alias: String should match",
        ),
        (
            SWARM.format(keep=1, auth=1).replace("keep_previous", f'secret_prefix = "{"p" * 40}"\nkeep_previous'),
            "longer than Docker's 64 characters",
        ),
        (
            SWARM.format(keep=1, auth=1).replace(
                'host = "unix:///var/run/docker.sock"', 'host = "unix:///x"\nssh = { user = "deploy", host = "m" }'
            ),
            "swarm.docker: set exactly one of docker.host",
        ),
        ("\n[swarm]\n[swarm.docker]\nhost = 'unix:///x'\n[swarm.services]\n", "swarm.services: Dictionary should have at least 1 item"),
        (SWARM.format(keep=1, auth=1).replace("generation = 1\n", "generation = 1\nversion = 2\n", 1), "unknown key"),
    ],
    ids=["unknown-service", "generation-0", "keep-too-many", "bad-alias", "prefix-too-long", "two-targets", "no-services", "unknown-key"],
)
def test_bad_swarm_tables_are_one_line_naming_the_field(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_environment("local-db", config_dir=config_dir_with(tmp_path, extra))
    message = str(caught.value)
    assert "\n" not in message and "local.toml" in message and expected in message, message


def synth_secrets(build) -> dict:  # type: ignore[no-untyped-def]
    stack = TerraformStack(cdktf.Testing.app(), "test")
    SwarmSecrets(stack, "swarm", props=build(TerraformVariable(stack, "not_a_value", sensitive=True).string_value))
    return json.loads(cdktf.Testing.synth(stack))


ENGINE = DockerEngineProps(host="ssh://deploy@swarm.nn.local", alias="swarm")


def test_the_construct_references_values_and_keeps_older_generations_content() -> None:
    document = synth_secrets(
        lambda value: SwarmSecretsProps(
            engine=ENGINE,
            secrets=[
                SwarmSecret(id="auth-db_password-v1", name="p-auth-db_password-v1", value=value, keep_content=True),
                SwarmSecret(id="auth-db_password-v2", name="p-auth-db_password-v2", value=value, labels={"k": "v"}),
            ],
            current_names={"auth": {"db_password": "p-auth-db_password-v2"}},
        )
    )
    assert document["provider"]["docker"] == [{"alias": "swarm", "host": "ssh://deploy@swarm.nn.local"}]
    secrets = {block["name"]: block for block in document["resource"]["docker_secret"].values()}
    assert sorted(secrets) == ["p-auth-db_password-v1", "p-auth-db_password-v2"]
    for block in secrets.values():
        assert block["data"] == "${base64encode(var.not_a_value)}"  # the provider decodes standard base64
        assert block["provider"] == "docker.swarm"
    assert secrets["p-auth-db_password-v1"]["lifecycle"] == {"ignore_changes": ["data"]}
    assert "lifecycle" not in secrets["p-auth-db_password-v2"]  # the current generation follows its value
    assert secrets["p-auth-db_password-v2"]["labels"] == [{"label": "k", "value": "v"}]
    (output,) = document["output"].values()
    assert output["value"] == {"auth": {"db_password": "p-auth-db_password-v2"}}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SwarmSecret(id="a", name="p-a-v1", value="hunter2"), "must be a Terraform reference"),
        (lambda: SwarmSecret(id="a", name="bad name", value="${x}"), "not a Docker object name"),
        (lambda: SwarmSecret(id="A b", name="p", value="${x}"), "secret id"),
        (
            lambda: SwarmSecretsProps(engine=DockerEngineProps(host="unix:///x"), secrets=[SwarmSecret(id="a", name="a", value="${x}")]),
            "needs an alias",
        ),
        (lambda: SwarmSecretsProps(engine=ENGINE, secrets=[]), "at least one secret"),
        (
            lambda: SwarmSecretsProps(
                engine=ENGINE, secrets=[SwarmSecret(id="a", name="n", value="${x}"), SwarmSecret(id="b", name="n", value="${x}")]
            ),
            "names must be unique",
        ),
        (lambda: DockerEngineProps(host="unix:///x", alias="Swarm"), "provider alias must be lowercase"),
    ],
    ids=["literal-value", "bad-name", "bad-id", "no-alias", "no-secrets", "duplicate-names", "bad-alias"],
)
def test_props_refuse_what_would_leak_or_clash(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        make()


def test_staging_snapshot_holds_references_only() -> None:
    """The staging stack's docker_secret blocks: every data a sensitive data-source reference, named by config."""
    snapshot = REPO_ROOT / "tests" / "snapshots" / "__snapshots__" / "test_stack_snapshots" / "test_stack_matches_snapshot[staging-db].json"
    document = json.loads(snapshot.read_text())
    config = load_environment("staging-db", config_dir=REPO_ROOT / "config")
    blocks = {block["name"]: block for block in document["resource"]["docker_secret"].values()}
    expected = {p.name: p.secret for p in published_secrets(config)}
    assert sorted(blocks) == sorted(expected)
    for name, block in blocks.items():
        assert block["data"] == f'${{base64encode(sensitive(data.external.secrets.result["{expected[name]}"]))}}'
        labels = {entry["label"]: entry["value"] for entry in block["labels"]}
        assert labels["com.nexanest.stack"] == "staging-db" and labels["com.nexanest.swarm.generation"] == "1"
