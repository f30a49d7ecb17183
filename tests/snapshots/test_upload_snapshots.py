"""Snapshot of every stack's uploads.md: the uploaded files line by line, so a PR diff shows the changed line.

Update deliberately (``pytest tests/snapshots --snapshot-update``) and say why in the commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from nexanest_db.config import STACKS
from nexanest_db.stacks.uploads_report import render_uploads
from tests.support.project import REPO_ROOT, synth


class MarkdownSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "md"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return synth(REPO_ROOT, tmp_path_factory.mktemp("cdktf.out"), environ={})


@pytest.fixture
def markdown_snapshot(snapshot):  # type: ignore[no-untyped-def]
    return snapshot.use_extension(MarkdownSnapshot)


@pytest.mark.parametrize("stack", STACKS)
def test_uploads_match_snapshot(synthesized: dict[str, dict], stack: str, markdown_snapshot) -> None:  # type: ignore[no-untyped-def]
    assert render_uploads(stack, synthesized[stack]) == markdown_snapshot


@pytest.mark.parametrize("stack", STACKS)
def test_no_text_is_uploaded_twice_and_no_value_leaks(synthesized: dict[str, dict], stack: str) -> None:
    contents = [u["content"] for c in synthesized[stack]["resource"]["docker_container"].values() for u in c.get("upload", [])]
    literal = [c for c in contents if not c.startswith("${")]
    assert len(literal) == len(set(literal)), "the same file text is inlined into two uploads: put it in a Terraform local"
    report = render_uploads(stack, synthesized[stack])
    assert "dev_password" not in report and "BEGIN PRIVATE KEY" not in report


def test_synth_writes_the_report_beside_the_json(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.project import copy_project

    project = copy_project(tmp_path / "project")
    result = subprocess.run(
        [sys.executable, "main.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    written = (project / "cdktf.out" / "stacks" / "dev-db" / "uploads.md").read_text()
    assert written.startswith("# dev-db: files uploaded into containers") and "### /etc/postgresql/postgresql.conf" in written
