"""Runbooks under docs/runbooks/ are what an on-call engineer types: tests run their ``sh`` blocks as written.

A runbook marks the commands a test runs as fenced ``sh`` blocks; illustrations that cannot run here
(a `vault kv put`, a `cdktf deploy` of prod) are fenced as ``console`` and name the test that covers
them instead.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.local_servers import CHILD_PYTHONPATH

SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
SECTION = re.compile(r"^## ", re.M)


def sh_blocks(runbook: Path, *, section: str | None = None) -> list[str]:
    """The ``sh`` blocks of ``runbook`` in order; only those under the ``## <section>...`` heading if given."""
    text = runbook.read_text(encoding="utf-8")
    if section is not None:
        parts = [part for part in SECTION.split(text) if part.startswith(section)]
        if len(parts) != 1:
            raise AssertionError(f"{runbook.name}: expected one section starting '## {section}', found {len(parts)}")
        text = parts[0]
    return SH_BLOCK.findall(text)


def run_blocks(blocks: list[str], *, cwd: Path, environ: Mapping[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The blocks in one bash (``set -euo pipefail``), from ``cwd``, with only ``environ`` (plus PATH/HOME)."""
    if not blocks:
        raise AssertionError("no sh blocks to run")
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(cwd), **CHILD_PYTHONPATH, **environ}
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
