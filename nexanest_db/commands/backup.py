"""`nndb backup run|list|verify`: dumps, the catalog, and restore-to-prove."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from nexanest_db.backups import Catalog, catalog_lock, clean_leftovers, prune
from nexanest_db.commands.common import resolve
from nexanest_db.commands.hookrun import DEFAULT_CONNECT_TIMEOUT_S, backup_dir_for, build_context, configure_logging, console
from nexanest_db.commands.hooks import AsJson, BackupDir, ConnectTimeout, ProjectDir, Stack
from nexanest_db.context import HookContext
from nexanest_db.errors import BackupError
from nexanest_db.plugins.backup import take_and_verify, verify_record
from nexanest_db.roles import postgres_instances

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


@app.command("run")
def run(
    stack: Stack,
    project_dir: ProjectDir = None,
    backup_dir: BackupDir = None,
    verify: bool = typer.Option(True, "--verify/--no-verify", help="prove each new backup by restoring it into a scratch database"),
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
    as_json: AsJson = False,
) -> None:
    """Back up every service database now (pg_dump -Fc, encrypted at rest), prove it, and prune past the retention."""
    resolved = resolve(stack, project_dir)
    context = build_context(
        resolved, logger=configure_logging(False), backup_dir=backup_dir, connect_timeout_s=connect_timeout, run_lock=False
    )
    taken = []
    try:
        with catalog_lock(context.backup_dir):
            catalog = Catalog.load(context.backup_dir, stack)
            cleaned = _clean(context, catalog, quiet=as_json)
            with catalog.saved_afterwards():
                for service in context.services:
                    record, detail = take_and_verify(context, service, catalog, verify=verify)
                    taken.append(record)
                    if not as_json:
                        console.print(f"  + {service.subject:<20} {record.id} ({_size(record.size)}), {detail}", markup=False)
                removed = prune(catalog, retention_days=resolved.config.backup.retention_days)
    finally:
        context.close()
    if as_json:
        console.print_json(
            json.dumps({"stack": stack, "taken": [asdict(r) for r in taken], "pruned": [r.id for r in removed], "cleaned": cleaned})
        )
        return
    pruned = f", {len(removed)} pruned (older than {resolved.config.backup.retention_days} d)" if removed else ""
    console.print(f"backup: {len(taken)} backups taken{pruned}", markup=False)


@app.command("list")
def list_backups(stack: Stack, project_dir: ProjectDir = None, backup_dir: BackupDir = None, as_json: AsJson = False) -> None:
    """List the catalog: registered databases with their policy, and every backup (newest first)."""
    resolved = resolve(stack, project_dir)
    catalog = Catalog.load(backup_dir_for(resolved, backup_dir), stack)
    if as_json:
        payload = {
            "stack": stack,
            "databases": {k: asdict(v) for k, v in catalog.databases.items()},
            "backups": [asdict(b) for b in catalog.backups],
        }
        console.print_json(json.dumps(payload))
        return
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
    console.print(f"backup: {len(catalog.databases)} databases registered, {len(catalog.backups)} backups", markup=False)


@app.command("verify")
def verify(
    stack: Stack,
    project_dir: ProjectDir = None,
    backup_dir: BackupDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
) -> None:
    """Restore each database's latest backup into a scratch database and compare row counts; non-zero exit if any fails."""
    resolved = resolve(stack, project_dir)
    context = build_context(
        resolved, logger=configure_logging(False), backup_dir=backup_dir, connect_timeout_s=connect_timeout, run_lock=False
    )
    failures: list[str] = []
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
                        detail = verify_record(context, service.instance, record, catalog)
                    except BackupError as exc:
                        failures.append(str(exc))
                        console.print(f"  x {service.subject:<20} {record.id}: {exc}", markup=False)
                        continue
                    console.print(f"  = {service.subject:<20} {record.id} restored: {detail}", markup=False)

    finally:
        context.close()
    if failures:
        raise BackupError(
            f"backup verify: {len(failures)} of {len(context.services)} latest backups cannot be restored — first: {failures[0]}"
        )
    console.print(f"backup: {len(context.services)} latest backups restored and verified", markup=False)
