"""The Swarm hand-off: which Docker secrets the stack publishes for the application services, and their names.

ADR-015 phase 2: staging's application services run on Docker Swarm and read their database
credentials as Docker secrets through the ``*_FILE`` convention. For every service listed under
``[swarm.services]`` the stack publishes each of its credentials (``roles.py``: the PostgreSQL login
role's password, the read-only role's where the service has one, the Redis ACL user's password) as

    <secret_prefix>-<service>-<credential>-v<generation>      e.g. nexanest-staging-auth-db_password-v3

Docker secrets are immutable, so a rotation is a new generation: the operator bumps
``[swarm.services.<service>] generation`` with the new value (the generation is declared in config,
reviewed in the PR diff of ``cdk.tf.json``; it is never derived from the value). The stack keeps the
``keep_previous`` generations before it published, so services still mounting the old secret keep
running until they are updated; a generation older than that is removed by the next deploy (Docker
refuses while a service still uses it, which stops the apply: ``nndb swarm secrets`` says which).

Inside a service the file name is stable across generations (``target`` ``<service>_<credential>``,
``/run/secrets/<service>_<credential>``) and its variable is the credential's own ``*_FILE`` name
(``AUTH_DB_PASSWORD_FILE``), so moving to a new generation changes only the secret's ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexanest_db.config import SWARM_SECRET_NAME_MAX, EnvironmentConfig, SwarmConfig
from nexanest_db.roles import ServiceRoles, service_roles
from nexanest_db.secrets import spec_for

# The credential words of the names, the same words as the Vault keys of docs/secrets.md.
DB_PASSWORD = "db_password"  # noqa: S105 -- a name part, not a value
READONLY_PASSWORD = "readonly_password"  # noqa: S105
REDIS_PASSWORD = "redis_password"  # noqa: S105
CREDENTIALS: tuple[str, ...] = (DB_PASSWORD, READONLY_PASSWORD, REDIS_PASSWORD)

# Labels on every published secret: what `nndb swarm secrets` lists them by (besides the standard labels).
STACK_LABEL = "com.nexanest.stack"
CREDENTIAL_LABEL = "com.nexanest.swarm.credential"
GENERATION_LABEL = "com.nexanest.swarm.generation"
SERVICE_LABEL = "com.nexanest.service"  # the standard label (constructs.shared.standard_labels): the application service


def secret_name(prefix: str, service: str, credential: str, generation: int) -> str:
    """``<prefix>-<service>-<credential>-v<generation>``; config validation keeps it within Docker's 64 characters."""
    if credential not in CREDENTIALS:
        raise ValueError(f"unknown credential {credential!r}; known: {', '.join(CREDENTIALS)}")
    if generation < 1:
        raise ValueError(f"generation must be >= 1, got {generation}")
    name = f"{prefix}-{service}-{credential}-v{generation}"
    if len(name) > SWARM_SECRET_NAME_MAX:
        raise ValueError(f"{name}: longer than Docker's {SWARM_SECRET_NAME_MAX} characters")
    return name


@dataclass(frozen=True, kw_only=True)
class PublishedSecret:
    """One Docker secret the stack publishes on the Swarm manager: a credential at one generation."""

    service: str
    credential: str  # db_password, readonly_password, redis_password
    secret: str  # its logical secret (nexanest_db.secrets), e.g. auth_app
    generation: int
    current: bool  # the generation services should use; the others are kept until they have moved
    name: str

    @property
    def target(self) -> str:
        """The file name inside the service (``/run/secrets/<target>``): the same for every generation."""
        return f"{self.service}_{self.credential}"

    @property
    def file_variable(self) -> str:
        """The service's ``*_FILE`` variable for it: the credential's own variable (``AUTH_DB_PASSWORD_FILE``)."""
        return f"{spec_for(self.secret).env_var}_FILE"


def service_credentials(roles: ServiceRoles) -> tuple[tuple[str, str], ...]:
    """(credential word, logical secret) of every credential one service has."""
    pairs = [(DB_PASSWORD, roles.app.secret)]
    if roles.readonly is not None:
        pairs.append((READONLY_PASSWORD, roles.readonly.secret))
    pairs.append((REDIS_PASSWORD, roles.redis_secret))
    return tuple(pairs)


def generations(swarm: SwarmConfig, service: str) -> tuple[int, ...]:
    """The generations of ``service`` that stay published: the current one and up to ``keep_previous`` before it."""
    current = swarm.services[service].generation
    return tuple(range(max(1, current - swarm.keep_previous), current + 1))


def secret_prefix(config: EnvironmentConfig) -> str:
    assert config.swarm is not None
    return config.swarm.secret_prefix or config.name_prefix


def published_secrets(config: EnvironmentConfig) -> tuple[PublishedSecret, ...]:
    """Every Docker secret the stack publishes, in a stable order (service, credential, generation); empty without ``[swarm]``."""
    swarm = config.swarm
    if swarm is None:
        return ()
    prefix = secret_prefix(config)
    published = []
    for service in sorted(swarm.services):
        current = swarm.services[service].generation
        for credential, secret in service_credentials(service_roles(service, config.services[service])):
            for generation in generations(swarm, service):
                published.append(
                    PublishedSecret(
                        service=service,
                        credential=credential,
                        secret=secret,
                        generation=generation,
                        current=generation == current,
                        name=secret_name(prefix, service, credential, generation),
                    )
                )
    return tuple(published)


def swarm_secret_names(config: EnvironmentConfig) -> tuple[str, ...]:
    """The logical secrets the published Docker secrets carry (what the stack's data source must return)."""
    return tuple(dict.fromkeys(p.secret for p in published_secrets(config)))
