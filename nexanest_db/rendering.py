"""Render the per-environment database configuration files from ``config/templates/``.

The output is deterministic (settings sorted by key, no timestamps) because it
is uploaded into the containers through ``cdk.tf.json`` and reviewed in PRs. The paths the files
name (key files, the ACL file, the WAL archive) are the containers' own: their constructs define them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2

from nexanest_db.config import EnvironmentConfig
from nexanest_db.constructs import postgres_instance, redis_instance
from nexanest_db.constructs.database_container import TLS_CERT_PATH
from nexanest_db.errors import ConfigError

_TEMPLATES = {"postgres": "postgres.conf.j2", "timescale": "timescale.conf.j2", "redis": "redis.conf.j2"}


@dataclass(frozen=True, kw_only=True)
class RenderedConfigs:
    postgres: str
    timescale: str
    redis: str

    def for_instance(self, name: str) -> str:
        return {"postgres": self.postgres, "timescale": self.timescale, "redis": self.redis}[name]


def _postgres_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def _redis_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _environment(templates_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - these are config files, not HTML
    )


def _render(env: jinja2.Environment, template: str, context: Mapping[str, object]) -> str:
    try:
        return env.get_template(template).render(template=template, **context)
    except jinja2.TemplateNotFound:
        raise ConfigError(f"config/templates/{template}: template not found; restore it from git") from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"config/templates/{template}:{getattr(exc, 'lineno', '?')}: {exc.message}") from None


def render_configs(config: EnvironmentConfig, *, templates_dir: Path) -> RenderedConfigs:
    env = _environment(templates_dir)
    common = {"stack": config.stack, "environment": config.environment}

    tls = (
        {
            "cert_file": TLS_CERT_PATH,
            "key_file": postgres_instance.TLS_KEY_PATH,
            "min_protocol": config.tls.min_protocol,
            "hba_file": postgres_instance.HBA_PATH,
        }
        if config.tls.enabled
        else None
    )

    def postgres_like(instance: str) -> str:
        spec = config.instance(instance)
        settings = sorted((key, _postgres_value(value)) for key, value in spec.settings.items())
        return _render(
            env,
            _TEMPLATES[instance],
            {
                **common,
                "instance": instance,
                "container_port": spec.container_port,
                "pitr": config.backup.pitr,
                "wal_archive_dir": postgres_instance.WAL_ARCHIVE_DIR,
                "settings": settings,
                "tls": tls,
                # Without TLS the image's own pg_hba.conf serves, unless replicas need the replication line.
                "hba_file": postgres_instance.HBA_PATH if config.replicas_of(instance) else None,
            },
        )

    redis_settings = sorted((key, _redis_value(value)) for key, value in config.redis.settings.items())
    redis_tls = (
        {
            "cert_file": TLS_CERT_PATH,
            "key_file": redis_instance.TLS_KEY_PATH,
            # Redis takes a list of versions: the minimum and everything newer.
            "protocols": "TLSv1.2 TLSv1.3" if config.tls.min_protocol == "TLSv1.2" else "TLSv1.3",
        }
        if config.tls.enabled
        else None
    )
    redis = _render(
        env,
        _TEMPLATES["redis"],
        {
            **common,
            "container_port": config.redis.container_port,
            "acl_file": redis_instance.ACL_PATH,
            "settings": redis_settings,
            "tls": redis_tls,
        },
    )
    return RenderedConfigs(postgres=postgres_like("postgres"), timescale=postgres_like("timescale"), redis=redis)
