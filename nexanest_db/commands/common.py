"""Resolution every command shares: project paths, config, environment, endpoints, credentials.

This is "the edge": the only place commands read ``os.environ`` and ``.env.db``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from nexanest_db.config import (
    Endpoints,
    EnvironmentConfig,
    ProjectPaths,
    effective_environment,
    find_env_file,
    find_project_root,
    load_environment,
    resolve_endpoints,
)
from nexanest_db.errors import ConfigError
from nexanest_db.secrets import CredentialSource, credentials_for


@dataclass(frozen=True, kw_only=True)
class Resolved:
    stack: str
    paths: ProjectPaths
    config: EnvironmentConfig
    environ: dict[str, str]
    endpoints: Endpoints

    def credentials(self) -> CredentialSource:
        """One source per command run: a Vault source logs in once and reads each path once."""
        return self._credentials

    @cached_property
    def _credentials(self) -> CredentialSource:
        return credentials_for(self.config, self.environ)


def project_paths(start: Path, project_dir: Path | None, environ: Mapping[str, str]) -> ProjectPaths:
    """``--project-dir`` > ``NNDB_PROJECT_DIR`` > the project at or above ``start``.

    ``NNDB_CONFIG_DIR``/``NNDB_SQL_DIR`` (relative to ``start``) are set by the post-apply resource
    to the copies of the config file and sql/ shipped in the stack directory: the hooks then run exactly
    what was planned, and need no project around them (a Terraform Cloud agent has only the stack
    directory; the root, where backups go by default, is then ``start``). ``NNDB_MONITORING_DIR``
    (the shipped copy of monitoring/, for the exporters' identities) comes with them.
    """
    config_dir, sql_dir = environ.get("NNDB_CONFIG_DIR"), environ.get("NNDB_SQL_DIR")
    if bool(config_dir) != bool(sql_dir):
        raise ConfigError("NNDB_CONFIG_DIR and NNDB_SQL_DIR go together: set both or neither")
    explicit = project_dir or (Path(environ["NNDB_PROJECT_DIR"]) if environ.get("NNDB_PROJECT_DIR") else None)
    if config_dir and sql_dir:
        try:
            root = explicit or find_project_root(start)
        except ConfigError:
            root = start
        monitoring_dir = environ.get("NNDB_MONITORING_DIR")
        return ProjectPaths(
            root=root, config_dir=start / config_dir, sql_dir=start / sql_dir, monitoring=start / monitoring_dir if monitoring_dir else None
        )
    return ProjectPaths.at(explicit or find_project_root(start))


def project_checkout(project_dir: Path | None = None) -> ProjectPaths:
    """The project a file-writing command (``nndb migrate new``) edits: ``--project-dir`` >
    ``NNDB_PROJECT_DIR`` > the project at or above the current directory. Never a stack's shipped copy."""
    explicit = project_dir or (Path(os.environ["NNDB_PROJECT_DIR"]) if os.environ.get("NNDB_PROJECT_DIR") else None)
    return ProjectPaths.at(explicit or find_project_root(Path.cwd()))


def resolve(stack: str, project_dir: Path | None = None) -> Resolved:
    """Config for ``stack`` plus the process environment merged over ``.env.db``."""
    start = Path.cwd()
    paths = project_paths(start, project_dir, os.environ)
    root = paths.root
    config = load_environment(stack, config_dir=paths.config_dir)
    environ = effective_environment(os.environ, find_env_file(start) or find_env_file(root))
    return Resolved(stack=stack, paths=paths, config=config, environ=environ, endpoints=resolve_endpoints(config, environ))
