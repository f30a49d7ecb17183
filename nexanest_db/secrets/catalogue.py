"""The one catalogue of secrets: every credential's logical name, environment variable and policy.

Every other list of secret names derives from here: the superuser, Redis default, monitoring,
TLS, replication and backup-key names below, the per-service entries (``service_secrets``: one
``<svc>_app``, an optional ``<svc>_readonly`` and one ``redis_<svc>`` per ``[services.<svc>]``
table), what Terraform gets (``Catalogue.required(terraform_only=True)``), what ``nndb secrets
check`` resolves, what the hooks and the stack ask for (``nexanest_db.roles``,
``nexanest_db.monitoring``, ``nexanest_db.client_tls``).

A service's secrets are derived from its name, each overridable in ``[services.<svc>.secrets]``:
environment variables ``<SVC>_DB_PASSWORD``, ``<SVC>_READONLY_PASSWORD``, ``<SVC>_REDIS_PASSWORD``
(with their ``*_FILE`` and ``*_PREVIOUS`` variants); in Vault, an explicit
``[secrets.vault.secrets]`` reference, else ``<secrets.vault.services_path>/<svc>`` with the keys
``db_password``, ``readonly_password``, ``redis_password`` (docs/secrets.md).

This module imports only ``nexanest_db.config`` and ``nexanest_db.errors``, so every layer can use it
without an import cycle (tests/unit/test_secrets_package.py checks the package's import graph).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from nexanest_db.config import ENDPOINT_VARIABLES, EnvironmentConfig, ServiceConfig
from nexanest_db.errors import ConfigError, SecretsError

BACKUP_KEY_MIN_LENGTH = 16  # characters (nexanest_db.backup_crypto derives the file keys with HKDF-SHA256)
EXPORTER_DSN_FORBIDDEN = " \t\r\n'\"\\"  # whitespace, quotes, backslash

# --- the fixed names (a secret NAME, never a value) --------------------------------------------------
SUPERUSER_SECRETS: dict[str, str] = {"postgres": "postgres_superuser", "timescale": "timescale_superuser"}
REDIS_DEFAULT_SECRET = "redis_default"  # noqa: S105
# The secret each exporter logs in with (monitoring/identities.toml names the roles).
MONITOR_SECRETS: dict[str, str] = {"postgres": "postgres_monitor", "timescale": "timescale_monitor", "redis": "redis_monitor"}
BACKUP_KEY_SECRET = "backup_encryption_key"  # noqa: S105
CA_SECRET = "tls_ca_cert"  # noqa: S105
# Each server's certificate and private key (PEM), uploaded into its container with tls.enabled.
SERVER_TLS_SECRETS: dict[str, tuple[str, str]] = {
    "postgres": ("postgres_tls_cert", "postgres_tls_key"),
    "timescale": ("timescale_tls_cert", "timescale_tls_key"),
    "redis": ("redis_tls_cert", "redis_tls_key"),
}
# The replication role's password per PostgreSQL instance: the PITR repository (barman, backup.pitr) and the
# streaming replicas ([replication.<instance>]) log in with it.
REPLICATION_SECRETS: dict[str, str] = {"postgres": "postgres_replication", "timescale": "timescale_replication"}
# The Redis replicas' ACL user on the primary (masteruser/masterauth), only where Redis has replicas.
REDIS_REPLICATION_SECRET = "redis_replication"  # noqa: S105

# Keys under <secrets.vault.services_path>/<service> when [secrets.vault.secrets] names none.
VAULT_SERVICE_KEYS: dict[str, str] = {"app": "db_password", "readonly": "readonly_password", "redis": "redis_password"}
# Variables the tool reads for something else: a secret may never be one of them.
_RESERVED_ENV_PREFIXES = ("VAULT_", "NNDB_", "TFC_")

_INSTANCE_LABEL = {"postgres": "PostgreSQL", "timescale": "TimescaleDB", "redis": "Redis"}


def app_secret(service: str) -> str:
    """The secret of the service's login role ``<service>_app``."""
    return f"{service}_app"


def readonly_secret(service: str) -> str:
    """The secret of the service's read-only role ``<service>_readonly`` (``readonly_role = true``)."""
    return f"{service}_readonly"


def redis_secret(service: str) -> str:
    """The secret of the service's Redis ACL user ``<service>``."""
    return f"redis_{service}"


