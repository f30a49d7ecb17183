"""The structural diff behind `nndb plan --base` (nexanest_db/operations/infra_changes.py), on real synthesized stacks.

Each case synthesizes the project twice, once as committed and once with one real change (config or
SQL edited in a copy), and checks the actions, the attribute paths and the verdict.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from nexanest_db.operations.infra_changes import (
    AttributeChange,
    InfraChanges,
    ResourceChange,
    changed_paths,
    forces_replacement,
    structural_diff,
    verdict,
)
from tests.support.project import copy_project, synth

STACK = "local-db"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    project = copy_project(tmp_path_factory.mktemp("base") / "project")
    return synth(project, tmp_path_factory.mktemp("base-out"), environ={}, stacks=(STACK,))[STACK]


def synth_changed(tmp_path: Path, edit: dict[str, tuple[str, str]]) -> dict:
    project = copy_project(tmp_path / "project")
    for relative, (old, new) in edit.items():
        path = project / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, relative
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return synth(project, tmp_path / "out", environ={}, stacks=(STACK,))[STACK]


def by_address(infra: InfraChanges) -> dict[str, ResourceChange]:
    return {r.address: r for r in infra.resources}


def test_the_same_stack_has_no_changes(base: dict) -> None:
    infra = structural_diff(base, copy.deepcopy(base), detail="same")
    assert infra.resources == [] and infra.other == []
    assert verdict(infra).as_dict() == {"level": "none", "line": "no infrastructure changes"}


def test_a_memory_limit_is_changed_in_place(base: dict, tmp_path: Path) -> None:
    head = synth_changed(
        tmp_path,
        {
            "config/local.toml": (
                "resources = { memory_mb = 1024, cpus = 1.0 }\n[postgres.settings]",
                "resources = { memory_mb = 2048, cpus = 1.0 }\n[postgres.settings]",
            )
        },
    )
    changes = by_address(structural_diff(base, head, detail="memory"))
    postgres = changes["docker_container.postgres"]
    assert postgres.action == "update"
    assert {a.path for a in postgres.attributes} >= {"memory"}
    assert all(not a.forces_replacement for a in postgres.attributes if a.path in ("memory", "memory_swap"))


def test_an_image_change_replaces_the_image_and_through_its_id_the_container(base: dict, tmp_path: Path) -> None:
    head = synth_changed(tmp_path, {"config/local.toml": ('image = "redis:7-alpine"', 'image = "redis:7.2-alpine"')})
    infra = structural_diff(base, head, detail="image")
    changes = by_address(infra)
    assert changes["docker_image.redis"].action == "replace"
    container = changes["docker_container.redis"]
    assert container.action == "replace"
    assert AttributeChange(path="image", forces_replacement=True, via="docker_image.redis (replaced)") in container.attributes
    # and the post-apply run, whose triggers hold the container's id
    hooks = changes["terraform_data.post_apply"]
    assert hooks.action == "replace"
    assert any(a.path == "triggers_replace.container_redis" and a.via == "docker_container.redis (replaced)" for a in hooks.attributes)
    line = verdict(infra).line
    assert line.startswith("replaces the redis container: brief downtime; replaces the redis image; re-runs the post-apply hooks")
    assert line.endswith("; a database image changes (redis): apply it with `nndb upgrade` (docs/runbooks/upgrade-image.md)"), line


def test_a_changed_first_start_script_reaches_both_postgres_containers_through_its_local(base: dict, tmp_path: Path) -> None:
    head = synth_changed(tmp_path, {"sql/first-start/00-harden-defaults.sql": ("\n", "\n-- reviewed\n")})
    changes = by_address(structural_diff(base, head, detail="local"))
    for name in ("postgres", "timescale"):
        change = changes[f"docker_container.{name}"]
        assert change.action == "replace"
        path = 'upload["/docker-entrypoint-initdb.d/00-harden-defaults.sql"].content'
        assert AttributeChange(path=path, forces_replacement=True, via="local.first_start_00_harden_defaults") in change.attributes
    assert "docker_container.redis" not in changes


def test_a_renamed_address_with_a_moved_block_is_a_move_not_a_destroy(base: dict) -> None:
    head = copy.deepcopy(base)
    head["resource"]["docker_volume"]["pg_data"] = head["resource"]["docker_volume"].pop("postgres_data")
    head["moved"] = [*head["moved"], {"from": "docker_volume.postgres_data", "to": "docker_volume.pg_data"}]
    for mount in head["resource"]["docker_container"]["postgres"]["mounts"]:
        mount["source"] = mount["source"].replace("docker_volume.postgres_data.", "docker_volume.pg_data.")
    infra = structural_diff(base, head, detail="moved")
    changes = by_address(infra)
    assert (
        changes["docker_volume.pg_data"].action == "move" and changes["docker_volume.pg_data"].moved_from == "docker_volume.postgres_data"
    )
    assert not [r for r in infra.resources if r.action == "delete"]
    assert verdict(infra).level != "data-loss"


@pytest.mark.parametrize(
    ("resource_type", "path", "forces"),
    [
        ("docker_container", 'upload["/etc/redis/redis.conf"].content', True),
        ("docker_container", "image", True),
        ("docker_container", "memory", False),
        ("docker_container", "restart", False),
        ("docker_volume", "labels", True),
        ("terraform_data", "triggers_replace.content_sql", True),
        ("terraform_data", "input.stack", False),
        ("docker_image", "keep_locally", False),
    ],
)
def test_which_attributes_force_a_replacement(resource_type: str, path: str, forces: bool) -> None:
    assert forces_replacement(resource_type, path) is forces


def test_paths_name_blocks_by_their_key_not_their_position() -> None:
    before = {"upload": [{"file": "/a", "content": "1"}, {"file": "/b", "content": "2"}], "env": ["A=1", "B=2"]}
    after = {"upload": [{"file": "/b", "content": "3"}, {"file": "/a", "content": "1"}], "env": ["B=2", "A=9"]}
    assert changed_paths(before, after) == ['env["A"]', 'upload["/b"].content']
