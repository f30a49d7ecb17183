"""Credentials from HashiCorp Vault KV v2 through hvac (staging and prod).

Settings come from the environment mapping the edge passes down, never from
``os.environ`` here, and are handed to ``hvac.Client`` explicitly: hvac would
otherwise read ``VAULT_TOKEN``, ``~/.vault-token`` and ``VAULT_CACERT`` on its
own, and it does not read ``VAULT_NAMESPACE`` at all.

- ``VAULT_ADDR`` (required), ``VAULT_NAMESPACE`` (sent as ``X-Vault-Namespace``),
  ``VAULT_CACERT`` (CA bundle used to verify Vault's TLS certificate).
- Authentication: ``VAULT_TOKEN``, or AppRole with ``VAULT_ROLE_ID`` and
  ``VAULT_SECRET_ID``. The config's ``secrets.vault.auth`` names the method
  used when both are present; when only one is present it is used, so a
  Terraform Cloud run whose pre-plan hook handed over a ``VAULT_TOKEN``
  works in an environment configured for AppRole.

Where each secret lives: its ``[secrets.vault.secrets]`` reference, else, for a service's secret
(``nexanest_db.secrets.catalogue``), ``<secrets.vault.services_path>/<service>`` with the key the
catalogue names (``db_password``, ``readonly_password``, ``redis_password``).

Each KV path is read once per ``VaultSource`` (several keys share a path). A
failure that concerns Vault itself (unreachable, timed out, TLS, sealed,
credentials rejected) is remembered, so resolving the remaining secrets fails
at once instead of waiting out the timeout again. Every failure becomes one
``SecretsError`` line naming the environment, Vault's address and the
``mount/path#key`` involved, never a value or a token.

A secret's *previous* value (``previous``, used to rotate a superuser whose
server still has the old password) is the latest readable version before the
current one (or before the pinned one), skipping deleted and destroyed
versions, at most ``PREVIOUS_LOOKBACK`` versions back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import hvac
import hvac.exceptions
import requests
from pydantic import SecretStr

from nexanest_db.config import EnvironmentConfig, VaultConfig, VaultSecretRef
from nexanest_db.errors import SecretsError
from nexanest_db.secrets.catalogue import DEFAULT_CATALOGUE, Catalogue, catalogue_for
from nexanest_db.secrets.policy import refuse_weak

log = logging.getLogger(__name__)

AuthMethod = Literal["token", "approle"]
PREVIOUS_LOOKBACK = 5  # how many versions below the current one ``previous`` looks at


@dataclass(frozen=True, kw_only=True)
class VaultEndpoint:
    """Where Vault is and how to talk to it; no credentials."""

    environment: str
    addr: str
    namespace: str | None
    ca_cert: str | None
    timeout_s: float

    @classmethod
    def from_environ(cls, *, environment: str, environ: Mapping[str, str], timeout_s: float) -> VaultEndpoint:
        addr = (environ.get("VAULT_ADDR") or "").strip().rstrip("/")
        if not addr:
            raise SecretsError(
                f"{environment}: VAULT_ADDR is not set; {environment} reads its secrets from Vault: export VAULT_ADDR=https://<vault>:8200"
            )
        parts = urlsplit(addr)
        if parts.username or parts.password:  # the address appears in every message: it must not carry credentials
            raise SecretsError(
                f"{environment}: VAULT_ADDR must not contain user:password@; Vault authenticates with VAULT_TOKEN or AppRole"
            )
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise SecretsError(f"{environment}: VAULT_ADDR must be an http(s) URL such as https://vault.example:8200, got {addr!r}")
        ca_cert = environ.get("VAULT_CACERT") or None
        if ca_cert is not None and not Path(ca_cert).is_file():
            raise SecretsError(
                f"{environment}: VAULT_CACERT points at {ca_cert}, which is not a file; "
                "set it to the CA bundle that signed Vault's certificate"
            )
        return cls(
            environment=environment, addr=addr, namespace=environ.get("VAULT_NAMESPACE") or None, ca_cert=ca_cert, timeout_s=timeout_s
        )

    def client(self, token: str | None = None) -> hvac.Client:
        # token="" rather than None: None makes hvac fall back to VAULT_TOKEN / ~/.vault-token behind our back.
        return hvac.Client(
            url=self.addr,
            token=token or "",
            namespace=self.namespace,
            verify=self.ca_cert or True,
            timeout=self.timeout_s,
        )

    @property
    def label(self) -> str:
        return f"Vault at {self.addr}" + (f" (namespace {self.namespace})" if self.namespace else "")

    @contextmanager
    def translate_errors(self, doing: str, *, denied_hint: str, missing_hint: str, refused_hint: str) -> Iterator[None]:
        """Turn what hvac/requests raise while ``doing`` into one ``SecretsError`` line (no value, no token, no URL query)."""
        where = f"{self.environment}: {doing}"
        try:
            yield
        except requests.exceptions.SSLError:
            raise SecretsError(
                f"{where}: TLS verification of {self.label} failed; set VAULT_CACERT to the CA bundle that signed its certificate"
            ) from None
        except requests.exceptions.Timeout:
            raise SecretsError(
                f"{where}: {self.label} did not answer within {self.timeout_s:g}s; check VAULT_ADDR and the network, then re-run"
            ) from None
        except requests.exceptions.ConnectionError:
            raise SecretsError(
                f"{where}: {self.label} is unreachable (connection failed); check VAULT_ADDR and that Vault is up, then re-run"
            ) from None
        except hvac.exceptions.VaultDown as exc:
            raise SecretsError(
                f"{where}: {self.label} is sealed or unavailable (503: {_vault_said(exc)}); unseal Vault, then re-run"
            ) from None
        except hvac.exceptions.Forbidden as exc:
            raise SecretsError(f"{where}: {self.label} denied access (403: {_vault_said(exc)}); {denied_hint}") from None
        except hvac.exceptions.InvalidPath:
            raise SecretsError(f"{where}: not found in {self.label} (404); {missing_hint}") from None
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Unauthorized) as exc:
            raise SecretsError(f"{where}: {self.label} refused the request ({_status(exc)}: {_vault_said(exc)}); {refused_hint}") from None
        except hvac.exceptions.VaultError as exc:
            raise SecretsError(
                f"{where}: {self.label} failed ({_status(exc)}: {_vault_said(exc)}); check the Vault server's health and logs, then re-run"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise SecretsError(
                f"{where}: the request to {self.label} failed ({type(exc).__name__}); check VAULT_ADDR, then re-run"
            ) from None


_STATUS_BY_EXCEPTION = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
}


def _status(exc: hvac.exceptions.VaultError) -> str:
    status = _STATUS_BY_EXCEPTION.get(type(exc))
    return str(status) if status else "unexpected answer"


def _vault_said(exc: hvac.exceptions.VaultError) -> str:
    """Vault's own first error string, flattened to one short line (Vault's errors carry no secret data)."""
    errors = exc.errors if isinstance(exc.errors, list) else []
    first = next((str(e) for e in errors if str(e).strip()), "no error text")
    flat = " ".join(first.replace("*", " ").split())
    return flat if len(flat) <= 120 else flat[:117] + "..."


def choose_auth(environment: str, preferred: AuthMethod, environ: Mapping[str, str]) -> AuthMethod:
    """The configured method when its credentials are present, otherwise whichever method's credentials are."""
    has_token = bool(environ.get("VAULT_TOKEN"))
    has_role_id, has_secret_id = bool(environ.get("VAULT_ROLE_ID")), bool(environ.get("VAULT_SECRET_ID"))
    available: dict[AuthMethod, bool] = {"token": has_token, "approle": has_role_id and has_secret_id}
    if available[preferred]:
        return preferred
    for method, present in available.items():
        if present:
            return method
    if has_role_id != has_secret_id:
        given, lacking = ("VAULT_ROLE_ID", "VAULT_SECRET_ID") if has_role_id else ("VAULT_SECRET_ID", "VAULT_ROLE_ID")
        raise SecretsError(f"{environment}: {given} is set but {lacking} is not; AppRole login needs both (or set VAULT_TOKEN)")
    wanted = "VAULT_ROLE_ID and VAULT_SECRET_ID (AppRole)" if preferred == "approle" else "VAULT_TOKEN"
    other = "VAULT_TOKEN" if preferred == "approle" else "VAULT_ROLE_ID and VAULT_SECRET_ID (AppRole)"
    raise SecretsError(f"{environment}: no Vault credentials: set {wanted} as secrets.vault.auth = {preferred!r} expects, or {other}")