@dataclass(frozen=True, kw_only=True)
class SecretSpec:
    """One credential: its logical name, its environment variable and what it protects.

    ``terraform``: whether the stack needs the value at plan time (the ``data "external"`` source
    returns only those). ``min_length``: outside local/dev a shorter value is refused (characters),
    whichever source delivers it. ``tls``: a PEM the environment needs only with ``tls.enabled``
    (no dev default either way). ``service``/``vault_key``: a per-service secret, and its key under
    ``<secrets.vault.services_path>/<service>`` when Vault has no explicit reference for it.
    """

    name: str
    env_var: str
    description: str
    terraform: bool = True
    min_length: int = 0
    tls: bool = False  # needed only when the environment enables TLS (``required``)
    # Characters the consumer cannot take, refused in every environment: postgres_exporter 0.11.1
    # rejects a DSN whose password has whitespace or quotes, and then logs that DSN, password included.
    forbidden: str = ""
    pitr: bool = False  # needed where the backup policy has pitr = true (the replication roles)
    # Needed where this instance has replicas ([replication.<instance>]), and then Terraform needs it too: the
    # replica containers get it as a file (docs/topology.md). With pitr or replica_of set, ``terraform`` says only
    # that Terraform may need it; ``Catalogue.required`` decides per environment.
    replica_of: str | None = None
    service: str | None = None
    vault_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class ServiceSecrets:
    """What the catalogue needs of one service: its name, whether it has a read-only role, its variables."""

    service: str
    readonly: bool
    db_password_env: str
    readonly_password_env: str
    redis_password_env: str

    @classmethod
    def derived(cls, service: str, *, readonly: bool) -> ServiceSecrets:
        upper = service.upper()
        return cls(
            service=service,
            readonly=readonly,
            db_password_env=f"{upper}_DB_PASSWORD",
            readonly_password_env=f"{upper}_READONLY_PASSWORD",
            redis_password_env=f"{upper}_REDIS_PASSWORD",
        )

    @classmethod
    def of(cls, service: str, config: ServiceConfig) -> ServiceSecrets:
        """The service's entry: derived from its name, overridden by ``[services.<service>.secrets]``."""
        derived = cls.derived(service, readonly=config.readonly_role)
        names = config.secrets
        return cls(
            service=service,
            readonly=config.readonly_role,
            db_password_env=names.db_password_env or derived.db_password_env,
            readonly_password_env=names.readonly_password_env or derived.readonly_password_env,
            redis_password_env=names.redis_password_env or derived.redis_password_env,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "service": self.service,
            "readonly": self.readonly,
            "db_password_env": self.db_password_env,
            "readonly_password_env": self.readonly_password_env,
            "redis_password_env": self.redis_password_env,
        }


# The services a query without a "services" field means: what every stack served before services came
# from config, so a cdk.tf.json synthesized then (and the three services' synth output) stays as it was.
LEGACY_SERVICES: tuple[ServiceSecrets, ...] = (
    ServiceSecrets.derived("auth", readonly=False),
    ServiceSecrets.derived("portfolio", readonly=False),
    ServiceSecrets.derived("analytics", readonly=True),
)


def _fixed_head() -> tuple[SecretSpec, ...]:
    return (
        SecretSpec(name=SUPERUSER_SECRETS["postgres"], env_var="POSTGRES_PASSWORD", description="PostgreSQL superuser"),
        SecretSpec(name=SUPERUSER_SECRETS["timescale"], env_var="TIMESCALE_PASSWORD", description="TimescaleDB superuser"),
        SecretSpec(name=REDIS_DEFAULT_SECRET, env_var="REDIS_PASSWORD", description="Redis default user"),
    )


