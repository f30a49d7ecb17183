"""hooks/terraform-post-apply: which stack it runs, and that it calls the same entry point as cdktf deploy."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.project import REPO_ROOT

SCRIPT = REPO_ROOT / "hooks" / "terraform-post-apply"


def run(cwd: Path, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "argv"
    fake = bin_dir / "nndb"  # records its arguments and whether a Vault token reached it (never the value)
    fake.write_text(f'#!/bin/sh\necho "$@ token=${{VAULT_TOKEN:+set}}" >> {record}\n')
    fake.chmod(0o755)
    result = subprocess.run(
        [str(SCRIPT)], cwd=cwd, env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env}, capture_output=True, text=True, check=False
    )
    return result, record.read_text() if record.exists() else ""


def test_is_executable() -> None:
    assert SCRIPT.stat().st_mode & 0o111


def test_stack_from_nndb_stack(tmp_path: Path) -> None:
    result, argv = run(tmp_path, tmp_path, NNDB_STACK="prod-db", VAULT_TOKEN="hvs.x")
    assert result.returncode == 0, result.stderr
    assert argv == "hooks run prod-db token=set\n"


def test_stack_from_the_stack_directory(tmp_path: Path) -> None:
    stack_dir = tmp_path / "cdktf.out" / "stacks" / "staging-db"
    stack_dir.mkdir(parents=True)
    result, argv = run(stack_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    assert argv == "hooks run staging-db token=\n"


def test_other_workspaces_are_left_alone(tmp_path: Path) -> None:
    result, argv = run(tmp_path, tmp_path)
    assert result.returncode == 0
    assert "NNDB_STACK is not set" in result.stdout and argv == ""
