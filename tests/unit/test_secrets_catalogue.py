"""The catalogue of secrets built from config: a service's secrets follow from its name, overridable, never clashing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nexanest_db.config import EnvironmentConfig, load_environment
from nexanest_db.errors import ConfigError, SecretsError
from nexanest_db.roles import all_services
from nexanest_db.secrets import (
    DEFAULT_CATALOGUE,
    SECRET_NAMES,
    EnvSource,
    catalogue_for,
    catalogue_from_query,
    credentials_for,
    external_query,
    required_secret_names,
    resolve_all,
    source_for,
)
from nexanest_db.secrets.vault import VaultSource
from tests.fixtures.vault_server import VaultTestServer
from tests.support.project import REPO_ROOT, copy_project, synth

BILLING = '\n[services.billing]\ninstance = "postgres"\ndatabase = "billing"\nschema = "billing"\nredis_prefix = "billing:"\n'


def config_with(tmp_path: Path, stack: str = "local-db", extra: str = BILLING) -> EnvironmentConfig:
    config_dir = tmp_path / "config"
    if not config_dir.exists():
        copy_project(tmp_path)
    path = config_dir / f"{stack.removesuffix('-db')}.toml"
    path.write_text((REPO_ROOT / "config" / path.name).read_text(encoding="utf-8") + extra, encoding="utf-8")
    return load_environment(stack, config_dir=config_dir)


def test_the_shipped_configs_have_exactly_the_legacy_catalogue() -> None:
    for stack in ("local-db", "dev-db", "staging-db", "prod-db"):
        catalogue = catalogue_for(load_environment(stack, config_dir=REPO_ROOT / "config"))
        assert catalogue.legacy and catalogue.names == SECRET_NAMES
        assert "services" not in external_query(load_environment(stack, config_dir=REPO_ROOT / "config"))


def test_a_fourth_service_gets_its_secrets_from_its_name(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    catalogue = catalogue_for(config)
    assert not catalogue.legacy
    assert catalogue.spec("billing_app").env_var == "BILLING_DB_PASSWORD"
    assert catalogue.spec("redis_billing").env_var == "BILLING_REDIS_PASSWORD"
    assert "billing_readonly" not in catalogue.names  # readonly_role is off
    # The same order as the roles (instance, then name), apps first, then read-only roles, then Redis users.
    services = [s.service for s in all_services(config)]
    assert services == ["auth", "billing", "portfolio", "analytics"]
    app_names = [n for n in catalogue.names if n.endswith("_app")]
    assert app_names == [f"{s}_app" for s in services]
    assert catalogue.names.index("analytics_readonly") < catalogue.names.index("redis_auth")
    # Every secret a role or Redis user uses is in the catalogue, and Terraform gets the new ones too.
    used = {role.secret for svc in all_services(config) for role in svc.login_roles} | {svc.redis_secret for svc in all_services(config)}
    assert used <= set(catalogue.names)
    assert {"billing_app", "redis_billing"} <= set(required_secret_names(config, terraform_only=True))


def test_readonly_role_and_overridden_variables(tmp_path: Path) -> None:
    extra = BILLING + 'readonly_role = true\nsecrets = { db_password_env = "BILLING_PG_PASSWORD", readonly_password_env = "BILLING_RO" }\n'
    config = config_with(tmp_path, extra=extra)
    catalogue = catalogue_for(config)
    assert catalogue.spec("billing_app").env_var == "BILLING_PG_PASSWORD"
    assert catalogue.spec("billing_readonly").env_var == "BILLING_RO"
    assert catalogue.spec("redis_billing").env_var == "BILLING_REDIS_PASSWORD"  # not overridden: derived
    source = credentials_for(config, {"BILLING_PG_PASSWORD_FILE": str(tmp_path / "missing")})
    with pytest.raises(SecretsError, match=r"BILLING_PG_PASSWORD_FILE points at .*missing, which cannot be read"):
        source.get("billing_app")
    assert credentials_for(config, {"BILLING_RO": "ro-pass-Secret"}).get("billing_readonly").get_secret_value() == "ro-pass-Secret"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ('secrets = { db_password_env = "AUTH_DB_PASSWORD" }', "secret billing_app would read $AUTH_DB_PASSWORD, which secret auth_app"),
        (
            'secrets = { redis_password_env = "POSTGRES_PASSWORD" }',
            "secret redis_billing would read $POSTGRES_PASSWORD, which secret postgres_superuser",
        ),
        (
            'secrets = { db_password_env = "POSTGRES_HOST" }',
            "services.billing: $POSTGRES_HOST is a connection or tool setting, not a secret",
        ),
        ('secrets = { db_password_env = "VAULT_TOKEN" }', "services.billing: $VAULT_TOKEN is a connection or tool setting"),
    ],
)
def test_a_clash_is_one_config_line(tmp_path: Path, override: str, expected: str) -> None:
    config = config_with(tmp_path, extra=BILLING + override + "\n")
    with pytest.raises(ConfigError) as caught:
        catalogue_for(config)
    message = str(caught.value)
    assert message.startswith("config/local.toml: ") and "\n" not in message
    assert expected in message


def test_the_query_carries_the_services_only_when_they_differ_and_reads_back(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    query = external_query(config)
    assert json.loads(query["services"])[1] == {
        "service": "billing",
        "readonly": False,
        "db_password_env": "BILLING_DB_PASSWORD",
        "readonly_password_env": "BILLING_READONLY_PASSWORD",
        "redis_password_env": "BILLING_REDIS_PASSWORD",
    }
    assert catalogue_from_query("local-db", query) == catalogue_for(config)
    assert catalogue_from_query("local-db", {"stack": "local-db"}) is DEFAULT_CATALOGUE
    # What terraform-external does with that query: the new service's secrets resolve from its variables.
    catalogue = catalogue_from_query("local-db", query)
    source = source_for("local", config.secrets, {"BILLING_DB_PASSWORD": "billing-Secret"}, catalogue)
    values = resolve_all(source, required_secret_names(terraform_only=True, catalogue=catalogue))
    assert values["billing_app"].get_secret_value() == "billing-Secret"
    assert values["redis_billing"].get_secret_value() == "dev_password"  # local: the dev default


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("not json", "query field 'services' must be a JSON list of services"),
        ("[]", "query field 'services' must be a JSON list of services"),
        ('[{"service": "billing"}]', "has an entry that is not a service's secret names"),
        (
            '[{"service": "Bad", "readonly": false, "db_password_env": "A", "readonly_password_env": "B", "redis_password_env": "C"}]',
            "query field 'services': services.Bad: 'Bad' is not a service name",
        ),
        (
            '[{"service": "x", "readonly": false, "db_password_env": "a b", "readonly_password_env": "B", "redis_password_env": "C"}]',
            "is not an environment variable name",
        ),
    ],
)
def test_a_bad_services_query_is_one_secrets_line(raw: str, expected: str) -> None:
    with pytest.raises(SecretsError, match="re-synthesize") as caught:
        catalogue_from_query("local-db", {"stack": "local-db", "services": raw})
    assert expected in str(caught.value)


def test_env_source_of_the_default_catalogue_does_not_know_a_new_service() -> None:
    with pytest.raises(SecretsError, match="unknown secret 'billing_app'"):
        EnvSource(environment="local", environ={}, allow_dev_default=True).get("billing_app")


def test_vault_derives_a_service_path_from_services_path(tmp_path: Path, vault_server: VaultTestServer) -> None:
    extra = BILLING
    config = config_with(tmp_path, stack="prod-db", extra=extra)
    vault = config.secrets.vault
    assert vault is not None
    vault = vault.model_copy(update={"services_path": "nexanest/prod/db/services"})
    catalogue = catalogue_for(config)
    vault_server.put("nexanest/prod/db/services/billing", {"db_password": "billing-from-vault-Secret", "redis_password": "r-Secret-xyz"})
    environ = {"VAULT_ADDR": vault_server.url, "VAULT_TOKEN": vault_server.issue_token()}
    source = source_for("prod", config.secrets.model_copy(update={"vault": vault}), environ, catalogue)
    assert isinstance(source, VaultSource)
    assert source.get("billing_app").get_secret_value() == "billing-from-vault-Secret"
    assert source.describe("redis_billing") == "vault secret/nexanest/prod/db/services/billing#redis_password"
    # An explicit reference wins over the derived one; without services_path and reference the line says how to add one.
    assert source.describe("auth_app") == "vault secret/nexanest/prod/db/services/auth#db_password"
    plain = source_for("prod", config.secrets, environ, catalogue)
    with pytest.raises(SecretsError, match=r"secret billing_app has no Vault reference; .*\(or set secrets.vault.services_path\)"):
        plain.get("billing_app")


def test_synth_of_a_fourth_service_lists_its_secrets_and_redis_user(tmp_path: Path) -> None:
    config_with(tmp_path)
    stack = synth(tmp_path, tmp_path / "out", stacks=("local-db",))["local-db"]
    query = stack["data"]["external"]["secrets"]["query"]
    assert [s["service"] for s in json.loads(query["services"])] == ["auth", "billing", "portfolio", "analytics"]
    # The Redis ACL file the container starts with has the service's user, its password the new secret's hash.
    text = json.dumps(stack)
    assert (
        '\\"billing\\", sensitive(sha256(data.external.secrets.result[\\"redis_billing\\"])), \\"~billing:* &billing:* +@all -@dangerous\\"'
        in text
    )
