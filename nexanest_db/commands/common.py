"""Resolution every command shares, through the edge (``nexanest_db.edge``) with this invocation's inputs.

``cli.main`` hands the process environment and working directory to ``output.begin``; commands call
``resolve`` here and never read ``os.environ`` themselves.
"""

from __future__ import annotations

from pathlib import Path

from nexanest_db import edge
from nexanest_db.commands import output
from nexanest_db.config import ProjectPaths
from nexanest_db.edge import Resolved, project_paths

__all__ = ["Resolved", "environ", "project_checkout", "project_paths", "resolve", "start"]


def environ() -> dict[str, str]:
    """This invocation's process environment (what the entry point handed over)."""
    return output.current().environ


def start() -> Path:
    return output.current().cwd


def project_checkout(project_dir: Path | None = None) -> ProjectPaths:
    """The project a file-writing command (``nndb migrate new``) edits (``edge.project_checkout``)."""
    return edge.project_checkout(environ=environ(), start=start(), project_dir=project_dir)


def resolve(stack: str, project_dir: Path | None = None) -> Resolved:
    """``edge.resolve`` with this invocation's environment and working directory."""
    return edge.resolve(stack, environ=environ(), start=start(), project_dir=project_dir)
