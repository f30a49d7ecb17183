"""Which credential source an environment uses: ``source_for`` / ``credentials_for``.

Prod accepts only Vault (config validation says so too, this is the second lock). Vault's module
(hvac) is imported only when an environment uses it.
"""

from __future__ import annotations

from collections.abc import Mapping

from nexanest_db.config import DEV_DEFAULT_ENVIRONMENTS, EnvironmentConfig, SecretsConfig
from nexanest_db.errors import SecretsError
from nexanest_db.secrets.catalogue import DEFAULT_CATALOGUE, Catalogue, catalogue_for
from nexanest_db.secrets.sources import CredentialSource, EnvSource


def source_for(
    environment: str, secrets: SecretsConfig, environ: Mapping[str, str], catalogue: Catalogue = DEFAULT_CATALOGUE
) -> CredentialSource:
    """The credential source ``secrets`` names for ``environment``, answering for the secrets of ``catalogue``."""
    if secrets.source == "vault" and secrets.vault is not None:
        from nexanest_db.secrets.vault import VaultSource  # imported lazily: hvac is only needed for Vault environments

        return VaultSource.from_settings(environment=environment, settings=secrets.vault, environ=environ, catalogue=catalogue)
    if environment == "prod":
        raise SecretsError("prod: secrets.source must be 'vault'; prod never reads credentials from the environment or a default")
    return EnvSource(
        environment=environment, environ=environ, allow_dev_default=environment in DEV_DEFAULT_ENVIRONMENTS, catalogue=catalogue
    )


def credentials_for(config: EnvironmentConfig, environ: Mapping[str, str]) -> CredentialSource:
    """The credential source the environment's config names, for the secrets of its catalogue."""
    return source_for(config.environment, config.secrets, environ, catalogue_for(config))
