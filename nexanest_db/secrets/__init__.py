"""One secrets layer for the stacks and the post-apply hooks.

* ``catalogue`` — the one list: every credential's logical name, environment variable and policy,
  built from config (the fixed secrets plus each ``[services.<svc>]``'s); every other list derives from it.
* ``policy`` — what no source may deliver (the dev default outside local/dev, too-short keys).
* ``sources`` — the ``CredentialSource`` protocol, ``EnvSource`` (environment, ``*_FILE``, ``.env.db``),
  resolving and checking many secrets at once.
* ``vault`` — ``VaultSource`` (KV v2 through hvac, staging and prod); imported only when used.
* ``selection`` — ``source_for`` / ``credentials_for``: the source a config names.
* ``terraform_external`` — the query of the stack's ``data "external"`` source and reading it back.

The modules import each other in that order only (no cycle; tests/unit/test_secrets_package.py).
This package re-exports the public names, so ``from nexanest_db.secrets import ...`` keeps working.
See docs/secrets.md.
"""

from __future__ import annotations

from nexanest_db.secrets.catalogue import (
    BACKUP_KEY_MIN_LENGTH,
    DEFAULT_CATALOGUE,
    EXPORTER_DSN_FORBIDDEN,
    Catalogue,
    SecretSpec,
    ServiceSecrets,
    catalogue_for,
    required_secret_names,
)
from nexanest_db.secrets.policy import DEV_DEFAULT_PASSWORD, refuse_dev_default, refuse_weak
from nexanest_db.secrets.selection import credentials_for, source_for
from nexanest_db.secrets.sources import MAX_SECRET_FILE_BYTES, CredentialSource, EnvSource, SecretStatus, check_all, resolve_all
from nexanest_db.secrets.terraform_external import (
    catalogue_from_query,
    external_query,
    replicated_from_query,
    secrets_config_from_query,
    tls_from_query,
)

# The catalogue of the three services every stack served before services came from config (tests and docs use them).
SECRET_SPECS: tuple[SecretSpec, ...] = DEFAULT_CATALOGUE.specs
SECRET_NAMES: tuple[str, ...] = DEFAULT_CATALOGUE.names
TERRAFORM_SECRET_NAMES: tuple[str, ...] = DEFAULT_CATALOGUE.terraform_names
TLS_SECRET_NAMES: tuple[str, ...] = DEFAULT_CATALOGUE.tls_names


def spec_for(name: str) -> SecretSpec:
    """The default catalogue's entry for ``name`` (``Catalogue.spec`` for a stack's own)."""
    return DEFAULT_CATALOGUE.spec(name)


__all__ = [
    "BACKUP_KEY_MIN_LENGTH",
    "DEFAULT_CATALOGUE",
    "DEV_DEFAULT_PASSWORD",
    "EXPORTER_DSN_FORBIDDEN",
    "MAX_SECRET_FILE_BYTES",
    "SECRET_NAMES",
    "SECRET_SPECS",
    "TERRAFORM_SECRET_NAMES",
    "TLS_SECRET_NAMES",
    "Catalogue",
    "CredentialSource",
    "EnvSource",
    "SecretSpec",
    "SecretStatus",
    "ServiceSecrets",
    "catalogue_for",
    "catalogue_from_query",
    "check_all",
    "credentials_for",
    "external_query",
    "refuse_dev_default",
    "refuse_weak",
    "replicated_from_query",
    "required_secret_names",
    "resolve_all",
    "secrets_config_from_query",
    "source_for",
    "spec_for",
    "tls_from_query",
]
