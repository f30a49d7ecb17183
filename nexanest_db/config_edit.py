"""Edits nndb itself makes to a config file: only ``[replication.<instance>] primary`` (after a failover).

Through tomlkit, so the file keeps its comments, order and layout: the change is one reviewable line
in the operator's commit. The edited text is validated by the same loader as every run before it
replaces the file (atomically, same mode), so a failed edit leaves the file as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from nexanest_db.config import config_file_for, load_environment
from nexanest_db.errors import ConfigError


def set_primary(stack: str, config_dir: Path, *, instance: str, node: str) -> Path:
    """Write ``primary = "<node>"`` into ``[replication.<instance>]`` of the stack's config file; returns its path."""
    path = config_file_for(stack, config_dir)
    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, TOMLKitError) as exc:
        raise ConfigError(f"{path}: cannot edit it ({exc}); set [replication.{instance}] primary = {node!r} by hand") from None
    replication = document.setdefault("replication", tomlkit.table())
    table = replication.setdefault(instance, tomlkit.table())
    table["primary"] = node
    text = tomlkit.dumps(document)
    directory = path.parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, path.stat().st_mode & 0o7777)
        # Validate the edited file exactly as a run would read it, under the real name's stack.
        probe = Path(temp)
        check_dir = Path(tempfile.mkdtemp(prefix="nndb-config-check-"))
        try:
            (check_dir / path.name).write_text(text, encoding="utf-8")
            load_environment(stack, config_dir=check_dir)
        finally:
            (check_dir / path.name).unlink(missing_ok=True)
            check_dir.rmdir()
        os.replace(probe, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
