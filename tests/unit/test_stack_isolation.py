"""A stack's synthesized output changes only when something that stack uses changes (issue: PR review).

An edit to another environment's config file, or to config/README.md, leaves a stack's bytes (its
cdk.tf.json and every asset it ships) as they were, so it re-runs nobody else's hooks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.project import REPO_ROOT, copy_project, synth


def stack_bytes(outdir: Path) -> dict[str, str]:
    """Per stack: one digest over cdk.tf.json and every file under the stack directory (assets included)."""
    digests = {}
    for stack_dir in sorted((outdir / "stacks").iterdir()):
        hasher = hashlib.sha256()
        for path in sorted(p for p in stack_dir.rglob("*") if p.is_file() and ".terraform" not in p.parts):
            hasher.update(path.relative_to(stack_dir).as_posix().encode() + b"\0" + path.read_bytes())
        digests[stack_dir.name] = hasher.hexdigest()
    return digests


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    outdir = tmp_path_factory.mktemp("baseline")
    synth(REPO_ROOT, outdir, environ={})
    return stack_bytes(outdir)


@pytest.mark.parametrize(
    ("edited", "changed"),
    [
        (("config/prod.toml", "config/README.md", "monitoring/README.md", "monitoring/rules/postgres.yml"), {"prod-db"}),
        (("config/local.toml",), {"local-db"}),
        (("config/dev.toml", "config/staging.toml"), {"dev-db", "staging-db"}),
    ],
)
def test_only_the_stacks_whose_input_changed_change(
    tmp_path: Path, baseline: dict[str, str], edited: tuple[str, ...], changed: set[str]
) -> None:
    project = copy_project(tmp_path / "project")
    for name in edited:
        path = project / name
        path.write_text(path.read_text() + "\n# a reviewer's comment\n")
    outdir = tmp_path / "out"
    synth(project, outdir, environ={})
    after = stack_bytes(outdir)
    assert {stack for stack in after if after[stack] != baseline[stack]} == changed
