"""One secrets layer for the stacks and the post-apply hooks.

Every credential has a logical name (``SECRET_NAMES``). A ``CredentialSource``
answers ``get(name)`` with a ``pydantic.SecretStr`` (its ``repr``/``str`` never
show the value; call ``.get_secret_value()`` only at the point of use) or raises
``SecretsError`` naming the environment, the source and the variable/path/key,
never the value.

Sources: ``EnvSource`` (process environment and ``.env.db``, ``*_FILE``
variables, and the ADR dev default for local/dev only) and ``VaultSource``
(KV v2 through hvac). ``credentials_for`` picks the one the environment's config
names; prod accepts only Vault (enforced by config validation too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from nexanest_db.config import EnvironmentConfig
from nexanest_db.errors import SecretsError

DEV_DEFAULT_PASSWORD = "dev_password"


@dataclass(frozen=True, kw_only=True)
class SecretSpec:
    """One credential: its logical name, its environment variable and what it protects."""

    name: str
    env_var: str
    description: str


SECRET_SPECS: tuple[SecretSpec, ...] = (
    SecretSpec(name="postgres_superuser", env_var="POSTGRES_PASSWORD", description="PostgreSQL superuser"),
    SecretSpec(name="timescale_superuser", env_var="TIMESCALE_PASSWORD", description="TimescaleDB superuser"),
    SecretSpec(name="redis_default", env_var="REDIS_PASSWORD", description="Redis default user"),
    SecretSpec(name="auth_app", env_var="AUTH_DB_PASSWORD", description="auth service login role"),
    SecretSpec(name="portfolio_app", env_var="PORTFOLIO_DB_PASSWORD", description="portfolio service login role"),
    SecretSpec(name="analytics_app", env_var="ANALYTICS_DB_PASSWORD", description="analytics service login role"),
    SecretSpec(name="analytics_readonly", env_var="ANALYTICS_READONLY_PASSWORD", description="analytics read-only role"),
    SecretSpec(name="redis_auth", env_var="AUTH_REDIS_PASSWORD", description="auth service Redis ACL user"),
    SecretSpec(name="redis_portfolio", env_var="PORTFOLIO_REDIS_PASSWORD", description="portfolio service Redis ACL user"),
    SecretSpec(name="redis_analytics", env_var="ANALYTICS_REDIS_PASSWORD", description="analytics service Redis ACL user"),
)
SECRET_NAMES: tuple[str, ...] = tuple(spec.name for spec in SECRET_SPECS)
_SPEC_BY_NAME = {spec.name: spec for spec in SECRET_SPECS}


def spec_for(name: str) -> SecretSpec:
    try:
        return _SPEC_BY_NAME[name]
    except KeyError:
        raise SecretsError(f"unknown secret {name!r}; known: {', '.join(SECRET_NAMES)}") from None


class CredentialSource(Protocol):
    """Where credentials come from; ``describe`` says where ``name`` is looked up (no value)."""

    environment: str

    def get(self, name: str) -> SecretStr: ...

    def describe(self, name: str) -> str: ...


@dataclass(frozen=True, kw_only=True)
class EnvSource:
    """Environment variables (already merged with ``.env.db``) and ``*_FILE`` files."""

    environment: str
    environ: Mapping[str, str]
    allow_dev_default: bool

    def describe(self, name: str) -> str:
        var = spec_for(name).env_var
        return f"${var} or ${var}_FILE"

    def get(self, name: str) -> SecretStr:
        var = spec_for(name).env_var
        file_var = f"{var}_FILE"
        if self.environ.get(file_var):
            path = Path(self.environ[file_var])
            try:
                value = path.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise SecretsError(f"{self.environment}: {file_var} points at {path}, which cannot be read ({exc.strerror}); fix the path or unset {file_var}") from None
            if not value:
                raise SecretsError(f"{self.environment}: {file_var} points at {path}, which is empty")
            return SecretStr(value)
        if self.environ.get(var):
            return SecretStr(self.environ[var])
        if self.allow_dev_default:
            return SecretStr(DEV_DEFAULT_PASSWORD)
        raise SecretsError(f"{self.environment}: secret {name} is missing: set {var} or {file_var} (no default outside local/dev)")


def credentials_for(config: EnvironmentConfig, environ: Mapping[str, str]) -> CredentialSource:
    """The credential source the environment's config names."""
    if config.secrets.source == "vault":
        from nexanest_db.vault import VaultSource  # imported lazily: hvac is only needed for Vault environments

        return VaultSource.from_config(config, environ)
    return EnvSource(environment=config.environment, environ=environ, allow_dev_default=config.dev_defaults_allowed)
