"""`nndb backup pitr setup|cron|base|list|recover`: point-in-time recovery through the barman repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nexanest_db.commands.common import resolve
from nexanest_db.commands.hookrun import DEFAULT_CONNECT_TIMEOUT_S, build_context, configure_logging, console
from nexanest_db.commands.hooks import BackupDir, ConnectTimeout, ProjectDir, Stack
from nexanest_db.commands.output import set_result
from nexanest_db.commands.progress import Steps
from nexanest_db.context import HookContext
from nexanest_db.errors import PitrError
from nexanest_db.operations import pitr
from nexanest_db.operations.restore import parse_time
from nexanest_db.roles import postgres_instances

app = typer.Typer(help="Point-in-time recovery (barman): streamed WAL and base backups, recover an instance as of a time.")

Instance = Annotated[str | None, typer.Option("--instance", help="postgres or timescale (default: every instance)")]


def _context(stack: str, project_dir: Path | None, backup_dir: Path | None, connect_timeout: float, *, lock: bool = False) -> HookContext:
    resolved = resolve(stack, project_dir)
    if not resolved.config.backup.pitr:
        raise PitrError(f"{stack}: the backup policy has pitr = false; set [backup] pitr = true in the environment's config first")
    return build_context(resolved, logger=configure_logging(False), backup_dir=backup_dir, connect_timeout_s=connect_timeout, run_lock=lock)


def _instances(context: HookContext, instance: str | None) -> tuple[str, ...]:
    known = postgres_instances(context.config)
    if instance is None:
        return known
    if instance not in known:
        raise PitrError(f"--instance {instance}: not an instance of this stack; pick one of {', '.join(known)}")
    return (instance,)


@app.command("setup")
def setup(
    stack: Stack, project_dir: ProjectDir = None, backup_dir: BackupDir = None, connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S
) -> None:
    """Create the replication role and slot, write the repository's barman.conf, start streaming WAL.

    Example: `nndb backup pitr setup dev-db` (where [backup] pitr = true; docs/backups.md).
    """
    context = _context(stack, project_dir, backup_dir, connect_timeout, lock=True)
    steps = Steps()
    try:
        repo = pitr.Repository.for_context(context, environ=resolve(stack, project_dir).environ)
        with steps.step(f"pitr setup {stack}: role, slot, barman.conf, WAL streaming"):
            lines = list(pitr.setup(context, repo))
        for line in lines:
            console.print(f"  + {line}", markup=False)
    finally:
        context.close()
    console.print(f"pitr: repository {repo.home} streams WAL of {', '.join(postgres_instances(context.config))}", markup=False)


@app.command("cron")
def cron(
    stack: Stack, project_dir: ProjectDir = None, backup_dir: BackupDir = None, connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S
) -> None:
    """Keep WAL streaming, file incoming WAL, apply the retention (schedule it every minute).

    Example (crontab): `* * * * * nndb backup pitr cron prod-db --quiet`.
    """
    context = _context(stack, project_dir, backup_dir, connect_timeout)
    try:
        repo = pitr.Repository.for_context(context, environ=resolve(stack, project_dir).environ)
        pitr.write_config(context, repo)
        pitr.cron(repo)
    finally:
        context.close()


@app.command("base")
def base(
    stack: Stack,
    instance: Instance = None,
    project_dir: ProjectDir = None,
    backup_dir: BackupDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
) -> None:
    """Take a base backup of each instance (with the WAL that makes it consistent).

    Examples: `nndb backup pitr base dev-db`, `nndb backup pitr base prod-db --instance timescale`.
    """
    context = _context(stack, project_dir, backup_dir, connect_timeout)
    steps = Steps()
    taken: dict[str, str] = {}
    try:
        repo = pitr.Repository.for_context(context, environ=resolve(stack, project_dir).environ)
        pitr.write_config(context, repo)
        for name in _instances(context, instance):
            with steps.step(f"pitr base {name}: base backup"):
                taken[name] = str(pitr.base_backup(context, repo, name))
            console.print(f"  + {name:<10} base backup {taken[name]}", markup=False)
    finally:
        context.close()
    set_result({"stack": stack, "base_backups": taken})
    steps.summary(f"pitr: {len(taken)} base backups taken")


@app.command("list")
def list_base(
    stack: Stack,
    instance: Instance = None,
    project_dir: ProjectDir = None,
    backup_dir: BackupDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
) -> None:
    """The base backups in the repository and the window they reach.

    Example: `nndb backup pitr list dev-db --instance postgres`.
    """
    context = _context(stack, project_dir, backup_dir, connect_timeout)
    try:
        repo = pitr.Repository.for_context(context, environ=resolve(stack, project_dir).environ)
        pitr.write_config(context, repo)
        for name in _instances(context, instance):
            found = pitr.backups(repo, name)
            for item in found:
                ended = item.end_time.isoformat(timespec="seconds") if item.end_time else "-"
                console.print(f"  {name:<10} {item.backup_id}  {item.status:<8} ended {ended}  {item.size}", markup=False)
            console.print(f"pitr: {name}: {len(found)} base backups", markup=False)
    finally:
        context.close()


@app.command("recover")
def recover(
    stack: Stack,
    instance: Annotated[str, typer.Argument(help="postgres or timescale")],
    to: Annotated[Path, typer.Option("--to", help="an empty or new directory for the recovered data directory")],
    at: Annotated[str | None, typer.Option("--time", help="recover as of this ISO 8601 time (UTC without offset); default: latest")] = None,
    scratch: Annotated[bool, typer.Option("--scratch", help="start it as a scratch instance on a free 127.0.0.1 port")] = False,
    project_dir: ProjectDir = None,
    backup_dir: BackupDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
) -> None:
    """Recover an instance as of a time into a new data directory (a new volume), or a scratch instance to inspect.

    Example: `nndb backup pitr recover dev-db postgres --to /srv/recovered --time 2026-12-01T09:30:00 --scratch`.
    """
    target = parse_time(at) if at is not None else None
    context = _context(stack, project_dir, backup_dir, connect_timeout)
    steps = Steps()
    try:
        (name,) = _instances(context, instance)
        repo = pitr.Repository.for_context(context, environ=resolve(stack, project_dir).environ)
        with steps.step(f"pitr recover {name}: restore the base backup and replay WAL"):
            result = pitr.recover(context, repo, name, target=target, destination=to.resolve(), start=scratch)
    finally:
        context.close()
    when = result.target.isoformat() if result.target else "the latest WAL"
    set_result(
        {
            "stack": stack,
            "instance": name,
            "target": when,
            "backup": result.backup_id,
            "data_dir": str(result.data_dir),
            "port": result.port,
        }
    )
    console.print(f"pitr: {name} recovered as of {when} from base backup {result.backup_id} into {result.data_dir}", markup=False)
    if result.port is not None:
        console.print(
            f"pitr: scratch instance on 127.0.0.1:{result.port} (superuser as on {name}); stop it with: pg_ctl -D {result.data_dir} stop",
            markup=False,
        )