def _fixed_tail() -> tuple[SecretSpec, ...]:
    tls = tuple(
        SecretSpec(name=name, env_var=name.upper(), description=f"{_INSTANCE_LABEL[instance]} server {what} (PEM)", tls=True)
        for instance, pair in SERVER_TLS_SECRETS.items()
        for name, what in zip(pair, ("certificate", "private key"), strict=True)
    )
    return (
        # The exporters' least-privilege logins (monitoring/identities.toml); the exporter containers get them as files.
        SecretSpec(
            name=MONITOR_SECRETS["postgres"],
            env_var="POSTGRES_MONITOR_PASSWORD",
            description="PostgreSQL exporter's monitoring role",
            forbidden=EXPORTER_DSN_FORBIDDEN,
        ),
        SecretSpec(
            name=MONITOR_SECRETS["timescale"],
            env_var="TIMESCALE_MONITOR_PASSWORD",
            description="TimescaleDB exporter's monitoring role",
            forbidden=EXPORTER_DSN_FORBIDDEN,
        ),
        SecretSpec(name=MONITOR_SECRETS["redis"], env_var="REDIS_MONITOR_PASSWORD", description="Redis exporter's ACL user"),
        # Only nndb itself uses the backup key (backups are taken and restored by the hooks and `nndb backup`): Terraform never sees it.
        SecretSpec(
            name=BACKUP_KEY_SECRET,
            env_var="BACKUP_ENCRYPTION_KEY",
            description="backup files' encryption key",
            terraform=False,
            min_length=BACKUP_KEY_MIN_LENGTH,
        ),
        # TLS (only with tls.enabled): the CA bundle only clients (nndb) need; the server pairs are uploaded into the containers.
        # The CA is public; Terraform gets it too because the Redis health check (redis-cli --tls) verifies the server with it.
        SecretSpec(name=CA_SECRET, env_var="TLS_CA_CERT", description="CA bundle (PEM) clients verify the servers with", tls=True),
        *tls,
        # The replication role: the backup repository (barman, backup.pitr) streams WAL and base backups with it, and
        # streaming replicas bootstrap and stream with it ([replication.<instance>]).
        *(
            SecretSpec(
                name=name,
                env_var=f"{instance.upper()}_REPLICATION_PASSWORD",
                description=f"{_INSTANCE_LABEL[instance]} replication role (PITR repository, replicas)",
                pitr=True,
                replica_of=instance,
            )
            for instance, name in REPLICATION_SECRETS.items()
        ),
        # The Redis replicas' ACL user on the primary (masterauth): written as one plain token into the replica's config file.
        SecretSpec(
            name=REDIS_REPLICATION_SECRET,
            env_var="REDIS_REPLICATION_PASSWORD",
            description="Redis replicas' ACL user on the primary",
            replica_of="redis",
            forbidden=EXPORTER_DSN_FORBIDDEN,
        ),
    )


@dataclass(frozen=True, kw_only=True)
class _ServiceCredential:
    """One kind of per-service secret: how its name, variable and description follow from the service."""

    kind: str  # the key in VAULT_SERVICE_KEYS
    name: Callable[[str], str]
    env_var: Callable[[ServiceSecrets], str]
    description: str  # "{service} ..."
    needed: Callable[[ServiceSecrets], bool] = lambda _service: True


# In this order: every login role first, then the read-only roles, then the Redis users (the catalogue's stable order).
_SERVICE_CREDENTIALS: tuple[_ServiceCredential, ...] = (
    _ServiceCredential(kind="app", name=app_secret, env_var=lambda s: s.db_password_env, description="{service} service login role"),
    _ServiceCredential(
        kind="readonly",
        name=readonly_secret,
        env_var=lambda s: s.readonly_password_env,
        description="{service} read-only role",
        needed=lambda s: s.readonly,
    ),
    _ServiceCredential(
        kind="redis", name=redis_secret, env_var=lambda s: s.redis_password_env, description="{service} service Redis ACL user"
    ),
)


def service_specs(services: Iterable[ServiceSecrets]) -> tuple[SecretSpec, ...]:
    """The per-service secrets: every login role first, then the read-only roles, then the Redis users."""
    services = tuple(services)
    return tuple(
        SecretSpec(
            name=credential.name(s.service),
            env_var=credential.env_var(s),
            description=credential.description.format(service=s.service),
            service=s.service,
            vault_key=VAULT_SERVICE_KEYS[credential.kind],
        )
        for credential in _SERVICE_CREDENTIALS
        for s in services
        if credential.needed(s)
    )


