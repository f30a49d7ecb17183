"""Built-in plugin ``backup``: register every service database in the backup catalog, with a proven backup.

Registration records the environment's policy (``[backup]`` in config: schedule, retention, PITR)
per database and, when the database has no verified backup yet, takes one and proves it by a
restore into a scratch database. A re-run with the same policy and a verified backup on disk
changes nothing. Scheduled backups afterwards are ``nndb backup run <stack>`` (cron / CI), which
reuses the functions below.

Every new backup is encrypted with the ``backup_encryption_key`` secret (``backup_key``); a database
whose latest verified backup is unencrypted or was taken with another key gets a new one, so a
deploy after a key rotation (or after upgrading from cleartext backups) leaves a backup the current
key restores.

PITR: WAL archiving itself is configured by the stack (rendered postgres.conf); this step only
records the policy and warns when the server says ``archive_mode`` is off although PITR is on.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from nexanest_db.backup_crypto import BackupKey
from nexanest_db.backups import Catalog, DatabaseEntry, catalog_lock, clean_leftovers, find_tool, policy_dict, readable_with
from nexanest_db.errors import BackupError
from nexanest_db.hookspecs import Change, HookContext, hookimpl
from nexanest_db.operations.backup import (  # noqa: F401 -- re-exported: the step's helpers moved to operations
    BACKUP_KEY_SECRET,
    backup_key,
    major_version,
    scratch_connector,
    take_and_verify,
    target_for,
    verify_record,
)
from nexanest_db.queries import load_query
from nexanest_db.roles import postgres_instances

_major = major_version
_scratch_connector = scratch_connector  # the name tests used before the move to nexanest_db.operations.backup


def _has_proven_backup(catalog: Catalog, subject: str, key: BackupKey) -> bool:
    record = catalog.latest(subject, verified_only=True)
    if record is None or not readable_with(record, key):
        return False
    path = catalog.path_of(record)
    return path.is_file() and path.stat().st_size == record.size


@hookimpl
def nndb_preflight(context: HookContext) -> None:
    backup_key(context)  # a missing or refused backup key stops the run before anything changes
    for instance in postgres_instances(context.config):
        major = _major(context, instance)
        find_tool("pg_dump", major)
        find_tool("pg_restore", major)
    existing = context.backup_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not _writable(existing):
        raise BackupError(f"{context.backup_dir}: backup directory cannot be created or written; set --backup-dir / NNDB_BACKUP_DIR")


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


@hookimpl
def nndb_register_backups(context: HookContext) -> list[Change]:
    policy = policy_dict(context.config.backup)
    changes: list[Change] = []
    with catalog_lock(context.backup_dir):
        catalog = Catalog.load(context.backup_dir, context.stack)
        instances = {instance: context.pg(instance) for instance in postgres_instances(context.config)}
        for subject, summary in clean_leftovers(catalog, instances, context.paths.sql_dir):
            changes.append(Change(subject=subject, summary=summary))
        dirty = False
        for service in context.services:
            entry = catalog.databases.get(service.subject)
            if entry is None or entry.policy != policy:
                catalog.databases[service.subject] = DatabaseEntry(
                    subject=service.subject,
                    service=service.service,
                    instance=service.instance,
                    database=service.database,
                    policy=policy,
                    registered_at=entry.registered_at if entry else datetime.now(UTC).isoformat(timespec="seconds"),
                )
                verb = "registered in the backup catalog" if entry is None else "backup policy updated"
                pitr = "on" if policy["pitr"] else "off"
                changes.append(
                    Change(
                        subject=service.subject, summary=f"{verb} ({policy['schedule']}, keep {policy['retention_days']} d, PITR {pitr})"
                    )
                )
                dirty = True
            key = backup_key(context)
            if not _has_proven_backup(catalog, service.subject, key):
                previous = catalog.latest(service.subject)
                with catalog.saved_afterwards():  # a failed verification is recorded too
                    record, detail = take_and_verify(context, service, catalog)
                if previous is not None and not readable_with(previous, key):
                    why = "encrypted with another key" if previous.encrypted else "unencrypted"
                    summary = f"backup {record.id} taken and proven by restore ({detail}); the previous one is {why}"
                else:
                    summary = f"first backup {record.id} taken and proven by restore ({detail})"
                changes.append(Change(subject=service.subject, summary=summary))
                dirty = True
        if dirty:
            catalog.save()
    if policy["pitr"]:
        for instance in postgres_instances(context.config):
            row = context.pg(instance).execute(load_query(context.paths.sql_dir, "archive-mode")).fetchone()
            if row and row[0] == "off":
                context.logger.warning(
                    "%s: backup policy has PITR on but archive_mode is off on the server; check the rendered postgres.conf", instance
                )
    return changes
