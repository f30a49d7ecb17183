"""`nndb backup run|list|verify|restore|export`: dumps, the catalog, restore-to-prove, restore, plain export."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from nexanest_db.backups import Catalog, catalog_lock, clean_leftovers
from nexanest_db.commands.common import Resolved, resolve
from nexanest_db.commands.hookrun import DEFAULT_CONNECT_TIMEOUT_S, backup_dir_for, build_context, configure_logging, console
from nexanest_db.commands.hooks import AsJson, BackupDir, ConnectTimeout, ExistingBackupDir, ProjectDir, Stack
from nexanest_db.commands.output import set_result
from nexanest_db.commands.progress import Steps
from nexanest_db.context import HookContext
from nexanest_db.errors import BackupError, RestoreError
from nexanest_db.operations.backup import backup_key, take_and_verify, verify_record
from nexanest_db.operations.backup_metrics import write_backup_textfile
from nexanest_db.operations.redis_backup import (
    REDIS_NAMES,
    REDIS_SUBJECT,
    export_redis,
    restore_redis,
    take_redis_backup,
    verify_redis_backup,
)
from nexanest_db.operations.restore import choose_backup, export_backup, find_service, parse_time, restore_service
from nexanest_db.operations.retention import prune_dumps
from nexanest_db.operations.schedule import overdue, record_run, scheduled_runs
from nexanest_db.roles import all_services, postgres_instances

app = typer.Typer(help="Backups: take (run), list, and prove restorable (verify).", no_args_is_help=True)


def _clean(context: HookContext, catalog: Catalog, *, quiet: bool) -> list[str]:
    """What a killed earlier run left (partial and uncatalogued dumps, scratch databases), removed first."""
    instances = {instance: context.pg(instance) for instance in postgres_instances(context.config)}
    cleaned = clean_leftovers(catalog, instances, context.paths.sql_dir)
    if not quiet:
        for subject, summary in cleaned:
            console.print(f"  - {subject:<20} {summary}", markup=False)
    return [summary for _, summary in cleaned]


def _size(size: int) -> str:
    return f"{size / 1024:.1f} kB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"


TextfileDir = Annotated[
    Path | None,
    typer.Option(
        "--textfile-dir",
        help="also write nndb-<stack>-backup.prom there (node_exporter's textfile directory; monitoring/README.md)",
        exists=True,
        file_okay=False,
        dir_okay=True,
    ),
]


@app.command("run")
def run(
    stack: Stack,
    project_dir: ProjectDir = None,
    backup_dir: BackupDir = None,
    verify: bool = typer.Option(True, "--verify/--no-verify", help="prove each new backup by restoring it into a scratch database"),
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
    as_json: AsJson = False,
    scheduled: bool = typer.Option(False, "--scheduled", help="record this run in schedule.json (what the scheduler passes)"),
    textfile_dir: TextfileDir = None,
    with_redis: bool = typer.Option(True, "--redis/--no-redis", help="also snapshot Redis (RDB, encrypted like the dumps)"),
) -> None:
    """Back up every service database and Redis now (encrypted at rest), prove each, and prune past the retention.

    Examples: `nndb backup run local-db`, `nndb backup run prod-db --backup-dir /srv/backups --json`.
    """
    try:
        if scheduled:
            started = datetime.now(UTC)
            directory = backup_dir_for(resolve(stack, project_dir), backup_dir)
            try:
                ids = _run(stack, project_dir, backup_dir, verify, connect_timeout, as_json, with_redis=with_redis)
            except Exception as exc:
                directory.mkdir(parents=True, exist_ok=True)
                record_run(directory, started=started, ok=False, backup_ids=[], detail=str(exc))
                raise
            record_run(directory, started=started, ok=True, backup_ids=ids)
            return
        _run(stack, project_dir, backup_dir, verify, connect_timeout, as_json, with_redis=with_redis)
    finally:  # a failed run writes the metrics too: they keep the old timestamps, which is what the alert needs
        if textfile_dir is not None:
            _write_metrics(stack, project_dir, backup_dir, textfile_dir)


def _write_metrics(stack: str, project_dir: Path | None, backup_dir: Path | None, textfile_dir: Path) -> None:
    resolved = resolve(stack, project_dir)
    catalog = Catalog.load(backup_dir_for(resolved, backup_dir), stack)
    subjects = [service.subject for service in all_services(resolved.config)]
    written = write_backup_textfile(catalog, subjects, resolved.config.backup.schedule, textfile_dir)
    console.print(f"backup: metrics written to {written}", markup=False)


def _run(
    stack: str,
    project_dir: Path | None,
    backup_dir: Path | None,
    verify: bool,
    connect_timeout: float,
    as_json: bool,
    *,
    with_redis: bool = True,
) -> list[str]:
    resolved = resolve(stack, project_dir)
    context = build_context(
        resolved, logger=configure_logging(False), backup_dir=backup_dir, connect_timeout_s=connect_timeout, run_lock=False
    )
    taken = []
    steps = Steps()
    try:
        with catalog_lock(context.backup_dir):
            catalog = Catalog.load(context.backup_dir, stack)
            cleaned = _clean(context, catalog, quiet=as_json)
            with catalog.saved_afterwards():
                for service in context.services:
                    with steps.step(f"backup {service.subject}: dump" + (" + restore to prove it" if verify else "")):
                        record, detail = take_and_verify(context, service, catalog, verify=verify)
                    taken.append(record)
                    console.print(f"  + {service.subject:<20} {record.id} ({_size(record.size)}), {detail}", markup=False)
                if with_redis:
                    with steps.step("backup redis: snapshot" + (" + check it" if verify else "")):
                        record, detail = take_redis_backup(context, catalog, verify=verify)
                    taken.append(record)
                    console.print(f"  + {record.subject:<20} {record.id} ({_size(record.size)}), {detail}", markup=False)
                removed = prune_dumps(catalog, retention_days=resolved.config.backup.retention_days)
    finally:
        context.close()
    set_result({"stack": stack, "taken": [asdict(r) for r in taken], "pruned": [r.id for r in removed], "cleaned": cleaned})
    pruned = f", {len(removed)} pruned (older than {resolved.config.backup.retention_days} d)" if removed else ""
    steps.summary(f"backup: {len(taken)} backups taken{pruned}")
    return [r.id for r in taken]


@app.command("list")
def list_backups(stack: Stack, project_dir: ProjectDir = None, backup_dir: ExistingBackupDir = None, as_json: AsJson = False) -> None:
    """List the catalog: registered databases with their policy, and every backup (newest first).

    Examples: `nndb backup list local-db`, `nndb backup list prod-db --backup-dir /srv/backups --json`.
    """
    resolved = resolve(stack, project_dir)
    catalog = Catalog.load(backup_dir_for(resolved, backup_dir), stack)
    set_result(
        {
            "stack": stack,
            "databases": {k: asdict(v) for k, v in catalog.databases.items()},
            "backups": [asdict(b) for b in catalog.backups],
            "scheduled_runs": scheduled_runs(catalog.directory),
        }
    )
    for subject, entry in sorted(catalog.databases.items()):
        policy = entry.policy
        console.print(
            f"{subject:<20} schedule {policy['schedule']!s}, keep {policy['retention_days']} d, PITR {'on' if policy['pitr'] else 'off'}",
            markup=False,
        )
    for record in sorted(catalog.backups, key=lambda b: b.taken_at, reverse=True):
        state = "verified" if record.verified else ("FAILED verification" if record.verified is False else "not verified")
        at_rest = f"encrypted (key id {record.key_id})" if record.encrypted else "unencrypted"
        console.print(f"  {record.subject:<20} {record.id}  {_size(record.size):>9}  {state}, {at_rest}", markup=False)
    runs = scheduled_runs(catalog.directory)
    if runs:
        last = runs[-1]
        failed = sum(1 for r in runs if not r.get("ok"))
        console.print(
            f"scheduled runs: {len(runs)} recorded ({failed} failed), last at {last['started_at']} "
            f"({'ok' if last.get('ok') else 'FAILED: ' + str(last.get('detail', ''))})",
            markup=False,
        )
    else:
        console.print("scheduled runs: none recorded (is the scheduler installed? docs/backups.md#schedule)", markup=False)
    console.print(f"backup: {len(catalog.databases)} databases registered, {len(catalog.backups)} backups", markup=False)


@app.command("verify")
def verify(
    stack: Stack,
    project_dir: ProjectDir = None,
    backup_dir: ExistingBackupDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
    textfile_dir: TextfileDir = None,
) -> None:
    """Restore each database's latest backup into a scratch database and compare row counts; non-zero exit if any fails.

    Examples: `nndb backup verify local-db`, `nndb backup verify prod-db --textfile-dir /var/lib/node_exporter --json`.
    """
    resolved = resolve(stack, project_dir)
    context = build_context(
        resolved, logger=configure_logging(False), backup_dir=backup_dir, connect_timeout_s=connect_timeout, run_lock=False
    )
    failures: list[str] = []
    overdue_lines: list[str] = []
    verified: list[dict[str, str]] = []
    steps = Steps()
    set_result({"stack": stack, "verified": verified, "failures": failures, "overdue": overdue_lines})
    try:
        with catalog_lock(context.backup_dir):
            catalog = Catalog.load(context.backup_dir, stack)
            _clean(context, catalog, quiet=False)
            with catalog.saved_afterwards():
                for service in context.services:
                    record = catalog.latest(service.subject)
                    if record is None:
                        failures.append(f"{service.subject}: no backup in the catalog; run `nndb backup run {stack}`")
                        console.print(f"  x {service.subject:<20} no backup", markup=False)
                        continue
                    try:
                        with steps.step(f"verify {service.subject}: restore {record.id} into a scratch database"):
                            detail = verify_record(context, service.instance, record, catalog)
                    except BackupError as exc:
                        failures.append(str(exc))
                        console.print(f"  x {service.subject:<20} {record.id}: {exc}", markup=False)
                        continue
                    verified.append({"subject": service.subject, "id": record.id, "detail": detail})
                    console.print(f"  = {service.subject:<20} {record.id} restored: {detail}", markup=False)
                redis_record = catalog.latest(REDIS_SUBJECT)
                checked = len(context.services) + (redis_record is not None)
                if redis_record is not None:  # Redis snapshots come from `nndb backup run` (not the deploy's hook)
                    try:
                        detail = verify_redis_backup(context, catalog, redis_record)
                        verified.append({"subject": REDIS_SUBJECT, "id": redis_record.id, "detail": detail})
                        console.print(f"  = {REDIS_SUBJECT:<20} {redis_record.id} {detail}", markup=False)
                    except BackupError as exc:
                        failures.append(str(exc))
                        console.print(f"  x {REDIS_SUBJECT:<20} {redis_record.id}: {exc}", markup=False)
                for service in context.services:
                    late = overdue(catalog, service.subject, resolved.config.backup.schedule)
                    if late is not None:
                        overdue_lines.append(late)
                        console.print(f"  x {service.subject:<20} overdue: {late}", markup=False)
    finally:
        context.close()
    if textfile_dir is not None:
        _write_metrics(stack, project_dir, backup_dir, textfile_dir)
    if failures:
        raise BackupError(f"backup verify: {len(failures)} of {checked} latest backups cannot be restored — first: {failures[0]}")
    if overdue_lines:
        raise BackupError(f"backup verify: {len(overdue_lines)} of {len(context.services)} databases overdue — first: {overdue_lines[0]}")
    steps.summary(f"backup: {checked} latest backups restored and verified")


Service = Annotated[str, typer.Argument(help="the service (auth, portfolio, analytics) or its <instance>/<database>; or redis")]
BackupId = Annotated[str | None, typer.Option("--backup", help="the backup ID to use (see `nndb backup list`); default: the latest")]
Before = Annotated[
    str | None, typer.Option("--before", help="use the latest backup taken before this ISO 8601 time (UTC without an offset)")
]


@app.command("restore")
def restore(
    stack: Stack,
    service: Service,
    backup_id: BackupId = None,
    before: Before = None,
    force: bool = typer.Option(False, "--force", help="end the service's sessions at the swap instead of refusing"),
    into: str | None = typer.Option(None, "--into", help="restore into this new database beside the live one (no swap)"),
    project_dir: ProjectDir = None,
    backup_dir: ExistingBackupDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
) -> None:
    """Restore a service database from a backup: fresh backup first, restore into a new database, swap by rename.

    Examples: `nndb backup restore local-db auth`, `nndb backup restore prod-db portfolio --before 2026-12-01T09:00:00 --force`,
    `nndb backup restore dev-db auth --into auth_inspect` (beside the live one, no swap). docs/runbooks/restore.md.
    """
    if backup_id is not None and before is not None:
        raise RestoreError("--backup and --before pick the backup two ways; give one of them")
    resolved = resolve(stack, project_dir)
    before_time = parse_time(before) if before is not None else None
    if service in REDIS_NAMES:
        if into is not None:
            raise RestoreError("--into is for a service database; a Redis backup is restored into the live server")
        _restore_redis(resolved, backup_dir, connect_timeout, backup_id=backup_id, before=before_time, force=force)
        return
    context = build_context(resolved, logger=configure_logging(False), backup_dir=backup_dir, connect_timeout_s=connect_timeout)
    target = find_service(context.services, service)
    prefix = f"restore {target.subject}:"
    try:
        with catalog_lock(context.backup_dir):
            catalog = Catalog.load(context.backup_dir, stack)
            result = restore_service(
                context,
                catalog,
                target,
                report=lambda line: console.print(f"{prefix} {line}", markup=False),  # each line carries its elapsed time
                backup_id=backup_id,
                before=before_time,
                force=force,
                into=into,
            )
    finally:
        context.close()
    where = f"into {result.database} beside {target.database}" if into else f"into {result.database}"
    set_result(
        {
            "stack": stack,
            "subject": target.subject,
            "backup": result.restored.id,
            "database": result.database,
            "swapped": not into,
            "tables": result.tables,
            "rows": result.rows,
            "seconds": result.elapsed_s,
        }
    )
    console.print(
        f"restore: {target.subject} backup {result.restored.id} restored {where} "
        f"({result.tables} tables, {result.rows} rows) in {result.elapsed_s:.1f}s",
        markup=False,
    )


def _restore_redis(
    resolved: Resolved, backup_dir: Path | None, connect_timeout: float, *, backup_id: str | None, before: datetime | None, force: bool
) -> None:
    context = build_context(
        resolved, logger=configure_logging(False), backup_dir=backup_dir, connect_timeout_s=connect_timeout, run_lock=False
    )
    try:
        with catalog_lock(context.backup_dir):
            catalog = Catalog.load(context.backup_dir, resolved.stack)
            result = restore_redis(
                context,
                catalog,
                report=lambda line: console.print(f"restore {REDIS_SUBJECT}: {line}", markup=False),
                backup_id=backup_id,
                before=before,
                force=force,
            )
    finally:
        context.close()
    console.print(
        f"restore: {REDIS_SUBJECT} backup {result.restored.id} restored into the live server ({result.keys} keys, "
        f"{result.removed} removed); the data before it is backup {result.fresh.id}",
        markup=False,
    )


@app.command("export")
def export(
    stack: Stack,
    service: Service,
    output: Annotated[Path, typer.Option("--output", "-o", help="the file to write (must not exist); mode 0600")],
    backup_id: BackupId = None,
    before: Before = None,
    project_dir: ProjectDir = None,
    backup_dir: ExistingBackupDir = None,
) -> None:
    """Decrypt a backup into a plain pg_restore-able archive (custom format) at a path you name.

    Example: `nndb backup export prod-db auth -o /secure/auth.pgdump`, then `pg_restore --dbname auth_copy /secure/auth.pgdump`.
    """
    if backup_id is not None and before is not None:
        raise RestoreError("--backup and --before pick the backup two ways; give one of them")
    resolved = resolve(stack, project_dir)
    before_time = parse_time(before) if before is not None else None
    context = build_context(resolved, logger=configure_logging(False), backup_dir=backup_dir, run_lock=False)
    if service in REDIS_NAMES:
        try:
            catalog = Catalog.load(context.backup_dir, stack)
            record = choose_backup(catalog, REDIS_SUBJECT, backup_id=backup_id, before=before_time)
            size = export_redis(context, catalog, record, output)
        finally:
            context.close()
        console.print(
            f"export: {REDIS_SUBJECT} backup {record.id} written to {output} ({_size(size)}, mode 0600, an RDB file)", markup=False
        )
        return
    target = find_service(context.services, service)
    try:
        catalog = Catalog.load(context.backup_dir, stack)
        record = choose_backup(catalog, target.subject, backup_id=backup_id, before=before_time)
        size = export_backup(catalog, record, backup_key(context) if record.encrypted else None, output)
    finally:
        context.close()
    set_result({"stack": stack, "subject": target.subject, "backup": record.id, "output": str(output), "size": size})
    console.print(
        f"export: {target.subject} backup {record.id} written to {output} ({_size(size)}, mode 0600); "
        f"restore it with: pg_restore --dbname <database> {output}",
        markup=False,
    )


def _add_pitr() -> None:
    from nexanest_db.commands import pitr

    app.add_typer(pitr.app, name="pitr")


def _add_schedule() -> None:
    from nexanest_db.commands import schedule

    app.add_typer(schedule.app, name="schedule")


_add_pitr()
_add_schedule()
