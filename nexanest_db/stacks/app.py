"""Build the cdktf ``App`` with all four stacks: the edge where config and environment are read."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from cdktf import App

from nexanest_db.config import STACKS, ProjectPaths, effective_environment, find_env_file
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
    options = {"stack_traces": False, "skip_validation": True}
    app = App(outdir=outdir, **options) if outdir else App(**options)
    for stack_inputs in inputs:
        DatabaseStack(app, stack_inputs.stack, inputs=stack_inputs)
    return app, inputs


def synth_from_environment(project_root: Path | None = None) -> None:
    """``python main.py`` / ``cdktf synth``: read the process environment and ``.env.db`` once, then synth.

    Then the files around each ``cdk.tf.json`` (``nexanest_db.stacks.outputs``): the stack directory
    0700, local state files 0600, and ``NNDB_PROVIDER_LOCK_FILE`` (an offline machine's mirror lock).
    """
    root = project_root or Path.cwd()
    paths = ProjectPaths.at(root)
    environ = effective_environment(os.environ, find_env_file(root))
    app, inputs = _build(paths=paths, environ=environ, outdir=None, stacks=STACKS)
    app.synth()
    lock_file = Path(environ["NNDB_PROVIDER_LOCK_FILE"]) if environ.get("NNDB_PROVIDER_LOCK_FILE") else None
    for stack_inputs in inputs:
        stack_dir = Path(app.outdir) / "stacks" / stack_inputs.stack
        outputs.secure_stack_directory(stack_dir)
        outputs.secure_local_state(outputs.local_state_files(stack_dir, stack_inputs.config))
        document = json.loads((stack_dir / "cdk.tf.json").read_text(encoding="utf-8"))
        (stack_dir / uploads_report.FILE_NAME).write_text(render_uploads(stack_inputs.stack, document), encoding="utf-8")
        if lock_file is not None:
            outputs.place_provider_lock(stack_dir, lock_file, outputs.required_providers(document))
