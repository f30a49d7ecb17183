"""`nndb secrets` as Terraform and operators run it: real processes, the synthesized prod-db stack, the Vault test server.

Each subprocess gets only the environment a deployer would have (PATH, HOME and the Vault
variables), so these tests also prove that nothing else is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from nexanest_db.config import load_environment
from nexanest_db.secrets import SECRET_NAMES, TERRAFORM_SECRET_NAMES, external_query
from tests.fixtures.vault_server import VaultTestServer
from tests.support.project import REPO_ROOT, copy_project, synth

pytestmark = pytest.mark.integration

BIN_DIR = Path(sys.executable).parent
NNDB = str(BIN_DIR / "nndb")
PROD = load_environment("prod-db", config_dir=REPO_ROOT / "config")
assert PROD.secrets.vault is not None
SENTINELS = {name: f"SENTINEL-{name}-c41d" for name in SECRET_NAMES}
# What the data source hands Terraform: every secret but the backup encryption key (nndb's own).
TERRAFORM_SENTINELS = {name: SENTINELS[name] for name in TERRAFORM_SECRET_NAMES}


def base_environ(home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{BIN_DIR}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(REPO_ROOT), **extra}


def run(argv: list[str], *, cwd: Path, environ: Mapping[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=dict(environ), input=stdin, capture_output=True, text=True, timeout=60, check=False)
    # terraform-external's stdout is the one stream meant to carry values (Terraform reads it into state).
    scanned = result.stderr if argv[1:3] == ["secrets", "terraform-external"] else result.stdout + result.stderr
    assert not any(value in scanned for value in SENTINELS.values()), f"{argv[1:3]} printed a secret value"
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy with prod-db and local-db synthesized into its own cdktf.out, as `cdktf synth` leaves it."""
    root = copy_project(tmp_path_factory.mktemp("project"))
    synth(root, root / "cdktf.out", environ={}, stacks=("local-db", "prod-db"))
    return root


def data_source(project: Path, stack: str) -> dict:
    document = json.loads((project / "cdktf.out" / "stacks" / stack / "cdk.tf.json").read_text())
    (source,) = document["data"]["external"].values()
    return source


@pytest.fixture
def vault(vault_server: VaultTestServer) -> VaultTestServer:
    vault_server.seed(PROD.secrets.vault, SENTINELS)
    return vault_server


@pytest.fixture
def approle_environ(vault: VaultTestServer, tmp_path: Path) -> dict[str, str]:
    role_id, secret_id = vault.add_approle()
    return base_environ(tmp_path, VAULT_ADDR=vault.url, VAULT_ROLE_ID=role_id, VAULT_SECRET_ID=secret_id)


# --- the data "external" program ----------------------------------------------------------------


def test_prod_stack_resolves_its_secrets_from_vault_with_only_vault_variables(
    project: Path, vault: VaultTestServer, approle_environ: dict[str, str]
) -> None:
    source = data_source(project, "prod-db")
    stack_dir = project / "cdktf.out" / "stacks" / "prod-db"
    result = run(source["program"], cwd=stack_dir, environ=approle_environ, stdin=json.dumps(source["query"]))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == TERRAFORM_SENTINELS
    assert SENTINELS["backup_encryption_key"] not in result.stdout
    assert result.stderr == ""
    assert vault.data_reads("nexanest/prod/db/backup") == 0, "the backup key is not even read for Terraform"


def test_with_the_secrets_config_in_the_query_an_agent_needs_only_the_stack_directory(
    approle_environ: dict[str, str], tmp_path: Path
) -> None:
    # Terraform Cloud uploads cdktf.out/stacks/<stack>/ alone: no config/, no cdktf.json above it.
    agent_dir = tmp_path / "agent-workdir"
    agent_dir.mkdir()
    argv = ["nndb", "secrets", "terraform-external", "prod-db"]
    result = run(argv, cwd=agent_dir, environ=approle_environ, stdin=json.dumps(external_query(PROD)))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == TERRAFORM_SENTINELS


def test_local_stack_reads_env_db_found_above_the_stack_directory(project: Path, tmp_path: Path) -> None:
    env_db = project / ".env.db"
    env_db.write_text(f"POSTGRES_PASSWORD={SENTINELS['postgres_superuser']}\n")
    try:
        source = data_source(project, "local-db")
        result = run(
            source["program"],
            cwd=project / "cdktf.out" / "stacks" / "local-db",
            environ=base_environ(tmp_path),
            stdin=json.dumps(source["query"]),
        )
    finally:
        env_db.unlink()
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["postgres_superuser"] == SENTINELS["postgres_superuser"]
    assert values["auth_app"] == "dev_password"  # the ADR dev default, local-db only


