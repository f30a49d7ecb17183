"""`nndb plan local-db` through the real `terraform plan -json` path, on a deployed copy (needs the providers).

Deploy local-db (stand-in images, unique names, free ports), then, as a user would: a no-op plan
(nothing to do, no statement due against the live databases), and one postgresql.conf setting,
which Terraform itself plans as a replacement of the postgres container only. The plan changes
nothing: the same container ids afterwards, no plan file left in the stack directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.fixtures.toolchain import Toolchain
from tests.support.deploy import DeployedCopy

pytestmark = [pytest.mark.e2e, pytest.mark.needs_providers]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain) -> Iterator[DeployedCopy]:
    copy = DeployedCopy.create(tmp_path_factory.mktemp("e2e-plan") / "project", toolchain, label="local-db plan")
    try:
        copy.cdktf("deploy", "deploy")
        yield copy
    finally:
        copy.teardown()


def plan_json(copy: DeployedCopy) -> dict:
    result = copy.nndb("plan", copy.stack, "--json")
    assert result.returncode == 0, result.stderr
    envelope = json.loads(result.stdout)
    assert (envelope["schema"], envelope["ok"]) == ("nndb/plan/1", True)
    return envelope["result"]


def test_terraform_plan_of_a_deployed_stack(deployed: DeployedCopy) -> None:
    ids = deployed.container_ids()

    document = plan_json(deployed)
    assert document["infrastructure"]["source"] == "terraform-plan", document["infrastructure"]["detail"]
    assert document["infrastructure"]["resources"] == []
    assert document["databases"]["reachable"] is True
    assert document["databases"]["statements"] == [] and document["databases"]["problems"] == []
    assert all(not m["pending"] for m in document["databases"]["migrations"])
    assert document["verdict"] == {"level": "none", "line": "no changes"}

    deployed.edit_config("log_min_duration_statement = 1000", "log_min_duration_statement = 500")  # [postgres.settings] only
    document = plan_json(deployed)
    changes = {r["address"]: r for r in document["infrastructure"]["resources"]}
    assert changes["docker_container.postgres"]["action"] == "replace"
    assert any(a["forces_replacement"] and a["path"].startswith("upload") for a in changes["docker_container.postgres"]["attributes"])
    assert "docker_container.timescale" not in changes and "docker_container.redis" not in changes
    assert document["verdict"]["level"] == "downtime"
    assert document["verdict"]["line"].startswith("replaces the postgres container: brief downtime")

    assert deployed.container_ids() == ids  # planned, not applied
    stack_dir = deployed.root / "cdktf.out" / "stacks" / deployed.stack
    assert not list(stack_dir.glob("*.tfplan"))
