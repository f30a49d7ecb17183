"""The ``nndb`` operator CLI (also ``python -m nexanest_db``).

Each command group lives in ``nexanest_db/commands/<group>.py``; this module only wires them
together and turns every way a command can end into one line on stderr and a documented exit code
(``nexanest_db.errors``), never a traceback:

* an ``NndbError`` — its message and its exit code (2-8);
* a usage error (unknown command or option, missing argument, no command at all) — typer's own
  message as one line, pointing at ``--help``, exit 2 (``UsageError``);
* Ctrl-C — ``aborted``, exit 130;
* anything else is a bug — one line naming the exception, exit 1; ``NNDB_DEBUG=1`` shows the traceback.

typer 0.29 vendors its own click (``typer._click``): nothing here imports ``click``.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer
from typer._click import exceptions as click_exceptions

from nexanest_db import __version__
from nexanest_db.errors import BUG_EXIT_CODE, NndbError, UsageError

INTERRUPTED_EXIT_CODE = 130


def _version(value: bool) -> None:
    if value:
        print(f"nndb {__version__}")
        raise typer.Exit(0)


def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")] = False,
) -> None:
    """Operate the NexaNest database tier."""


def build_app() -> typer.Typer:
    from nexanest_db.commands import backup, failover, hooks, lifecycle, migrate, secrets, status, synth

    app = typer.Typer(name="nndb", help="Operate the NexaNest database tier.", no_args_is_help=True, add_completion=False)
    app.callback()(_root)
    app.add_typer(hooks.app, name="hooks")
    app.add_typer(migrate.app, name="migrate")
    app.add_typer(backup.app, name="backup")
    app.add_typer(secrets.app, name="secrets")
    app.command(name="synth")(synth.synth)
    app.command(name="wait-ready")(lifecycle.wait_ready_command)
    app.command(name="before-destroy")(lifecycle.before_destroy_command)
    app.command(name="status")(status.status)
    app.command(name="failover")(failover.failover_command)
    return app


def usage_line(exc: click_exceptions.UsageError) -> str:
    """A click usage error as one line: what is wrong, and which ``--help`` to read."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "nndb"
    if isinstance(exc, click_exceptions.NoArgsIsHelpError):
        what = "missing command" if ctx is None or ctx.parent is None else f"{command}: missing command"
    else:
        what = " ".join(exc.format_message().split()).rstrip(".")
        what = f"{command}: {what}" if command != "nndb" else what
    return f"{what}; run `{command} --help` for the usage"


def main(argv: list[str] | None = None) -> None:
    try:
        app = build_app()
        app(args=argv, prog_name="nndb", standalone_mode=False)
    except NndbError as exc:
        _fail(str(exc), exc.exit_code)
    except click_exceptions.UsageError as exc:
        _fail(str(UsageError(usage_line(exc))), UsageError.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("aborted", INTERRUPTED_EXIT_CODE)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click_exceptions.ClickException as exc:
        _fail(" ".join(exc.format_message().split()), exc.exit_code)
    except Exception as exc:  # a bug: one line, the traceback only on request
        if os.environ.get("NNDB_DEBUG"):
            traceback.print_exc()
        first_line = (str(exc).strip().splitlines() or [""])[0]
        _fail(f"unexpected {type(exc).__name__}: {first_line} (a bug in nndb; NNDB_DEBUG=1 shows the traceback)", BUG_EXIT_CODE)


def _fail(line: str, code: int) -> None:
    print(f"nndb: error: {line}", file=sys.stderr)
    sys.exit(code)
