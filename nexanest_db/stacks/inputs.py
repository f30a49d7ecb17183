"""Everything a stack needs, gathered once at the edge: config, endpoints, rendered files, SQL.

Stacks only wire constructs from a ``StackInputs``; all file and environment
reads happen here so the same inputs always give the same ``cdk.tf.json``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nexanest_db.config import Endpoints, EnvironmentConfig, ProjectPaths, config_file_for, load_environment, resolve_endpoints
from nexanest_db.errors import ConfigError
from nexanest_db.monitoring import IDENTITIES_FILE, MonitoringIdentities, load_identities
from nexanest_db.rendering import RenderedConfigs, render_configs


@dataclass(frozen=True, kw_only=True)
class SqlFile:
    relative_path: str  # e.g. "init/01-create-databases.sql", posix separators
    content: str


@dataclass(frozen=True, kw_only=True)
class StackInputs:
    stack: str
    paths: ProjectPaths
    config_file_hash: str  # this stack's config/<environment>.toml only
    sql_tree_hash: str
    config: EnvironmentConfig
    endpoints: Endpoints
    rendered: RenderedConfigs
    sql_files: tuple[SqlFile, ...]
    monitoring_file_hash: str  # monitoring/identities.toml only: what the hooks read
    identities: MonitoringIdentities
    # config/replica-bootstrap.sh, uploaded into every PostgreSQL replica (read only where replicas are declared).
    replica_bootstrap: str = ""

    def sql_under(self, prefix: str) -> tuple[SqlFile, ...]:
        return tuple(f for f in self.sql_files if f.relative_path.startswith(prefix.rstrip("/") + "/"))

    @property
    def config_hash(self) -> str:
        rendered = self.rendered
        return _digest([("postgres", rendered.postgres), ("timescale", rendered.timescale), ("redis", rendered.redis)])


def _digest(items: object) -> str:
    hasher = hashlib.sha256()
    for name, content in items:  # type: ignore[attr-defined]
        hasher.update(name.encode() + b"\0" + content.encode() + b"\0")
    return hasher.hexdigest()


def tree_hash(directory: Path) -> str:
    """Content digest of every file under ``directory`` (relative names and bytes, stable order)."""
    hasher = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        hasher.update(path.relative_to(directory).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return hasher.hexdigest()


def read_sql_tree(sql_dir: Path) -> tuple[SqlFile, ...]:
    """Every ``*.sql`` under ``sql/`` in a stable order, with machine-independent relative paths."""
    if not sql_dir.is_dir():
        raise ConfigError(f"{sql_dir}: SQL directory not found; the project needs sql/init, sql/schemas and sql/migrations")
    files = []
    for path in sorted(sql_dir.rglob("*.sql")):
        relative = path.relative_to(sql_dir).as_posix()
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"sql/{relative}: not UTF-8 text") from None
        files.append(SqlFile(relative_path=relative, content=content))
    return tuple(files)


def gather_inputs(stack: str, *, paths: ProjectPaths, environ: Mapping[str, str]) -> StackInputs:
    config = load_environment(stack, config_dir=paths.config_dir)
    return StackInputs(
        stack=stack,
        paths=paths,
        config_file_hash=hashlib.sha256(config_file_for(stack, paths.config_dir).read_bytes()).hexdigest(),
        sql_tree_hash=tree_hash(paths.sql_dir),
        config=config,
        endpoints=resolve_endpoints(config, environ),
        rendered=render_configs(config, templates_dir=paths.config_dir / "templates"),
        sql_files=read_sql_tree(paths.sql_dir),
        monitoring_file_hash=hashlib.sha256((paths.monitoring_dir / IDENTITIES_FILE).read_bytes()).hexdigest(),
        identities=load_identities(paths.monitoring_dir),
        replica_bootstrap=read_replica_bootstrap(paths.config_dir) if set(config.replicated_instances) - {"redis"} else "",
    )


REPLICA_BOOTSTRAP = "replica-bootstrap.sh"


def read_replica_bootstrap(config_dir: Path) -> str:
    path = config_dir / REPLICA_BOOTSTRAP
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; PostgreSQL replicas need it (restore it from git)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it as UTF-8 text ({exc}); restore it from git") from None
