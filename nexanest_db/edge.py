"""The edge: where a run's inputs — files, the process environment, flags — become explicit values.

Entry points (``main.py``, ``nndb``'s ``cli.py``) hand ``os.environ`` and the working directory to
the functions here; everything below receives what they resolved (``Resolved``, an environment
mapping) and never reads ``os.environ`` itself (``tests/unit/test_layers.py`` enforces it).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
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
    """One stack's run inputs: project paths, config, the effective environment, endpoints.

    ``environ`` is the process environment over ``.env.db`` (what secrets and overrides come from);
    ``tool_environ`` is the process environment alone without ``PG*`` variables: the base of a
    client tool's environment (pg_dump needs ``PATH``; it must not see ``.env.db``'s secrets or a
    stray ``PGHOST``).
    """

    stack: str
    paths: ProjectPaths
    config: EnvironmentConfig
    environ: dict[str, str]
    endpoints: Endpoints
    tool_environ: dict[str, str] = field(default_factory=dict)

    def credentials(self) -> CredentialSource:
        """One source per command run: a Vault source logs in once and reads each path once."""
        return self._credentials

    @cached_property
    def _credentials(self) -> CredentialSource:
        return credentials_for(self.config, self.environ)


def _explicit_project(project_dir: Path | None, environ: Mapping[str, str]) -> Path | None:
    if project_dir is not None:
        return project_dir
    return Path(environ["NNDB_PROJECT_DIR"]) if environ.get("NNDB_PROJECT_DIR") else None


def project_root(*, environ: Mapping[str, str], start: Path, project_dir: Path | None = None) -> Path:
    """``--project-dir`` > ``NNDB_PROJECT_DIR`` > the project at or above ``start`` (cdktf.json + config/)."""
    explicit = _explicit_project(project_dir, environ)
    return find_project_root(explicit) if explicit is not None else find_project_root(start)


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
    explicit = _explicit_project(project_dir, environ)
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


def project_checkout(*, environ: Mapping[str, str], start: Path, project_dir: Path | None = None) -> ProjectPaths:
    """The project a file-writing command (``nndb migrate new``) edits: ``--project-dir`` >
    ``NNDB_PROJECT_DIR`` > the project at or above ``start``. Never a stack's shipped copy."""
    return ProjectPaths.at(_explicit_project(project_dir, environ) or find_project_root(start))


def tool_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The process environment without ``PG*``: the base a client tool's environment is built on."""
    return {k: v for k, v in environ.items() if not k.startswith("PG")}


def environment_near(*, environ: Mapping[str, str], start: Path) -> dict[str, str]:
    """The process environment over the nearest ``.env.db`` at or above ``start`` (no project needed)."""
    return effective_environment(environ, find_env_file(start))


def resolve(stack: str, *, environ: Mapping[str, str], start: Path, project_dir: Path | None = None) -> Resolved:
    """Config for ``stack`` plus ``environ`` (the process environment) merged over ``.env.db``."""
    paths = project_paths(start, project_dir, environ)
    config = load_environment(stack, config_dir=paths.config_dir)
    merged = effective_environment(environ, find_env_file(start) or find_env_file(paths.root))
    return Resolved(
        stack=stack,
        paths=paths,
        config=config,
        environ=merged,
        endpoints=resolve_endpoints(config, merged),
        tool_environ=tool_environment(environ),
    )


def synth_environment(*, environ: Mapping[str, str], root: Path) -> dict[str, str]:
    """What synth reads: the process environment over the project's ``.env.db``."""
    return effective_environment(environ, find_env_file(root))


JSII_QUIET_VARIABLE = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"


def quiet_node_end_of_life_warning(environ: MutableMapping[str, str]) -> None:
    """jsii prints a boxed warning on every run that Node 20 is past end-of-life; the pinned cdktf 0.21
    works on it, and the box would bury the one-line errors. The entry points hand ``os.environ``
    (the jsii runtime reads the process environment) before the first ``import cdktf``."""
    environ.setdefault(JSII_QUIET_VARIABLE, "20")
