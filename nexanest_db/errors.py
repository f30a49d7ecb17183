"""The one exception hierarchy of the tool.

Every error the tool raises on purpose is an ``NndbError``: its message is a
single line that says what went wrong and what to do next, and the CLI prints
exactly that line and exits non-zero (the codes below; docs/hooks.md lists them). Anything else
is a bug: the CLI prints one line naming it and exits ``BUG_EXIT_CODE`` (``NNDB_DEBUG=1`` shows
the traceback).

Exit codes: 1 a bug, 2 configuration or command-line usage, 3 secrets, 4 connection (including a
server that stopped answering), 5 migration or run lock, 6 hook, 7 backup, 8 destroy refused,
9 status red, 10 restore, 11 point-in-time recovery, 12 drift found, 13 plan not computed, 14 backup schedule missing or late, 15 failover refused or stopped,
16 image upgrade refused, or failed and rolled back, 17 Swarm hand-off incomplete (``nndb swarm secrets``), 130 interrupted.
A hook run that stops (``RunFailed``) exits with the code of the step's own error: a migration's 5,
a lost server's 4, 6 for a plugin bug or a plugin that does not fit the hook specs.

The pieces of a message that many errors share are written once, here: ``and_more`` (the "(and N
more)" ending of a message that shows only its first problem) and the TLS hints (``tls_not_signed``,
``tls_wrong_name``, ``TLS_REQUIRED_HINT``), and the short listing ``first_few``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only a type: the manager's report; errors.py imports nothing of the tool at run time
    from nexanest_db.hook_manager import RunReport

BUG_EXIT_CODE = 1


class NndbError(Exception):
    """Base class: a failure the user can act on. ``str(err)`` is one line."""

    exit_code = 1


class ConfigError(NndbError):
    """A configuration file, template or environment override is invalid."""

    exit_code = 2


class UsageError(ConfigError):
    """The command line is wrong: unknown command or option, missing argument (click's exit code 2)."""

    exit_code = 2


class SecretsError(NndbError):
    """A secret could not be resolved (missing, denied, Vault down, ...).

    Messages name the environment, the source and the path/key, never a value.
    """

    exit_code = 3


class ConnectionFailed(NndbError):
    """A database or cache endpoint could not be reached or refused us."""

    exit_code = 4


class MigrationError(NndbError):
    """A migration failed, was edited after being applied, or is out of order."""

    exit_code = 5


class RunLockTimeout(MigrationError):
    """Another nndb run held the run lock (``nexanest_db.pg``) for longer than the lock timeout."""


class HookError(NndbError):
    """A post-apply hook step failed; names the plugin and the hook."""

    exit_code = 6


class StepFailed(HookError):
    """A step of a step file (``nexanest_db.sqlfiles``) failed on the server; the message names file, line and step."""


class PluginsMissing(HookError):
    """The built-in hook steps are not among the installed entry points (stale metadata): reinstall."""


class PluginInvalid(HookError):
    """A plugin does not fit the hook specs (a misspelled hook, an argument no hook passes)."""


class RunFailed(HookError):
    """A hook run stopped at a failed step; ``report`` holds what the earlier steps changed before it.

    ``step_error`` is the step's own error (a plugin bug or a bad return value: a ``HookError``); the
    run exits with its code, so a failed migration is still 5 and a lost server 4.
    """

    def __init__(self, message: str, *, report: RunReport, step_error: NndbError) -> None:
        super().__init__(message)
        self.report = report
        self.step_error = step_error
        self.exit_code = step_error.exit_code


class BackupError(NndbError):
    """Taking, listing or verifying a backup failed."""

    exit_code = 7


class DecryptionError(BackupError):
    """A backup file cannot be decrypted (``nexanest_db.backup_crypto``); ``str()`` is one line without key material.

    Callers name the file and say what to do (verify: a ``BackupError``, restore: a ``RestoreError``).
    """


class NotEncryptedError(DecryptionError):
    """The file does not start with an nndb encryption header (or one of an unknown version)."""


class KeyMismatchError(DecryptionError):
    """The file was encrypted with another key (its key id differs from the current key's)."""

    def __init__(self, file_key_id: str, current_key_id: str) -> None:
        self.file_key_id = file_key_id
        self.current_key_id = current_key_id
        super().__init__(f"encrypted with a different key (key id {file_key_id}; the current key's id is {current_key_id})")


class AuthenticationError(DecryptionError):
    """A chunk of an encrypted backup failed authentication: the file was altered, truncated, reordered or extended."""

    def __init__(self, chunk: int, why: str = "") -> None:
        self.chunk = chunk
        super().__init__(f"authentication failed at chunk {chunk}" + (f" ({why})" if why else ""))


class DestroyRefused(NndbError):
    """A destroy was stopped before anything was removed: not confirmed, or no proven backup."""

    exit_code = 8


class StatusRed(NndbError):
    """``nndb status`` found something red (each red item was printed on stderr, one line each)."""

    exit_code = 9


class RestoreError(NndbError):
    """A restore or export was refused or failed; the live database is as it was unless the message says otherwise."""

    exit_code = 10


class PitrError(NndbError):
    """Point-in-time recovery: the repository (barman), a base backup or a recovery failed or was refused."""

    exit_code = 11


class DriftFound(NndbError):
    """``nndb drift`` found the live databases differing from the ledger and the repository's files (each finding printed, one line each)."""

    exit_code = 12


class PlanFailed(NndbError):
    """``nndb plan`` could not compute the infrastructure changes: synth at the base ref, or terraform plan/show, failed."""

    exit_code = 13


class ScheduleError(NndbError):
    """The backup schedule is not installed on this host, is stale, or its runs stopped (``nndb backup schedule check``)."""

    exit_code = 14


class FailoverError(NndbError):
    """A switchover or failover was refused or stopped; the message says which node is primary now."""

    exit_code = 15


class UpgradeError(NndbError):
    """``nndb upgrade`` refused an image change (a major version without ``--path``, no proven backup), or the new
    image did not come up and the previous one was put back; the message says which image runs now."""

    exit_code = 16


class SwarmError(NndbError):
    """The Swarm hand-off is not complete: the manager is unreachable or not a manager, a current secret is
    missing there, or a service still mounts an older generation (``nndb swarm secrets``)."""

    exit_code = 17


# --- message pieces shared by many errors ---------------------------------------------------------


def and_more(problems: Sequence[object], *, shown: int = 1, noun: str = "", then: str = "") -> str:
    """The ending of a message that shows ``shown`` of ``problems``: `` (and 2 more)``, or ``""`` when none is left out.

    ``noun`` names what is left out (``problem`` -> ``(and 1 more problem)``, ``(and 2 more problems)``);
    ``then`` follows after a semicolon (``(and 2 more; `nndb migrate status` lists them)``).
    """
    more = len(problems) - shown
    if more <= 0:
        return ""
    what = f" {noun}{'s' if more > 1 else ''}" if noun else ""
    return f" (and {more} more{what}{f'; {then}' if then else ''})"


def first_few(items: Sequence[str], limit: int) -> str:
    """The first ``limit`` of ``items`` joined by commas, then `` and N more`` when some are left out."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def tls_not_signed(where: str, ca_location: str | None) -> str:
    """A server certificate the client's CA bundle does not verify."""
    return (
        f"{where}: TLS certificate verification failed; the server certificate is not signed by the CA bundle "
        f"in {ca_location} (check that bundle and the server's certificate)"
    )


def tls_wrong_name(where: str, host: str) -> str:
    """A server certificate that does not name the host the client connected to."""
    return f"{where}: TLS: the server certificate does not name {host}; give the certificate a SAN for the endpoint host (or connect by a name it has)"


TLS_REQUIRED_HINT = "if the server requires TLS, set [tls] enabled = true in the environment's config"
