"""Build the cdktf ``App`` with all four stacks: the edge where config and environment are read."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cdktf import App

from nexanest_db.config import STACKS, ProjectPaths, effective_environment, find_env_file
from nexanest_db.stacks.database_stack import DatabaseStack
from nexanest_db.stacks.inputs import gather_inputs


def build_app(*, paths: ProjectPaths, environ: Mapping[str, str], outdir: str | None = None, stacks: tuple[str, ...] = STACKS) -> App:
    """All inputs are gathered (and validated) before any construct exists: bad config leaves nothing half-built."""
    inputs = [gather_inputs(stack, paths=paths, environ=environ) for stack in stacks]
    # stack_traces off: they would write this machine's absolute paths into the manifest.
    # skip_validation: cdktf's synth-time checks shell out to `terraform version` once per
    # terraform_data/cloud block, so synth would fail (and be slow) where no terraform is installed;
    # PR synth must run anywhere. Real validation is `tofu validate` of every stack (tests/e2e).
    options = {"stack_traces": False, "skip_validation": True}
    app = App(outdir=outdir, **options) if outdir else App(**options)
    for stack_inputs in inputs:
        DatabaseStack(app, stack_inputs.stack, inputs=stack_inputs)
    return app


def synth_from_environment(project_root: Path | None = None) -> None:
    """``python main.py`` / ``cdktf synth``: read the process environment and ``.env.db`` once, then synth."""
    root = project_root or Path.cwd()
    paths = ProjectPaths.at(root)
    environ = effective_environment(os.environ, find_env_file(root))
    build_app(paths=paths, environ=environ).synth()
