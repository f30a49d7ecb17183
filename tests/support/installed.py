"""A Python environment where nndb is importable but its installed metadata is what a test says (missing, stale, or
with a third-party plugin), to run `python -m nexanest_db` in: the packages of this venv, seen through a directory of links."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

from tests.support.project import REPO_ROOT

TOOL_METADATA = ("nexanest_db-", "__editable__", "__editable___nexanest_db")


def site_with(directory: Path, *, entry_points: Mapping[str, str] | None = None, modules: Mapping[str, str] | None = None) -> Path:
    """``directory`` as a site: this venv's packages except nndb's own metadata, plus a dist-info of nndb whose
    ``[nexanest_db]`` group is ``entry_points`` (``None``: no nndb dist-info at all) and the plain ``modules`` given."""
    directory.mkdir(parents=True, exist_ok=True)
    purelib = Path(sysconfig.get_paths()["purelib"])
    for entry in purelib.iterdir():
        if not entry.name.startswith(TOOL_METADATA) and entry.suffix != ".pth":
            (directory / entry.name).symlink_to(entry)
    if entry_points is not None:
        dist = directory / "nexanest_db-0.0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nexanest-db\nVersion: 0.0.1\n", encoding="utf-8")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (dist / "entry_points.txt").write_text(f"[nexanest_db]\n{lines}", encoding="utf-8")
    # The package itself through a link, not the repository on the path: the repository root holds the
    # nexanest_db.egg-info that `pip install -e .` leaves there, which would be the very metadata under test.
    (directory / "nexanest_db").symlink_to(REPO_ROOT / "nexanest_db")
    for name, source in (modules or {}).items():
        (directory / f"{name}.py").write_text(source, encoding="utf-8")
    return directory


def run_nndb_in(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -S -m nexanest_db <args>`: no site-packages of its own, only ``site`` (with the package linked in) on the path."""
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(cwd), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-S", "-m", "nexanest_db", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120
    )
