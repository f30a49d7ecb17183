"""Build the cdktf ``App`` with all four stacks from inputs the edge resolved (``nexanest_db.edge``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cdktf import App

from nexanest_db.config import STACKS, ProjectPaths
from nexanest_db.edge import synth_environment
from nexanest_db.stacks import outputs, uploads_report
from nexanest_db.stacks.database_stack import DatabaseStack
from nexanest_db.stacks.inputs import StackInputs, gather_inputs
from nexanest_db.stacks.uploads_report import render_uploads


def build_app(*, paths: ProjectPaths, environ: Mapping[str, str], outdir: str | None = None, stacks: tuple[str, ...] = STACKS) -> App:
    """All inputs are gathered (and validated) before any construct exists: bad config leaves nothing half-built."""
    return _build(paths=paths, environ=environ, outdir=outdir, stacks=stacks)[0]


def _build(
    *, paths: ProjectPaths, environ: Mapping[str, str], outdir: str | None, stacks: tuple[str, ...]
) -> tuple[App, list[StackInputs]]:
    inputs = [gather_inputs(stack, paths=paths, environ=environ) for stack in stacks]
    # stack_traces off: they would write this machine's absolute paths into the manifest.
    # skip_validation: cdktf's synth-time checks shell out to `terraform version` once per
    # terraform_data/cloud block, so synth would fail (and be slow) where no terraform is installed;
    # PR synth must run anywhere. Real validation is `tofu validate` of every stack (tests/e2e).
    options: dict[str, Any] = {"stack_traces": False, "skip_validation": True}
    app = App(outdir=outdir, **options) if outdir else App(**options)
    for stack_inputs in inputs:
        DatabaseStack(app, stack_inputs.stack, inputs=stack_inputs)
    return app, inputs


def synth_project(project_root: Path, environ: Mapping[str, str]) -> None:
    """``python main.py`` / ``cdktf synth`` / ``nndb synth``: the entry point hands the process environment
    (``environ``), merged over the project's ``.env.db`` here once, then synth into ``cdktf.out`` of the
    working directory (the entry points run from ``project_root``).

    Then the files around each ``cdk.tf.json`` (``nexanest_db.stacks.outputs``): the stack directory
    0700, local state files 0600, and ``NNDB_PROVIDER_LOCK_FILE`` (an offline machine's mirror lock).
    """
    paths = ProjectPaths.at(project_root)
    merged = synth_environment(environ=environ, root=project_root)
    app, inputs = _build(paths=paths, environ=merged, outdir=None, stacks=STACKS)
    app.synth()
    lock_file = Path(merged["NNDB_PROVIDER_LOCK_FILE"]) if merged.get("NNDB_PROVIDER_LOCK_FILE") else None
    for stack_inputs in inputs:
        stack_dir = Path(app.outdir) / "stacks" / stack_inputs.stack
        outputs.secure_stack_directory(stack_dir)
        outputs.secure_local_state(outputs.local_state_files(stack_dir, stack_inputs.config))
        document = json.loads((stack_dir / "cdk.tf.json").read_text(encoding="utf-8"))
        (stack_dir / uploads_report.FILE_NAME).write_text(render_uploads(stack_inputs.stack, document), encoding="utf-8")
        if lock_file is not None:
            outputs.place_provider_lock(stack_dir, lock_file, outputs.required_providers(document))
