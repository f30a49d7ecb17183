"""scripts/bootstrap.sh's provider piece in both modes, in a throwaway tools directory (no engine, no images).

- registry (a laptop): Terraform's normal installation; the CLI config has no provider_installation
  block and no mirror lock file is handed to synth.
- mirror (offline): the CLI config names only the mirror; an empty mirror is reported in one line
  naming where the binary goes, and --require-providers fails with it.

The Terraform-compatible binary the surrounding run uses (NNDB_TF_BINARY, from env.sh) is put on
PATH, so the piece finds it instead of building OpenTofu.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.project import REPO_ROOT

BOOTSTRAP = REPO_ROOT / "scripts" / "bootstrap.sh"


def run_bootstrap(tools: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    binary = os.environ.get("NNDB_TF_BINARY") or shutil.which("terraform") or shutil.which("tofu")
    if not binary:
        pytest.fail("no terraform/tofu: run scripts/bootstrap.sh and source its env file (scripts/test.sh does)", pytrace=False)
    env = {
        "PATH": f"{Path(binary).parent}:/usr/bin:/bin",
        "HOME": str(tools),
        "NNDB_TOOLS_DIR": str(tools),
    }
    result = subprocess.run(["bash", str(BOOTSTRAP), "--tools-only", *args], env=env, capture_output=True, text=True, timeout=120)
    values = {}
    env_file = tools / "env.sh"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").partition("=")
                values[key] = value.strip("'")
    return result, values


def test_registry_mode_is_terraforms_normal_installation(tmp_path: Path) -> None:
    result, env = run_bootstrap(tmp_path, "--providers=registry")
    assert result.returncode == 0, result.stderr
    assert env["NNDB_PROVIDER_SOURCE"] == "registry" and env["NNDB_PROVIDERS_READY"] == "1"
    assert env["NNDB_PROVIDER_LOCK_FILE"] == "" and env["NNDB_PROVIDER_MIRROR"] == ""
    config = Path(env["TF_CLI_CONFIG_FILE"]).read_text()
    assert "provider_installation" not in config and "disable_checkpoint = true" in config


def test_mirror_mode_names_only_the_mirror_and_says_what_is_missing(tmp_path: Path) -> None:
    result, env = run_bootstrap(tmp_path, "--providers=mirror")
    assert result.returncode == 0, result.stderr
    assert env["NNDB_PROVIDER_SOURCE"] == "mirror" and env["NNDB_PROVIDERS_READY"] == "0"
    assert env["NNDB_PROVIDERS_MISSING"] == "kreuzwerker/docker@3.6.2 hashicorp/external@2.3.5"
    config = Path(env["TF_CLI_CONFIG_FILE"]).read_text()
    assert f'path = "{tmp_path}/providers/mirror"' in config and "filesystem_mirror" in config
    expected = f"{tmp_path}/providers/mirror/registry.terraform.io/kreuzwerker/docker/3.6.2/linux_"
    (warning,) = [line for line in result.stderr.splitlines() if "not in the mirror" in line]
    assert expected in warning

    failed, _ = run_bootstrap(tmp_path, "--providers=mirror", "--require-providers")
    assert failed.returncode == 1
    (line,) = [line for line in failed.stderr.splitlines() if "FAILED" in line]
    assert line.startswith("[bootstrap] FAILED at provider kreuzwerker/docker@3.6.2: not in the mirror;") and expected in line


def test_an_unknown_provider_source_is_one_line(tmp_path: Path) -> None:
    result, _ = run_bootstrap(tmp_path, "--providers=ftp")
    assert result.returncode == 1
    assert (
        "[bootstrap] FAILED at provider source: NNDB_PROVIDER_SOURCE/--providers must be auto, registry or mirror, got 'ftp'"
        in result.stderr
    )
