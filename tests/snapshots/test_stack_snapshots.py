"""Snapshot of every stack's cdk.tf.json: a change here is a change reviewers see in PRs.

Update deliberately (``pytest tests/snapshots --snapshot-update``) and say why in the commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from nexanest_db.config import STACKS
from tests.support.project import REPO_ROOT, synth


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return synth(REPO_ROOT, tmp_path_factory.mktemp("cdktf.out"), environ={})


@pytest.fixture
def json_snapshot(snapshot):  # type: ignore[no-untyped-def]
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_matches_snapshot(synthesized: dict[str, dict], stack: str, json_snapshot) -> None:  # type: ignore[no-untyped-def]
    assert synthesized[stack] == json_snapshot


def test_snapshots_exist_for_every_stack() -> None:
    """A missing snapshot file would make syrupy fail, but say plainly which stacks are covered."""
    files = sorted(p.name for p in (Path(__file__).parent / "__snapshots__" / "test_stack_snapshots").glob("*.json"))
    assert files == sorted(f"test_stack_matches_snapshot[{stack}].json" for stack in STACKS)
