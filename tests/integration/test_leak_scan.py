"""No secret value anywhere: distinctive sentinel values for every secret, then everything the tool does.

Sentinels reach the tool through the environment (local-db, dev-db) and through the Vault test
server (prod-db). Then: synth (`python main.py`), `nndb secrets check`, the data source program,
the Terraform Cloud hooks, the post-apply hooks and a backup against real PostgreSQL and Redis, and
failing runs of each. Every file under the test's directory (project copy with cdktf.out, home,
backups, the servers' logs) and every captured stdout/stderr is scanned. Child processes are spied
on through a ``sitecustomize`` (every argv any of our processes spawns is recorded), so the process
list never carries a value either.

The one stream exempt from the scan is the stdout of `nndb secrets terraform-external`: it is the
channel that hands the values to Terraform (which stores them in state, marked sensitive). The test
asserts the sentinels are there, proving they reached the tool and the scan would see a leak, and
that the backup encryption key's sentinel is not: Terraform never gets that key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from nexanest_db.config import load_environment
from nexanest_db.secrets import SECRET_NAMES, SECRET_SPECS, TERRAFORM_SECRET_NAMES, required_secret_names
from tests.fixtures.servers import DbStack
from tests.fixtures.vault_server import VaultTestServer
from tests.support.project import REPO_ROOT, copy_project

pytestmark = pytest.mark.integration

BIN_DIR = Path(sys.executable).parent
NNDB = str(BIN_DIR / "nndb")
ENV_SENTINELS = {f"env {name}": f"SENTINEL-env-{name}-7f3a91" for name in SECRET_NAMES}
VAULT_SENTINELS = {f"vault {name}": f"SENTINEL-vault-{name}-c2d8e4" for name in SECRET_NAMES}
OTHER_SENTINELS = {"vault approle secret_id": "SENTINEL-secret-id-51b7", "tfc workload identity": "eyJ.SENTINEL-jwt-0d3c.sig"}
SENTINELS = {**ENV_SENTINELS, **VAULT_SENTINELS, **OTHER_SENTINELS}
SWARM_DATA = re.compile(r'\$\{base64encode\(sensitive\(data\.external\.secrets\.result\["(?P<name>[a-z0-9_]+)"\]\)\)\}')

SPAWN_SPY = '''\
"""Test spy: record the argv of every child process this Python process starts."""
import json, os, subprocess

_log = os.environ.get("NNDB_TEST_SPAWN_LOG")
if _log:
    _original = subprocess.Popen._execute_child

    def _recording(self, args, *rest, **kwargs):
        argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
        with open(_log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps([os.fsdecode(a) for a in argv]) + "\\n")
        return _original(self, args, *rest, **kwargs)

    subprocess.Popen._execute_child = _recording
'''


class LeakScan:
    """Collects every place a sentinel shows up; the failure names the place and the secret, not the value."""

    def __init__(self, sentinels: Mapping[str, str]) -> None:
        self.sentinels = {name: value.encode() for name, value in sentinels.items()}
        self.findings: list[str] = []
        self.places = 0

    def scan(self, where: str, content: str | bytes) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.places += 1
        self.findings += [f"{where}: {name}" for name, value in self.sentinels.items() if value in data]

    def scan_tree(self, root: Path) -> None:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            self.scan(str(path.relative_to(root)), path.read_bytes())

    def assert_clean(self) -> None:
        assert not self.findings, "secret values leaked:\n" + "\n".join(self.findings)


def spied_environ(root: Path) -> dict[str, str]:
    """A deployer's environment plus the spawn spy; each test's files all live under ``root``."""
    home, spy = root / "home", root / "spy"
    home.mkdir()
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(SPAWN_SPY)
    return {
        "PATH": f"{BIN_DIR}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "PYTHONPATH": f"{spy}{os.pathsep}{REPO_ROOT}",
        "NNDB_TEST_SPAWN_LOG": str(root / "spawned-argv.jsonl"),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        **{spec.env_var: ENV_SENTINELS[f"env {spec.name}"] for spec in SECRET_SPECS},
    }


def spawned_programs(root: Path) -> set[str]:
    return {Path(json.loads(line)[0]).name for line in (root / "spawned-argv.jsonl").read_text().splitlines()}


def set_server_passwords(db_stack: DbStack, values: Mapping[str, str]) -> None:
    """The test servers start with their own passwords; switch the superusers and Redis default to sentinels."""
    from psycopg import sql

    for server, name in ((db_stack.postgres, "postgres_superuser"), (db_stack.timescale, "timescale_superuser")):
        with server.connect() as conn:
            verifier = conn.pgconn.encrypt_password(values[name].encode(), server.superuser.encode(), b"scram-sha-256").decode()
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(server.superuser), sql.Literal(verifier)))
        server.password = values[name]
    digest = hashlib.sha256(values["redis_default"].encode()).hexdigest()
    db_stack.redis.client().execute_command("ACL", "SETUSER", "default", "resetpass", f"#{digest}")
    db_stack.redis.password = values["redis_default"]


def run(
    scan: LeakScan,
    argv: Sequence[str],
    *,
    cwd: Path,
    environ: Mapping[str, str],
    stdin: str = "",
    expect: int = 0,
    values_on_stdout: bool = False,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), cwd=cwd, env=dict(environ), input=stdin, capture_output=True, text=True, timeout=180, check=False)
    label = " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv))
    assert result.returncode == expect, f"{label}: exit {result.returncode}\n{result.stderr[-2000:]}"
    if not values_on_stdout:
        scan.scan(f"stdout of `{label}`", result.stdout)
    scan.scan(f"stderr of `{label}`", result.stderr)
    return result


def data_source(project: Path, stack: str) -> dict:
    document = json.loads((project / "cdktf.out" / "stacks" / stack / "cdk.tf.json").read_text())
    (source,) = document["data"]["external"].values()
    return source


def test_synth_checks_data_source_and_agent_hooks_leak_nothing(tmp_path: Path, vault_server: VaultTestServer) -> None:
    project = copy_project(tmp_path / "project")
    prod = load_environment("prod-db", config_dir=project / "config").secrets.vault
    assert prod is not None
    vault_server.seed(prod, {name: VAULT_SENTINELS[f"vault {name}"] for name in SECRET_NAMES})
    role_id, _ = vault_server.add_approle(secret_id=OTHER_SENTINELS["vault approle secret_id"])
    vault_server.add_jwt_role("nexanest-db-prod", OTHER_SENTINELS["tfc workload identity"])
    environ = spied_environ(tmp_path) | {
        "VAULT_ADDR": vault_server.url,
        "VAULT_ROLE_ID": role_id,
        "VAULT_SECRET_ID": OTHER_SENTINELS["vault approle secret_id"],
    }
    scan = LeakScan(SENTINELS)

    # Synth, as `cdktf synth` runs it.
    run(scan, [sys.executable, "main.py"], cwd=project, environ=environ)
    assert sorted(p.name for p in (project / "cdktf.out" / "stacks").iterdir()) == ["dev-db", "local-db", "prod-db", "staging-db"]

    # The Swarm hand-off (staging's [swarm]): each docker_secret's data is a sensitive reference to a secret the data
    # source returns, never a value (the scan of cdktf.out below proves no sentinel is there either).
    staging = json.loads((project / "cdktf.out" / "stacks" / "staging-db" / "cdk.tf.json").read_text())
    swarm_blocks = staging["resource"]["docker_secret"]
    assert swarm_blocks, "staging-db publishes its services' credentials on the Swarm manager"
    for address, block in swarm_blocks.items():
        match = SWARM_DATA.fullmatch(block["data"])
        assert match and match["name"] in TERRAFORM_SECRET_NAMES, f"docker_secret.{address}: {block['data'][:80]!r}"
    # `nndb swarm secrets` cannot reach staging's manager here: one line, exit 17, nothing of a secret in it.
    run(scan, [NNDB, "swarm", "secrets", "staging-db"], cwd=project, environ=environ, expect=17)

    # Operators' checks: env-backed and Vault-backed; staging has nothing in Vault (an error path).
    local_check = run(scan, [NNDB, "secrets", "check", "local-db"], cwd=project, environ=environ)
    prod_check = run(scan, [NNDB, "secrets", "check", "prod-db"], cwd=project, environ=environ)
    for check in (local_check, prod_check):
        assert any(line.split()[:2] == ["backup_encryption_key", "present"] for line in check.stdout.splitlines()), check.stdout
    run(scan, [NNDB, "secrets", "check", "staging-db"], cwd=project, environ=environ, expect=3)

    # The data source program, as Terraform runs it: its stdout is the hand-over to Terraform.
    for stack, kind in (("local-db", "env"), ("prod-db", "vault")):
        source = data_source(project, stack)
        stack_dir = project / "cdktf.out" / "stacks" / stack
        result = run(scan, source["program"], cwd=stack_dir, environ=environ, stdin=json.dumps(source["query"]), values_on_stdout=True)
        # local-db: no TLS, so no server certificates either; prod-db: TLS enabled, the server pairs too.
        names = required_secret_names(load_environment(stack, config_dir=project / "config"), terraform_only=True)
        assert set(names) <= set(TERRAFORM_SECRET_NAMES)
        expected = {name: SENTINELS[f"{kind} {name}"] for name in names}
        assert json.loads(result.stdout) == expected, "the sentinels Terraform needs reached the program"
        assert SENTINELS[f"{kind} backup_encryption_key"] not in result.stdout, "the backup key is never handed to Terraform"

    # Terraform Cloud agent hook (a good and a rejected login), then a denied path and a sealed Vault during a plan.
    agent_env = tmp_path / "agent.env"
    tfc = environ | {"TFC_WORKLOAD_IDENTITY_TOKEN": OTHER_SENTINELS["tfc workload identity"], "TFC_AGENT_ENV": str(agent_env)}
    run(scan, [str(REPO_ROOT / "hooks" / "terraform-pre-plan")], cwd=project, environ=tfc | {"NNDB_VAULT_JWT_ROLE": "nexanest-db-prod"})
    agent_env.unlink()  # the agent's own file: it holds the Vault token (no sentinel), as designed
    run(scan, [str(REPO_ROOT / "hooks" / "terraform-pre-plan")], cwd=project, environ=tfc | {"NNDB_VAULT_JWT_ROLE": "other"}, expect=3)
    prod_source = data_source(project, "prod-db")
    prod_dir = project / "cdktf.out" / "stacks" / "prod-db"
    vault_server.deny("nexanest/prod/db/services/analytics")
    run(scan, prod_source["program"], cwd=prod_dir, environ=environ, stdin=json.dumps(prod_source["query"]), expect=3)
    vault_server.sealed = True
    run(scan, prod_source["program"], cwd=prod_dir, environ=environ, stdin=json.dumps(prod_source["query"]), expect=3)
    run(scan, [NNDB, "secrets", "check", "prod-db"], cwd=project, environ=environ, expect=3)

    scan.scan_tree(tmp_path)
    assert "node" in spawned_programs(tmp_path), "the spawn spy saw synth's node process"
    scan.assert_clean()


def test_post_apply_hooks_and_backups_leak_nothing(tmp_path: Path, db_stack: DbStack) -> None:
    set_server_passwords(db_stack, {name: ENV_SENTINELS[f"env {name}"] for name in SECRET_NAMES})
    project = db_stack.project
    environ = spied_environ(tmp_path) | {
        **{k: v for k, v in db_stack.environ.items() if k.endswith(("_HOST", "_PORT"))},
        "NNDB_BACKUP_DIR": str(tmp_path / "backups"),
    }
    scan = LeakScan(SENTINELS)

    run(scan, [NNDB, "hooks", "run", "local-db", "--verbose"], cwd=project, environ=environ)
    run(scan, [NNDB, "backup", "run", "local-db"], cwd=project, environ=environ)
    run(scan, [NNDB, "backup", "list", "local-db"], cwd=project, environ=environ)
    run(scan, [NNDB, "backup", "verify", "local-db"], cwd=project, environ=environ)
    # A wrong backup key: the failure names the file and the key ids, never either key.
    other_key = environ | {"BACKUP_ENCRYPTION_KEY": ENV_SENTINELS["env backup_encryption_key"] + "-other"}
    run(scan, [NNDB, "backup", "verify", "local-db"], cwd=project, environ=other_key, expect=7)
    # A wrong password: the sentinel is a prefix of it, so echoing the wrong one would be caught too.
    wrong = environ | {"POSTGRES_PASSWORD": ENV_SENTINELS["env postgres_superuser"] + "-wrong"}
    run(scan, [NNDB, "hooks", "run", "local-db"], cwd=project, environ=wrong, expect=4)

    # Every file the run produced, and the servers' own directories (logs, data, ACL file).
    scan.scan_tree(tmp_path)
    for base in (db_stack.postgres.base, db_stack.timescale.base, db_stack.redis.base):
        scan.scan_tree(base)
    assert {"pg_dump", "pg_restore"} <= spawned_programs(tmp_path), "the spawn spy saw the backup's children"
    scan.assert_clean()


def test_the_scan_names_place_and_secret_never_the_value(tmp_path: Path) -> None:
    (tmp_path / "cdktf.out").mkdir()
    (tmp_path / "cdktf.out" / "cdk.tf.json").write_bytes(b'{"x": "' + VAULT_SENTINELS["vault redis_auth"].encode() + b'"}')
    scan = LeakScan(SENTINELS)
    scan.scan_tree(tmp_path)
    scan.scan("stderr of `nndb x`", "clean")
    with pytest.raises(AssertionError) as caught:
        scan.assert_clean()
    assert scan.findings == ["cdktf.out/cdk.tf.json: vault redis_auth"]
    assert "SENTINEL" not in str(caught.value)
