"""The one exception hierarchy of the tool.

Every error the tool raises on purpose is an ``NndbError``: its message is a
single line that says what went wrong and what to do next, and the CLI prints
exactly that line and exits non-zero (the codes below; docs/hooks.md lists them). Anything else
is a bug: the CLI prints one line naming it and exits ``BUG_EXIT_CODE`` (``NNDB_DEBUG=1`` shows
the traceback).

Exit codes: 1 a bug, 2 configuration or command-line usage, 3 secrets, 4 connection (including a
server that stopped answering), 5 migration or run lock, 6 hook, 7 backup, 8 destroy refused,
9 status red, 10 restore, 11 point-in-time recovery, 12 drift found, 13 plan not computed, 14 backup schedule missing or late, 15 failover refused or stopped,
16 image upgrade refused, or failed and rolled back, 130 interrupted.
"""

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


class HookError(NndbError):
    """A post-apply hook step failed; names the plugin and the hook."""

    exit_code = 6


class BackupError(NndbError):
    """Taking, listing or verifying a backup failed."""

    exit_code = 7


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
