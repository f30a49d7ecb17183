"""The secrets layer without Vault: env/*_FILE/dev default, source choice, resolving everything, the Terraform query."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import SecretStr

from nexanest_db.config import SecretsConfig, load_environment
from nexanest_db.errors import SecretsError
from nexanest_db.secrets import (
    DEV_DEFAULT_PASSWORD,
    SECRET_NAMES,
    SECRET_SPECS,
    TERRAFORM_SECRET_NAMES,
    TLS_SECRET_NAMES,
    EnvSource,
    check_all,
    credentials_for,
    external_query,
    replicated_from_query,
    required_secret_names,
    resolve_all,
    secrets_config_from_query,
    source_for,
    spec_for,
    tls_from_query,
)
from tests.support.project import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "config"


def env_source(environment: str, environ: Mapping[str, str]) -> EnvSource:
    made = source_for(environment, SecretsConfig(source="env"), environ)
    assert isinstance(made, EnvSource)
    return made


def failure(source: EnvSource, name: str = "postgres_superuser") -> str:
    with pytest.raises(SecretsError) as caught:
        source.get(name)
    assert "\n" not in str(caught.value)
    return str(caught.value)


# --- EnvSource --------------------------------------------------------------------------------------


def test_variable_and_describe() -> None:
    source = env_source("dev", {"POSTGRES_PASSWORD": "SENTINEL-pg"})
    assert source.get("postgres_superuser") == SecretStr("SENTINEL-pg")
    assert source.describe("postgres_superuser") == "$POSTGRES_PASSWORD"
    assert "SENTINEL" not in repr(source.get("postgres_superuser"))


def test_file_variable_wins_and_loses_only_its_trailing_newline(tmp_path: Path) -> None:
    secret_file = tmp_path / "postgres_password"
    secret_file.write_text("SENTINEL-from-file \n")
    source = env_source("staging", {"POSTGRES_PASSWORD": "SENTINEL-from-var", "POSTGRES_PASSWORD_FILE": str(secret_file)})
    assert source.get("postgres_superuser").get_secret_value() == "SENTINEL-from-file "
    assert source.describe("postgres_superuser") == f"$POSTGRES_PASSWORD_FILE ({secret_file})"


def test_unreadable_and_empty_secret_files(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    assert failure(env_source("dev", {"POSTGRES_PASSWORD_FILE": str(missing)})) == (
        f"dev: POSTGRES_PASSWORD_FILE points at {missing}, which cannot be read (No such file or directory); "
        "fix the path or unset POSTGRES_PASSWORD_FILE"
    )
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert (
        failure(env_source("dev", {"POSTGRES_PASSWORD_FILE": str(empty)}))
        == f"dev: POSTGRES_PASSWORD_FILE points at {empty}, which is empty"
    )


@pytest.mark.parametrize("environment", ["local", "dev"])
def test_dev_default_only_for_local_and_dev(environment: str) -> None:
    source = env_source(environment, {})
    passwords = [name for name in SECRET_NAMES if name not in TLS_SECRET_NAMES]
    assert {source.get(name).get_secret_value() for name in passwords} == {DEV_DEFAULT_PASSWORD}
    assert source.describe("auth_app") == "dev default ($AUTH_DB_PASSWORD unset)"
    for name in TLS_SECRET_NAMES:  # PEM material has no dev default, not even in local/dev
        assert source.describe(name) == f"${spec_for(name).env_var} or ${spec_for(name).env_var}_FILE (neither set)"
        assert f"secret {name} is missing: set {spec_for(name).env_var}" in failure(source, name)


def test_no_default_for_staging_from_the_environment() -> None:
    source = env_source("staging", {})
    assert (
        failure(source, "auth_app")
        == "staging: secret auth_app is missing: set AUTH_DB_PASSWORD or AUTH_DB_PASSWORD_FILE (no default outside local/dev)"
    )
    assert source.describe("auth_app") == "$AUTH_DB_PASSWORD or $AUTH_DB_PASSWORD_FILE (neither set)"


def test_dev_default_value_set_explicitly_is_refused_outside_local_dev(tmp_path: Path) -> None:
    assert failure(env_source("staging", {"POSTGRES_PASSWORD": DEV_DEFAULT_PASSWORD})) == (
        "staging: secret postgres_superuser from $POSTGRES_PASSWORD is the local/dev default password; "
        "store a real secret there (defaults are refused outside local/dev)"
    )
    secret_file = tmp_path / "pw"
    secret_file.write_text(DEV_DEFAULT_PASSWORD)
    assert "from $POSTGRES_PASSWORD_FILE is the local/dev default" in failure(
        env_source("staging", {"POSTGRES_PASSWORD_FILE": str(secret_file)})
    )
    assert (
        env_source("dev", {"POSTGRES_PASSWORD": DEV_DEFAULT_PASSWORD}).get("postgres_superuser").get_secret_value() == DEV_DEFAULT_PASSWORD
    )


# --- previous(): the credential before the last rotation (superuser rotation) ---------------------


def test_previous_is_none_when_nothing_is_set_outside_local_dev() -> None:
    source = env_source("staging", {"POSTGRES_PASSWORD": "SENTINEL-current"})
    assert source.previous("postgres_superuser") is None
    assert source.previous_hint("postgres_superuser") == (
        "set POSTGRES_PASSWORD_PREVIOUS (or POSTGRES_PASSWORD_PREVIOUS_FILE) to the password the server still has"
    )


@pytest.mark.parametrize("environment", ["local", "dev"])
def test_previous_falls_back_to_the_dev_default_in_local_and_dev(environment: str) -> None:
    source = env_source(environment, {"POSTGRES_PASSWORD": "SENTINEL-current"})
    assert source.previous("postgres_superuser") == SecretStr(DEV_DEFAULT_PASSWORD)
    assert source.previous_hint("postgres_superuser").endswith("to the password the server still has (the dev default was tried)")


def test_previous_variable() -> None:
    source = env_source("staging", {"POSTGRES_PASSWORD": "SENTINEL-current", "POSTGRES_PASSWORD_PREVIOUS": "SENTINEL-previous"})
    previous = source.previous("postgres_superuser")
    assert previous is not None and previous.get_secret_value() == "SENTINEL-previous"
    assert "SENTINEL" not in repr(previous)
    assert source.previous_hint("postgres_superuser") == "set POSTGRES_PASSWORD_PREVIOUS to the password the server still has"
    # The variable belongs to its own secret only.
    assert env_source("local", {"POSTGRES_PASSWORD_PREVIOUS": "SENTINEL-previous"}).previous("timescale_superuser") == SecretStr(
        DEV_DEFAULT_PASSWORD
    )


def test_previous_file_wins_over_the_variable_and_over_the_dev_default(tmp_path: Path) -> None:
    previous_file = tmp_path / "postgres_password_previous"
    previous_file.write_text("SENTINEL-previous-from-file\n")
    environ = {"POSTGRES_PASSWORD_PREVIOUS": "SENTINEL-previous-from-var", "POSTGRES_PASSWORD_PREVIOUS_FILE": str(previous_file)}
    for environment in ("staging", "local"):
        previous = env_source(environment, environ).previous("postgres_superuser")
        assert previous is not None and previous.get_secret_value() == "SENTINEL-previous-from-file"
    assert env_source("staging", environ).previous_hint("postgres_superuser") == (
        f"put the password the server still has into $POSTGRES_PASSWORD_PREVIOUS_FILE ({previous_file})"
    )


def test_unreadable_and_empty_previous_files_are_errors_not_a_fall_through(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    source = env_source("local", {"POSTGRES_PASSWORD_PREVIOUS_FILE": str(missing)})
    with pytest.raises(SecretsError) as caught:
        source.previous("postgres_superuser")
    assert str(caught.value) == (
        f"local: POSTGRES_PASSWORD_PREVIOUS_FILE points at {missing}, which cannot be read (No such file or directory); "
        "fix the path or unset POSTGRES_PASSWORD_PREVIOUS_FILE"
    )
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SecretsError, match=r"POSTGRES_PASSWORD_PREVIOUS_FILE points at .*, which is empty$"):
        env_source("local", {"POSTGRES_PASSWORD_PREVIOUS_FILE": str(empty)}).previous("postgres_superuser")


def test_previous_dev_default_is_not_refused_outside_local_dev() -> None:
    # Only used to log in once and replace it: a staging server still on the default must be rotatable.
    source = env_source("staging", {"POSTGRES_PASSWORD": "SENTINEL-current", "POSTGRES_PASSWORD_PREVIOUS": DEV_DEFAULT_PASSWORD})
    assert source.previous("postgres_superuser") == SecretStr(DEV_DEFAULT_PASSWORD)


def test_unknown_secret_name() -> None:
    with pytest.raises(SecretsError, match=r"^unknown secret 'root'; known: postgres_superuser, "):
        spec_for("root")


# --- which source ---------------------------------------------------------------------------------


def test_config_picks_the_source() -> None:
    local = credentials_for(load_environment("local-db", config_dir=CONFIG_DIR), {})
    assert isinstance(local, EnvSource) and local.allow_dev_default
    with pytest.raises(SecretsError, match=r"^prod: VAULT_ADDR is not set"):
        credentials_for(load_environment("prod-db", config_dir=CONFIG_DIR), {"POSTGRES_PASSWORD": "x"})


def test_prod_never_reads_the_environment_even_if_config_validation_is_bypassed() -> None:
    with pytest.raises(SecretsError) as caught:
        source_for("prod", SecretsConfig(source="env"), {"POSTGRES_PASSWORD": "SENTINEL"})
    assert str(caught.value) == "prod: secrets.source must be 'vault'; prod never reads credentials from the environment or a default"


# --- the backup encryption key ----------------------------------------------------------------------


def test_backup_key_is_a_credential_but_not_terraforms() -> None:
    assert "backup_encryption_key" in SECRET_NAMES
    assert spec_for("backup_encryption_key").env_var == "BACKUP_ENCRYPTION_KEY"
    assert tuple(name for name in SECRET_NAMES if spec_for(name).terraform) == TERRAFORM_SECRET_NAMES
    assert "backup_encryption_key" not in TERRAFORM_SECRET_NAMES
    # The replication secrets may be Terraform's: only where their instance has replicas (required_secret_names).
    assert [spec.name for spec in SECRET_SPECS if not spec.terraform] == ["backup_encryption_key"]


def test_tls_secrets_are_required_only_with_tls_enabled() -> None:
    assert TLS_SECRET_NAMES == (
        "tls_ca_cert",
        "postgres_tls_cert",
        "postgres_tls_key",
        "timescale_tls_cert",
        "timescale_tls_key",
        "redis_tls_cert",
        "redis_tls_key",
    )
    local = load_environment("local-db", config_dir=CONFIG_DIR)
    staging = load_environment("staging-db", config_dir=CONFIG_DIR)
    assert not local.tls.enabled and staging.tls.enabled
    assert not set(TLS_SECRET_NAMES) & set(required_secret_names(local))
    assert set(TLS_SECRET_NAMES) <= set(required_secret_names(staging))
    assert staging.replicated_instances == ()  # staging: pitr = true, no replicas
    assert required_secret_names(staging) == tuple(name for name in SECRET_NAMES if name != "redis_replication")
    # Terraform gets the server pairs and the CA (uploaded into the containers; the CA for Redis's
    # redis-cli --tls health check), never the backup key; the replication secrets only for replicas.
    without_replicas = tuple(name for name in TERRAFORM_SECRET_NAMES if not name.endswith("_replication"))
    assert required_secret_names(staging, terraform_only=True) == without_replicas
    assert "tls_ca_cert" in TERRAFORM_SECRET_NAMES
    assert not set(TLS_SECRET_NAMES) & set(required_secret_names(local, terraform_only=True))
    assert required_secret_names(tls=True, terraform_only=True) == without_replicas


def test_replication_secrets_follow_pitr_and_the_replicas() -> None:
    local = load_environment("local-db", config_dir=CONFIG_DIR)
    prod = load_environment("prod-db", config_dir=CONFIG_DIR)
    assert local.replicated_instances == () and not local.backup.pitr
    assert not {"postgres_replication", "timescale_replication", "redis_replication"} & set(required_secret_names(local))
    # prod: replicas of all three instances, so Terraform gets every replication secret (the replica containers' files)
    assert prod.replicated_instances == ("postgres", "timescale", "redis")
    assert required_secret_names(prod, terraform_only=True) == TERRAFORM_SECRET_NAMES
    assert required_secret_names(prod) == SECRET_NAMES
    # Only the instances with replicas: timescale's stays nndb's (pitr), Redis's is not needed at all.
    only_postgres = required_secret_names(tls=False, replicated=("postgres",), terraform_only=True)
    assert "postgres_replication" in only_postgres and not {"timescale_replication", "redis_replication"} & set(only_postgres)
    assert required_secret_names(tls=False, replicated=("redis",), terraform_only=True)[-1] == "redis_replication"
    # The password goes into a redis.conf line: one plain token.
    assert spec_for("redis_replication").forbidden and " " in spec_for("redis_replication").forbidden


def test_check_all_asks_for_tls_secrets_only_when_required() -> None:
    local = load_environment("local-db", config_dir=CONFIG_DIR)
    statuses = check_all(env_source("local", {}), required_secret_names(local))
    assert all(s.present for s in statuses)
    assert not {s.name for s in statuses} & set(TLS_SECRET_NAMES)


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_short_backup_key_is_refused_outside_local_and_dev(environment: str) -> None:
    source = EnvSource(environment=environment, environ={"BACKUP_ENCRYPTION_KEY": "SENTINEL-short"}, allow_dev_default=False)
    message = failure(source, "backup_encryption_key")
    assert message == (
        f"{environment}: secret backup_encryption_key from $BACKUP_ENCRYPTION_KEY is shorter than 16 characters; "
        "store a long random value there (e.g. openssl rand -base64 32)"
    )
    assert "SENTINEL" not in message
    exactly = EnvSource(environment=environment, environ={"BACKUP_ENCRYPTION_KEY": "x" * 16}, allow_dev_default=False)
    assert exactly.get("backup_encryption_key").get_secret_value() == "x" * 16
    # Passwords have no minimum length here (the servers decide): only the backup key.
    assert EnvSource(environment=environment, environ={"POSTGRES_PASSWORD": "short-pw"}, allow_dev_default=False).get("postgres_superuser")


def test_backup_key_dev_default_only_in_local_and_dev(tmp_path: Path) -> None:
    assert env_source("local", {}).get("backup_encryption_key").get_secret_value() == DEV_DEFAULT_PASSWORD
    assert env_source("dev", {"BACKUP_ENCRYPTION_KEY": "short"}).get("backup_encryption_key").get_secret_value() == "short"
    assert failure(env_source("staging", {}), "backup_encryption_key") == (
        "staging: secret backup_encryption_key is missing: set BACKUP_ENCRYPTION_KEY or BACKUP_ENCRYPTION_KEY_FILE "
        "(no default outside local/dev)"
    )
    key_file = tmp_path / "backup_key"
    key_file.write_text(DEV_DEFAULT_PASSWORD + "\n")
    assert failure(env_source("staging", {"BACKUP_ENCRYPTION_KEY_FILE": str(key_file)}), "backup_encryption_key") == (
        "staging: secret backup_encryption_key from $BACKUP_ENCRYPTION_KEY_FILE is the local/dev default password; "
        "store a real secret there (defaults are refused outside local/dev)"
    )


def test_check_all_lists_the_backup_key() -> None:
    statuses = {s.name: s for s in check_all(env_source("local", {"BACKUP_ENCRYPTION_KEY": "SENTINEL-backup-key-0123456789"}))}
    assert statuses["backup_encryption_key"].present and statuses["backup_encryption_key"].location == "$BACKUP_ENCRYPTION_KEY"
    assert "SENTINEL" not in repr(statuses)


def test_resolve_all_for_terraform_skips_the_backup_key() -> None:
    environ = {spec_for(name).env_var: f"SENTINEL-{name}-long-enough" for name in TERRAFORM_SECRET_NAMES}  # no backup key at all
    values = resolve_all(env_source("staging", environ), TERRAFORM_SECRET_NAMES)
    assert list(values) == list(TERRAFORM_SECRET_NAMES)
    with pytest.raises(SecretsError, match="backup_encryption_key is missing"):
        resolve_all(env_source("staging", environ))


# --- resolve_all / check_all ------------------------------------------------------------------------


def test_resolve_all_returns_every_secret() -> None:
    environ = {spec_for(name).env_var: f"SENTINEL-{name}" for name in SECRET_NAMES}
    values = resolve_all(env_source("staging", environ))
    assert list(values) == list(SECRET_NAMES)
    assert all(values[name].get_secret_value() == f"SENTINEL-{name}" for name in SECRET_NAMES)


def test_resolve_all_names_the_first_problem_and_counts_the_rest() -> None:
    environ = {spec_for(name).env_var: "SENTINEL-x-16-chars-or-more" for name in SECRET_NAMES if name not in {"auth_app", "redis_auth"}}
    with pytest.raises(SecretsError) as caught:
        resolve_all(env_source("staging", environ))
    assert str(caught.value) == (
        "staging: secret auth_app is missing: set AUTH_DB_PASSWORD or AUTH_DB_PASSWORD_FILE (no default outside local/dev) "
        "(and 1 more problem: run `nndb secrets check staging-db`)"
    )


def test_check_all_reports_location_and_problem_never_values() -> None:
    statuses = {s.name: s for s in check_all(env_source("staging", {"POSTGRES_PASSWORD": "SENTINEL-pg"}))}
    assert statuses["postgres_superuser"].present and statuses["postgres_superuser"].location == "$POSTGRES_PASSWORD"
    assert not statuses["auth_app"].present and "AUTH_DB_PASSWORD" in (statuses["auth_app"].problem or "")
    assert "SENTINEL" not in repr(statuses)


# --- the data "external" query ----------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["local-db", "prod-db"])
def test_external_query_round_trips_the_secrets_config(stack: str) -> None:
    config = load_environment(stack, config_dir=CONFIG_DIR)
    query = external_query(config)
    expected_keys = (
        {"stack", "secrets"} | ({"tls"} if config.tls.enabled else set()) | ({"replicas"} if config.replicated_instances else set())
    )
    assert set(query) == expected_keys and all(isinstance(v, str) for v in query.values())  # hashicorp/external: map(string)
    assert secrets_config_from_query(stack, json.loads(json.dumps(query))) == config.secrets
    assert tls_from_query(stack, query) is config.tls.enabled
    assert replicated_from_query(stack, query) == config.replicated_instances


def test_replicas_query_field_lists_instances_or_is_absent() -> None:
    assert replicated_from_query("prod-db", {"stack": "prod-db"}) == ()
    assert replicated_from_query("prod-db", {"replicas": "postgres,redis"}) == ("postgres", "redis")
    for bad in ("postgres,postgres", "mysql", "", 3):
        with pytest.raises(SecretsError, match="query field 'replicas' must list instances"):
            replicated_from_query("prod-db", {"replicas": bad})


def test_tls_query_field_must_be_enabled_or_absent() -> None:
    assert tls_from_query("prod-db", {"stack": "prod-db"}) is False
    with pytest.raises(SecretsError, match="query field 'tls' must be 'enabled' or absent"):
        tls_from_query("prod-db", {"stack": "prod-db", "tls": "yes"})


def test_query_with_only_the_stack_means_read_the_project_config() -> None:
    assert secrets_config_from_query("dev-db", {"stack": "dev-db"}) is None


@pytest.mark.parametrize(
    ("stack", "query", "expected"),
    [
        ("qa-db", {}, "unknown stack 'qa-db': choose one of local-db, dev-db, staging-db, prod-db"),
        (
            "prod-db",
            {"stack": "dev-db"},
            "prod-db: the data source query names stack 'dev-db'; re-synthesize (cdktf synth) so program and query agree",
        ),
        ("prod-db", {"secrets": {"source": "vault"}}, "prod-db: query field 'secrets' must be a JSON string; re-synthesize (cdktf synth)"),
        (
            "prod-db",
            {"secrets": '{"source": "vault"}'},
            "prod-db: query field 'secrets' is not a valid secrets config (source = 'vault' needs a [secrets.vault] table); "
            "re-synthesize (cdktf synth)",
        ),
    ],
)
def test_bad_queries(stack: str, query: dict[str, object], expected: str) -> None:
    with pytest.raises(SecretsError) as caught:
        secrets_config_from_query(stack, query)
    assert str(caught.value) == expected


@pytest.mark.parametrize("value", ["has space", "quo'te", 'dq"', "back\\slash", "tab\there"])
@pytest.mark.parametrize("environment", ["local", "staging"])
def test_monitor_passwords_the_exporter_cannot_parse_are_refused_everywhere(environment: str, value: str) -> None:
    """postgres_exporter 0.11.1 rejects such a DSN and logs it, password included: refuse the value before it gets there."""
    from nexanest_db.secrets import EnvSource

    source = EnvSource(
        environment=environment,
        environ={"TIMESCALE_MONITOR_PASSWORD": value, "POSTGRES_PASSWORD": "a b 'c'"},
        allow_dev_default=environment == "local",
    )
    with pytest.raises(SecretsError, match=r"secret timescale_monitor from \$TIMESCALE_MONITOR_PASSWORD contains whitespace") as caught:
        source.get("timescale_monitor")
    assert value not in str(caught.value)
    assert source.get("postgres_superuser").get_secret_value() == "a b 'c'"  # other secrets keep their own rules


# --- bounded, checked reads (issue 9) ---------------------------------------------------------


def test_a_secret_file_that_is_a_fifo_or_a_device_is_refused_at_once(tmp_path: Path) -> None:
    import os
    import time

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, kind in (
        (fifo, "is a FIFO"),
        (Path("/dev/zero"), "is a device"),
        (Path("/dev/urandom"), "is a device"),
        (tmp_path, "not a regular file"),
    ):
        source = env_source("staging", {"AUTH_DB_PASSWORD_FILE": str(path)})
        started = time.monotonic()
        with pytest.raises(SecretsError) as excinfo:
            source.get("auth_app")
        assert time.monotonic() - started < 2  # never waits for a writer, never reads an endless stream
        message = str(excinfo.value)
        assert message.startswith(f"staging: AUTH_DB_PASSWORD_FILE points at {path}, which ") and kind in message, message


def test_a_huge_secret_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with big.open("wb") as handle:
        handle.truncate(64 << 20)  # sparse: 64 MiB
    with pytest.raises(SecretsError, match=r"AUTH_DB_PASSWORD_FILE points at .*big, which is larger than 1024 KiB"):
        env_source("staging", {"AUTH_DB_PASSWORD_FILE": str(big)}).get("auth_app")


def test_a_non_utf8_secret_file_names_the_variable_and_the_file(tmp_path: Path) -> None:
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00secret")
    with pytest.raises(SecretsError) as excinfo:
        env_source("staging", {"AUTH_DB_PASSWORD_FILE": str(binary)}).get("auth_app")
    assert str(excinfo.value) == (
        f"staging: AUTH_DB_PASSWORD_FILE points at {binary}, which is not UTF-8 text; store the secret as text (PEM, a password)"
    )


@pytest.mark.parametrize("environment", ["local", "dev", "staging"])
@pytest.mark.parametrize("variable", ["AUTH_DB_PASSWORD", "AUTH_DB_PASSWORD_FILE"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_variable_is_an_error_never_the_dev_default(environment: str, variable: str, value: str) -> None:
    source = env_source(environment, {variable: value})
    with pytest.raises(SecretsError, match=rf"^{environment}: secret auth_app: {variable} is set but empty; "):
        source.get("auth_app")
    assert source.describe("auth_app") == f"${variable} (set but empty)"
    (status,) = check_all(source, ("auth_app",))
    assert not status.present and "set but empty" in (status.problem or "") and "unset" not in status.location


def test_an_empty_previous_variable_is_an_error_too() -> None:
    with pytest.raises(SecretsError, match="POSTGRES_PASSWORD_PREVIOUS is set but empty"):
        env_source("local", {"POSTGRES_PASSWORD_PREVIOUS": ""}).previous("postgres_superuser")


# --- .env.db, parsed like Docker Compose / python-dotenv ----------------------------------------


def test_env_file_follows_dotenv_rules(tmp_path: Path) -> None:
    from nexanest_db.config import read_env_file

    env_file = tmp_path / ".env.db"
    env_file.write_text(
        "# comment\nDB_HOST=db.example # the database host\nexport POSTGRES_PORT='25432'\n\n"
        'REDIS_HOST="redis # not a comment"\nEMPTY=\nHASH=a#b\n'
    )
    assert read_env_file(env_file) == {
        "DB_HOST": "db.example",
        "POSTGRES_PORT": "25432",
        "REDIS_HOST": "redis # not a comment",
        "EMPTY": "",
        "HASH": "a#b",
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'DB_HOST=ok\nPOSTGRES_PASSWORD="unterminated\nREDIS_HOST=x\n', ":2: cannot parse this line (an unterminated quote?)"),
        (b"DB_HOST=ok\nnot an assignment\n", ":2: cannot parse this line"),
        (b"DB_HOST=ok\nJUSTAKEY\n", ":2: expected KEY=value"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe", ": not UTF-8 text (a binary file?)"),
        (b"DB_HOST=a\x00b\n", ": contains NUL bytes"),
    ],
)
def test_a_bad_env_file_is_one_line_naming_file_and_line(tmp_path: Path, content: bytes, expected: str) -> None:
    from nexanest_db.config import read_env_file
    from nexanest_db.errors import ConfigError

    env_file = tmp_path / ".env.db"
    env_file.write_bytes(content)
    with pytest.raises(ConfigError) as excinfo:
        read_env_file(env_file)
    assert str(excinfo.value).startswith(f"{env_file}{expected}") and "\n" not in str(excinfo.value), str(excinfo.value)


def test_an_env_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    import os

    from nexanest_db.config import read_env_file
    from nexanest_db.errors import ConfigError

    os.mkfifo(tmp_path / ".env.db")
    with pytest.raises(ConfigError, match=r"\.env\.db: is a FIFO, not a regular file"):
        read_env_file(tmp_path / ".env.db")
