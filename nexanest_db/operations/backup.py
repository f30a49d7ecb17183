"""Backup sessions of a run: client-tool targets, the encryption key, take-and-prove, verify, registration.

Shared by the ``backup`` hook step, ``nndb backup run|verify`` and ``nndb backup restore|export``.

Registration (the ``backup`` step: ``check_ready``, ``register_databases``) records the environment's
policy (``[backup]`` in config: schedule, retention, PITR) per database and, when the database has no
verified backup yet, takes one and proves it by a restore into a scratch database. A re-run with the
same policy and a verified backup on disk changes nothing. Every new backup is encrypted with the
``backup_encryption_key`` secret (``backup_key``); a database whose latest verified backup is
unencrypted or was taken with another key gets a new one, so a deploy after a key rotation (or after
upgrading from cleartext backups) leaves a backup the current key restores. PITR: WAL archiving itself
is configured by the stack (rendered postgres.conf); registration only records the policy and warns
when the server says ``archive_mode`` is off although PITR is on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from nexanest_db.backup_crypto import BackupKey
from nexanest_db.backups import (
    BackupRecord,
    Catalog,
    DatabaseEntry,
    PgTarget,
    catalog_lock,
    clean_leftovers,
    find_tool,
    mark_verified,
    policy_dict,
    readable_with,
    take_backup,
    verify_backup,
)
from nexanest_db.context import Change, HookContext
from nexanest_db.errors import BackupError
from nexanest_db.pg import open_session
from nexanest_db.queries import load_query
from nexanest_db.roles import SUPERUSER_SECRETS, ServiceRoles, postgres_instances
from nexanest_db.secrets.catalogue import BACKUP_KEY_SECRET


def major_version(context: HookContext, instance: str) -> int:
    return context.postgres.server_version(instance) // 10000


def target_for(context: HookContext, instance: str) -> PgTarget:
    return PgTarget(
        endpoint=context.endpoints.for_instance(instance),
        user=context.postgres.superuser(instance),
        password=context.password(SUPERUSER_SECRETS[instance]),
        connect_timeout_s=context.connect_timeout_s,
        tls_env=tls.env() if (tls := context.client_tls()) is not None else {},
        base_env=context.tool_environ,
    )


def backup_key(context: HookContext) -> BackupKey:
    """The key every backup is encrypted with (``location`` says where it comes from, never the value)."""
    return BackupKey(context.password(BACKUP_KEY_SECRET), location=context.credentials.describe(BACKUP_KEY_SECRET))


def scratch_connector(context: HookContext, instance: str) -> Callable[[str], psycopg.Connection]:
    """``connect(database)``: a fresh superuser connection (autocommit) to any database on ``instance``."""
    target = target_for(context, instance)

    def connect(database: str) -> psycopg.Connection:
        return open_session(
            endpoint=target.endpoint,
            database=database,
            user=target.user,
            password=target.password,
            connect_timeout_s=context.connect_timeout_s,
            application_name="nndb-restore",
            tls_kwargs=context.postgres.tls_kwargs(),
        )

    return connect


def take_and_verify(context: HookContext, service: ServiceRoles, catalog: Catalog, *, verify: bool = True) -> tuple[BackupRecord, str]:
    """Take a backup of ``service``'s database, add it to ``catalog`` and (by default) prove it by restoring."""
    major = major_version(context, service.instance)
    record = take_backup(
        context.pg(service.instance, service.database),
        service=service,
        target=target_for(context, service.instance),
        pg_dump=find_tool("pg_dump", major),
        catalog=catalog,
        sql_dir=context.paths.sql_dir,
        key=backup_key(context),
    )
    catalog.backups.append(record)
    if not verify:
        return record, "not verified"
    return record, verify_record(context, service.instance, record, catalog)


def verify_record(context: HookContext, instance: str, record: BackupRecord, catalog: Catalog) -> str:
    """Restore-and-compare ``record``; the outcome is written into the record either way."""
    try:
        detail = verify_backup(
            context.pg(instance),
            record=record,
            catalog=catalog,
            target=target_for(context, instance),
            pg_restore=find_tool("pg_restore", major_version(context, instance)),
            sql_dir=context.paths.sql_dir,
            connect_scratch=scratch_connector(context, instance),
            key=backup_key(context) if record.encrypted else None,  # a backup from before encryption needs no key
        )
    except BackupError as exc:
        mark_verified(record, ok=False, detail=str(exc))
        raise
    mark_verified(record, ok=True, detail=detail)
    return detail


# --- registration (the ``backup`` hook step) ---------------------------------------------------


def _has_proven_backup(catalog: Catalog, subject: str, key: BackupKey) -> bool:
    record = catalog.latest(subject, verified_only=True)
    if record is None or not readable_with(record, key):
        return False
    path = catalog.path_of(record)
    return path.is_file() and path.stat().st_size == record.size


def check_ready(context: HookContext) -> None:
    """The ``backup`` step's preflight: the key resolves, pg_dump/pg_restore of each server's major exist, the directory is writable."""
    backup_key(context)  # a missing or refused backup key stops the run before anything changes
    for instance in postgres_instances(context.config):
        major = major_version(context, instance)
        find_tool("pg_dump", major)
        find_tool("pg_restore", major)
    existing = context.backup_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not _writable(existing):
        raise BackupError(f"{context.backup_dir}: backup directory cannot be created or written; set --backup-dir / NNDB_BACKUP_DIR")


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def register_databases(context: HookContext) -> list[Change]:
    """Every service database in the catalog with the environment's policy, and a backup proven by a restore (the ``backup`` step)."""
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
