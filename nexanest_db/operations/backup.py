"""Backup sessions of a run: client-tool targets, the encryption key, take-and-prove, verify.

Shared by the ``backup`` hook step, ``nndb backup run|verify`` and ``nndb backup restore|export``.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from nexanest_db.backup_crypto import BackupKey
from nexanest_db.backups import BackupRecord, Catalog, PgTarget, find_tool, mark_verified, take_backup, verify_backup
from nexanest_db.context import HookContext
from nexanest_db.errors import BackupError
from nexanest_db.pg import open_session
from nexanest_db.roles import SUPERUSER_SECRETS, ServiceRoles

BACKUP_KEY_SECRET = "backup_encryption_key"  # noqa: S105 -- a secret NAME, not a value


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
