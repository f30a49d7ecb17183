"""What the hooks, migrate and backup commands share: building the run context at the edge.

Everything environment-dependent is read here from ``Resolved.environ`` (the process environment
over ``.env.db``): ``NNDB_BACKUP_DIR``, ``NNDB_DISABLE_PLUGINS``. Below this, nothing reads the
environment.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from nexanest_db.commands.common import Resolved
from nexanest_db.commands.output import console
from nexanest_db.context import HookContext
from nexanest_db.plugins.manager import parse_disabled

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
    """``--backup-dir`` > ``NNDB_BACKUP_DIR`` > ``<project>/<backup.directory>``, then ``/<stack>``."""
    base = override or (Path(resolved.environ["NNDB_BACKUP_DIR"]) if resolved.environ.get("NNDB_BACKUP_DIR") else None)
    if base is None:
        base = resolved.paths.root / resolved.config.backup.directory
    return base / resolved.stack


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
