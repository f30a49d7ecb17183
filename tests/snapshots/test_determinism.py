"""Same inputs, same bytes: synth in two different directories and compare every output file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.project import copy_project

CONNECTION_VARIABLES = ("DB_HOST", "POSTGRES_HOST", "POSTGRES_PORT", "TIMESCALE_HOST", "TIMESCALE_PORT", "REDIS_HOST", "REDIS_PORT")


def synth_in(directory: Path) -> dict[str, bytes]:
    project = copy_project(directory)
    env = {k: v for k, v in os.environ.items() if k not in CONNECTION_VARIABLES}
    subprocess.run([sys.executable, "main.py"], cwd=project, env=env, check=True, capture_output=True, timeout=120)
    out = project / "cdktf.out"
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_two_directories_give_identical_bytes(tmp_path: Path) -> None:
    first = synth_in(tmp_path / "a" / "checkout")
    second = synth_in(tmp_path / "somewhere" / "else" / "entirely")
    assert sorted(first) == sorted(second)
    assert "stacks/local-db/cdk.tf.json" in first
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []
    for name, content in first.items():
        text = content.decode()
        assert str(tmp_path) not in text, f"{name} holds an absolute path of this machine"
        assert "/root/" not in text and "/home/" not in text, f"{name} holds a home directory path"


def test_cdktf_cli_synth_matches_python_main(tmp_path: Path) -> None:
    """`cdktf synth` (the pinned cdktf-cli) and `python main.py` write the same cdk.tf.json bytes."""
    from tests.support.project import REPO_ROOT

    cli = REPO_ROOT / "node_modules" / ".bin" / "cdktf"
    assert cli.exists(), "cdktf-cli is missing: run scripts/setup.sh (npm ci installs the version pinned in package.json)"
    reference = synth_in(tmp_path / "python")
    project = copy_project(tmp_path / "cli")
    env = {k: v for k, v in os.environ.items() if k not in CONNECTION_VARIABLES}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["CHECKPOINT_DISABLE"] = "1"
    result = subprocess.run([str(cli), "synth"], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for stack in ("local-db", "dev-db", "staging-db", "prod-db"):
        name = f"stacks/{stack}/cdk.tf.json"
        assert (project / "cdktf.out" / name).read_bytes() == reference[name], f"{name} differs between cdktf synth and python main.py"
