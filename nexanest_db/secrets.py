"""One secrets layer for the stacks and the post-apply hooks.

Every credential has a logical name (``SECRET_NAMES``); the stack's Terraform data
source gets only ``TERRAFORM_SECRET_NAMES`` (the backup encryption key is nndb's
alone). A ``CredentialSource``
answers ``get(name)`` with a ``pydantic.SecretStr`` (its ``repr``/``str`` never
show the value; call ``.get_secret_value()`` only at the point of use) or raises
``SecretsError`` naming the environment, the source and the variable/path/key,
never the value.

Sources: ``EnvSource`` (process environment and ``.env.db``, ``*_FILE``
variables, and the ADR dev default for local/dev only) and ``VaultSource``
(KV v2 through hvac, ``nexanest_db.vault``). ``source_for`` picks the one the
environment's config names; prod accepts only Vault (config validation says so
too, this is the second lock). Outside local/dev the dev default password is
refused whichever source delivers it, as is a value shorter than its spec's
``min_length`` (the backup encryption key: 16 characters).

Besides the current value, a source answers ``previous(name)``: the credential
that was current before the last rotation (``<VAR>_PREVIOUS_FILE`` or
``<VAR>_PREVIOUS``, else the dev default in local/dev; in Vault the previous
KV v2 version), or ``None``. Only the superuser rotation uses it: the official
image sets the superuser password only on an empty data directory, so the
hooks log in with the previous credential once and set the current one
(``nexanest_db.pg``).

TLS (``tls.enabled`` only, ``required_secret_names``): ``tls_ca_cert`` is the clients' CA bundle
(nndb's; Terraform uploads it into the Redis container too, for its ``redis-cli --tls`` health
check); the PostgreSQL/TimescaleDB/Redis server certificate and key pairs are uploaded into the
containers. All seven are PEM and have no dev default anywhere.

Replication (``required_secret_names``): ``<instance>_replication`` where the backup policy has
PITR (barman's, nndb only) or the instance has replicas (then Terraform uploads it into the replica
containers too); ``redis_replication`` only where Redis has replicas.

How the values reach Terraform without entering ``cdk.tf.json`` is described
in docs/secrets.md: the stack's ``data "external"`` source runs
``nndb secrets terraform-external <stack>`` with ``external_query(...)`` as its
query, which carries the (non-secret) secrets config so the program needs no
project files on a Terraform Cloud agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr, ValidationError

from nexanest_db.config import DEV_DEFAULT_ENVIRONMENTS, INSTANCES, STACKS, EnvironmentConfig, SecretsConfig, read_bounded
from nexanest_db.errors import SecretsError

DEV_DEFAULT_PASSWORD = "dev_password"  # noqa: S105 -- the ADR's public local/dev default, refused elsewhere
# A *_FILE secret is read only when it is a regular file of at most this size (a FIFO would block
# forever, /dev/zero never ends); PEM CA bundles fit many times over.
MAX_SECRET_FILE_BYTES = 1 << 20
BACKUP_KEY_MIN_LENGTH = 16  # characters (nexanest_db.backup_crypto derives the file keys with HKDF-SHA256)
EXPORTER_DSN_FORBIDDEN = " \t\r\n'\"\\"  # whitespace, quotes, backslash


@dataclass(frozen=True, kw_only=True)
class SecretSpec:
    """One credential: its logical name, its environment variable and what it protects.

    ``terraform``: whether the stack needs the value at plan time (the ``data "external"`` source
    returns only those, ``TERRAFORM_SECRET_NAMES``). ``min_length``: outside local/dev a shorter
    value is refused (characters), whichever source delivers it. ``tls``: a PEM the environment
    needs only with ``tls.enabled`` (no dev default either way).
    """

    name: str
    env_var: str
    description: str
    terraform: bool = True
    min_length: int = 0
    tls: bool = False  # needed only when the environment enables TLS (``required_secret_names``)
    # Characters the consumer cannot take, refused in every environment: postgres_exporter 0.11.1
    # rejects a DSN whose password has whitespace or quotes, and then logs that DSN, password included.
    forbidden: str = ""
    pitr: bool = False  # needed where the backup policy has pitr = true (the replication roles)
    # Needed where this instance has replicas ([replication.<instance>]), and then Terraform needs it too:
    # the replica containers get it as a file (docs/topology.md). With pitr or replica_of set, ``terraform``
    # says only that Terraform may need it; ``required_secret_names`` decides per environment.
    replica_of: str | None = None


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
    # The exporters' least-privilege logins (monitoring/identities.toml); the exporter containers get them as files.
    SecretSpec(
        name="postgres_monitor",
        env_var="POSTGRES_MONITOR_PASSWORD",
        description="PostgreSQL exporter's monitoring role",
        forbidden=EXPORTER_DSN_FORBIDDEN,
    ),
    SecretSpec(
        name="timescale_monitor",
        env_var="TIMESCALE_MONITOR_PASSWORD",
        description="TimescaleDB exporter's monitoring role",
        forbidden=EXPORTER_DSN_FORBIDDEN,
    ),
    SecretSpec(name="redis_monitor", env_var="REDIS_MONITOR_PASSWORD", description="Redis exporter's ACL user"),
    # Only nndb itself uses the backup key (backups are taken and restored by the hooks and `nndb backup`): Terraform never sees it.
    SecretSpec(
        name="backup_encryption_key",
        env_var="BACKUP_ENCRYPTION_KEY",
        description="backup files' encryption key",
        terraform=False,
        min_length=BACKUP_KEY_MIN_LENGTH,
    ),
    # TLS (only with tls.enabled): the CA bundle only clients (nndb) need; the server pairs are uploaded into the containers.
    # The CA is public; Terraform gets it too because the Redis health check (redis-cli --tls) verifies the server with it.
    SecretSpec(name="tls_ca_cert", env_var="TLS_CA_CERT", description="CA bundle (PEM) clients verify the servers with", tls=True),
    SecretSpec(name="postgres_tls_cert", env_var="POSTGRES_TLS_CERT", description="PostgreSQL server certificate (PEM)", tls=True),
    SecretSpec(name="postgres_tls_key", env_var="POSTGRES_TLS_KEY", description="PostgreSQL server private key (PEM)", tls=True),
    SecretSpec(name="timescale_tls_cert", env_var="TIMESCALE_TLS_CERT", description="TimescaleDB server certificate (PEM)", tls=True),
    SecretSpec(name="timescale_tls_key", env_var="TIMESCALE_TLS_KEY", description="TimescaleDB server private key (PEM)", tls=True),
    SecretSpec(name="redis_tls_cert", env_var="REDIS_TLS_CERT", description="Redis server certificate (PEM)", tls=True),
    SecretSpec(name="redis_tls_key", env_var="REDIS_TLS_KEY", description="Redis server private key (PEM)", tls=True),
    # Point-in-time recovery (only with backup.pitr): the role the backup repository (barman) streams WAL and base backups with.
    # Streaming replicas ([replication.<instance>]) bootstrap and stream with the same role.
    SecretSpec(
        name="postgres_replication",
        env_var="POSTGRES_REPLICATION_PASSWORD",
        description="PostgreSQL replication role (PITR repository, replicas)",
        pitr=True,
        replica_of="postgres",
    ),
    SecretSpec(
        name="timescale_replication",
        env_var="TIMESCALE_REPLICATION_PASSWORD",
        description="TimescaleDB replication role (PITR repository, replicas)",
        pitr=True,
        replica_of="timescale",
    ),
    # The Redis replicas' ACL user on the primary (masterauth): written as one plain token into the replica's config file.
    SecretSpec(
        name="redis_replication",
        env_var="REDIS_REPLICATION_PASSWORD",
        description="Redis replicas' ACL user on the primary",
        replica_of="redis",
        forbidden=EXPORTER_DSN_FORBIDDEN,
    ),
)
SECRET_NAMES: tuple[str, ...] = tuple(spec.name for spec in SECRET_SPECS)  # every credential
# What the stack's data "external" source (``nndb secrets terraform-external``) returns: the stack's DeploySecrets names.
TERRAFORM_SECRET_NAMES: tuple[str, ...] = tuple(spec.name for spec in SECRET_SPECS if spec.terraform)
TLS_SECRET_NAMES: tuple[str, ...] = tuple(spec.name for spec in SECRET_SPECS if spec.tls)
_SPEC_BY_NAME = {spec.name: spec for spec in SECRET_SPECS}


def required_secret_names(
    config: EnvironmentConfig | None = None,
    *,
    tls: bool | None = None,
    replicated: tuple[str, ...] | None = None,
    terraform_only: bool = False,
) -> tuple[str, ...]:
    """The secrets an environment needs: the TLS ones only with ``tls.enabled``; ``terraform_only``: what Terraform gets.

    A replication secret is needed where the backup policy has PITR (nndb's, for barman) or its
    instance has replicas (then Terraform's too: the replica containers get it). ``tls`` and
    ``replicated`` override the config (``terraform-external`` knows them only from its query).
    """
    enabled = tls if tls is not None else (config is not None and config.tls.enabled)
    pitr = config is not None and config.backup.pitr
    with_replicas = replicated if replicated is not None else (config.replicated_instances if config is not None else ())

    def needed(spec: SecretSpec) -> bool:
        if spec.tls and not enabled:
            return False
        if spec.pitr or spec.replica_of:
            for_replicas = spec.replica_of in with_replicas
            return for_replicas if terraform_only else for_replicas or (spec.pitr and pitr)
        return spec.terraform or not terraform_only

    return tuple(spec.name for spec in SECRET_SPECS if needed(spec))


def spec_for(name: str) -> SecretSpec:
    try:
        return _SPEC_BY_NAME[name]
    except KeyError:
        raise SecretsError(f"unknown secret {name!r}; known: {', '.join(SECRET_NAMES)}") from None


class CredentialSource(Protocol):
    """Where credentials come from; ``describe`` says where ``name`` is looked up (no value).

    ``previous`` is the value ``name`` had before its last rotation, ``None`` when the source knows
    none; ``previous_hint`` says where it is looked up and how to supply it (one clause, no value).
    """

    environment: str

    def get(self, name: str) -> SecretStr: ...

    def describe(self, name: str) -> str: ...

    def previous(self, name: str) -> SecretStr | None: ...

    def previous_hint(self, name: str) -> str: ...


def refuse_dev_default(environment: str, name: str, location: str, value: str) -> None:
    """Outside local/dev the ADR dev default is never a credential, whichever source delivers it."""
    if environment not in DEV_DEFAULT_ENVIRONMENTS and value == DEV_DEFAULT_PASSWORD:
        raise SecretsError(
            f"{environment}: secret {name} from {location} is the local/dev default password; "
            "store a real secret there (defaults are refused outside local/dev)"
        )


def refuse_weak(environment: str, name: str, location: str, value: str) -> None:
    """Outside local/dev: the dev default, and a value shorter than the secret's ``min_length``, are refused.

    Everywhere: a character the secret's consumer cannot take (``SecretSpec.forbidden``).
    """
    refuse_dev_default(environment, name, location, value)
    if any(c in spec_for(name).forbidden for c in value):
        raise SecretsError(
            f"{environment}: secret {name} from {location} contains whitespace, a quote or a backslash, which its consumer "
            "(the PostgreSQL exporter) cannot use; store a value without them (e.g. openssl rand -hex 24)"
        )
    minimum = spec_for(name).min_length
    if environment not in DEV_DEFAULT_ENVIRONMENTS and len(value) < minimum:
        raise SecretsError(
            f"{environment}: secret {name} from {location} is shorter than {minimum} characters; "
            "store a long random value there (e.g. openssl rand -base64 32)"
        )


@dataclass(frozen=True, kw_only=True)
class EnvSource:
    """Environment variables (already merged with ``.env.db``) and ``*_FILE`` files."""

    environment: str
    environ: Mapping[str, str]
    allow_dev_default: bool

    def _dev_default_for(self, name: str) -> bool:
        """Local/dev passwords fall back to the ADR default; TLS material never does."""
        return self.allow_dev_default and not spec_for(name).tls

    def _empty(self, *variables: str) -> str | None:
        """The first of ``variables`` that is set but empty (``VAR=``): never silently a default."""
        return next((v for v in variables if v in self.environ and not self.environ[v].strip()), None)

    def describe(self, name: str) -> str:
        var = spec_for(name).env_var
        file_var = f"{var}_FILE"
        if empty := self._empty(file_var, var):
            return f"${empty} (set but empty)"
        if self.environ.get(file_var):
            return f"${file_var} ({self.environ[file_var]})"
        if self.environ.get(var):
            return f"${var}"
        if self._dev_default_for(name):
            return f"dev default (${var} unset)"
        return f"${var} or ${file_var} (neither set)"

    def get(self, name: str) -> SecretStr:
        var = spec_for(name).env_var
        file_var = f"{var}_FILE"
        if empty := self._empty(file_var, var):
            raise SecretsError(
                f"{self.environment}: secret {name}: {empty} is set but empty; give it the value (or a file path) or unset it "
                "(an empty value is never taken as the default)"
            )
        if self.environ.get(file_var):
            value = self._read_file(file_var)
            refuse_weak(self.environment, name, f"${file_var}", value)
            return SecretStr(value)
        if self.environ.get(var):
            refuse_weak(self.environment, name, f"${var}", self.environ[var])
            return SecretStr(self.environ[var])
        if self._dev_default_for(name):
            return SecretStr(DEV_DEFAULT_PASSWORD)
        if spec_for(name).tls:
            raise SecretsError(f"{self.environment}: secret {name} is missing: set {var} or {file_var} (PEM; tls.enabled needs it)")
        raise SecretsError(f"{self.environment}: secret {name} is missing: set {var} or {file_var} (no default outside local/dev)")

    def previous(self, name: str) -> SecretStr | None:
        """``<VAR>_PREVIOUS_FILE``, else ``<VAR>_PREVIOUS``, else (local/dev only) the dev default, else ``None``.

        The value is only ever used to log in once and replace it, so the dev default is not refused here.
        """
        var = f"{spec_for(name).env_var}_PREVIOUS"
        file_var = f"{var}_FILE"
        if empty := self._empty(file_var, var):
            raise SecretsError(f"{self.environment}: {empty} is set but empty; give it the previous password or unset it")
        if self.environ.get(file_var):
            return SecretStr(self._read_file(file_var))
        if self.environ.get(var):
            return SecretStr(self.environ[var])
        if self._dev_default_for(name):
            return SecretStr(DEV_DEFAULT_PASSWORD)
        return None

    def previous_hint(self, name: str) -> str:
        var = f"{spec_for(name).env_var}_PREVIOUS"
        file_var = f"{var}_FILE"
        if self.environ.get(file_var):
            return f"put the password the server still has into ${file_var} ({self.environ[file_var]})"
        if self.environ.get(var):
            return f"set {var} to the password the server still has"
        tried = " (the dev default was tried)" if self.allow_dev_default else ""
        return f"set {var} (or {file_var}) to the password the server still has{tried}"

    def _read_file(self, file_var: str) -> str:
        """A ``*_FILE`` secret: the file's content minus one trailing newline; unreadable or empty is an error."""
        path = Path(self.environ[file_var])
        try:
            value = read_bounded(path, limit=MAX_SECRET_FILE_BYTES).decode("utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretsError(
                f"{self.environment}: {file_var} points at {path}, which cannot be read ({exc.strerror}); fix the path or unset {file_var}"
            ) from None
        except UnicodeDecodeError:
            raise SecretsError(
                f"{self.environment}: {file_var} points at {path}, which is not UTF-8 text; store the secret as text (PEM, a password)"
            ) from None
        except ValueError as exc:
            raise SecretsError(
                f"{self.environment}: {file_var} points at {path}, which {exc}; point it at a plain file holding only the secret"
            ) from None
        if "\0" in value:
            raise SecretsError(f"{self.environment}: {file_var} points at {path}, which contains NUL bytes; not a secret text file")
        if not value:
            raise SecretsError(f"{self.environment}: {file_var} points at {path}, which is empty")
        return value


def source_for(environment: str, secrets: SecretsConfig, environ: Mapping[str, str]) -> CredentialSource:
    """The credential source ``secrets`` names for ``environment``."""
    if secrets.source == "vault" and secrets.vault is not None:
        from nexanest_db.vault import VaultSource  # imported lazily: hvac is only needed for Vault environments

        return VaultSource.from_settings(environment=environment, settings=secrets.vault, environ=environ)
    if environment == "prod":
        raise SecretsError("prod: secrets.source must be 'vault'; prod never reads credentials from the environment or a default")
    return EnvSource(environment=environment, environ=environ, allow_dev_default=environment in DEV_DEFAULT_ENVIRONMENTS)


def credentials_for(config: EnvironmentConfig, environ: Mapping[str, str]) -> CredentialSource:
    """The credential source the environment's config names."""
    return source_for(config.environment, config.secrets, environ)


# --- resolving every secret ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SecretStatus:
    """What ``nndb secrets check`` reports for one secret: where it is looked up and why it is missing (never a value)."""

    name: str
    location: str
    problem: str | None

    @property
    def present(self) -> bool:
        return self.problem is None


def check_all(source: CredentialSource, names: tuple[str, ...] = SECRET_NAMES) -> list[SecretStatus]:
    """Resolve every secret of ``names`` once (callers pass ``required_secret_names(config)``); failures kept as one line each."""
    statuses = []
    for name in names:
        try:
            source.get(name)
        except SecretsError as exc:
            statuses.append(SecretStatus(name=name, location=source.describe(name), problem=str(exc)))
        else:
            statuses.append(SecretStatus(name=name, location=source.describe(name), problem=None))
    return statuses


def resolve_all(source: CredentialSource, names: tuple[str, ...] = SECRET_NAMES) -> dict[str, SecretStr]:
    """Every secret of ``names`` (default: all), or one ``SecretsError`` line: the first problem plus how many others there are."""
    values: dict[str, SecretStr] = {}
    problems: list[str] = []
    for name in names:
        try:
            values[name] = source.get(name)
        except SecretsError as exc:
            if str(exc) not in problems:  # a source-wide failure (Vault down) repeats for every secret: say it once
                problems.append(str(exc))
    if problems:
        others = len(problems) - 1
        tail = (
            f" (and {others} more problem{'s' if others > 1 else ''}: run `nndb secrets check {source.environment}-db`)" if others else ""
        )
        raise SecretsError(problems[0] + tail)
    return values


# --- the query the stack's data "external" source sends ----------------------------------------


def external_query(config: EnvironmentConfig) -> dict[str, str]:
    """The ``query`` of the stack's ``data "external" "secrets"``: the stack name and its secrets config (no values).

    Terraform Cloud uploads only ``cdktf.out/stacks/<stack>/``, so the program
    must not need ``config/`` to know where the secrets live; carrying the
    (reviewable) references in the query also makes a pinned-version bump
    show up in the PR diff of ``cdk.tf.json``.
    """
    query = {"stack": config.stack, "secrets": config.secrets.model_dump_json(exclude_none=True)}
    if config.tls.enabled:  # absent means off: the queries of stacks without TLS stay as they were
        query["tls"] = "enabled"
    if config.replicated_instances:  # absent means none, as for tls
        query["replicas"] = ",".join(config.replicated_instances)
    return query


def tls_from_query(stack: str, query: Mapping[str, object]) -> bool:
    """Whether ``external_query`` marked the stack's TLS as enabled (its server certificates are then Terraform's too)."""
    raw = query.get("tls")
    if raw is None:
        return False
    if raw != "enabled":
        raise SecretsError(f"{stack}: query field 'tls' must be 'enabled' or absent; re-synthesize (cdktf synth)")
    return True


def replicated_from_query(stack: str, query: Mapping[str, object]) -> tuple[str, ...]:
    """The instances ``external_query`` said have replicas (their replication secrets are then Terraform's)."""
    raw = query.get("replicas")
    if raw is None:
        return ()
    names = tuple(raw.split(",")) if isinstance(raw, str) else ()
    if not names or any(name not in INSTANCES for name in names) or len(set(names)) != len(names):
        raise SecretsError(
            f"{stack}: query field 'replicas' must list instances ({', '.join(INSTANCES)}) or be absent; re-synthesize (cdktf synth)"
        )
    return names


def secrets_config_from_query(stack: str, query: Mapping[str, object]) -> SecretsConfig | None:
    """The secrets config ``external_query`` put into ``query``, or ``None`` when the query carries only the stack."""
    if stack not in STACKS:
        raise SecretsError(f"unknown stack {stack!r}: choose one of {', '.join(STACKS)}")
    if "stack" in query and query["stack"] != stack:
        raise SecretsError(
            f"{stack}: the data source query names stack {query['stack']!r}; re-synthesize (cdktf synth) so program and query agree"
        )
    raw = query.get("secrets")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise SecretsError(f"{stack}: query field 'secrets' must be a JSON string; re-synthesize (cdktf synth)")
    try:
        return SecretsConfig.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        why = first["msg"].removeprefix("Value error, ")
        why = f"{where}: {why}" if where else why
        raise SecretsError(f"{stack}: query field 'secrets' is not a valid secrets config ({why}); re-synthesize (cdktf synth)") from None
