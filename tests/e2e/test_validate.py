"""Every synthesized stack passes `terraform/tofu validate` with the real, mirrored providers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nexanest_db.config import STACKS
from tests.fixtures.toolchain import Toolchain
from tests.support.project import copy_project

pytestmark = [pytest.mark.e2e, pytest.mark.needs_providers]


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain) -> Path:
    project = copy_project(tmp_path_factory.mktemp("validate"))
    toolchain.run([sys.executable, "main.py"], cwd=project)
    return project / "cdktf.out" / "stacks"


@pytest.mark.parametrize("stack", STACKS)
def test_stack_validates(synthesized: Path, toolchain: Toolchain, stack: str) -> None:
    directory = synthesized / stack
    # -backend=false: staging/prod name a Terraform Cloud workspace, which validation never needs.
    toolchain.run([toolchain.terraform, "init", "-backend=false", "-input=false", "-no-color"], cwd=directory, timeout=300)
    result = toolchain.run([toolchain.terraform, "validate", "-no-color"], cwd=directory, timeout=300)
    assert "Success! The configuration is valid." in result.stdout
