"""docs/runbooks/rotate-secret.md's table "which rotation replaces which container" is what every stack synthesizes.

A container is replaced by a rotation exactly when its definition references that secret's value
(through the `data.external` source's result); the post-apply resource references all of them (its
trigger hashes the whole result), which is what re-runs the hooks. A replica's container is named
``<instance>_<replica>`` in the table: it stands for every replica of that instance the stack declares.
"""

from __future__ import annotations

import json
import re

import pytest

from nexanest_db.config import load_environment
from nexanest_db.secrets import SECRET_NAMES, TERRAFORM_SECRET_NAMES
from tests.support.project import REPO_ROOT, synth

RUNBOOK = REPO_ROOT / "docs" / "runbooks" / "rotate-secret.md"
RESULT_KEY = re.compile(r'\.result\[\\?"(\w+)\\?"\]')
TABLE_ROW = re.compile(r"^\| (.+?) \| (.+?) \| .+ \|$", re.M)
NAME = re.compile(r"`([a-z_<>]+)`")


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return synth(REPO_ROOT, tmp_path_factory.mktemp("out"), environ={})


def documented() -> dict[str, set[str]]:
    """secret name -> instances whose container it replaces, from the runbook's table."""
    section = RUNBOOK.read_text(encoding="utf-8").split("## 1. What restarts", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    services = ("auth", "portfolio", "analytics")
    for secrets_cell, containers_cell in TABLE_ROW.findall(section):
        if secrets_cell in {"secret", "---"}:
            continue
        instances = set() if containers_cell.startswith("none") else set(containers_cell.split(" (")[0].split(", "))
        for name in NAME.findall(secrets_cell):
            for expanded in [name.replace("<service>", s) for s in services] if "<service>" in name else [name]:
                table[expanded] = instances
    return table


def synthesized(stack: dict) -> dict[str, set[str]]:
    replaced: dict[str, set[str]] = {}
    for instance, container in stack["resource"]["docker_container"].items():  # stable addresses: docker_container.<instance>
        for name in set(RESULT_KEY.findall(json.dumps(container))):
            replaced.setdefault(name, set()).add(instance)
    return replaced


def test_the_table_names_every_secret() -> None:
    assert set(documented()) == set(SECRET_NAMES)


@pytest.mark.parametrize("stack_name", ["local-db", "prod-db"])  # prod: TLS on, so its secrets are referenced too
def test_rotation_replaces_exactly_the_documented_containers(stacks: dict[str, dict], stack_name: str) -> None:
    stack = stacks[stack_name]
    replaced = synthesized(stack)
    config = load_environment(stack_name, config_dir=REPO_ROOT / "config")

    def expand(container: str) -> set[str]:
        instance, _, replica = container.partition("_<")
        if not replica:
            return {container}
        return {f"{instance}_{name}".replace("-", "_") for name in config.replicas_of(instance)}

    table = {name: {c for container in containers for c in expand(container)} for name, containers in documented().items()}
    assert any("_<replica>" in c for containers in documented().values() for c in containers), "the table names the replicas"
    referenced_anywhere = set(RESULT_KEY.findall(json.dumps(stack)))
    for name in SECRET_NAMES:
        if name not in TERRAFORM_SECRET_NAMES or name not in referenced_anywhere:
            assert replaced.get(name, set()) == set(), name  # never given to this stack's Terraform
            continue
        assert replaced.get(name, set()) == table[name], f"{stack_name}: rotating {name} replaces {sorted(replaced.get(name, set()))}"
    (hooks,) = [r for key, r in stack["resource"]["terraform_data"].items() if key == "post_apply"]
    assert "secrets" in hooks["triggers_replace"] and ".result" in json.dumps(hooks["triggers_replace"]["secrets"])
