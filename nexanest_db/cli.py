"""The ``nndb`` operator CLI (also ``python -m nexanest_db``).

Each command group lives in ``nexanest_db/commands/<group>.py``; this module only wires them
together and turns every way a command can end into one line on stderr and a documented exit code
(``nexanest_db.errors``), never a traceback:

* an ``NndbError`` — its message and its exit code (2-9);
* a usage error (unknown command or option, missing argument, no command at all) — typer's own
  message as one line, pointing at ``--help``, exit 2 (``UsageError``);
* Ctrl-C — ``aborted``, exit 130;
* anything else is a bug — one line naming the exception, exit 1; ``NNDB_DEBUG=1`` shows the traceback.

Every command, including those registered later, gets the common options ``--json``, ``--quiet``
and ``--no-color`` (``with_common_options``); they are also accepted before the command
(``nndb --json status local-db``). With ``--json`` the one document of docs/cli.md is printed on
stdout, for an error too, with the same exit code. This is an entry point: it hands ``os.environ``
and the working directory to the edge (``output.begin``) and reads nothing else of the environment.

typer 0.29 vendors its own click (``typer._click``): nothing here imports ``click``.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_exceptions
from typer._completion_classes import completion_init

from nexanest_db import __version__
from nexanest_db.commands import output
from nexanest_db.edge import quiet_node_end_of_life_warning
from nexanest_db.errors import BUG_EXIT_CODE, NndbError, UsageError

INTERRUPTED_EXIT_CODE = 130
PROG_NAME = "nndb"
COMPLETE_VARIABLE = "_NNDB_COMPLETE"
SHELLS = ("bash", "zsh", "fish")

JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout instead of text (docs/cli.md#json)")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="print nothing but errors")]
NoColorFlag = Annotated[bool, typer.Option("--no-color", help="no colour or styles (also NO_COLOR=1)")]

_COMMON = {
    "nndb_json": ("--json", JsonFlag),
    "nndb_quiet": ("--quiet", QuietFlag),
    "nndb_no_color": ("--no-color", NoColorFlag),
}


def _version(value: bool) -> None:
    if value:
        output.console.print(f"nndb {__version__}", markup=False)
        output.set_result({"version": __version__})
        raise typer.Exit(0)


def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")] = False,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
    no_color: NoColorFlag = False,
) -> None:
    """Operate the NexaNest database tier.

    Examples: `nndb status local-db`, `nndb --json backup list prod-db`, `nndb completion bash > ~/.nndb-complete.bash`.
    """
    output.configure(as_json=as_json, quiet=quiet, no_color=no_color)


def _option_names(annotation: Any) -> set[str]:
    names: set[str] = set()
    for meta in getattr(annotation, "__metadata__", ()):
        names.update(getattr(meta, "param_decls", ()) or ())
        default = getattr(meta, "default", None)
        if isinstance(default, str) and default.startswith("--"):
            names.add(default)
    return names


def with_common_options(command: Callable[..., Any], path: tuple[str, ...]) -> Callable[..., Any]:
    """``command`` with ``--json``, ``--quiet`` and ``--no-color`` added (those it has are honoured, not duplicated)."""
    signature = inspect.signature(command, eval_str=True)
    taken = {name for param in signature.parameters.values() for name in _option_names(param.annotation)}
    json_param = next((p.name for p in signature.parameters.values() if "--json" in _option_names(p.annotation)), None)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=annotation)
        for name, (flag, annotation) in _COMMON.items()
        if flag not in taken
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.pop("nndb_json", False)) or bool(json_param and kwargs.get(json_param))
        output.configure(
            as_json=as_json, quiet=bool(kwargs.pop("nndb_quiet", False)), no_color=bool(kwargs.pop("nndb_no_color", False)), command=path
        )
        if json_param is not None and output.is_json():
            kwargs[json_param] = True
        return command(*args, **kwargs)

    params = list(signature.parameters.values())
    wrapper.__signature__ = signature.replace(parameters=[*params, *extra])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in [*params, *extra]} | {"return": signature.return_annotation}
    return wrapper


def _add_common_options(app: typer.Typer, path: tuple[str, ...] = ()) -> None:
    for info in app.registered_commands:
        assert info.callback is not None
        name = info.name or info.callback.__name__.replace("_", "-")
        info.callback = with_common_options(info.callback, (*path, name))
    for group in app.registered_groups:
        assert group.typer_instance is not None and group.name is not None
        _add_common_options(group.typer_instance, (*path, group.name))


def completion(shell: Annotated[str, typer.Argument(help="bash, zsh or fish", metavar="SHELL")]) -> None:
    """Print the shell completion script of nndb for SHELL.

    Examples: `nndb completion bash > ~/.local/share/bash-completion/completions/nndb`,
    `eval "$(nndb completion zsh)"` in ~/.zshrc, `nndb completion fish > ~/.config/fish/completions/nndb.fish`.
    """
    from typer._completion_shared import get_completion_script

    if shell not in SHELLS:
        raise UsageError(f"nndb completion: unknown shell {shell!r}; pick one of {', '.join(SHELLS)}")
    script = get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VARIABLE, shell=shell)
    output.set_result({"shell": shell, "script": script})
    output.console.print(script, markup=False)


def build_app() -> typer.Typer:
    from nexanest_db.commands import backup, drift, failover, hooks, lifecycle, migrate, plan, secrets, status, swarm, synth, upgrade

    app = typer.Typer(name="nndb", help="Operate the NexaNest database tier.", no_args_is_help=True, add_completion=False)
    app.callback()(_root)
    app.add_typer(hooks.app, name="hooks")
    app.add_typer(migrate.app, name="migrate")
    app.add_typer(backup.app, name="backup")
    app.add_typer(secrets.app, name="secrets")
    app.add_typer(swarm.app, name="swarm")
    app.command(name="synth")(synth.synth)
    app.command(name="wait-ready")(lifecycle.wait_ready_command)
    app.command(name="before-destroy")(lifecycle.before_destroy_command)
    app.command(name="status")(status.status)
    app.command(name="drift")(drift.drift)
    app.command(name="plan")(plan.plan)
    app.command(name="failover")(failover.failover_command)
    app.command(name="upgrade")(upgrade.upgrade_command)
    app.command(name="completion")(completion)
    _add_common_options(app)
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


def _usage_command(exc: click_exceptions.UsageError) -> tuple[str, ...]:
    ctx = getattr(exc, "ctx", None)
    return tuple(ctx.command_path.split()[1:]) if ctx is not None else ()


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ
    invocation = output.begin(environ=environ, cwd=Path.cwd())
    if "--json" in args:  # known before parsing, so that a usage error is a JSON document too
        output.configure(as_json=True)
    quiet_node_end_of_life_warning(environ)
    try:
        app = build_app()
        completion_init()  # typer registers its shells' completion only with add_completion; nndb has its own command
        app(args=args, prog_name=PROG_NAME, complete_var=COMPLETE_VARIABLE, standalone_mode=False)
    except NndbError as exc:
        _fail(str(exc), exc.exit_code, type(exc).__name__)
    except click_exceptions.UsageError as exc:
        _fail(str(UsageError(usage_line(exc))), UsageError.exit_code, "UsageError", _usage_command(exc))
    except (typer.Abort, KeyboardInterrupt):
        _fail("aborted", INTERRUPTED_EXIT_CODE, "Aborted")
    except typer.Exit as exc:
        _finish(exc.exit_code, help_asked="--help" in args)
    except click_exceptions.ClickException as exc:
        _fail(" ".join(exc.format_message().split()), exc.exit_code, "UsageError")
    except Exception as exc:  # a bug: one line, the traceback only on request
        if invocation.environ.get("NNDB_DEBUG"):
            traceback.print_exc()
        first_line = (str(exc).strip().splitlines() or [""])[0]
        _fail(f"unexpected {type(exc).__name__}: {first_line} (a bug in nndb; NNDB_DEBUG=1 shows the traceback)", BUG_EXIT_CODE, "Bug")
    _finish(0, help_asked="--help" in args)


def _finish(code: int, *, help_asked: bool) -> None:
    if output.is_json() and not help_asked:
        output.print_document(output.ok_document())
    sys.exit(code)


def _fail(line: str, code: int, kind: str, command: tuple[str, ...] | None = None) -> None:
    if output.is_json():
        output.print_document(output.error_document(line, code, kind, command))
    print(f"nndb: error: {line}", file=sys.stderr)
    sys.exit(code)
