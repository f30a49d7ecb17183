"""Stable resource addresses (nexanest_db/stacks/addresses.py), and `moved` blocks from the hashed ones earlier releases deployed."""

from __future__ import annotations

import re

import pytest

from nexanest_db.stacks.addresses import hashed_logical_ids, stable_name
from tests.support.project import REPO_ROOT, synth

HASH_SUFFIX = re.compile(r"_[0-9A-F]{8}$")
# What every release before stable addresses deployed (read off their snapshots): state holds these.
DEPLOYED_BEFORE = {
    "docker_container.postgres_container_A7145DB3": "docker_container.postgres",
    "docker_container.timescale_container_5E440BBF": "docker_container.timescale",
    "docker_container.redis_container_C24AB333": "docker_container.redis",
    "docker_image.postgres_image_5E4DCF3B": "docker_image.postgres",
    "docker_image.timescale_image_784A0788": "docker_image.timescale",
    "docker_image.redis_image_5B5275A8": "docker_image.redis",
    "docker_network.network_C8AC2FB3": "docker_network.network",
    "docker_volume.postgres_data_67A697DF": "docker_volume.postgres_data",
    "docker_volume.timescale_data_C39B8FCF": "docker_volume.timescale_data",
    "docker_volume.redis_data_865C196A": "docker_volume.redis_data",
    "docker_volume.postgres_wal-archive_C6F6261C": "docker_volume.postgres_wal_archive",
    "docker_volume.timescale_wal-archive_FF203756": "docker_volume.timescale_wal_archive",
    "terraform_data.post-apply_run_29874C52": "terraform_data.post_apply",
    "terraform_data.destroy-guard_2E628806": "terraform_data.destroy_guard",
}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return synth(REPO_ROOT, tmp_path_factory.mktemp("out"), environ={})


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("postgres/container", "postgres"),
        ("postgres/data", "postgres_data"),
        ("post-apply/run", "post_apply"),
        ("network/network", "network"),
    ],
)
def test_stable_name(path: str, name: str) -> None:
    assert stable_name(path) == name


def test_hashed_ids_are_cdktfs_own() -> None:
    assert hashed_logical_ids(["postgres/container", "post-apply/run"]) == {
        "postgres/container": "postgres_container_A7145DB3",
        "post-apply/run": "post-apply_run_29874C52",
    }


@pytest.mark.parametrize("stack_name", ["local-db", "dev-db", "staging-db", "prod-db"])
def test_no_hashed_address_and_every_deployed_one_moves(stacks: dict[str, dict], stack_name: str) -> None:
    stack = stacks[stack_name]
    addresses = {f"{kind}.{name}" for kind, resources in stack["resource"].items() for name in resources}
    addresses |= {f"data.{kind}.{name}" for kind, sources in stack.get("data", {}).items() for name in sources}
    assert not [a for a in addresses if HASH_SUFFIX.search(a)]
    moves = {m["from"]: m["to"] for m in stack["moved"]}
    assert set(moves.values()) <= addresses
    for old, new in DEPLOYED_BEFORE.items():
        if new in addresses:  # WAL-archive volumes exist only where PITR is on
            assert moves[old] == new, old
