"""The ``nndb`` operator CLI (also ``python -m nexanest_db``).

Each command group lives in ``nexanest_db/commands/<group>.py``; this module
only wires them together and turns an ``NndbError`` into one line on stderr
and its exit code, with no traceback.
"""

from __future__ import annotations

import sys

import typer

from nexanest_db.errors import NndbError


def build_app() -> typer.Typer:
    from nexanest_db.commands import backup, hooks, lifecycle, migrate, secrets, status, synth

    app = typer.Typer(name="nndb", help="Operate the NexaNest database tier.", no_args_is_help=True, add_completion=False)
    app.add_typer(hooks.app, name="hooks")
    app.add_typer(migrate.app, name="migrate")
    app.add_typer(backup.app, name="backup")
    app.add_typer(secrets.app, name="secrets")
    app.command(name="synth")(synth.synth)
    app.command(name="wait-ready")(lifecycle.wait_ready_command)
    app.command(name="before-destroy")(lifecycle.before_destroy_command)
    app.command(name="status")(status.status)
    return app


def main(argv: list[str] | None = None) -> None:
    app = build_app()
    try:
        app(args=argv, prog_name="nndb", standalone_mode=False)
    except NndbError as exc:
        print(f"nndb: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("nndb: aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise
