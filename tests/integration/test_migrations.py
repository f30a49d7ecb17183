"""Migrations against real PostgreSQL: the failure cases the ledger must survive."""

from __future__ import annotations

import threading
import time

import pytest

from nexanest_db.errors import MigrationError, RunFailed, RunLockTimeout
from tests.fixtures.servers import DbStack
from tests.support.hooks import MIGRATE_HOOKS, nndb, run_in_process, summaries, write_migration

pytestmark = pytest.mark.integration


def ledger_versions(db_stack: DbStack, service: str = "auth") -> list[int]:
    with db_stack.postgres.connect(service) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM nndb.schema_migrations WHERE service = %s ORDER BY 1", (service,))]


def table_exists(db_stack: DbStack, name: str, database: str = "auth") -> bool:
    with db_stack.postgres.connect(database) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone() == (True,)


def test_broken_migration_in_the_middle_rolls_back_whole_and_earlier_ones_stay(db_stack: DbStack) -> None:
    run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    write_migration(db_stack, "auth", "V004__add_roles.sql", "CREATE TABLE roles (id int PRIMARY KEY, name text NOT NULL);\n")
    write_migration(
        db_stack,
        "auth",
        "V005__add_role_grants.sql",
        "-- the second statement fails at run time: its first must not survive\n"
        "CREATE TABLE role_grants (role_id int REFERENCES roles (id), user_id bigint);\n"
        "INSERT INTO role_grants\n"
        "SELECT 1, no_such_column FROM users;\n",
    )
    write_migration(db_stack, "auth", "V006__add_role_index.sql", "CREATE INDEX role_grants_user_idx ON role_grants (user_id);\n")

    with pytest.raises(RunFailed) as excinfo:
        run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    message = str(excinfo.value)
    assert "plugin 'migrations' failed in nndb_apply_migrations" in message
    assert "sql/migrations/auth/V005__add_role_grants.sql:4:" in message  # file and line of the failing column
    assert 'column "no_such_column" does not exist' in message
    assert excinfo.value.exit_code == MigrationError.exit_code

    assert ledger_versions(db_stack) == [0, 1, 2, 3, 4]  # V004 stays, V005 is not recorded, V006 never ran
    assert table_exists(db_stack, "auth.roles")
    assert not table_exists(db_stack, "auth.role_grants")  # V005's first statement rolled back with it

    # Fix the file, run again: V005 and V006 apply, nothing else.
    write_migration(
        db_stack, "auth", "V005__add_role_grants.sql", "CREATE TABLE role_grants (role_id int REFERENCES roles (id), user_id bigint);\n"
    )
    again = summaries(run_in_process(db_stack, hooks=MIGRATE_HOOKS))
    assert [s.split(" (")[0] for s in again] == [
        "postgres/auth: applied V005 add role grants",
        "postgres/auth: applied V006 add role index",
    ]
    assert ledger_versions(db_stack) == [0, 1, 2, 3, 4, 5, 6]


def test_edited_applied_migration_is_refused_and_nothing_else_applies(db_stack: DbStack) -> None:
    run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    applied = db_stack.project / "sql" / "migrations" / "auth" / "V002__add_session_revocation.sql"
    applied.write_text(applied.read_text() + "-- a harmless-looking edit\n")
    write_migration(db_stack, "portfolio", "V003__add_watchlists.sql", "CREATE TABLE watchlists (id int);\n")

    with pytest.raises(RunFailed, match=r"sql/migrations/auth/V002__add_session_revocation.sql: checksum mismatch") as excinfo:
        run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    assert excinfo.value.exit_code == MigrationError.exit_code
    assert not table_exists(db_stack, "portfolio.watchlists", database="portfolio")  # checked before anything is applied

    status = nndb(db_stack, "migrate", "status", "local-db")
    assert status.returncode == MigrationError.exit_code
    assert "CHANGED (checksum mismatch)" in status.stdout and "checksum mismatch" in status.stderr


