"""The migration ledger: what is applied, what is pending, and applying it safely.

The ledger (``nndb.schema_migrations``, created by ``sql/ledger/01-create-ledger.sql``) lives in
each service database, keyed by (service, version). A migration and its ledger row commit in one
transaction; a failing migration rolls back whole, so the ledger always tells the truth.

Before anything is applied, every service's plan is checked: an applied file whose checksum
changed is refused, and a new file numbered below the latest applied version is reported as out
of order and not applied.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from nexanest_db import scram
from nexanest_db.errors import MigrationError, NndbError
from nexanest_db.migration_files import Migration
from nexanest_db.queries import compose_query, load_query
from nexanest_db.roles import ServiceRoles
from nexanest_db.sqlfiles import one_line


@dataclass(frozen=True, kw_only=True)
class LedgerRow:
    version: int
    description: str
    script: str
    checksum: str
    applied_at: datetime
    execution_ms: int
    applied_by: str


@dataclass(kw_only=True)
class ServicePlan:
    roles: ServiceRoles
    migrations: list[Migration]
    applied: dict[int, LedgerRow]
    ledger_exists: bool
    pending: list[Migration] = field(default_factory=list)
    out_of_order: list[Migration] = field(default_factory=list)
    changed: list[tuple[Migration, LedgerRow]] = field(default_factory=list)
    missing_files: list[LedgerRow] = field(default_factory=list)

    def problems(self) -> list[str]:
        """One line per reason not to apply anything for this service."""
        lines = []
        for migration, row in self.changed:
            lines.append(
                f"{migration.script}: checksum mismatch — changed after it was applied to {self.roles.subject} on "
                f"{row.applied_at:%Y-%m-%d %H:%M} (ledger {row.checksum[:12]}, file {migration.checksum[:12]}); "
                "restore the applied text and put the change in a new migration"
            )
        latest = max(self.applied, default=None)
        for migration in self.out_of_order:
            lines.append(
                f"{migration.script}: out of order — new {migration.label} is below the latest applied V{latest:03d} on "
                f"{self.roles.subject}; not applied: renumber it above V{latest:03d}"
            )
        return lines


def read_ledger(conn: psycopg.Connection, service: str, sql_dir: Path) -> tuple[bool, dict[int, LedgerRow]]:
    """(ledger exists, applied rows by version) for ``service`` in the connected database."""
    row = conn.execute(load_query(sql_dir, "ledger-exists")).fetchone()
    if not row or not row[0]:
        return False, {}
    rows = conn.execute(load_query(sql_dir, "ledger-applied"), {"service": service}).fetchall()
    return True, {
        r[0]: LedgerRow(version=r[0], description=r[1], script=r[2], checksum=r[3], applied_at=r[4], execution_ms=r[5], applied_by=r[6])
        for r in rows
    }


def make_plan(roles: ServiceRoles, migrations: list[Migration], applied: dict[int, LedgerRow], *, ledger_exists: bool) -> ServicePlan:
    plan = ServicePlan(roles=roles, migrations=migrations, applied=applied, ledger_exists=ledger_exists)
    latest_applied = max(applied, default=-1)
    on_disk = {m.version for m in migrations}
    for migration in migrations:
        row = applied.get(migration.version)
        if row is not None:
            if row.checksum != migration.checksum and row.checksum not in migration.superseded_checksums:
                plan.changed.append((migration, row))
        elif migration.version < latest_applied:
            plan.out_of_order.append(migration)
        else:
            plan.pending.append(migration)
    plan.missing_files = [row for version, row in sorted(applied.items()) if version not in on_disk]
    return plan


NoticeSink = Callable[[Migration, str], None]
MigratorLogin = Callable[[str], psycopg.Connection]
# How long a migrator's one-run password stays valid at most (a run killed before closing it).
MIGRATOR_LOGIN_VALID = "2 hours"


class MigrationApplier:
    """Applies migrations of one service in its sandbox, each in ONE transaction with its ledger row.

    The sandbox (see sql/ledger/01-create-ledger.sql and docs/hooks.md "Migrations"): the superuser
    session ``admin`` gives ``<svc>_migrator`` a one-run random password and issues a run token, then
    the migrations run in a session logged in as the migrator (NOINHERIT, member of ``<svc>_owner``
    only), which can never be more than the service's owner: ``RESET ROLE``, ``SET ROLE <other>``
    or ``SET SESSION AUTHORIZATION`` in a migration lead nowhere. The ledger row is written by
    ``nndb.record_migration`` with the token the migration's SQL never sees. ``close()`` logs the
    migrator out and clears its password and the token, whatever happened.

    Round trips per migration: one to begin (BEGIN, SET LOCAL ROLE <owner>, search_path), one per
    statement, one to record and commit — the same count as psql with BEGIN/COMMIT around a file.
    A failure rolls the whole migration back (its ledger row with it) and raises ``MigrationError``
    naming file and line.
    """

    def __init__(
        self,
        admin: psycopg.Connection,
        login: MigratorLogin,
        roles: ServiceRoles,
        sql_dir: Path,
        notice: NoticeSink | None = None,
    ) -> None:
        self._admin = admin
        self._roles = roles
        self._sql_dir = sql_dir
        self._begin = compose_query(sql_dir, "migration-begin", owner_role=roles.owner_role, schema=roles.schema)
        self._commit = sql.SQL(load_query(sql_dir, "migration-commit"))
        self._token = secrets.token_hex(32)
        self._current: Migration | None = None
        self._notice = notice
        self._opened = False
        password = secrets.token_urlsafe(32)
        self._open_sandbox(password)
        try:
            self._conn = login(password)
        except BaseException:
            self._close_sandbox()
            raise
        self._cursor = self._conn.cursor()
        if notice is not None:
            self._conn.add_notice_handler(self._on_notice)

    def _open_sandbox(self, password: str) -> None:
        roles = self._roles
        row = self._admin.execute(load_query(self._sql_dir, "migrator-valid-until"), {"valid": MIGRATOR_LOGIN_VALID}).fetchone()
        valid_until = row[0] if row else None
        verifier = scram.build(password)
        statement = sql.SQL(load_query(self._sql_dir, "migrator-open")).format(
            migrator_role=sql.Identifier(roles.migrator_role),
            verifier=sql.Literal(verifier),
            valid_until=sql.Literal(valid_until),
            service=sql.Literal(roles.service),
            token_sha256=sql.Literal(hashlib.sha256(self._token.encode()).hexdigest()),
            migrator_name=sql.Literal(roles.migrator_role),
            owner_name=sql.Literal(roles.owner_role),
        )
        self._opened = True
        self._admin.execute(statement)

    def _close_sandbox(self) -> None:
        if not self._opened or self._admin.closed:
            return
        statement = sql.SQL(load_query(self._sql_dir, "migrator-close")).format(
            migrator_role=sql.Identifier(self._roles.migrator_role), service=sql.Literal(self._roles.service)
        )
        try:
            if self._admin.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                self._admin.execute("ROLLBACK")
            self._admin.execute(statement)
        except (psycopg.Error, NndbError):
            pass  # the server went away: the next run's init_sql closes the login ("left open by an interrupted run")
        self._opened = False

    def _on_notice(self, diag: psycopg.errors.Diagnostic) -> None:
        if self._notice is not None and self._current is not None:
            self._notice(self._current, diag.message_primary or "")

    def apply(self, migration: Migration) -> int:
        """Apply and record ``migration``; return its execution time in ms."""
        cursor, roles = self._cursor, self._roles
        self._current = migration
        started = time.perf_counter()
        try:
            cursor.execute(self._begin)
            for statement in migration.statements:
                try:
                    cursor.execute(statement.text)  # file text, no parameters
                except psycopg.Error as exc:
                    if self._server_gone(exc):
                        raise  # not the file's fault: the run reports the server, exit 4
                    position = getattr(exc.diag, "statement_position", None)
                    offset = statement.text[: int(position) - 1].count("\n") if position else 0
                    raise MigrationError(
                        f"{statement.display}:{statement.line + offset}: {one_line(exc)}; {migration.label} of {roles.subject} "
                        "rolled back whole (earlier migrations stay applied) — fix the file and run again"
                    ) from None
                if self._conn.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
                    raise MigrationError(
                        f"{statement.display}:{statement.line}: the statement ended the migration's transaction; "
                        f"{migration.label} of {roles.subject} is not recorded — a migration must not commit or roll back"
                    )
            elapsed_ms = round((time.perf_counter() - started) * 1000)
            record = {
                "token": self._token,
                "service": migration.service,
                "version": migration.version,
                "description": migration.description,
                "script": migration.script,
                "checksum": migration.checksum,
                "execution_ms": elapsed_ms,
            }
            try:
                cursor.execute(self._commit.format(**{key: sql.Literal(value) for key, value in record.items()}))
            except psycopg.Error as exc:
                if self._server_gone(exc):
                    raise
                raise MigrationError(
                    f"{migration.script}: {one_line(exc)}; {migration.label} of {roles.subject} rolled back whole "
                    "(earlier migrations stay applied) — a migration may only change its own service's objects"
                ) from None
        except BaseException:
            self._rollback()
            raise
        finally:
            self._current = None
        return elapsed_ms

    def _server_gone(self, exc: psycopg.Error) -> bool:
        """The session ended under us (server shut down, connection lost), as opposed to an SQL error."""
        state = exc.sqlstate or ""
        return (
            self._conn.closed
            or (state.startswith(("08", "57")) and state != "57014")
            or (not state and isinstance(exc, psycopg.OperationalError))
        )

    def _rollback(self) -> None:
        if not self._conn.closed and self._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                self._conn.execute("ROLLBACK")
            except psycopg.Error:
                self._conn.close()  # a rollback that fails leaves nothing committed: the server drops the transaction

    def close(self) -> None:
        try:
            if self._notice is not None and not self._conn.closed:
                self._conn.remove_notice_handler(self._on_notice)
            self._cursor.close()
            self._conn.close()
        finally:
            self._close_sandbox()
