"""What `python main.py` does around cdk.tf.json: private stack directories and state files, the offline lock file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.project import copy_project

LOCK = """# This file is maintained automatically by "terraform init".
provider "registry.terraform.io/hashicorp/external" {
  version     = "2.3.5"
  constraints = "2.3.5"
  hashes = ["h1:aaaa"]
}

provider "registry.terraform.io/kreuzwerker/docker" {
  version     = "3.6.2"
  constraints = "3.6.2"
  hashes = ["h1:bbbb"]
}
"""


def synth(project: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NNDB_PROVIDER_LOCK_FILE"} | environ
    return subprocess.run([sys.executable, "main.py"], cwd=project, env=env, capture_output=True, text=True, timeout=300)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_stack_directories_0700_and_local_state_0600_before_terraform_writes_it(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    existing = project / "terraform.dev-db.tfstate"
    existing.write_text('{"version": 4}')
    existing.chmod(0o644)
    result = synth(project)
    assert result.returncode == 0, result.stderr
    for stack in ("local-db", "dev-db", "staging-db", "prod-db"):
        assert mode(project / "cdktf.out" / "stacks" / stack) == 0o700  # cdktf saves the plan (secrets in clear) in here
    for name in ("terraform.local-db.tfstate", "terraform.local-db.tfstate.backup", "terraform.dev-db.tfstate.backup"):
        assert mode(project / name) == 0o600 and (project / name).read_text() == "", name  # empty: Terraform reads it as no state
    assert mode(existing) == 0o600 and existing.read_text() == '{"version": 4}', "an existing state file is narrowed, never emptied"
    assert not list(project.glob("terraform.staging-db*")), "staging and prod keep state in Terraform Cloud"
    assert not (project / "cdktf.out" / "stacks" / "local-db" / ".terraform.lock.hcl").exists()


def test_the_offline_lock_file_goes_where_none_is_and_stays_out_of_the_way_of_an_existing_one(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    lock = tmp_path / "mirror.lock.hcl"
    lock.write_text(LOCK)
    stack_dir = project / "cdktf.out" / "stacks"
    (stack_dir / "dev-db").mkdir(parents=True)
    own = LOCK.replace("h1:bbbb", "h1:registry-hash")
    (stack_dir / "dev-db" / ".terraform.lock.hcl").write_text(own)
    result = synth(project, NNDB_PROVIDER_LOCK_FILE=str(lock))
    assert result.returncode == 0, result.stderr
    assert (stack_dir / "local-db" / ".terraform.lock.hcl").read_text() == LOCK
    assert (stack_dir / "dev-db" / ".terraform.lock.hcl").read_text() == own, "a lock naming the pinned versions is kept"


def test_a_lock_file_without_the_pinned_provider_is_one_line(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    lock = tmp_path / "mirror.lock.hcl"
    lock.write_text(LOCK.replace('version     = "3.6.2"', 'version     = "3.7.0"'))
    result = synth(project, NNDB_PROVIDER_LOCK_FILE=str(lock))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"synth: error: NNDB_PROVIDER_LOCK_FILE={lock}: does not lock kreuzwerker/docker 3.6.2; run scripts/bootstrap.sh again"
    )
