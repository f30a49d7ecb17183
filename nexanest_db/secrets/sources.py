"""Where credentials come from: the ``CredentialSource`` protocol, the environment source, resolving many at once.

A ``CredentialSource`` answers ``get(name)`` with a ``pydantic.SecretStr`` (its ``repr``/``str``
never show the value; call ``.get_secret_value()`` only at the point of use) or raises
``SecretsError`` naming the environment, the source and the variable/path/key, never the value.

``EnvSource``: the process environment and ``.env.db`` (already merged by the edge), ``*_FILE``
variables, and the ADR dev default for local/dev only. The variable of each secret is its
catalogue entry's (``nexanest_db.secrets.catalogue``). Vault is ``nexanest_db.secrets.vault``;
``nexanest_db.secrets.selection`` picks the source a config names.

Besides the current value, a source answers ``previous(name)``: the credential that was current
before the last rotation (``<VAR>_PREVIOUS_FILE`` or ``<VAR>_PREVIOUS``, else the dev default in
local/dev; in Vault the previous KV v2 version), or ``None``. Only the superuser rotation uses it:
the official image sets the superuser password only on an empty data directory, so the hooks log
in with the previous credential once and set the current one (``nexanest_db.pg``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from nexanest_db.config import read_bounded
from nexanest_db.errors import SecretsError
from nexanest_db.secrets.catalogue import DEFAULT_CATALOGUE, Catalogue, SecretSpec
from nexanest_db.secrets.policy import DEV_DEFAULT_PASSWORD, refuse_weak

# A *_FILE secret is read only when it is a regular file of at most this size (a FIFO would block
# forever, /dev/zero never ends); PEM CA bundles fit many times over.
MAX_SECRET_FILE_BYTES = 1 << 20


class CredentialSource(Protocol):
    """Where credentials come from; ``describe`` says where ``name`` is looked up (no value).

    ``previous`` is the value ``name`` had before its last rotation, ``None`` when the source knows
    none; ``previous_hint`` says where it is looked up and how to supply it (one clause, no value).
    """

    @property
    def environment(self) -> str: ...  # read-only: the sources are frozen dataclasses

    def get(self, name: str) -> SecretStr: ...

    def describe(self, name: str) -> str: ...

    def previous(self, name: str) -> SecretStr | None: ...

    def previous_hint(self, name: str) -> str: ...


@dataclass(frozen=True, kw_only=True)
class EnvSource:
    """Environment variables (already merged with ``.env.db``) and ``*_FILE`` files."""

    environment: str
    environ: Mapping[str, str]
    allow_dev_default: bool
    catalogue: Catalogue = field(default=DEFAULT_CATALOGUE, repr=False)

    def _spec(self, name: str) -> SecretSpec:
        return self.catalogue.spec(name)

    def _dev_default_for(self, name: str) -> bool:
        """Local/dev passwords fall back to the ADR default; TLS material never does."""
        return self.allow_dev_default and not self._spec(name).tls

    def _empty(self, *variables: str) -> str | None:
        """The first of ``variables`` that is set but empty (``VAR=``): never silently a default."""
        return next((v for v in variables if v in self.environ and not self.environ[v].strip()), None)

    def describe(self, name: str) -> str:
        var = self._spec(name).env_var
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
        var = self._spec(name).env_var
        file_var = f"{var}_FILE"
        if empty := self._empty(file_var, var):
            raise SecretsError(
                f"{self.environment}: secret {name}: {empty} is set but empty; give it the value (or a file path) or unset it "
                "(an empty value is never taken as the default)"
            )
        if self.environ.get(file_var):
            value = self._read_file(file_var)
            refuse_weak(self.environment, self._spec(name), f"${file_var}", value)
            return SecretStr(value)
        if self.environ.get(var):
            refuse_weak(self.environment, self._spec(name), f"${var}", self.environ[var])
            return SecretStr(self.environ[var])
        if self._dev_default_for(name):
            return SecretStr(DEV_DEFAULT_PASSWORD)
        if self._spec(name).tls:
            raise SecretsError(f"{self.environment}: secret {name} is missing: set {var} or {file_var} (PEM; tls.enabled needs it)")
        raise SecretsError(f"{self.environment}: secret {name} is missing: set {var} or {file_var} (no default outside local/dev)")

    def previous(self, name: str) -> SecretStr | None:
        """``<VAR>_PREVIOUS_FILE``, else ``<VAR>_PREVIOUS``, else (local/dev only) the dev default, else ``None``.

        The value is only ever used to log in once and replace it, so the dev default is not refused here.
        """
        var = f"{self._spec(name).env_var}_PREVIOUS"
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
        var = f"{self._spec(name).env_var}_PREVIOUS"
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


def check_all(source: CredentialSource, names: tuple[str, ...] = DEFAULT_CATALOGUE.names) -> list[SecretStatus]:
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


def resolve_all(source: CredentialSource, names: tuple[str, ...] = DEFAULT_CATALOGUE.names) -> dict[str, SecretStr]:
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