@dataclass(kw_only=True)
class VaultSource:
    """``CredentialSource`` over Vault KV v2; one instance per command run."""

    environment: str
    endpoint: VaultEndpoint
    settings: VaultConfig
    auth: AuthMethod
    environ: Mapping[str, str] = field(repr=False)
    catalogue: Catalogue = field(default=DEFAULT_CATALOGUE, repr=False)
    _client: hvac.Client | None = field(default=None, init=False, repr=False)
    _reads: dict[tuple[str, int | None], dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    _versions: dict[tuple[str, int | None], int] = field(default_factory=dict, init=False, repr=False)
    _broken: SecretsError | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_config(cls, config: EnvironmentConfig, environ: Mapping[str, str]) -> VaultSource:
        if config.secrets.vault is None:
            raise SecretsError(
                f"{config.environment}: secrets.source is 'vault' but there is no [secrets.vault] table in config/{config.environment}.toml"
            )
        return cls.from_settings(
            environment=config.environment, settings=config.secrets.vault, environ=environ, catalogue=catalogue_for(config)
        )

    @classmethod
    def from_settings(
        cls, *, environment: str, settings: VaultConfig, environ: Mapping[str, str], catalogue: Catalogue = DEFAULT_CATALOGUE
    ) -> VaultSource:
        """Check everything that needs no network first: a missing VAULT_ADDR or credential fails before any request."""
        unknown = sorted(set(settings.secrets) - set(catalogue.names))
        if unknown:
            raise SecretsError(
                f"{environment}: secrets.vault.secrets names unknown secret {unknown[0]!r}; known: {', '.join(catalogue.names)}"
            )
        endpoint = VaultEndpoint.from_environ(environment=environment, environ=environ, timeout_s=settings.timeout_s)
        auth = choose_auth(environment, settings.auth, environ)
        return cls(environment=environment, endpoint=endpoint, settings=settings, auth=auth, environ=environ, catalogue=catalogue)

    def _ref(self, name: str) -> VaultSecretRef | None:
        """The secret's explicit reference, else (a service's secret) the one derived from ``services_path``, else ``None``."""
        explicit = self.settings.secrets.get(name)
        if explicit is not None:
            return explicit
        spec = self.catalogue.spec(name)
        if self.settings.services_path and spec.service and spec.vault_key:
            return VaultSecretRef(path=f"{self.settings.services_path}/{spec.service}", key=spec.vault_key)
        return None

    # --- CredentialSource -------------------------------------------------------------------------

    def describe(self, name: str) -> str:
        ref = self._ref(name)
        return f"vault {_location(self.settings.mount, ref)}" if ref else "vault (no reference in secrets.vault.secrets)"

    def get(self, name: str) -> SecretStr:
        ref = self._ref(name)
        if ref is None:
            derived = " (or set secrets.vault.services_path)" if self.catalogue.spec(name).service else ""
            raise SecretsError(
                f"{self.environment}: secret {name} has no Vault reference; "
                f"add it to [secrets.vault.secrets] in config/{self.environment}.toml{derived}"
            )
        location = _location(self.settings.mount, ref)
        data = self._read(ref, reading=f"reading {location} ({name})")
        if ref.key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise SecretsError(
                f"{self.environment}: {self.endpoint.label} has no key {ref.key!r} at {self.settings.mount}/{ref.path} "
                f"({name}; keys there: {keys}); "
                f"add the key or fix secrets.vault.secrets.{name} in config/{self.environment}.toml"
            )
        value = data[ref.key]
        if not isinstance(value, str) or not value:
            kind = "an empty string" if value == "" else f"a {type(value).__name__}, not a string"
            raise SecretsError(f"{self.environment}: {location} ({name}) holds {kind}; store the password as a non-empty string")
        refuse_weak(self.environment, self.catalogue.spec(name), f"vault {location}", value)
        return SecretStr(value)

    def previous(self, name: str) -> SecretStr | None:
        """``name`` in the latest readable version before the current (or pinned) one, or ``None``.

        Deleted and destroyed versions are skipped, as are versions without the key; the walk stops
        after ``PREVIOUS_LOOKBACK`` versions, at version 1, or at a version Vault no longer has
        (pruned by ``max_versions``). Vault failures (denied, down, ...) raise like ``get``.
        """
        ref = self._ref(name)
        if ref is None:
            return None
        current = ref.version or self._current_version(ref, name)
        if current is None:
            return None
        for version in range(current - 1, max(current - 1 - PREVIOUS_LOOKBACK, 0), -1):
            older = VaultSecretRef(path=ref.path, key=ref.key, version=version)
            exists, data = self._read_older(older, reading=f"reading {_location(self.settings.mount, older)} ({name}, previous)")
            if not exists:
                return None
            value = (data or {}).get(ref.key)
            if isinstance(value, str) and value:
                return SecretStr(value)
        return None

    def previous_hint(self, name: str) -> str:
        ref = self._ref(name)
        if ref is None:
            return f"secret {name} has no Vault reference"
        before = f"version {ref.version}" if ref.version else "the current one"
        where = f"{self.settings.mount}/{ref.path}#{ref.key}"
        return f"it is read from the latest readable version before {before} of vault {where} (at most {PREVIOUS_LOOKBACK} back)"

    # --- Vault ------------------------------------------------------------------------------------

    def _read(self, ref: VaultSecretRef, *, reading: str) -> dict[str, Any]:
        cache_key = (ref.path, ref.version)
        if cache_key in self._reads:
            return self._reads[cache_key]
        client = self._authenticated_client(reading)
        mount = self.settings.mount
        config_file = f"config/{self.environment}.toml"
        if ref.version:
            missing_hint = f"version {ref.version} or the path does not exist: pin an existing version or fix the path in {config_file}"
        else:
            missing_hint = f"write it (vault kv put -mount={mount} {ref.path} {ref.key}=...) or fix the path in {config_file}"
        with self._source_wide(
            reading, denied_hint=f"the token's policy must grant 'read' on {mount}/data/{ref.path}", missing_hint=missing_hint
        ):
            answer = _read_version(client, mount=mount, path=ref.path, version=ref.version)
        metadata = answer["data"].get("metadata") or {}
        data = answer["data"].get("data")
        if data is None:
            version = metadata.get("version") or ref.version or "latest"
            if metadata.get("destroyed"):
                state, fix = (
                    "destroyed",
                    "pin another version in config" if ref.version else f"write a new version (vault kv put -mount={mount} {ref.path} ...)",
                )
            else:
                state, fix = (
                    "deleted",
                    f"undelete it (vault kv undelete -mount={mount} -versions={version} {ref.path}) or write a new version",
                )
            raise SecretsError(f"{self.environment}: {reading}: version {version} was {state} in {self.endpoint.label}; {fix}")
        if not isinstance(data, dict):
            raise SecretsError(
                f"{self.environment}: {reading}: {self.endpoint.label} answered without a KV v2 data object; "
                f"is {mount} a KV version 2 mount?"
            )
        log.debug("read %s/%s version %s (keys: %s)", mount, ref.path, metadata.get("version"), ", ".join(sorted(data)))
        self._reads[cache_key] = data
        if isinstance(metadata.get("version"), int):
            self._versions[cache_key] = metadata["version"]
        return data

    def _current_version(self, ref: VaultSecretRef, name: str) -> int | None:
        """The version number of the latest version of ``ref``'s path (read once, like ``get`` does)."""
        self._read(ref, reading=f"reading {_location(self.settings.mount, ref)} ({name})")
        return self._versions.get((ref.path, ref.version))

    def _read_older(self, ref: VaultSecretRef, *, reading: str) -> tuple[bool, dict[str, Any] | None]:
        """(exists, data) of one pinned version: data ``None`` when deleted/destroyed, exists ``False`` when Vault has no such version."""
        cache_key = (ref.path, ref.version)
        if cache_key in self._reads:
            return True, self._reads[cache_key]
        client = self._authenticated_client(reading)
        mount = self.settings.mount
        with self._source_wide(reading, denied_hint=f"the token's policy must grant 'read' on {mount}/data/{ref.path}"):
            try:
                answer = _read_version(client, mount=mount, path=ref.path, version=ref.version)
            except hvac.exceptions.InvalidPath:
                return False, None
        data = answer["data"].get("data")
        if not isinstance(data, dict):
            return True, None
        self._reads[cache_key] = data
        return True, data

    def _authenticated_client(self, reading: str) -> hvac.Client:
        if self._broken is not None:
            raise self._broken
        if self._client is not None:
            return self._client
        if self.auth == "approle":
            client = self.endpoint.client()
            mount = self.settings.approle_mount
            with self._source_wide(
                f"logging in with AppRole at auth/{mount} before {reading}",
                denied_hint=f"check that the AppRole mount auth/{mount} exists and VAULT_ROLE_ID/VAULT_SECRET_ID are current",
                missing_hint=f"enable AppRole at auth/{mount} or fix secrets.vault.approle_mount",
                refused_hint="check VAULT_ROLE_ID and VAULT_SECRET_ID (secret IDs expire and can be single-use)",
                login=True,
            ):
                client.auth.approle.login(
                    role_id=self.environ["VAULT_ROLE_ID"], secret_id=self.environ["VAULT_SECRET_ID"], mount_point=mount
                )
        else:
            client = self.endpoint.client(self.environ["VAULT_TOKEN"])
            # lookup-self tells a rejected token apart from a policy that denies one path.
            with self._source_wide(
                f"checking VAULT_TOKEN (auth/token/lookup-self) before {reading}",
                denied_hint="VAULT_TOKEN is invalid or expired (or VAULT_NAMESPACE is wrong): "
                "log in again (vault login) and export a fresh VAULT_TOKEN",
                login=True,
            ):
                client.auth.token.lookup_self()
        self._client = client
        return client

    @contextmanager
    def _source_wide(
        self, doing: str, *, denied_hint: str, missing_hint: str = "", refused_hint: str = "", login: bool = False
    ) -> Iterator[None]:
        """Translate errors; remember those about Vault itself so later secrets fail at once instead of after another timeout."""
        try:
            with self.endpoint.translate_errors(
                doing,
                denied_hint=denied_hint,
                missing_hint=missing_hint or "check the Vault path",
                refused_hint=refused_hint or "check the request settings",
            ):
                yield
        except SecretsError as exc:
            # __context__ is the hvac/requests exception translate_errors replaced (raised "from None", still recorded).
            if login or isinstance(exc.__context__, requests.exceptions.RequestException | hvac.exceptions.VaultDown):
                self._broken = exc
            raise


def _read_version(client: hvac.Client, *, mount: str, path: str, version: int | None) -> dict[str, Any]:
    """KV v2 read. Vault answers a deleted or destroyed version with 404 plus its metadata: return that instead of raising."""
    try:
        answer = client.secrets.kv.v2.read_secret_version(path=path, version=version, mount_point=mount, raise_on_deleted_version=True)
    except hvac.exceptions.InvalidPath as exc:
        body = exc.json if isinstance(exc.json, dict) else {}
        if isinstance(body.get("data"), dict) and body["data"].get("metadata"):
            return body
        raise
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
        raise hvac.exceptions.UnexpectedError(errors=["the answer is not a KV v2 read response"])
    return answer


def _location(mount: str, ref: VaultSecretRef) -> str:
    version = f"@{ref.version}" if ref.version else ""
    return f"{mount}/{ref.path}#{ref.key}{version}"


# --- Terraform Cloud: JWT login with the run's workload identity token -------------------------


@dataclass(frozen=True, kw_only=True)
class LoginResult:
    token: SecretStr
    ttl_s: int
    policies: tuple[str, ...]


def jwt_login(endpoint: VaultEndpoint, *, mount: str, role: str, jwt: SecretStr) -> LoginResult:
    """Log in through Vault's JWT auth method (``auth/<mount>/login``) and return the client token."""
    client = endpoint.client()
    with endpoint.translate_errors(
        f"logging in with JWT role {role!r} at auth/{mount}",
        denied_hint=f"check the JWT role {role!r} and its bound claims (workspace, run phase) in Vault",
        missing_hint=f"enable the JWT auth method at auth/{mount} or set NNDB_VAULT_JWT_MOUNT",
        refused_hint=f"check that role {role!r} exists at auth/{mount} and its bound_audiences match TFC_WORKLOAD_IDENTITY_AUDIENCE",
    ):
        answer = client.auth.jwt.jwt_login(role=role, jwt=jwt.get_secret_value(), path=mount)
    auth = answer.get("auth") or {}
    token = auth.get("client_token")
    if not token:
        raise SecretsError(
            f"{endpoint.environment}: JWT login at auth/{mount} answered without a client token; check the Vault JWT role {role!r}"
        )
    return LoginResult(token=SecretStr(token), ttl_s=int(auth.get("lease_duration") or 0), policies=tuple(auth.get("policies") or ()))
