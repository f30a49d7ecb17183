"""VaultSource: hvac against the Vault test server, every failure a one-line SecretsError without values."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from nexanest_db.config import VaultConfig, VaultSecretRef, load_environment
from nexanest_db.errors import SecretsError
from nexanest_db.secrets import DEV_DEFAULT_PASSWORD, SECRET_NAMES, credentials_for, resolve_all, source_for
from nexanest_db.secrets.vault import VaultSource
from tests.fixtures.vault_server import VaultTestServer
from tests.support.project import REPO_ROOT

PROD = load_environment("prod-db", config_dir=REPO_ROOT / "config")
PROD_VAULT = PROD.secrets.vault
assert PROD_VAULT is not None
SENTINELS = {name: f"SENTINEL-{name}-7f3a9c" for name in SECRET_NAMES}


def clean_line(message: str, *forbidden: str) -> str:
    """The house rule for every error: one line, and no secret or token in it."""
    assert "\n" not in message, message
    for value in (*SENTINELS.values(), *forbidden):
        assert value not in message, f"{message!r} leaks a secret"
    return message


def settings(**update: object) -> VaultConfig:
    return PROD_VAULT.model_copy(update=update)


def with_ref(name: str, **ref: object) -> VaultConfig:
    refs = dict(PROD_VAULT.secrets)
    refs[name] = VaultSecretRef.model_validate({**refs[name].model_dump(), **ref})
    return settings(secrets=refs)


def source(environ: Mapping[str, str], vault: VaultConfig = PROD_VAULT) -> VaultSource:
    made = source_for("prod", PROD.secrets.model_copy(update={"vault": vault}), environ)
    assert isinstance(made, VaultSource)
    return made


@pytest.fixture
def seeded(vault_server: VaultTestServer) -> VaultTestServer:
    vault_server.seed(PROD_VAULT, SENTINELS)
    return vault_server


@pytest.fixture
def token_env(seeded: VaultTestServer) -> dict[str, str]:
    return {"VAULT_ADDR": seeded.url, "VAULT_TOKEN": seeded.issue_token()}


def problem(src: VaultSource, name: str = "postgres_superuser", *forbidden: str) -> str:
    with pytest.raises(SecretsError) as caught:
        src.get(name)
    return clean_line(str(caught.value), *forbidden)


# --- resolving ------------------------------------------------------------------------------------


def test_token_auth_resolves_every_secret_reading_each_path_once(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    values = resolve_all(source(token_env))
    assert {name: value.get_secret_value() for name, value in values.items()} == SENTINELS
    assert "SENTINEL" not in repr(values)
    assert seeded.data_reads("nexanest/prod/db/services/analytics") == 1  # three keys, one read
    paths = [r.path for r in seeded.requests]
    assert paths[0] == "/v1/auth/token/lookup-self"
    assert len(paths) == 1 + len({ref.path for ref in PROD_VAULT.secrets.values()})


def test_approle_login_then_reads_with_the_issued_token(seeded: VaultTestServer) -> None:
    role_id, secret_id = seeded.add_approle()
    src = source({"VAULT_ADDR": seeded.url, "VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id})
    assert src.auth == "approle"
    assert src.get("auth_app").get_secret_value() == SENTINELS["auth_app"]
    login, read = seeded.requests
    assert (login.method, login.path, login.sent_token) == ("POST", "/v1/auth/approle/login", False)
    assert read.sent_token


def test_credentials_for_builds_the_vault_source_from_config(token_env: dict[str, str]) -> None:
    src = credentials_for(PROD, token_env)
    assert isinstance(src, VaultSource)
    assert src.describe("analytics_readonly") == "vault secret/nexanest/prod/db/services/analytics#readonly_password"


def test_namespace_is_sent_explicitly(httpserver: HTTPServer) -> None:
    server = VaultTestServer(httpserver, namespace="nexanest/prod")
    server.seed(PROD_VAULT, SENTINELS)
    environ = {"VAULT_ADDR": server.url, "VAULT_TOKEN": server.issue_token()}
    assert "VAULT_NAMESPACE is wrong" in problem(
        source(environ), "postgres_superuser", environ["VAULT_TOKEN"]
    )  # no header: nothing matches
    server.requests.clear()
    ok = source({**environ, "VAULT_NAMESPACE": "nexanest/prod"})
    assert ok.get("postgres_superuser").get_secret_value() == SENTINELS["postgres_superuser"]
    assert {r.namespace for r in server.requests} == {"nexanest/prod"}


def test_pinned_version_is_read_even_after_a_newer_one_exists(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    seeded.put("nexanest/prod/db/postgres", {"password": "SENTINEL-newer-version"})
    pinned = source(token_env, with_ref("postgres_superuser", version=1))
    assert pinned.get("postgres_superuser").get_secret_value() == SENTINELS["postgres_superuser"]
    assert pinned.describe("postgres_superuser") == "vault secret/nexanest/prod/db/postgres#password@1"
    assert source(token_env).get("postgres_superuser").get_secret_value() == "SENTINEL-newer-version"


def test_hvac_does_not_read_the_process_environment(seeded: VaultTestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VAULT_TOKEN", seeded.issue_token())
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".vault-token").write_text(seeded.issue_token())
    with pytest.raises(SecretsError) as caught:
        source({"VAULT_ADDR": seeded.url})
    assert clean_line(str(caught.value)) == (
        "prod: no Vault credentials: set VAULT_ROLE_ID and VAULT_SECRET_ID (AppRole) "
        "as secrets.vault.auth = 'approle' expects, or VAULT_TOKEN"
    )


# --- choosing the auth method ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "present", "chosen"),
    [
        ("approle", {"VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_TOKEN"}, "approle"),
        ("token", {"VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_TOKEN"}, "token"),
        ("approle", {"VAULT_TOKEN"}, "token"),  # a Terraform Cloud run: the pre-plan hook hands over a token
        ("token", {"VAULT_ROLE_ID", "VAULT_SECRET_ID"}, "approle"),
    ],
)
def test_configured_method_wins_when_both_are_present_otherwise_whichever_is(configured: str, present: set[str], chosen: str) -> None:
    environ = {"VAULT_ADDR": "http://127.0.0.1:8200", **dict.fromkeys(present, "x")}
    assert source(environ, settings(auth=configured)).auth == chosen


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "prod: VAULT_ADDR is not set; prod reads its secrets from Vault: export VAULT_ADDR=https://<vault>:8200"),
        ({"VAULT_ADDR": "vault:8200"}, "prod: VAULT_ADDR must be an http(s) URL such as https://vault.example:8200, got 'vault:8200'"),
        (
            {"VAULT_ADDR": "https://ops:SENTINEL-basic@vault:8200"},
            "prod: VAULT_ADDR must not contain user:password@; Vault authenticates with VAULT_TOKEN or AppRole",
        ),
        (
            {"VAULT_ADDR": "https://vault:8200", "VAULT_ROLE_ID": "r"},
            "prod: VAULT_ROLE_ID is set but VAULT_SECRET_ID is not; AppRole login needs both (or set VAULT_TOKEN)",
        ),
        (
            {"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN": "t", "VAULT_CACERT": "/nonexistent/ca.pem"},
            "prod: VAULT_CACERT points at /nonexistent/ca.pem, which is not a file; "
            "set it to the CA bundle that signed Vault's certificate",
        ),
    ],
)
def test_settings_problems_fail_before_any_request(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(SecretsError) as caught:
        source(environ)
    assert clean_line(str(caught.value)) == expected


def test_unknown_secret_in_config_is_refused() -> None:
    refs = {**PROD_VAULT.secrets, "postgres_superusr": PROD_VAULT.secrets["postgres_superuser"]}
    with pytest.raises(SecretsError, match=r"^prod: secrets.vault.secrets names unknown secret 'postgres_superusr'; known: "):
        source({"VAULT_ADDR": "https://vault:8200", "VAULT_TOKEN": "t"}, settings(secrets=refs))


def test_secret_without_a_reference(token_env: dict[str, str]) -> None:
    refs = {k: v for k, v in PROD_VAULT.secrets.items() if k != "redis_auth"}
    message = problem(source(token_env, settings(secrets=refs)), "redis_auth")
    assert (
        message
        == "prod: secret redis_auth has no Vault reference; add it to [secrets.vault.secrets] in config/prod.toml (or set secrets.vault.services_path)"
    )


# --- Vault failures ---------------------------------------------------------------------------------


def test_unreachable_vault_fails_once_and_fast(closed_port: int) -> None:
    src = source({"VAULT_ADDR": f"http://127.0.0.1:{closed_port}", "VAULT_TOKEN": "hvs.SENTINEL-token"})
    first = problem(src, "postgres_superuser", "hvs.SENTINEL-token")
    assert first == (
        "prod: checking VAULT_TOKEN (auth/token/lookup-self) before reading "
        "secret/nexanest/prod/db/postgres#password (postgres_superuser): "
        f"Vault at http://127.0.0.1:{closed_port} is unreachable (connection failed); check VAULT_ADDR and that Vault is up, then re-run"
    )
    with pytest.raises(SecretsError) as again:
        resolve_all(src)
    assert str(again.value) == first  # one problem, said once: the other nine secrets add nothing


def test_hanging_vault_is_bounded_by_the_configured_timeout(silent_port: int) -> None:
    src = source({"VAULT_ADDR": f"http://127.0.0.1:{silent_port}", "VAULT_TOKEN": "t"}, settings(timeout_s=0.3))
    started = time.monotonic()
    with pytest.raises(SecretsError) as caught:
        resolve_all(src)
    assert time.monotonic() - started < 2.0, "one timeout for all ten secrets, not ten"
    assert clean_line(str(caught.value)).endswith(
        f"Vault at http://127.0.0.1:{silent_port} did not answer within 0.3s; check VAULT_ADDR and the network, then re-run"
    )


def test_sealed_vault(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    seeded.sealed = True
    message = problem(source(token_env), "auth_app", token_env["VAULT_TOKEN"])
    assert message.startswith(
        "prod: checking VAULT_TOKEN (auth/token/lookup-self) before reading secret/nexanest/prod/db/services/auth#db_password"
    )
    assert message.endswith(f"Vault at {seeded.url} is sealed or unavailable (503: Vault is sealed); unseal Vault, then re-run")


def test_sealed_between_login_and_read(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    src = source(token_env)
    src.get("postgres_superuser")
    seeded.sealed = True
    message = problem(src, "auth_app")
    assert message == (
        f"prod: reading secret/nexanest/prod/db/services/auth#db_password (auth_app): "
        f"Vault at {seeded.url} is sealed or unavailable (503: Vault is sealed); unseal Vault, then re-run"
    )


def test_permission_denied_names_path_key_and_the_policy_to_grant(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    seeded.deny("nexanest/prod/db/services/portfolio")
    src = source(token_env)
    message = problem(src, "portfolio_app", token_env["VAULT_TOKEN"])
    assert message == (
        f"prod: reading secret/nexanest/prod/db/services/portfolio#db_password (portfolio_app): Vault at {seeded.url} denied access "
        "(403: 1 error occurred: permission denied); "
        "the token's policy must grant 'read' on secret/data/nexanest/prod/db/services/portfolio"
    )
    assert src.get("auth_app").get_secret_value() == SENTINELS["auth_app"], "a denied path does not poison the others"


def test_rejected_token(seeded: VaultTestServer) -> None:
    message = problem(
        source({"VAULT_ADDR": seeded.url, "VAULT_TOKEN": "hvs.SENTINEL-expired"}), "postgres_superuser", "hvs.SENTINEL-expired"
    )
    assert message.endswith(
        "denied access (403: 1 error occurred: permission denied); "
        "VAULT_TOKEN is invalid or expired (or VAULT_NAMESPACE is wrong): log in again (vault login) and export a fresh VAULT_TOKEN"
    )


def test_rejected_approle_credentials(seeded: VaultTestServer) -> None:
    role_id, _ = seeded.add_approle()
    src = source({"VAULT_ADDR": seeded.url, "VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": "SENTINEL-wrong-secret-id"})
    message = problem(src, "postgres_superuser", "SENTINEL-wrong-secret-id")
    assert message == (
        "prod: logging in with AppRole at auth/approle before reading secret/nexanest/prod/db/postgres#password (postgres_superuser): "
        f"Vault at {seeded.url} refused the request (400: invalid role or secret ID); "
        "check VAULT_ROLE_ID and VAULT_SECRET_ID (secret IDs expire and can be single-use)"
    )


def test_missing_path(vault_server: VaultTestServer) -> None:
    environ = {"VAULT_ADDR": vault_server.url, "VAULT_TOKEN": vault_server.issue_token()}
    assert problem(source(environ), "redis_default") == (
        f"prod: reading secret/nexanest/prod/db/redis#default_password (redis_default): not found in Vault at {vault_server.url} (404); "
        "write it (vault kv put -mount=secret nexanest/prod/db/redis default_password=...) or fix the path in config/prod.toml"
    )


def test_missing_key_lists_the_keys_that_are_there_not_their_values(vault_server: VaultTestServer) -> None:
    vault_server.put("nexanest/prod/db/postgres", {"passwd": SENTINELS["postgres_superuser"], "user": "nexanest"})
    environ = {"VAULT_ADDR": vault_server.url, "VAULT_TOKEN": vault_server.issue_token()}
    assert problem(source(environ)) == (
        f"prod: Vault at {vault_server.url} has no key 'password' at secret/nexanest/prod/db/postgres "
        "(postgres_superuser; keys there: passwd, user); "
        "add the key or fix secrets.vault.secrets.postgres_superuser in config/prod.toml"
    )


def test_internal_server_error(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    seeded.fail("nexanest/prod/db/timescale")
    assert problem(source(token_env), "timescale_superuser") == (
        f"prod: reading secret/nexanest/prod/db/timescale#password (timescale_superuser): Vault at {seeded.url} failed "
        "(500: internal error); check the Vault server's health and logs, then re-run"
    )


def test_deleted_destroyed_and_absent_pinned_versions(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    seeded.put("nexanest/prod/db/postgres", {"password": "SENTINEL-v2"})
    seeded.put("nexanest/prod/db/postgres", {"password": "SENTINEL-v3"})
    seeded.delete_version("nexanest/prod/db/postgres", 1)
    seeded.destroy_version("nexanest/prod/db/postgres", 2)
    label = f"Vault at {seeded.url}"
    assert problem(source(token_env, with_ref("postgres_superuser", version=1)), "postgres_superuser", "SENTINEL-v2", "SENTINEL-v3") == (
        f"prod: reading secret/nexanest/prod/db/postgres#password@1 (postgres_superuser): version 1 was deleted in {label}; "
        "undelete it (vault kv undelete -mount=secret -versions=1 nexanest/prod/db/postgres) or write a new version"
    )
    assert problem(source(token_env, with_ref("postgres_superuser", version=2)), "postgres_superuser", "SENTINEL-v2", "SENTINEL-v3") == (
        f"prod: reading secret/nexanest/prod/db/postgres#password@2 (postgres_superuser): version 2 was destroyed in {label}; "
        "pin another version in config"
    )
    assert problem(source(token_env, with_ref("postgres_superuser", version=9)), "postgres_superuser", "SENTINEL-v2", "SENTINEL-v3") == (
        f"prod: reading secret/nexanest/prod/db/postgres#password@9 (postgres_superuser): not found in {label} (404); "
        "version 9 or the path does not exist: pin an existing version or fix the path in config/prod.toml"
    )


def test_deleted_latest_version(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    seeded.delete_version("nexanest/prod/db/redis", 1)
    assert "version 1 was deleted" in problem(source(token_env), "redis_default")


# --- previous(): the version before the current one (superuser rotation) ------------------------------

POSTGRES_PATH = "nexanest/prod/db/postgres"


def previous_value(src: VaultSource, name: str = "postgres_superuser") -> str | None:
    value = src.previous(name)
    assert "SENTINEL" not in repr(value)
    return value.get_secret_value() if value is not None else None


def test_previous_is_the_version_before_the_current_one(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    assert seeded.put(POSTGRES_PATH, {"password": "SENTINEL-v2"}) == 2
    assert seeded.put(POSTGRES_PATH, {"password": "SENTINEL-v3"}) == 3
    src = source(token_env)
    assert src.get("postgres_superuser").get_secret_value() == "SENTINEL-v3"
    assert previous_value(src) == "SENTINEL-v2"
    assert previous_value(src) == "SENTINEL-v2"  # read once per run, like the current value
    assert seeded.data_reads(POSTGRES_PATH) == 2
    assert src.previous_hint("postgres_superuser") == (
        "it is read from the latest readable version before the current one of vault secret/nexanest/prod/db/postgres#password "
        "(at most 5 back)"
    )


def test_previous_without_reading_the_current_value_first(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    seeded.put(POSTGRES_PATH, {"password": "SENTINEL-v2"})
    assert previous_value(source(token_env)) == SENTINELS["postgres_superuser"]


def test_previous_skips_deleted_and_destroyed_versions(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    for n in (2, 3, 4):
        seeded.put(POSTGRES_PATH, {"password": f"SENTINEL-v{n}"})
    seeded.delete_version(POSTGRES_PATH, 3)
    seeded.destroy_version(POSTGRES_PATH, 2)
    assert previous_value(source(token_env)) == SENTINELS["postgres_superuser"]  # version 1


def test_previous_skips_a_version_without_the_key(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    seeded.put(POSTGRES_PATH, {"passwd": "SENTINEL-wrong-key"})
    seeded.put(POSTGRES_PATH, {"password": "SENTINEL-v3"})
    assert previous_value(source(token_env)) == SENTINELS["postgres_superuser"]


def test_previous_of_a_pinned_version_is_the_one_below_it(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    seeded.put(POSTGRES_PATH, {"password": "SENTINEL-v2"})
    seeded.put(POSTGRES_PATH, {"password": "SENTINEL-v3"})
    pinned = source(token_env, with_ref("postgres_superuser", version=2))
    assert previous_value(pinned) == SENTINELS["postgres_superuser"]
    assert "before version 2 of vault secret/nexanest/prod/db/postgres#password" in pinned.previous_hint("postgres_superuser")


def test_no_previous_version(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    assert previous_value(source(token_env)) is None  # only version 1
    seeded.put(POSTGRES_PATH, {"password": "SENTINEL-v2"})
    seeded.delete_version(POSTGRES_PATH, 1)
    assert previous_value(source(token_env)) is None  # the only earlier version is deleted
    # A version Vault no longer has (pruned by max_versions, or never written) ends the walk.
    assert previous_value(source(token_env, with_ref("postgres_superuser", version=9))) is None


def test_previous_looks_back_a_bounded_number_of_versions(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    for n in range(2, 8):
        seeded.put(POSTGRES_PATH, {"password": f"SENTINEL-v{n}"})
    for n in range(2, 7):
        seeded.delete_version(POSTGRES_PATH, n)
    seeded.requests.clear()
    assert previous_value(source(token_env)) is None  # versions 6..2 are deleted; version 1 is 6 back
    reads = [r for r in seeded.requests if r.path.endswith(POSTGRES_PATH)]
    assert len(reads) == 1 + 5  # the current version, then five below it


def test_previous_fails_like_get_when_vault_denies(seeded: VaultTestServer, token_env: dict[str, str]) -> None:
    seeded.deny(POSTGRES_PATH)
    with pytest.raises(SecretsError) as caught:
        source(token_env).previous("postgres_superuser")
    assert "denied access (403" in clean_line(str(caught.value))


@pytest.mark.parametrize(("stored", "kind"), [("", "an empty string"), (42, "a int, not a string")])
def test_value_must_be_a_non_empty_string(vault_server: VaultTestServer, stored: object, kind: str) -> None:
    vault_server.put("nexanest/prod/db/postgres", {"password": stored})
    environ = {"VAULT_ADDR": vault_server.url, "VAULT_TOKEN": vault_server.issue_token()}
    assert problem(source(environ)) == (
        f"prod: secret/nexanest/prod/db/postgres#password (postgres_superuser) holds {kind}; store the password as a non-empty string"
    )


def test_dev_default_stored_in_vault_is_refused_for_prod(vault_server: VaultTestServer) -> None:
    vault_server.put("nexanest/prod/db/postgres", {"password": DEV_DEFAULT_PASSWORD})
    environ = {"VAULT_ADDR": vault_server.url, "VAULT_TOKEN": vault_server.issue_token()}
    assert problem(source(environ)) == (
        "prod: secret postgres_superuser from vault secret/nexanest/prod/db/postgres#password is the local/dev default password; "
        "store a real secret there (defaults are refused outside local/dev)"
    )


def test_short_backup_key_stored_in_vault_is_refused_for_prod(vault_server: VaultTestServer) -> None:
    vault_server.put("nexanest/prod/db/backup", {"encryption_key": "SENTINEL-short"})
    environ = {"VAULT_ADDR": vault_server.url, "VAULT_TOKEN": vault_server.issue_token()}
    with pytest.raises(SecretsError) as caught:
        source(environ).get("backup_encryption_key")
    assert clean_line(str(caught.value), "SENTINEL-short") == (
        "prod: secret backup_encryption_key from vault secret/nexanest/prod/db/backup#encryption_key is shorter than 16 characters; "
        "store a long random value there (e.g. openssl rand -base64 32)"
    )


# --- TLS: VAULT_CACERT ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "vault.pem", directory / "vault-key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_vault(tls_files: tuple[Path, Path]):
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, tls_files))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    vault = VaultTestServer(server)
    vault.seed(PROD_VAULT, SENTINELS)
    yield vault
    server.clear()
    server.stop()


def test_vault_cacert_verifies_the_servers_certificate(tls_vault: VaultTestServer, tls_files: tuple[Path, Path]) -> None:
    assert tls_vault.url.startswith("https://")
    environ = {"VAULT_ADDR": tls_vault.url, "VAULT_TOKEN": tls_vault.issue_token()}
    # The process has REQUESTS_CA_BUNDLE pointing at the system store: the self-signed cert is not in it.
    assert problem(source(environ)).endswith(
        f"TLS verification of Vault at {tls_vault.url} failed; set VAULT_CACERT to the CA bundle that signed its certificate"
    )
    trusted = source({**environ, "VAULT_CACERT": str(tls_files[0])})
    assert trusted.get("postgres_superuser").get_secret_value() == SENTINELS["postgres_superuser"]
