"""Restore one service database from the catalog, safely, and export a backup as a plain archive.

``restore_service`` (``nndb backup restore <stack> <service>``):

1. pick the backup (latest not known bad, ``--backup ID`` or the latest taken before ``--before``)
   and authenticate its file end to end (checksum, then every chunk with the current key);
2. refuse while the live database has sessions, unless ``force`` (they are ended at the swap);
3. take a fresh backup of the live database and prove it by a restore (what to go back to);
4. restore into a new database ``nndb_restore_<db>_<random>`` owned by the service's owner role
   (TimescaleDB's pre/post_restore around pg_restore where the instance runs it) and compare every
   table's row count with the catalog;
5. swap: no new connections to the live database, its sessions ended (``force``), then in ONE
   transaction the live database is renamed aside and the restored one takes its name;
6. grants: the service's ``sql/init/03-set-permissions.sql`` on the swapped-in database;
   the ledger is read and compared with the migration files (pending ones are reported);
7. the old database is dropped (the fresh backup of step 3 holds it).

A failure before the swap drops the new database and leaves the live one untouched (connections
allowed again). ``into`` restores beside the live database instead (steps 1, 4 and a private
database: no PUBLIC connect, no swap, nothing dropped).

``export_backup`` decrypts a backup into a plain ``pg_restore``-able file (mode 0600, created
exclusively, renamed into place only once every chunk authenticated and ``pg_restore --list``
read it).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from nexanest_db.backup_crypto import BackupKey, decrypt_chunks
from nexanest_db.backups import (
    BackupRecord,
    Catalog,
    _authenticate,
    _restore_decrypted,
    _row_counts,
    _run_tool,
    _sha256,
    find_tool,
)
from nexanest_db.context import HookContext
from nexanest_db.errors import BackupError, DecryptionError, RestoreError
from nexanest_db.ledger import make_plan, read_ledger
from nexanest_db.migration_files import discover
from nexanest_db.operations.backup import backup_key, major_version, scratch_connector, take_and_verify, target_for
from nexanest_db.operations.permissions import STEP_FILE as PERMISSIONS_STEP_FILE
from nexanest_db.operations.permissions import permission_values
from nexanest_db.queries import compose_query, load_query
from nexanest_db.roles import ServiceRoles
from nexanest_db.sqlfiles import load_step_file, one_line, run_steps

MAX_IDENTIFIER = 63

Report = Callable[[str], None]


# --- choosing the backup ------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``2026-12-02T14:05``, ``2026-12-02 14:05:00+01:00``); without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RestoreError(f"--before {text!r}: not an ISO 8601 time; write e.g. 2026-12-02T14:05:00Z (UTC when no offset)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def find_service(services: tuple[ServiceRoles, ...], name: str) -> ServiceRoles:
    """A service by its name (``auth``) or its subject (``postgres/auth``)."""
    for service in services:
        if name in (service.service, service.subject):
            return service
    known = ", ".join(s.service for s in services)
    raise RestoreError(f"{name}: no such service in this stack; pick one of {known}")


def choose_backup(catalog: Catalog, subject: str, *, backup_id: str | None = None, before: datetime | None = None) -> BackupRecord:
    """The backup to restore: ``backup_id``; else the latest taken before ``before``; else the latest. Never a failed one."""
    mine = [b for b in catalog.backups if b.subject == subject]
    if backup_id is not None:
        for record in mine:
            if record.id == backup_id:
                if record.verified is False:
                    raise RestoreError(f"{subject}: backup {backup_id} failed verification ({record.verify_detail}); pick another one")
                return record
        other = next((b for b in catalog.backups if b.id == backup_id), None)
        if other is not None:
            raise RestoreError(f"backup {backup_id} is a backup of {other.subject}, not of {subject}")
        raise RestoreError(f"{subject}: no backup {backup_id} in the catalog {catalog.directory}; see `nndb backup list {catalog.stack}`")
    usable = [b for b in mine if b.verified is not False]
    if before is not None:
        usable = [b for b in usable if datetime.fromisoformat(b.taken_at) < before]
    if not usable:
        when = f" taken before {before.isoformat()}" if before is not None else ""
        raise RestoreError(f"{subject}: no usable backup{when} in the catalog {catalog.directory}; see `nndb backup list {catalog.stack}`")
    return max(usable, key=lambda b: b.taken_at)


def authenticate_file(catalog: Catalog, record: BackupRecord, key: BackupKey | None) -> Path:
    """The record's file, checked against its checksum and (encrypted) decrypted end to end: before anything changes."""
    try:
        path = catalog.local_file(record)  # fetched from the off-host repository when this directory caches one
    except BackupError as exc:
        raise RestoreError(str(exc)) from None
    if not path.is_file():
        raise RestoreError(f"{record.subject}: backup {record.id} is missing its file {path}; pick another with --backup")
    if _sha256(path) != record.sha256:
        raise RestoreError(f"{record.subject}: backup {record.id} does not match its recorded checksum (file altered or truncated)")
    if record.encrypted:
        assert key is not None
        try:
            _authenticate(path, key, f"{record.subject}: backup file {path}")
        except BackupError as exc:
            raise RestoreError(str(exc)) from None
    return path