@pytest.mark.parametrize(
    ("arrange", "expected"),
    [
        ("sealed", "is sealed or unavailable (503: Vault is sealed); unseal Vault, then re-run"),
        (
            "deny",
            "denied access (403: 1 error occurred: permission denied); the token's policy must grant 'read' on secret/data/nexanest/prod/db/postgres",
        ),
        ("drop", "not found in Vault at"),
    ],
)
def test_failures_stop_terraform_with_one_line_and_no_output(
    project: Path, vault: VaultTestServer, approle_environ: dict[str, str], arrange: str, expected: str
) -> None:
    if arrange == "sealed":
        vault.sealed = True
    elif arrange == "deny":
        vault.deny("nexanest/prod/db/postgres")
    else:
        vault.forget("nexanest/prod/db/postgres")
    source = data_source(project, "prod-db")
    result = run(
        source["program"], cwd=project / "cdktf.out" / "stacks" / "prod-db", environ=approle_environ, stdin=json.dumps(source["query"])
    )
    assert result.returncode == 3
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("nndb: error: prod: ")
    assert "secret/nexanest/prod/db/postgres#password" in line and expected in line
    assert approle_environ["VAULT_ROLE_ID"] not in line and approle_environ["VAULT_SECRET_ID"] not in line


def test_missing_vault_addr_fails_before_any_request(project: Path, vault: VaultTestServer, tmp_path: Path) -> None:
    source = data_source(project, "prod-db")
    result = run(
        source["program"],
        cwd=project / "cdktf.out" / "stacks" / "prod-db",
        environ=base_environ(tmp_path),
        stdin=json.dumps(source["query"]),
    )
    assert (result.returncode, result.stdout) == (3, "")
    assert (
        result.stderr
        == "nndb: error: prod: VAULT_ADDR is not set; prod reads its secrets from Vault: export VAULT_ADDR=https://<vault>:8200\n"
    )
    assert vault.requests == []


# --- nndb secrets check ---------------------------------------------------------------------------


def test_check_lists_every_secret_as_present_without_values(project: Path, vault: VaultTestServer, approle_environ: dict[str, str]) -> None:
    result = run([NNDB, "secrets", "check", "prod-db"], cwd=project, environ=approle_environ)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"prod-db: secrets from Vault at {vault.url}, auth approle"
    assert lines[1].split() == ["secret", "status", "location"]
    assert lines[2].split() == ["postgres_superuser", "present", "vault", "secret/nexanest/prod/db/postgres#password"]
    assert [line.split()[1] for line in lines[2:26]] == ["present"] * 24  # prod: TLS, monitoring and replication secrets too
    assert lines[15].split() == ["backup_encryption_key", "present", "vault", "secret/nexanest/prod/db/backup#encryption_key"]
    assert lines[16].split() == ["tls_ca_cert", "present", "vault", "secret/nexanest/prod/db/tls#ca_cert"]
    assert lines[20].split() == ["timescale_tls_key", "present", "vault", "secret/nexanest/prod/db/tls/timescale#key"]
    assert lines[22].split() == ["redis_tls_key", "present", "vault", "secret/nexanest/prod/db/tls/redis#key"]
    assert lines[23].split() == ["postgres_replication", "present", "vault", "secret/nexanest/prod/db/postgres#replication_password"]
    assert lines[24].split() == ["timescale_replication", "present", "vault", "secret/nexanest/prod/db/timescale#replication_password"]
    assert lines[25].split() == ["redis_replication", "present", "vault", "secret/nexanest/prod/db/redis#replication_password"]
    assert lines[26:] == ["all 24 secrets present"]


def test_check_reports_missing_keys_and_exits_non_zero(project: Path, vault: VaultTestServer, approle_environ: dict[str, str]) -> None:
    vault.put("nexanest/prod/db/services/auth", {"db_password": SENTINELS["auth_app"]})  # new version without redis_password
    result = run([NNDB, "secrets", "check", "prod-db"], cwd=project, environ=approle_environ)
    assert result.returncode == 3
    assert "redis_auth             missing  vault secret/nexanest/prod/db/services/auth#redis_password" in result.stdout
    assert "auth_app               present" in result.stdout
    assert result.stderr == ("nndb: error: prod: 1 of 24 secrets missing (redis_auth); fix them and re-run `nndb secrets check prod-db`\n")


def test_check_with_vault_unreachable_says_why_once(project: Path, closed_port: int, tmp_path: Path) -> None:
    environ = base_environ(tmp_path, VAULT_ADDR=f"http://127.0.0.1:{closed_port}", VAULT_TOKEN="hvs.SENTINEL-token")
    result = run([NNDB, "secrets", "check", "prod-db"], cwd=project, environ=environ)
    assert result.returncode == 3
    assert result.stdout.count(" missing ") == 24
    (line,) = result.stderr.splitlines()
    assert line.endswith(
        f"Vault at http://127.0.0.1:{closed_port} is unreachable (connection failed); check VAULT_ADDR and that Vault is up, then re-run"
    )
    assert "hvs.SENTINEL-token" not in result.stdout + result.stderr


