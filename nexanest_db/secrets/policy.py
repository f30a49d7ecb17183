"""What no source may deliver: the ADR dev default outside local/dev, a too-short key, characters a consumer cannot take."""

from __future__ import annotations

from nexanest_db.config import DEV_DEFAULT_ENVIRONMENTS
from nexanest_db.errors import SecretsError
from nexanest_db.secrets.catalogue import SecretSpec

DEV_DEFAULT_PASSWORD = "dev_password"  # noqa: S105 -- the ADR's public local/dev default, refused elsewhere


def refuse_dev_default(environment: str, name: str, location: str, value: str) -> None:
    """Outside local/dev the ADR dev default is never a credential, whichever source delivers it."""
    if environment not in DEV_DEFAULT_ENVIRONMENTS and value == DEV_DEFAULT_PASSWORD:
        raise SecretsError(
            f"{environment}: secret {name} from {location} is the local/dev default password; "
            "store a real secret there (defaults are refused outside local/dev)"
        )


def refuse_weak(environment: str, spec: SecretSpec, location: str, value: str) -> None:
    """Outside local/dev: the dev default, and a value shorter than the secret's ``min_length``, are refused.

    Everywhere: a character the secret's consumer cannot take (``SecretSpec.forbidden``).
    """
    name = spec.name
    refuse_dev_default(environment, name, location, value)
    if any(c in spec.forbidden for c in value):
        raise SecretsError(
            f"{environment}: secret {name} from {location} contains whitespace, a quote or a backslash, which its consumer "
            "(the PostgreSQL exporter) cannot use; store a value without them (e.g. openssl rand -hex 24)"
        )
    if environment not in DEV_DEFAULT_ENVIRONMENTS and len(value) < spec.min_length:
        raise SecretsError(
            f"{environment}: secret {name} from {location} is shorter than {spec.min_length} characters; "
            "store a long random value there (e.g. openssl rand -base64 32)"
        )