# --- steps with their time ----------------------------------------------------------------------


@dataclass
class Steps:
    """One line per step, with its elapsed time: ``report`` gets ``"  3.2s  <what>: <detail>"``."""

    report: Report
    started: float = field(default_factory=time.monotonic)

    @contextmanager
    def step(self, what: str) -> Iterator[list[str]]:
        detail: list[str] = []
        begin = time.monotonic()
        yield detail
        took = time.monotonic() - begin
        self.report(f"{took:7.1f}s  {what}" + (f": {'; '.join(detail)}" if detail else ""))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


# --- restore ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RestoreResult:
    service: ServiceRoles
    restored: BackupRecord
    fresh: BackupRecord | None
    database: str
    rows: int
    tables: int
    pending_migrations: list[str]
    elapsed_s: float


def _exists(conn: psycopg.Connection, sql_dir: Path, database: str) -> bool:
    row = conn.execute(load_query(sql_dir, "database-exists"), {"database": database}).fetchone()
    return bool(row and row[0])


def _sessions(conn: psycopg.Connection, sql_dir: Path, database: str) -> list[str]:
    rows = conn.execute(load_query(sql_dir, "restore-sessions"), {"database": database}).fetchall()
    return [f"pid {pid} ({user}, {app}, {addr})" for pid, user, app, addr in rows]


def _close_own_session(context: HookContext, instance: str, database: str) -> None:
    """Our cached connection to ``database`` (the fresh backup's) would block the rename: close it."""
    context.postgres.close_database(instance, database)


def _new_name(prefix: str, database: str) -> str:
    return f"{prefix}_{database}"[: MAX_IDENTIFIER - 9] + f"_{secrets.token_hex(4)}"


def _restore_into(
    context: HookContext, service: ServiceRoles, record: BackupRecord, path: Path, key: BackupKey | None, database: str
) -> tuple[int, int]:
    """Create ``database`` (owned by the service's owner role) and pg_restore ``record`` into it; (tables, rows), counts checked."""
    sql_dir = context.paths.sql_dir
    maintenance = context.pg(service.instance)
    target = target_for(context, service.instance)
    connect = scratch_connector(context, service.instance)
    maintenance.execute(compose_query(sql_dir, "restore-create-database", database=database, owner=service.owner_role))
    row = maintenance.execute(load_query(sql_dir, "timescaledb-preloaded")).fetchone()
    if row and row[0]:
        with connect(database) as conn:
            conn.execute(load_query(sql_dir, "timescaledb-restore-begin"))
    pg_restore = find_tool("pg_restore", major_version(context, service.instance))
    argv = [pg_restore, "--exit-on-error", "--single-transaction", *target.argv(database)]
    what = f"restore of {service.subject} backup {record.id} into {database}"
    try:
        if record.encrypted and key is not None:
            _restore_decrypted(argv, target, path, key, what, f"{service.subject}: backup file {path}")
        else:
            _run_tool([*argv, str(path)], target, what)
    except BackupError as exc:
        raise RestoreError(str(exc)) from None
    with connect(database) as conn:
        conn.execute(load_query(sql_dir, "timescaledb-restore-end"))
        counts = _row_counts(conn, sql_dir)
    if counts != record.row_counts:
        diff = sorted(set(counts.items()) ^ set(record.row_counts.items()))
        raise RestoreError(f"{service.subject}: backup {record.id} restored with different row counts ({diff[:3]}); not swapped in")
    return len(counts), sum(counts.values())


def _drop(context: HookContext, instance: str, database: str) -> None:
    with suppress(psycopg.Error):
        context.pg(instance).execute(compose_query(context.paths.sql_dir, "scratch-drop", database=database))


