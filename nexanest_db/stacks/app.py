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
    # No stack traces in the manifest: they hold absolute paths of this machine.
    app = App(outdir=outdir, stack_traces=False) if outdir else App(stack_traces=False)
    for stack_inputs in inputs:
        DatabaseStack(app, stack_inputs.stack, inputs=stack_inputs)
    return app


def synth_from_environment(project_root: Path | None = None) -> None:
    """``python main.py`` / ``cdktf synth``: read the process environment and ``.env.db`` once, then synth."""
    root = project_root or Path.cwd()
    paths = ProjectPaths.at(root)
    environ = effective_environment(os.environ, find_env_file(root))
    build_app(paths=paths, environ=environ).synth()
