"""Edits nndb itself makes to a config file: ``[replication.<instance>] primary`` (after a failover) and
``[<instance>] image`` (``nndb upgrade``, which puts the file's previous text back on a rollback).

Through tomlkit, so the file keeps its comments, order and layout: the change is one reviewable line
in the operator's commit. The edited text is validated by the same loader as every run before it
replaces the file (atomically, same mode), so a failed edit leaves the file as it was.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
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
    write_validated(stack, path, tomlkit.dumps(document))
    return path


@dataclass(frozen=True, kw_only=True)
class ImageEdit:
    """``[<instance>] image`` changed in the stack's config file: its text before and after (both valid)."""

    path: Path
    stack: str
    before: str
    after: str

    def write(self) -> None:
        write_validated(self.stack, self.path, self.after)

    def revert(self) -> None:
        """The file's previous text, exactly (comments and layout included)."""
        write_validated(self.stack, self.path, self.before)


def image_edit(stack: str, config_dir: Path, *, instance: str, image: str) -> ImageEdit:
    """The edit ``image = "<image>"`` in ``[<instance>]``, checked by the loader (prod: a digest) but not written yet."""
    path = config_file_for(stack, config_dir)
    try:
        before = path.read_text(encoding="utf-8")
        document = tomlkit.parse(before)
    except (OSError, TOMLKitError) as exc:
        raise ConfigError(f"{path}: cannot edit it ({exc}); set [{instance}] image = {image!r} by hand") from None
    table = document.get(instance)
    if not isinstance(table, dict) or "image" not in table:
        raise ConfigError(f"{path}: no [{instance}] image to change; add it by hand first")
    table["image"] = image
    after = tomlkit.dumps(document)
    validate_text(stack, path, after)
    return ImageEdit(path=path, stack=stack, before=before, after=after)


def validate_text(stack: str, path: Path, text: str) -> None:
    """Load ``text`` exactly as a run would read ``path``, under the real file name's stack (``ConfigError`` if not)."""
    check_dir = Path(tempfile.mkdtemp(prefix="nndb-config-check-"))
    try:
        (check_dir / path.name).write_text(text, encoding="utf-8")
        try:
            load_environment(stack, config_dir=check_dir)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(str(check_dir / path.name), str(path))) from None
    finally:
        (check_dir / path.name).unlink(missing_ok=True)
        check_dir.rmdir()


def write_validated(stack: str, path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (atomically, same mode) once the loader accepts it as ``stack``'s config."""
    directory = path.parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, path.stat().st_mode & 0o7777)
        validate_text(stack, path, text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
