"""What every e2e run on the real engine ends with: its resources removed by prefix, its phase timings recorded."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from tests.support.project import REPO_ROOT

TIMINGS_FILE = REPO_ROOT / "benchmarks" / "out" / "e2e-timings.txt"  # scripts/test.sh prints it after the run


def teardown(prefix: str) -> None:
    """Remove the containers (with anonymous volumes), networks and volumes named with this run's prefix, nothing else."""

    def listed(*args: str) -> list[str]:
        out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60).stdout.split()
        return [name for name in out if name.startswith(prefix)]

    for name in listed("ps", "-a", "--filter", f"name={prefix}", "--format", "{{.Names}}"):
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, timeout=120)
    for name in listed("network", "ls", "--filter", f"name={prefix}", "--format", "{{.Name}}"):
        subprocess.run(["docker", "network", "rm", name], capture_output=True, timeout=60)
    for name in listed("volume", "ls", "--filter", f"name={prefix}", "--format", "{{.Name}}"):
        subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True, timeout=60)


def record_phases(label: str, phases: Mapping[str, float]) -> None:
    """One line ``<label> phases: <phase> <seconds>s, ...`` appended to TIMINGS_FILE."""
    summary = ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in phases.items())
    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with TIMINGS_FILE.open("a") as timings:
        timings.write(f"{label} phases: {summary}\n")
