"""Resolution every command shares: project paths, config, environment, endpoints, credentials.

This is "the edge": the only place commands read ``os.environ`` and ``.env.db``.
"""

from __future__ import annotations

import os
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


def resolve(stack: str, project_dir: Path | None = None) -> Resolved:
    """Config for ``stack`` plus the process environment merged over ``.env.db``."""
    start = Path.cwd()
    root = project_dir or (Path(os.environ["NNDB_PROJECT_DIR"]) if os.environ.get("NNDB_PROJECT_DIR") else find_project_root(start))
    paths = ProjectPaths.at(root)
    config = load_environment(stack, config_dir=paths.config_dir)
    environ = effective_environment(os.environ, find_env_file(start) or find_env_file(root))
    return Resolved(stack=stack, paths=paths, config=config, environ=environ, endpoints=resolve_endpoints(config, environ))