@dataclass(frozen=True, kw_only=True)
class Catalogue:
    """Every secret of one stack, in a stable order; build it with ``catalogue_for`` or ``build_catalogue``."""

    services: tuple[ServiceSecrets, ...]
    specs: tuple[SecretSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)

    @property
    def terraform_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs if spec.terraform)

    @property
    def tls_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs if spec.tls)

    def spec(self, name: str) -> SecretSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise SecretsError(f"unknown secret {name!r}; known: {', '.join(self.names)}")

    def required(self, *, tls: bool, pitr: bool, replicated: tuple[str, ...] = (), terraform_only: bool = False) -> tuple[str, ...]:
        """The secrets a stack needs: the TLS ones only with ``tls``; a replication one where ``pitr`` (nndb's, for
        barman) or its instance is in ``replicated`` (then Terraform's too: the replica containers get it)."""

        def needed(spec: SecretSpec) -> bool:
            if spec.tls and not tls:
                return False
            if spec.pitr or spec.replica_of:
                for_replicas = spec.replica_of in replicated
                return for_replicas if terraform_only else for_replicas or (spec.pitr and pitr)
            return spec.terraform or not terraform_only

        return tuple(spec.name for spec in self.specs if needed(spec))

    @property
    def legacy(self) -> bool:
        """Whether the services are exactly the three a stack served before services came from config."""
        return self.services == LEGACY_SERVICES


def build_catalogue(services: Iterable[ServiceSecrets], *, where: str, error: type[Exception] = ConfigError) -> Catalogue:
    """The catalogue of a stack serving ``services``; a clash of names or variables is one ``error`` line at ``where``."""
    services = tuple(services)
    specs = (*_fixed_head(), *service_specs(services), *_fixed_tail())
    names: dict[str, SecretSpec] = {}
    variables: dict[str, SecretSpec] = {}
    for spec in specs:
        owner = f"services.{spec.service}" if spec.service else "the tool"
        if spec.name in names:
            raise error(f"{where}: {owner}: secret {spec.name} is also {_owner(names[spec.name])}'s; give the service another name")
        names[spec.name] = spec
        for variable in (spec.env_var, f"{spec.env_var}_FILE", f"{spec.env_var}_PREVIOUS"):
            if variable in variables and variables[variable] is not spec:
                raise error(
                    f"{where}: {owner}: secret {spec.name} would read ${variable}, which secret {variables[variable].name} "
                    f"({_owner(variables[variable])}) reads; set another variable in [services.{spec.service or '<name>'}.secrets]"
                )
            variables[variable] = spec
        if spec.service and (spec.env_var in ENDPOINT_VARIABLES or spec.env_var.startswith(_RESERVED_ENV_PREFIXES)):
            raise error(
                f"{where}: services.{spec.service}: ${spec.env_var} is a connection or tool setting, not a secret; "
                f"set another variable in [services.{spec.service}.secrets]"
            )
    return Catalogue(services=services, specs=specs)


def _owner(spec: SecretSpec) -> str:
    return f"services.{spec.service}" if spec.service else "the tool"


def service_secrets(services: Mapping[str, ServiceConfig]) -> tuple[ServiceSecrets, ...]:
    """The services' entries in the order of ``nexanest_db.roles.all_services``: instance, then name."""
    ordered = sorted(services.items(), key=lambda item: (item[1].instance, item[0]))
    return tuple(ServiceSecrets.of(name, service) for name, service in ordered)


def catalogue_for(config: EnvironmentConfig) -> Catalogue:
    """The catalogue of one environment: the fixed secrets and those of its ``[services.*]`` tables."""
    return build_catalogue(service_secrets(config.services), where=f"config/{config.environment}.toml")


DEFAULT_CATALOGUE: Catalogue = build_catalogue(LEGACY_SERVICES, where="nexanest_db.secrets.catalogue")


def required_secret_names(
    config: EnvironmentConfig | None = None,
    *,
    tls: bool | None = None,
    replicated: tuple[str, ...] | None = None,
    terraform_only: bool = False,
    catalogue: Catalogue | None = None,
) -> tuple[str, ...]:
    """The secrets an environment needs: the TLS ones only with ``tls.enabled``; ``terraform_only``: what Terraform gets.

    ``tls`` and ``replicated`` (the instances with replicas) override the config (``terraform-external``
    knows them only from its query); ``catalogue`` defaults to the config's (the legacy three services
    without a config).
    """
    enabled = tls if tls is not None else (config is not None and config.tls.enabled)
    pitr = config is not None and config.backup.pitr
    with_replicas = replicated if replicated is not None else (config.replicated_instances if config is not None else ())
    if catalogue is None:
        catalogue = catalogue_for(config) if config is not None else DEFAULT_CATALOGUE
    return catalogue.required(tls=enabled, pitr=pitr, replicated=with_replicas, terraform_only=terraform_only)