def restore_service(
    context: HookContext,
    catalog: Catalog,
    service: ServiceRoles,
    *,
    report: Report,
    backup_id: str | None = None,
    before: datetime | None = None,
    force: bool = False,
    into: str | None = None,
) -> RestoreResult:
    """Restore a backup of ``service`` into its live database (or beside it, ``into``). The caller holds the catalog lock."""
    steps = Steps(report)
    sql_dir = context.paths.sql_dir
    key = backup_key(context)
    with steps.step("chose backup") as detail:
        record = choose_backup(catalog, service.subject, backup_id=backup_id, before=before)
        path = authenticate_file(catalog, record, key if record.encrypted else None)
        detail.append(f"{record.id} taken {record.taken_at}, {sum(record.row_counts.values())} rows, file authenticated")
    maintenance = context.pg(service.instance)
    if into is not None:
        return _restore_beside(context, service, record, path, key, into, steps)

    live = service.database
    live_exists = _exists(maintenance, sql_dir, live)
    with steps.step("checked sessions") as detail:
        sessions = _sessions(maintenance, sql_dir, live) if live_exists else []
        if sessions and not force:
            raise RestoreError(
                f"{service.subject}: {len(sessions)} session(s) connected ({', '.join(sessions[:3])}); stop the service "
                f"or pass --force to end them at the swap; nothing was changed"
            )
        detail.append(f"{len(sessions)} connected" + (" (--force: ended at the swap)" if sessions else ""))

    fresh: BackupRecord | None = None
    with steps.step("fresh backup of the live database") as detail:
        if live_exists:
            try:
                fresh, proof = take_and_verify(context, service, catalog)
            finally:
                catalog.save()
                _close_own_session(context, service.instance, live)
            detail.append(f"{fresh.id}, proven by restore ({proof})")
        else:
            detail.append(f"none: {live} does not exist")

    staged = _new_name("nndb_restore", live)
    aside = _new_name("nndb_replaced", live)
    swapped = False
    try:
        with steps.step(f"restored into {staged}") as detail:
            tables, rows = _restore_into(context, service, record, path, key if record.encrypted else None, staged)
            detail.append(f"{tables} tables, {rows} rows, row counts match the catalog")
        with steps.step("swapped in by rename") as detail:
            _swap(context, service, staged, aside, live_exists=live_exists, force=force, detail=detail)
            swapped = True
    finally:
        if not swapped:
            _drop(context, service.instance, staged)

    with steps.step("grants") as detail:
        conn = context.pg(service.instance, live)
        try:
            with conn.transaction():
                run_steps(conn, load_step_file(sql_dir, PERMISSIONS_STEP_FILE), permission_values(service))
        except Exception as exc:  # the data is in place: say what to run, keep the old database
            raise RestoreError(
                f"{service.subject}: restored and swapped in, but the grants failed ({one_line(exc)}); "
                f"run `nndb hooks run {context.stack}`; the old database is kept as {aside}"
            ) from None
        detail.append(f"{PERMISSIONS_STEP_FILE} applied (owner {service.owner_role}, app {service.app.name})")
    with steps.step("ledger") as detail:
        pending = _ledger_state(context, service, conn, detail)
    _close_own_session(context, service.instance, live)
    if live_exists:
        with steps.step(f"dropped the replaced database {aside}") as detail:
            context.pg(service.instance).execute(compose_query(sql_dir, "scratch-drop", database=aside))
            detail.append(f"its data is in backup {fresh.id if fresh else '-'}")
    return RestoreResult(
        service=service,
        restored=record,
        fresh=fresh,
        database=live,
        rows=rows,
        tables=tables,
        pending_migrations=pending,
        elapsed_s=steps.elapsed,
    )


def _swap(
    context: HookContext, service: ServiceRoles, staged: str, aside: str, *, live_exists: bool, force: bool, detail: list[str]
) -> None:
    """Rename the live database aside and ``staged`` into its place, in one transaction."""
    sql_dir = context.paths.sql_dir
    maintenance = context.pg(service.instance)
    live = service.database
    if not live_exists:
        maintenance.execute(compose_query(sql_dir, "database-rename", database=staged, new_name=live))
        detail.append(f"{staged} is now {live}")
        return
    maintenance.execute(compose_query(sql_dir, "database-block-connections", database=live))
    try:
        sessions = _sessions(maintenance, sql_dir, live)
        if sessions and not force:
            raise RestoreError(
                f"{service.subject}: {len(sessions)} session(s) connected during the restore ({', '.join(sessions[:3])}); "
                "the live database is untouched: stop the service or pass --force"
            )
        ended = 0
        if sessions:
            row = maintenance.execute(load_query(sql_dir, "restore-terminate"), {"database": live}).fetchone()
            ended = int(row[0]) if row else 0
            _wait_for_no_sessions(maintenance, sql_dir, live)
        try:
            with maintenance.transaction():
                maintenance.execute(compose_query(sql_dir, "database-rename", database=live, new_name=aside))
                maintenance.execute(compose_query(sql_dir, "database-rename", database=staged, new_name=live))
        except psycopg.Error as exc:
            raise RestoreError(f"{service.subject}: swap failed ({one_line(exc)}); the live database is untouched") from None
    except BaseException:
        with suppress(psycopg.Error):
            maintenance.execute(compose_query(sql_dir, "database-allow-connections", database=live))
        raise
    detail.append(f"{live} is the restored database" + (f", {ended} session(s) ended" if ended else ""))


