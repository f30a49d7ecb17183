"""Helpers for tests that synthesize: a throwaway copy of the project and a one-call synth."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from nexanest_db.config import STACKS, ProjectPaths

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("main.py", "cdktf.json", "config", "sql", "monitoring")


def copy_project(destination: Path) -> Path:
    """Copy what synth reads (main.py, cdktf.json, config/, sql/, monitoring/) to ``destination``, replacing an older copy of them."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source, target = REPO_ROOT / name, destination / name
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    return destination


def synth(root: Path, outdir: Path, environ: Mapping[str, str] | None = None, stacks: tuple[str, ...] = STACKS) -> dict[str, dict]:
    """Synthesize ``stacks`` of the project at ``root`` into ``outdir``; return each stack's parsed cdk.tf.json."""
    from nexanest_db.stacks.app import build_app

    build_app(paths=ProjectPaths.at(root), environ=dict(environ or {}), outdir=str(outdir), stacks=stacks).synth()
    return {stack: json.loads((outdir / "stacks" / stack / "cdk.tf.json").read_text()) for stack in stacks}
