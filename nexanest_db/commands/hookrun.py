"""What the hooks, migrate and backup commands share: building the run context at the edge.

Everything environment-dependent is read here from ``Resolved.environ`` (the process environment
over ``.env.db``): ``NNDB_BACKUP_DIR``, ``NNDB_BACKUP_REPOSITORY``, ``NNDB_DISABLE_PLUGINS``. Below this, nothing reads the
environment.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from nexanest_db.commands.common import Resolved
from nexanest_db.commands.output import console
from nexanest_db.config import BackupRepository
from nexanest_db.context import HookContext
from nexanest_db.errors import ConfigError
from nexanest_db.hook_manager import parse_disabled
from nexanest_db.repository import SshRepository, bind

LOGGER_NAME = "nexanest_db.hooks"
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_LOCK_TIMEOUT_S = 60.0
DEFAULT_STATEMENT_TIMEOUT_S = 300.0

__all__ = ["console"]  # commands import the shared console from here too


def configure_logging(verbose: bool) -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    return logger


def backup_dir_for(resolved: Resolved, override: Path | None) -> Path:
    """``--backup-dir`` > ``NNDB_BACKUP_DIR`` > ``<project>/<backup.directory>``, then ``/<stack>``.

    With ``[backup.repository]`` (or ``NNDB_BACKUP_REPOSITORY=ssh://...``) that directory is bound as
    the local cache of the off-host repository (``nexanest_db.repository``); ``NNDB_BACKUP_REPOSITORY=local``
    makes it the repository itself whatever the config says.
    """
    base = override or (Path(resolved.environ["NNDB_BACKUP_DIR"]) if resolved.environ.get("NNDB_BACKUP_DIR") else None)
    if base is None:
        base = resolved.paths.root / resolved.config.backup.directory
    directory = base / resolved.stack
    configured = repository_for(resolved)
    bind(directory, SshRepository.of(configured, resolved.stack) if configured is not None else None)
    return directory


def repository_for(resolved: Resolved) -> BackupRepository | None:
    """The off-host repository of ``resolved``'s environment, or None (the local directory is the repository)."""
    override = resolved.environ.get("NNDB_BACKUP_REPOSITORY", "").strip()
    configured = resolved.config.backup.repository
    if override == "local":
        return None
    if override:
        try:
            return BackupRepository(
                url=override,
                ssh_opts=list(configured.ssh_opts) if configured else [],
                lock_timeout_s=configured.lock_timeout_s if configured else 900.0,
            )
        except ValidationError:
            raise ConfigError(f"NNDB_BACKUP_REPOSITORY={override!r}: give ssh://user@host[:port]/absolute/path or 'local'") from None
    return configured


def disabled_plugins(resolved: Resolved, flags: list[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*parse_disabled(resolved.environ.get("NNDB_DISABLE_PLUGINS")), *(flags or [])]))


def build_context(
    resolved: Resolved,
    *,
    logger: logging.Logger,
    backup_dir: Path | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
    run_lock: bool = True,
) -> HookContext:
    return HookContext(
        stack=resolved.stack,
        config=resolved.config,
        endpoints=resolved.endpoints,
        credentials=resolved.credentials(),
        paths=resolved.paths,
        backup_dir=backup_dir_for(resolved, backup_dir),
        logger=logger,
        connect_timeout_s=connect_timeout_s,
        lock_timeout_s=lock_timeout_s,
        statement_timeout_s=statement_timeout_s,
        run_lock=run_lock,
        tool_environ=resolved.tool_environ,
    )


def endpoints_line(resolved: Resolved) -> str:
    e = resolved.endpoints
    return f"postgres {e.postgres.host}:{e.postgres.port}, timescale {e.timescale.host}:{e.timescale.port}, redis {e.redis.host}:{e.redis.port}"