def test_out_of_order_file_is_reported_not_applied(db_stack: DbStack) -> None:
    migrations = db_stack.project / "sql" / "migrations" / "auth"
    (migrations / "V003__add_users_last_login.sql").rename(migrations / "V005__add_users_last_login.sql")
    run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    write_migration(db_stack, "auth", "V004__add_roles.sql", "CREATE TABLE roles (id int);\n")

    with pytest.raises(RunFailed, match=r"V004__add_roles.sql: out of order — new V004 is below the latest applied V005"):
        run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    assert not table_exists(db_stack, "auth.roles")
    status = nndb(db_stack, "migrate", "status", "local-db")
    assert "OUT OF ORDER (not applied)" in status.stdout


def test_two_runs_at_once_never_interleave(db_stack: DbStack) -> None:
    run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    write_migration(db_stack, "auth", "V004__slow.sql", "SELECT pg_sleep(2);\nCREATE TABLE slow_done (id int);\n")
    results: dict[str, object] = {}

    def first() -> None:
        results["first"] = summaries(run_in_process(db_stack, hooks=MIGRATE_HOOKS))

    def attempt(name: str, lock_timeout_s: float) -> None:
        try:
            results[name] = summaries(run_in_process(db_stack, hooks=MIGRATE_HOOKS, lock_timeout_s=lock_timeout_s))
        except RunFailed as exc:
            results[name] = exc

    runner = threading.Thread(target=first)
    runner.start()
    time.sleep(0.5)  # the first run holds the lock and sits in V004's pg_sleep
    impatient = threading.Thread(target=attempt, args=("impatient", 0.5))
    patient = threading.Thread(target=attempt, args=("patient", 30))
    started = time.monotonic()
    impatient.start()
    patient.start()
    impatient.join()
    impatient_s = time.monotonic() - started
    for thread in (runner, patient):
        thread.join()

    assert [s.split(" (")[0] for s in results["first"]] == ["postgres/auth: applied V004 slow"]  # type: ignore[union-attr]
    failure = results["impatient"]
    assert isinstance(failure, RunFailed) and isinstance(failure.__cause__, RunLockTimeout)
    assert "another nndb run (backend pid" in str(failure) and "gave up after 0.5s" in str(failure)
    assert impatient_s < 3
    assert results["patient"] == []  # waited, then found everything applied
    assert ledger_versions(db_stack) == [0, 1, 2, 3, 4]


def test_syntax_error_stops_the_run_before_any_change(db_stack: DbStack) -> None:
    write_migration(db_stack, "portfolio", "V003__broken.sql", "-- comment\nCREATE TABLE ok (id int);\nCREAT TABLE broken (id int);\n")
    with pytest.raises(
        RunFailed, match=r"plugin 'migrations' failed in nndb_preflight: sql/migrations/portfolio/V003__broken.sql:3: syntax error"
    ):
        run_in_process(db_stack)
    with db_stack.postgres.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname IN ('auth', 'portfolio')").fetchone() == (0,)


def test_status_is_read_only_and_lists_pending(db_stack: DbStack) -> None:
    status = nndb(db_stack, "migrate", "status", "local-db")
    assert status.returncode == 0, status.stderr
    assert "auth (postgres/auth, no ledger yet)" in status.stdout
    assert "migrate: 0 applied, 11 pending" in status.stdout
    with db_stack.postgres.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'auth'").fetchone() == (0,)
    applied = nndb(db_stack, "migrate", "apply", "local-db")
    assert applied.returncode == 0, applied.stderr
    assert "applied V003 add users last login" in applied.stdout
    assert "migrate: 0 applied, up to date" not in applied.stdout
    assert "migrate: 11 applied, up to date" in nndb(db_stack, "migrate", "status", "local-db").stdout


