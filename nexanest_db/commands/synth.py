"""`nndb synth`: the same as `python main.py`, from anywhere inside the project."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from nexanest_db import edge
from nexanest_db.commands.common import environ, start
from nexanest_db.commands.output import console, set_result
from nexanest_db.config import STACKS

ProjectDir = Annotated[
    Path | None,
    typer.Option(
        "--project-dir",
        help="project root (default: NNDB_PROJECT_DIR, or the nearest directory with cdktf.json + config/ at or above the current one)",
        exists=True,
        file_okay=False,
        dir_okay=True,
    ),
]


def synth(project_dir: ProjectDir = None) -> None:
    """Synthesize every stack into <project>/cdktf.out/stacks/<stack>/cdk.tf.json (what `python main.py` writes).

    Examples: `nndb synth` (from the project or any directory below it), `nndb synth --project-dir ~/src/nexanest-db`.
    """
    root = edge.project_root(environ=environ(), start=start(), project_dir=project_dir)
    from nexanest_db.stacks.app import synth_project

    started = time.perf_counter()
    os.chdir(root)  # cdktf writes cdktf.out relative to the working directory, as `cdktf synth` runs main.py from the root
    synth_project(root, environ())
    out = root / "cdktf.out"
    set_result({"project": str(root), "outdir": str(out), "stacks": list(STACKS)})
    console.print(f"synth: {len(STACKS)} stacks written to {out}/stacks in {time.perf_counter() - started:.1f}s", markup=False)
