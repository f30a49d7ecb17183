"""`nndb backup schedule install|check`: the configured schedule as a cron.d entry on the backup host."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from nexanest_db.backups import Catalog
from nexanest_db.commands.common import resolve
from nexanest_db.commands.hookrun import backup_dir_for, console
from nexanest_db.commands.hooks import BackupDir, ProjectDir, Stack
from nexanest_db.errors import ScheduleError, and_more
from nexanest_db.operations.schedule import CRON_DIR, CronEntry, check_cron, install_cron

app = typer.Typer(help="The backup schedule on this host: install the cron entry, check that it is current and runs.", no_args_is_help=True)

CronDir = Annotated[Path, typer.Option("--cron-dir", help="where cron reads system crontabs", file_okay=False)]
User = Annotated[str | None, typer.Option("--user", help="the user the runs execute as (default: you)")]
Log = Annotated[Path | None, typer.Option("--log", help="where the runs' output goes (default: /var/log/nndb-<stack>.log)")]
Textfile = Annotated[Path | None, typer.Option("--textfile-dir", help="node_exporter's textfile directory for the backup metrics")]


def _entry(stack: str, project_dir: Path | None, user: str | None, log: Path | None, textfile_dir: Path | None) -> CronEntry:
    resolved = resolve(stack, project_dir)
    return CronEntry(
        stack=stack,
        schedule=resolved.config.backup.schedule,
        pitr=resolved.config.backup.pitr,
        project_root=resolved.paths.root.resolve(),
        nndb=Path(sys.executable).parent / "nndb",  # this installation's nndb, whatever PATH cron has
        user=user or getpass.getuser(),
        log=log or Path(f"/var/log/nndb-{stack}.log"),
        textfile_dir=textfile_dir,
    )


@app.command("install")
def install(
    stack: Stack,
    project_dir: ProjectDir = None,
    cron_dir: CronDir = CRON_DIR,
    user: User = None,
    log: Log = None,
    textfile_dir: Textfile = None,
) -> None:
    """Write /etc/cron.d/nndb-<stack>: `backup run --scheduled` on [backup] schedule (and PITR base/cron where pitr = true).

    Example (as root on the backup host): `nndb backup schedule install prod-db --user nndb`.
    """
    entry = _entry(stack, project_dir, user, log, textfile_dir)
    path = install_cron(entry, cron_dir)
    for line in entry.render().splitlines():
        if line and not line.startswith(("#", "SHELL=", "PATH=")):
            console.print(f"  + {line}", markup=False)
    console.print(f"schedule: {path} installed; `nndb backup schedule check {stack}` confirms the runs happen", markup=False)


@app.command("check")
def check(
    stack: Stack,
    project_dir: ProjectDir = None,
    backup_dir: BackupDir = None,
    cron_dir: CronDir = CRON_DIR,
    user: User = None,
    log: Log = None,
    textfile_dir: Textfile = None,
) -> None:
    """Fail (exit 14) when the entry is missing, differs from the config, or its runs stopped or failed.

    Example: `nndb backup schedule check prod-db` (in a monitoring check or after install).
    """
    entry = _entry(stack, project_dir, user, log, textfile_dir)
    directory = backup_dir_for(resolve(stack, project_dir), backup_dir)
    Catalog.load(directory, stack)  # pulls schedule.json from an off-host repository
    problems = check_cron(entry, cron_dir, directory)
    for problem in problems:
        console.print(f"  x {problem}", markup=False)
    if problems:
        raise ScheduleError(f"backup schedule of {stack}: {problems[0]}{and_more(problems)}")
    console.print(f"schedule: {entry.file(cron_dir)} is current and its last scheduled run succeeded", markup=False)