def _wait_for_no_sessions(conn: psycopg.Connection, sql_dir: Path, database: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _sessions(conn, sql_dir, database) and time.monotonic() < deadline:
        time.sleep(0.05)


def _ledger_state(context: HookContext, service: ServiceRoles, conn: psycopg.Connection, detail: list[str]) -> list[str]:
    exists, applied = read_ledger(conn, service.service, context.paths.sql_dir)
    plan = make_plan(service, discover(context.paths.sql_dir, service.service), applied, ledger_exists=exists)
    latest = f"V{max(applied):03d}" if applied else "none"
    detail.append(f"latest applied {latest}, {len(plan.pending)} pending")
    if plan.pending:
        detail.append(f"run `nndb migrate apply {context.stack}` to bring it to the current schema")
    detail.extend(plan.problems()[:1])
    return [m.script for m in plan.pending]


def _restore_beside(
    context: HookContext, service: ServiceRoles, record: BackupRecord, path: Path, key: BackupKey, into: str, steps: Steps
) -> RestoreResult:
    sql_dir = context.paths.sql_dir
    if len(into.encode()) > MAX_IDENTIFIER or not into.strip():
        raise RestoreError(f"--into {into!r}: a database name of 1 to {MAX_IDENTIFIER} bytes")
    if into == service.database or _exists(context.pg(service.instance), sql_dir, into):
        raise RestoreError(f"--into {into}: database already exists on {service.instance}; name a new one (or drop it first)")
    done = False
    try:
        with steps.step(f"restored into {into} beside {service.database}") as detail:
            tables, rows = _restore_into(context, service, record, path, key if record.encrypted else None, into)
            context.pg(service.instance).execute(compose_query(sql_dir, "database-private", database=into))
            detail.append(f"{tables} tables, {rows} rows, row counts match the catalog; owner {service.owner_role}, no PUBLIC connect")
        done = True
    finally:
        if not done:
            _drop(context, service.instance, into)
    return RestoreResult(
        service=service,
        restored=record,
        fresh=None,
        database=into,
        rows=rows,
        tables=tables,
        pending_migrations=[],
        elapsed_s=steps.elapsed,
    )


# --- export -------------------------------------------------------------------------------------


def export_backup(catalog: Catalog, record: BackupRecord, key: BackupKey | None, output: Path) -> int:
    """Write ``record`` as a plain ``pg_restore``-able archive at ``output`` (0600, never over an existing file); its size."""
    source = authenticate_file(catalog, record, key if record.encrypted else None)
    if output.exists() or output.is_symlink():
        raise RestoreError(f"{output}: already exists; name a new file (export never overwrites)")
    if not output.parent.is_dir():
        raise RestoreError(f"{output.parent}: no such directory; create it first")
    partial = output.with_name(f".{output.name}.partial-{secrets.token_hex(4)}")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise RestoreError(f"{output}: cannot write ({exc.strerror})") from None
    size = 0
    try:
        with os.fdopen(fd, "wb") as handle, source.open("rb") as encrypted:
            if record.encrypted:
                assert key is not None
                for plaintext in decrypt_chunks(encrypted, key):
                    handle.write(plaintext)
                    size += len(plaintext)
            else:
                for block in iter(lambda: encrypted.read(1 << 20), b""):
                    handle.write(block)
                    size += len(block)
            handle.flush()
            os.fsync(handle.fileno())
        major = int(record.server_version.split(".")[0]) if record.server_version else 15
        listing = subprocess.run([find_tool("pg_restore", major), "--list", str(partial)], capture_output=True, text=True, check=False)
        if listing.returncode != 0:
            raise RestoreError(f"{output}: pg_restore cannot read the exported archive ({listing.stderr.strip()[:200]})")
        if output.exists():
            raise RestoreError(f"{output}: appeared while exporting; name a new file")
        os.replace(partial, output)
    except DecryptionError as exc:
        raise RestoreError(f"{record.subject}: backup file {source}: {exc}") from None
    except OSError as exc:
        raise RestoreError(f"{output}: cannot write ({exc.strerror})") from None
    finally:
        partial.unlink(missing_ok=True)
    return size