def test_check_refuses_the_dev_default_for_a_protected_environment(
    project: Path, vault: VaultTestServer, approle_environ: dict[str, str]
) -> None:
    vault.put("nexanest/prod/db/postgres", {"password": "dev_password"})
    result = run([NNDB, "secrets", "check", "prod-db"], cwd=project, environ=approle_environ)
    assert result.returncode == 3
    assert (
        "problem: prod: secret postgres_superuser from vault secret/nexanest/prod/db/postgres#password is the local/dev default password"
        in result.stdout
    )


# --- Terraform Cloud: the agent hooks ---------------------------------------------------------------


@pytest.fixture
def agent(vault: VaultTestServer, tmp_path: Path) -> dict[str, str]:
    """The environment a Terraform Cloud agent gives a hook: the workload identity token and the env file."""
    vault.add_jwt_role("nexanest-db-prod", "eyJ.SENTINEL-workload-identity.jwt")
    (tmp_path / "agent.env").write_text("")
    return base_environ(
        tmp_path,
        VAULT_ADDR=vault.url,
        TFC_WORKLOAD_IDENTITY_TOKEN="eyJ.SENTINEL-workload-identity.jwt",
        NNDB_VAULT_JWT_ROLE="nexanest-db-prod",
        TFC_AGENT_ENV=str(tmp_path / "agent.env"),
        TFC_WORKSPACE_NAME="nexanest-db-prod",
    )


@pytest.mark.parametrize("hook", ["terraform-pre-plan", "terraform-pre-apply"])
def test_hook_hands_a_vault_token_to_the_run(project: Path, vault: VaultTestServer, agent: dict[str, str], hook: str) -> None:
    result = run([str(REPO_ROOT / "hooks" / hook)], cwd=project, environ=agent)
    assert result.returncode == 0, result.stderr
    (line,) = Path(agent["TFC_AGENT_ENV"]).read_text().splitlines()
    key, _, token = line.partition("=")
    assert key == "VAULT_TOKEN" and token.startswith("hvs.")
    assert token not in result.stdout + result.stderr and agent["TFC_WORKLOAD_IDENTITY_TOKEN"] not in result.stdout + result.stderr
    assert result.stdout == (
        f"nndb: logged in to Vault at {vault.url} with JWT role 'nexanest-db-prod' at auth/jwt "
        "(ttl 1200s, policies: default, nexanest-deploy); VAULT_TOKEN handed to this run\n"
    )
    # The plan that follows: the agent adds the file's variables to the run's environment.
    plan_environ = {**base_environ(Path(agent["HOME"])), "VAULT_ADDR": vault.url, "VAULT_TOKEN": token}
    source = data_source(project, "prod-db")
    plan = run(source["program"], cwd=project / "cdktf.out" / "stacks" / "prod-db", environ=plan_environ, stdin=json.dumps(source["query"]))
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout) == TERRAFORM_SENTINELS


def test_hook_with_a_rejected_identity_fails_the_run(project: Path, vault: VaultTestServer, agent: dict[str, str]) -> None:
    agent["TFC_WORKLOAD_IDENTITY_TOKEN"] = "eyJ.SENTINEL-forged.jwt"
    result = run([str(REPO_ROOT / "hooks" / "terraform-pre-plan")], cwd=project, environ=agent)
    assert result.returncode == 3
    assert result.stderr == (
        f"nndb: error: terraform cloud run (nexanest-db-prod): logging in with JWT role 'nexanest-db-prod' at auth/jwt: "
        f"Vault at {vault.url} refused the request (400: error validating token: invalid signature); "
        "check that role 'nexanest-db-prod' exists at auth/jwt and its bound_audiences match TFC_WORKLOAD_IDENTITY_AUDIENCE\n"
    )
    assert "SENTINEL-forged" not in result.stdout + result.stderr
    assert Path(agent["TFC_AGENT_ENV"]).read_text() == ""


def test_hook_leaves_workspaces_that_did_not_opt_in_alone(project: Path, vault: VaultTestServer, agent: dict[str, str]) -> None:
    del agent["NNDB_VAULT_JWT_ROLE"]
    result = run([str(REPO_ROOT / "hooks" / "terraform-pre-plan")], cwd=project, environ=agent)
    assert (result.returncode, result.stdout) == (0, "nndb: NNDB_VAULT_JWT_ROLE is not set for this workspace; no Vault login\n")
    assert vault.requests == [] and Path(agent["TFC_AGENT_ENV"]).read_text() == ""


def test_tfc_login_without_a_workload_identity_token(project: Path, agent: dict[str, str]) -> None:
    del agent["TFC_WORKLOAD_IDENTITY_TOKEN"]
    result = run([NNDB, "secrets", "tfc-login"], cwd=project, environ=agent)
    assert result.returncode == 3
    assert result.stderr == (
        "nndb: error: terraform cloud run (nexanest-db-prod): TFC_WORKLOAD_IDENTITY_TOKEN is not set; "
        "set the workspace variable TFC_WORKLOAD_IDENTITY_AUDIENCE so the run gets one\n"
    )


def test_hooks_are_executable() -> None:
    for hook in ("terraform-pre-plan", "terraform-pre-apply"):
        assert os.access(REPO_ROOT / "hooks" / hook, os.X_OK), hook