def test_migrate_new_then_status_exit_code_for_ci(db_stack: DbStack) -> None:
    run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    clean = nndb(db_stack, "migrate", "status", "local-db", "--exit-code")
    assert clean.returncode == 0, clean.stderr
    assert "migrate: " in clean.stdout and "up to date" in clean.stdout

    created = nndb(db_stack, "migrate", "new", "auth", "Add roles table")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "migrate: wrote sql/migrations/auth/V004__add_roles_table.sql"
    new_file = db_stack.project / "sql" / "migrations" / "auth" / "V004__add_roles_table.sql"
    assert new_file.read_text().startswith("-- V004: add roles table\n")
    header_only = nndb(db_stack, "migrate", "apply", "local-db")  # forgotten SQL: refused, not recorded as applied
    assert header_only.returncode == MigrationError.exit_code
    assert "sql/migrations/auth/V004__add_roles_table.sql: no SQL statement in it (only comments)" in header_only.stderr
    assert ledger_versions(db_stack) == [0, 1, 2, 3]
    new_file.write_text(new_file.read_text() + "CREATE TABLE roles (id int PRIMARY KEY);\n")

    pending = nndb(db_stack, "migrate", "status", "local-db", "--exit-code")
    assert pending.returncode == MigrationError.exit_code
    assert pending.stderr.strip() == (
        "nndb: error: 1 migration(s) pending, first auth V004; apply them with `nndb migrate apply local-db` or a deploy"
    )
    without_flag = nndb(db_stack, "migrate", "status", "local-db")
    assert without_flag.returncode == 0 and "1 pending" in without_flag.stdout  # plain status stays informational

    only_portfolio = nndb(db_stack, "migrate", "status", "local-db", "--service", "portfolio", "--exit-code", "--json")
    assert only_portfolio.returncode == 0, only_portfolio.stderr
    assert '"auth"' not in only_portfolio.stdout and '"portfolio"' in only_portfolio.stdout
    unknown = nndb(db_stack, "migrate", "status", "local-db", "--service", "billing")
    assert unknown.returncode == 2
    assert (
        unknown.stderr.strip() == "nndb: error: --service billing: local-db has no such service; its services: auth, portfolio, analytics"
    )

    run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    assert table_exists(db_stack, "auth.roles")
    assert nndb(db_stack, "migrate", "status", "local-db", "--exit-code").returncode == 0


def test_migrate_new_refuses_unknown_service_and_empty_description(db_stack: DbStack) -> None:
    unknown = nndb(db_stack, "migrate", "new", "billing", "add invoices")
    assert unknown.returncode == 2
    assert "unknown service 'billing'" in unknown.stderr and "known services: analytics, auth, portfolio" in unknown.stderr
    empty = nndb(db_stack, "migrate", "new", "auth", " -- ")
    assert empty.returncode == 2 and "has no letters or digits" in empty.stderr
    assert sorted(p.name for p in (db_stack.project / "sql" / "migrations" / "auth").iterdir())[-1] == "V003__add_users_last_login.sql"


def test_a_failed_run_reports_what_it_committed_before_the_failure(db_stack: DbStack) -> None:
    run_in_process(db_stack, hooks=MIGRATE_HOOKS)
    write_migration(db_stack, "auth", "V004__ok.sql", "CREATE TABLE ok_first (id int);\n")
    write_migration(db_stack, "auth", "V005__broken.sql", "SELECT no_such_column FROM users;\n")
    result = nndb(db_stack, "migrate", "apply", "local-db")
    assert result.returncode == MigrationError.exit_code, result.stderr
    assert "migrate: 1 change committed before the failure" in result.stdout, result.stdout
    assert "up to date" not in result.stdout
    assert "applied V004 ok" in result.stdout  # printed like any change
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "V005__broken.sql:1:" in lines[0] and "fix the file and run again" in lines[0]
    assert ledger_versions(db_stack) == [0, 1, 2, 3, 4]
